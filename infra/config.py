"""Typed configuration of one environment, loaded from `config/<env>.json`.

Validated before any construct is built, so a wrong value fails synthesis with one line that
names the file and the field (`ConfigError`), never halfway through a template.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.canary import DEFAULT_ROUTING, Routing
from contracts.release import CanaryJudge

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
_CRON = re.compile(r"^cron\((\S+ ){5}\S+\)$")
_DAY = r"(mon|tue|wed|thu|fri|sat|sun)"
_MAINTENANCE = re.compile(rf"^{_DAY}:([01]\d|2[0-3]):[0-5]\d-{_DAY}:([01]\d|2[0-3]):[0-5]\d$")
_SNAPSHOT = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid; the message is one line."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DomainConfig(_Model):
    domain_name: str = Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")
    hosted_zone_id: str = Field(pattern=r"^Z[A-Z0-9]{5,31}$")
    hosted_zone_name: str = Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")
    # Regional certificate: API Gateway custom domain (same region as the stack).
    regional_certificate_arn: str = Field(
        pattern=r"^arn:aws:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
    )
    # CloudFront only accepts certificates from us-east-1.
    cloudfront_certificate_arn: str = Field(
        pattern=r"^arn:aws:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$"
    )

    @model_validator(mode="after")
    def _domain_in_zone(self) -> DomainConfig:
        if not (
            self.domain_name == self.hosted_zone_name
            or self.domain_name.endswith("." + self.hosted_zone_name)
        ):
            raise ValueError(
                f"domain_name {self.domain_name} is not inside hosted zone {self.hosted_zone_name}"
            )
        return self


class NetworkConfig(_Model):
    cidr: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])$")
    # Named explicitly (no AZ lookup): synthesis stays offline and deterministic.
    availability_zones: list[str] = Field(min_length=2, max_length=6)
    nat_gateways: int = Field(ge=1, le=6)
    flow_log_retention_days: int = 90

    @field_validator("availability_zones")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("availability zones must be distinct")
        return value

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)


class CacheConfig(_Model):
    # Valkey is AWS's current Redis-compatible engine (and cheaper); Redis OSS 7 stays selectable.
    engine: Literal["valkey", "redis"] = "valkey"
    engine_version: str = "8.0"
    node_type: str = Field(pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    # Replicas per shard; at least one so Multi-AZ automatic failover has somewhere to go.
    replicas: int = Field(ge=1, le=5)
    port: int = Field(ge=1024, le=65535)
    snapshot_retention_days: int = Field(ge=1, le=35)
    snapshot_window: str
    maintenance_window: str
    parameter_family: str
    # Memory policy: the cache holds warmable data only, the connection registry carries TTLs.
    maxmemory_policy: Literal["volatile-lru", "allkeys-lru", "volatile-ttl", "noeviction"] = "volatile-lru"

    @field_validator("port")
    @classmethod
    def _not_default(cls, value: int) -> int:
        if value == 6379:
            raise ValueError("use a non-default port (6379 is the first one scanners try)")
        return value

    @field_validator("snapshot_window")
    @classmethod
    def _snapshot(cls, value: str) -> str:
        if not _SNAPSHOT.match(value):
            raise ValueError("expected hh:mm-hh:mm (UTC)")
        return value

    @field_validator("maintenance_window")
    @classmethod
    def _maintenance(cls, value: str) -> str:
        if not _MAINTENANCE.match(value):
            raise ValueError("expected ddd:hh:mm-ddd:hh:mm (UTC), e.g. sun:05:00-sun:06:00")
        return value

    @model_validator(mode="after")
    def _engine_matches(self) -> CacheConfig:
        major = self.engine_version.split(".")[0]
        expected = {"valkey": ("8",), "redis": ("7",)}[self.engine]
        if major not in expected:
            raise ValueError(f"engine_version {self.engine_version} is not supported for {self.engine}")
        if not self.parameter_family.startswith(f"{self.engine}{major}"):
            raise ValueError(f"parameter_family {self.parameter_family} does not match {self.engine} {major}")
        return self


class FunctionSettings(_Model):
    memory_mb: int = Field(ge=128, le=10240)
    timeout_seconds: int = Field(ge=1, le=900)
    # Caps a runaway (e.g. a poison message loop) so it cannot starve the account's pool.
    reserved_concurrency: int | None = Field(default=None, ge=1)


class ProvisionedConcurrencyConfig(_Model):
    functions: list[str] = Field(default_factory=list)
    min_capacity: int = Field(ge=1)
    max_capacity: int = Field(ge=1)
    target_utilization: float = Field(gt=0.1, le=0.9)

    @model_validator(mode="after")
    def _bounds(self) -> ProvisionedConcurrencyConfig:
        if self.max_capacity < self.min_capacity:
            raise ValueError("max_capacity must be >= min_capacity")
        return self


class LambdaConfig(_Model):
    defaults: FunctionSettings
    # Per catalog key (authorizer, connect, disconnect, messages, fanout, ...).
    functions: dict[str, FunctionSettings] = Field(default_factory=dict)
    powertools_layer_version: int = Field(ge=1)
    python_runtime: Literal["python3.12", "python3.13"] = "python3.12"
    # Bumped only on purpose: a new number publishes a new version and moves both aliases
    # to it at deploy time; otherwise releases own the aliases (see service_construct).
    bootstrap_version: int = Field(ge=1)
    provisioned_concurrency: ProvisionedConcurrencyConfig | None = None

    def settings_for(self, key: str) -> FunctionSettings:
        return self.functions.get(key, self.defaults)


class ReleaseStep(_Model):
    percent: int = Field(ge=1, le=100)
    bake_seconds: int = Field(ge=0, le=86_400)


class SyntheticChecksConfig(_Model):
    clients: int = Field(ge=1, le=500)
    messages: int = Field(ge=1, le=10_000)
    p99_latency_ms: int = Field(ge=1)
    min_success_rate: float = Field(gt=0, le=1)


class ReleaseConfig(_Model):
    steps: list[ReleaseStep] = Field(min_length=1)
    require_approval: bool = False
    min_green_invocations: int = Field(ge=0)
    synthetic_checks: SyntheticChecksConfig
    # JudgeCanary's thresholds (contracts.release.CanaryJudge); a request may override them.
    canary_judge: CanaryJudge = CanaryJudge()
    # How steps send traffic to green (contracts.canary): alias weights per invocation, or the
    # edge's share of new WebSocket connections; a request may choose the other.
    routing: Routing = DEFAULT_ROUTING
    state_machine_log_level: Literal["ALL", "ERROR", "FATAL", "OFF"] = "ALL"

    @field_validator("steps")
    @classmethod
    def _ordered(cls, steps: list[ReleaseStep]) -> list[ReleaseStep]:
        percents = [step.percent for step in steps]
        if percents != sorted(set(percents)):
            raise ValueError(f"step percents must strictly increase, got {percents}")
        if percents[-1] != 100:
            raise ValueError(f"the last step must be 100 percent, got {percents[-1]}")
        return steps


class AlarmConfig(_Model):
    lambda_error_rate_percent: float = Field(gt=0, le=100)
    lambda_p99_duration_ms: int = Field(ge=1)
    integration_latency_p99_ms: int = Field(ge=1, le=29_000)
    api_5xx_count: int = Field(ge=1)
    dlq_depth: int = Field(ge=1)
    dlq_oldest_age_seconds: int = Field(ge=60)
    queue_oldest_age_seconds: int = Field(ge=10)
    cache_cpu_percent: float = Field(gt=0, le=100)
    cache_memory_percent: float = Field(gt=0, le=100)
    evaluation_periods: int = Field(ge=1, le=10)
    # Release guard: errors per minute on any function's `live` alias that fail a release.
    release_guard_errors: int = Field(ge=1)


class ApiConfig(_Model):
    """WebSocket stage throttling (all routes of a stage): steady requests/s and burst."""

    live_rate_limit: float = Field(gt=0, le=10_000)
    live_burst_limit: int = Field(ge=1, le=5_000)
    # The preview stage only carries synthetic checks; a low limit keeps it from becoming a side door.
    preview_rate_limit: float = Field(gt=0, le=10_000)
    preview_burst_limit: int = Field(ge=1, le=5_000)


class ScheduleConfig(_Model):
    backup: str
    cost_check: str
    dr_drill: str

    @field_validator("backup", "cost_check", "dr_drill")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not _CRON.match(value):
            raise ValueError("expected an EventBridge cron expression: cron(min hour dom month dow year)")
        return value


class BudgetConfig(_Model):
    daily_limit_usd: float = Field(gt=0)
    alert_threshold_percent: float = Field(gt=0, le=100)
    # AWS Budgets: a monthly budget (forecast alerts exist only for monthly and longer periods);
    # by default 31 days of the daily limit.
    monthly_limit_usd: float | None = Field(default=None, gt=0)

    @property
    def monthly_usd(self) -> float:
        return (
            self.monthly_limit_usd
            if self.monthly_limit_usd is not None
            else round(self.daily_limit_usd * 31, 2)
        )


class BackupConfig(_Model):
    """Daily manual snapshots, their S3 exports and manifests (infra/operations/backup_bucket.py)."""

    # Manual snapshots the backup task keeps (automatic ones follow cache.snapshot_retention_days).
    snapshot_retention_days: int = Field(default=14, ge=1, le=365)
    # Exports and manifests move to cheaper classes, then expire. Glacier Instant Retrieval keeps
    # manifests readable in milliseconds: the DR drill reads them with a plain GetObject.
    infrequent_access_after_days: int = Field(default=30, ge=30)
    glacier_instant_after_days: int = Field(default=90, ge=90)
    expire_after_days: int = Field(default=365, ge=1)
    # S3 Object Lock default retention on every object version (production); None disables it.
    object_lock_days: int | None = Field(default=None, ge=1, le=3650)
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    # Optional copy of manifests and exports to a bucket in another region (created by the
    # account's DR baseline, not by this stack: a bucket in another region needs its own stack).
    copy_region: str | None = None
    copy_bucket_name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

    @model_validator(mode="after")
    def _ordered(self) -> BackupConfig:
        if not self.infrequent_access_after_days < self.glacier_instant_after_days < self.expire_after_days:
            raise ValueError(
                "infrequent_access_after_days < glacier_instant_after_days < expire_after_days must hold"
            )
        if self.object_lock_days is not None and self.object_lock_days > self.expire_after_days:
            raise ValueError("object_lock_days: longer than expire_after_days, objects could never expire")
        if bool(self.copy_region) != bool(self.copy_bucket_name):
            raise ValueError(
                "copy_region and copy_bucket_name: set both for the cross-region copy, or neither"
            )
        if self.copy_region and not _REGION.match(self.copy_region):
            raise ValueError(f"copy_region: {self.copy_region!r} is not an AWS region name")
        return self


class MessagingConfig(_Model):
    dlq_max_receive_count: int = Field(ge=1, le=1000)
    # Visibility timeout must exceed the consumer's timeout (AWS recommends 6x) or messages
    # reappear while still being processed.
    visibility_timeout_seconds: int = Field(ge=30, le=43_200)
    retention_days: int = Field(ge=1, le=14)
    dlq_retention_days: int = Field(ge=1, le=14)
    batch_size: int = Field(ge=1, le=10_000)
    max_batching_window_seconds: int = Field(ge=0, le=300)
    # The fan-out splits a channel with more subscribers than this into delivery shards of at most
    # this many connections, queued back for parallel invocations (FANOUT_SHARD_SIZE).
    fanout_shard_size: int = Field(default=500, ge=1, le=10_000)


class DeployConfig(_Model):
    """The pipeline's GitHub OIDC deploy role (infra/deploy_role_stack.py)."""

    github_repository: str = Field(pattern=r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
    # Bucket the pipeline uploads service bundles to (`service/` prefix), same account and region.
    artifact_bucket_name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    # Set when the account's GitHub OIDC provider already exists (one per account).
    oidc_provider_arn: str | None = Field(
        default=None, pattern=r"^arn:aws:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
    )
    cdk_qualifier: str = Field(default="hnb659fds", pattern=r"^[a-z0-9]{1,10}$")


class SecretsConfig(_Model):
    api_key_rotation_days: int = Field(ge=1, le=1000)


class EnvironmentConfig(_Model):
    environment: Literal["staging", "production"]
    account: Annotated[str, Field(pattern=r"^\d{12}$")]
    region: str
    domain: DomainConfig
    network: NetworkConfig
    cache: CacheConfig
    lambdas: LambdaConfig
    messaging: MessagingConfig
    api: ApiConfig
    secrets: SecretsConfig
    deploy: DeployConfig | None = None
    release: ReleaseConfig
    alarms: AlarmConfig
    schedules: ScheduleConfig
    budget: BudgetConfig
    backup: BackupConfig = Field(default_factory=BackupConfig)
    log_retention_days: int
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Alarm and operations notifications (subscribed to the operations topic).
    operations_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        return _check_retention(value)

    @model_validator(mode="after")
    def _consistent(self) -> EnvironmentConfig:
        for zone in self.network.availability_zones:
            if not zone.startswith(self.region):
                raise ValueError(f"network.availability_zones: {zone} is not in region {self.region}")
        region_of_cert = self.domain.regional_certificate_arn.split(":")[3]
        if region_of_cert != self.region:
            raise ValueError(
                f"domain.regional_certificate_arn: certificate is in {region_of_cert}, the stack in {self.region}"
            )
        fanout = self.lambdas.settings_for("fanout")
        if self.messaging.visibility_timeout_seconds < fanout.timeout_seconds * 6:
            raise ValueError(
                "messaging.visibility_timeout_seconds: must be at least 6x the fanout timeout "
                f"({fanout.timeout_seconds * 6} s)"
            )
        if self.backup.copy_region == self.region:
            raise ValueError("backup.copy_region: must differ from the stack's region")
        if self.network.nat_gateways > len(self.network.availability_zones):
            raise ValueError("network.nat_gateways: more NAT gateways than availability zones")
        return self

    @property
    def hot_path(self) -> frozenset[str]:
        pc = self.lambdas.provisioned_concurrency
        return frozenset(pc.functions) if pc else frozenset()


def _check_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        raise ValueError(f"{value} is not a CloudWatch Logs retention period ({sorted(LOG_RETENTION_DAYS)})")
    return value


def _field_path(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location)


def load_config(environment: str, config_dir: Path | None = None) -> EnvironmentConfig:
    """Load and validate `config/<environment>.json`; raise ConfigError with one line."""
    path = (config_dir or CONFIG_DIR) / f"{environment}.json"
    return load_config_file(path, expected_environment=environment)


def load_config_file(path: Path, expected_environment: str | None = None) -> EnvironmentConfig:
    shown = _display(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{shown}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{shown}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    try:
        config = EnvironmentConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        message = first["msg"].removeprefix("Value error, ")
        # Cross-field checks (empty location) name their field inside the message.
        where = f"{_field_path(first['loc'])}: " if first["loc"] else ""
        raise ConfigError(f"{shown}: {where}{message}{suffix}") from None
    if expected_environment and config.environment != expected_environment:
        raise ConfigError(
            f"{shown}: environment: is {config.environment!r}, expected {expected_environment!r}"
        )
    return config


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
