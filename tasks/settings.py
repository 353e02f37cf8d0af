"""Every task's deployment settings (its Lambda environment variables), one model per task family.

    family                  model                used by
    release tasks           ReleaseTaskSettings  validate_request, record, deploy_green, approval, set_weights,
                                                 check_alarms, finalize, rollback, alarm_rollback
    cache tasks             CacheTaskSettings    warm_cache (WarmCache, CleanUp*Cache)
    checks                  CheckTaskSettings    synthetic_checks
    operations (reporting)  OpsSettings          backup, cost_check, dr_drill, event_path_drill
      and each operation's own: BackupSettings, CostSettings, DrillSettings, EventPathSettings

Each field is read from the variable its validation alias names; an empty variable counts as unset.
`from_env()` validates them all at once, so one error names every missing variable and every
malformed one (`release task settings missing: ENVIRONMENT, RELEASE_TABLE_NAME`). The Redis
client's variables are `service.redis_client`'s, shared with the service.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.release import ReleaseDefaults


class SettingsError(RuntimeError, ValueError):
    """A task's environment variables are missing or malformed (a deployment mistake)."""


class OperationsSettingsError(SettingsError):
    """An operations task's environment variables are missing or malformed."""


def _name_of(model: type[BaseModel], field: str) -> str:
    """The variable a field is read from (`AWS_REGION or AWS_DEFAULT_REGION` for a choice)."""
    info = model.model_fields.get(field)
    if info is None:
        return field
    if isinstance(info.validation_alias, AliasChoices):
        return " or ".join(str(choice) for choice in info.validation_alias.choices)
    return str(info.validation_alias or field)


def _bounds(model: type[BaseModel], name: str) -> tuple[Any, Any]:
    for field, info in model.model_fields.items():
        if name in (field, info.validation_alias):
            low = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
            high = next((m.le for m in info.metadata if hasattr(m, "le")), None)
            return low, high
    return None, None


def _problem(model: type[BaseModel], name: str, error: Any) -> str:
    kind, value = error["type"], error.get("input")
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{name} must be an integer, got {value!r}"
    if kind in ("float_parsing", "float_type"):
        return f"{name} must be a number, got {value!r}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high = _bounds(model, name)
        if low is not None and high is not None:
            return f"{name} must be between {low:g} and {high:g}, got {value}"
        return f"{name} {str(error['msg']).replace('Input should be', 'must be')}, got {value}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {message}" if name else message


class TaskSettings(BaseModel):
    """Base of the settings families: each field's `validation_alias` names its variable (the
    field's own name is what code constructs it with); `from_env()` reads them."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    family: ClassVar[str] = "task"
    error: ClassVar[type[SettingsError]] = SettingsError

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        source = os.environ if env is None else env
        values = {name: value for name, value in source.items() if isinstance(value, str) and value.strip()}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise cls.error(cls.describe(exc)) from None

    @classmethod
    def describe(cls, exc: ValidationError) -> str:
        """Every missing variable in one list, then every malformed one."""
        missing: list[str] = []
        invalid: list[str] = []
        for error in exc.errors(include_url=False):
            loc = error["loc"]
            name = str(loc[0]) if loc else ""
            if name and name in cls.model_fields:
                name = _name_of(cls, name)
            if error["type"] == "missing":
                missing.append(name)
            else:
                invalid.append(_problem(cls, name, error))
        parts = [f"{cls.family} settings missing: {', '.join(missing)}"] if missing else []
        if invalid:
            parts.append(
                f"{cls.family} settings invalid: {'; '.join(invalid)}" if not missing else "; ".join(invalid)
            )
        return "; ".join(parts)


def _json_or_csv(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not a JSON list: {exc}") from None
    return [name.strip() for name in value.split(",") if name.strip()]


# -- release tasks ------------------------------------------------------------------------------


def release_defaults(raw: str | None) -> ReleaseDefaults:
    """RELEASE_DEFAULTS: the environment's defaults for what a request leaves out (JSON)."""
    return ReleaseDefaults.model_validate_json(raw) if raw else ReleaseDefaults()


class ReleaseTaskSettings(TaskSettings):
    """The release tasks' settings (infra/orchestration sets them on every release task)."""

    family: ClassVar[str] = "release task"

    environment: str = Field(validation_alias="ENVIRONMENT")
    functions: tuple[str, ...] = Field(validation_alias="SERVICE_FUNCTION_NAMES", min_length=1)
    table_name: str = Field(validation_alias="RELEASE_TABLE_NAME")
    topic_arn: str | None = Field(default=None, validation_alias="RELEASE_TOPIC_ARN")
    region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # Every alarm of the release gate CheckAlarms must find (RELEASE_ALARM_NAMES, set by infra from
    # contracts.names.release_alarm_names): the guards and the composite.
    alarm_names: tuple[str, ...] = Field(default=(), validation_alias="RELEASE_ALARM_NAMES")
    defaults: ReleaseDefaults = Field(default_factory=ReleaseDefaults, validation_alias="RELEASE_DEFAULTS")
    # `connections` routing: the edge's KeyValueStore holding the canary share (contracts.canary).
    # Set by infra on the tasks granted `canary_store`; a release in `connections` routing fails
    # with the variable's name when a task that must write the share lacks it.
    canary_kvs_arn: str | None = Field(default=None, validation_alias="CANARY_KVS_ARN")

    @field_validator("canary_kvs_arn")
    @classmethod
    def _kvs_arn(cls, value: str | None) -> str | None:
        if value is not None and not re.match(
            r"^arn:aws[a-z-]*:cloudfront::\d{12}:key-value-store/[\w-]+$", value
        ):
            raise ValueError(f"must be a CloudFront KeyValueStore ARN, got {value!r}")
        return value

    @field_validator("functions", mode="before")
    @classmethod
    def _function_names(cls, value: Any) -> Any:
        names = _json_or_csv(value)
        if isinstance(names, list):
            names = [name for name in names if isinstance(name, str) and name]
            if not names:
                raise ValueError("names no function")
        return names

    @field_validator("alarm_names", mode="before")
    @classmethod
    def _alarm_names(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            names = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not a JSON list: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ValueError("must be a JSON list of alarm names")
        return tuple(dict.fromkeys(names))

    @field_validator("defaults", mode="before")
    @classmethod
    def _defaults(cls, value: Any) -> Any:
        return release_defaults(value) if isinstance(value, str) else value


class DrainSettings(ReleaseTaskSettings):
    """DrainCanary: the canary stage's `@connections` endpoint and how long a drain may take
    (the Redis connection is service.redis_client's settings)."""

    family: ClassVar[str] = "drain task"

    connections_endpoint: str = Field(validation_alias="CANARY_CONNECTIONS_ENDPOINT")
    # A drain closes, waits for the registry to forget the closed connections, and closes any
    # client that reconnected to the canary stage before the edge saw the share at 0.
    drain_timeout_seconds: Annotated[float, Field(ge=1, le=280)] = Field(
        default=60, validation_alias="DRAIN_TIMEOUT_SECONDS"
    )
    drain_poll_seconds: Annotated[float, Field(ge=0.05, le=30)] = Field(
        default=1, validation_alias="DRAIN_POLL_SECONDS"
    )

    @field_validator("connections_endpoint")
    @classmethod
    def _endpoint(cls, url: str) -> str:
        if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError(f"must be an https:// URL (plain http:// only on loopback), got {url!r}")
        return url.rstrip("/")


# -- cache tasks --------------------------------------------------------------------------------


class CacheTaskSettings(TaskSettings):
    """WarmCache and CleanUp*Cache (the Redis connection is service.redis_client's settings)."""

    family: ClassVar[str] = "cache task"

    # Seconds of work per invocation (capped by the invocation's remaining time less a margin).
    time_budget_seconds: Annotated[int, Field(ge=1, le=900)] = Field(
        default=60, validation_alias="WARM_TIME_BUDGET_SECONDS"
    )
    # Keys per server-side batch: a batch blocks the server for a few milliseconds.
    batch_keys: Annotated[int, Field(ge=10, le=100_000)] = Field(
        default=1000, validation_alias="WARM_BATCH_KEYS"
    )


# -- checks -------------------------------------------------------------------------------------


class CheckTaskSettings(TaskSettings):
    """SyntheticChecks: where the preview stage is, the API key's secret, the pace of the clients."""

    family: ClassVar[str] = "synthetic checks"

    preview_ws_url: str = Field(validation_alias="PREVIEW_WS_URL")
    api_keys_secret_arn: str = Field(validation_alias="API_KEYS_SECRET_ARN")
    preview_events_queue_url: str = Field(validation_alias="PREVIEW_EVENTS_QUEUE_URL")
    connect_rate: Annotated[float, Field(ge=1, le=500)] = Field(
        default=50, validation_alias="SYNTHETIC_CONNECT_RATE"
    )
    deadline_seconds: Annotated[float, Field(ge=5, le=900)] = Field(
        default=120, validation_alias="SYNTHETIC_DEADLINE_SECONDS"
    )
    message_interval_ms: Annotated[float, Field(ge=0, le=10_000)] = Field(
        default=100, validation_alias="SYNTHETIC_MESSAGE_INTERVAL_MS"
    )

    @field_validator("preview_ws_url")
    @classmethod
    def _secure_url(cls, url: str) -> str:
        if not url.startswith(("wss://", "ws://127.0.0.1", "ws://localhost")):
            raise ValueError(f"must be a wss:// URL (plain ws:// only on loopback), got {url!r}")
        return url


# -- operations ---------------------------------------------------------------------------------

METRICS_NAMESPACE_DEFAULT = "RealtimeAnalytics"


class OpsSettings(TaskSettings):
    """Where every operations task reports: its environment, metrics namespace, operations topic."""

    family: ClassVar[str] = "operations task"
    error: ClassVar[type[SettingsError]] = OperationsSettingsError

    environment: str = Field(validation_alias="ENVIRONMENT")
    topic_arn: str | None = Field(default=None, validation_alias="OPERATIONS_TOPIC_ARN")
    namespace: str = Field(default=METRICS_NAMESPACE_DEFAULT, validation_alias="POWERTOOLS_METRICS_NAMESPACE")


class BackupSettings(OpsSettings):
    """The daily backup (tasks/backup.py)."""

    replication_group_id: str = Field(validation_alias="REPLICATION_GROUP_ID")
    bucket: str = Field(validation_alias="BACKUP_BUCKET")
    retention_days: Annotated[int, Field(ge=1)] = Field(default=14, validation_alias="BACKUP_RETENTION_DAYS")
    kms_key_id: str | None = Field(default=None, validation_alias="BACKUP_SNAPSHOT_KMS_KEY_ID")
    copy_bucket: str | None = Field(default=None, validation_alias="BACKUP_COPY_BUCKET")
    copy_region: str | None = Field(default=None, validation_alias="BACKUP_COPY_REGION")

    @model_validator(mode="after")
    def _copy_pair(self) -> Self:
        if bool(self.copy_bucket) != bool(self.copy_region):
            raise ValueError(
                "set both BACKUP_COPY_BUCKET and BACKUP_COPY_REGION for the cross-region copy, or neither"
            )
        return self

    @property
    def name_pattern(self) -> re.Pattern[str]:
        """The names of this task's snapshots: `<group>-<yyyy-mm-dd>`."""
        return re.compile(rf"^{re.escape(self.replication_group_id)}-(\d{{4}}-\d{{2}}-\d{{2}})$")

    def snapshot_name(self, moment: datetime) -> str:
        return f"{self.replication_group_id}-{moment:%Y-%m-%d}"


Positive = Annotated[float, Field(gt=0)]


class CostSettings(OpsSettings):
    """The daily cost check (tasks/cost_check.py)."""

    daily_budget_usd: Positive = Field(validation_alias="DAILY_BUDGET_USD")
    tag_key: str = Field(default="Project", validation_alias="COST_TAG_KEY")
    tag_value: str = Field(default="realtime-analytics", validation_alias="COST_TAG_VALUE")
    anomaly_threshold_percent: Positive = Field(default=30.0, validation_alias="ANOMALY_THRESHOLD_PERCENT")
    anomaly_min_usd: Positive = Field(default=1.0, validation_alias="ANOMALY_MIN_USD")


class DrillSettings(OpsSettings):
    """The DR drill's steps (tasks/dr_drill.py)."""

    replication_group_id: str = Field(validation_alias="REPLICATION_GROUP_ID")
    bucket: str = Field(validation_alias="BACKUP_BUCKET")
    table_name: str | None = Field(default=None, validation_alias="RELEASE_TABLE_NAME")
    subnet_group: str = Field(validation_alias="CACHE_SUBNET_GROUP")
    security_group_ids: tuple[str, ...] = Field(validation_alias="CACHE_SECURITY_GROUP_IDS")
    auth_secret_arn: str | None = Field(default=None, validation_alias="REDIS_AUTH_SECRET_ARN")
    kms_key_id: str | None = Field(default=None, validation_alias="CACHE_KMS_KEY_ID")
    node_type: str | None = Field(default=None, validation_alias="DRILL_NODE_TYPE")
    port: Annotated[int, Field(ge=1)] = Field(default=6379, validation_alias="REDIS_PORT")

    @field_validator("security_group_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def backup_settings(self) -> BackupSettings:
        """The backup task's view of the same group and bucket (to find its snapshots)."""
        return BackupSettings(
            environment=self.environment,
            replication_group_id=self.replication_group_id,
            bucket=self.bucket,
            retention_days=1,
        )


class EventPathSettings(OpsSettings):
    """The event-path drill's steps (tasks/event_path_drill.py)."""

    queue_url: str = Field(validation_alias="PREVIEW_EVENTS_QUEUE_URL")
    dlq_url: str = Field(validation_alias="PREVIEW_EVENTS_DLQ_URL")
    mapping_uuid: str = Field(validation_alias="PREVIEW_MAPPING_UUID")
    fanout_function: str = Field(validation_alias="FANOUT_FUNCTION_NAME")
    table_name: str | None = Field(default=None, validation_alias="RELEASE_TABLE_NAME")
