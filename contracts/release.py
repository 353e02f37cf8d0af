"""The release request: the one shape a release starts from (CLI, StartExecution, sandbox).

Validated twice: by the CLI before any AWS call, and by the state machine's first state,
because StartExecution can be called directly. Every error names the offending field.
The JSON Schema exported from this model lives in `orchestrator/schemas/`
(`python -m contracts.release` writes it).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts.canary import DEFAULT_ROUTING, Routing

# Step Functions accepts 256 KiB of input; a release request is a few hundred bytes, so anything
# near the limit is a mistake (or an attack) and is refused before it reaches AWS.
MAX_REQUEST_BYTES = 32 * 1024
# Lambda allows 4 KiB of environment variables per function; the service's own settings need room.
MAX_CONFIGURATION_BYTES = 2048
# 24 h per bake and at most 20 steps keep a release far below the 25,000-event history limit.
MAX_BAKE_SECONDS = 24 * 60 * 60
MAX_STEPS = 20
# Execution names: 1-80 characters; ASCII letters, digits, '-' and '_' keep them log-friendly.
RELEASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
# Names Lambda reserves or that a release sets itself.
RESERVED_ENV_NAMES = frozenset({"LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ", "SERVICE_VERSION"})
RESERVED_ENV_PREFIXES = ("AWS_", "_")

# The CLI publishes the schema; the Lambda assets only validate (this path is not shipped).
SCHEMA_PATH = (
    Path(__file__).resolve().parent.parent / "orchestrator" / "schemas" / "release_request.schema.json"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Artifact(_Strict):
    """The one code bundle (zip in S3) deployed to every service function."""

    bucket: Annotated[
        str,
        Field(
            min_length=3,
            max_length=63,
            pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            description="S3 bucket holding the artifact",
        ),
    ]
    key: Annotated[
        str,
        Field(
            min_length=1, max_length=1024, pattern=r"^[^/\s][^\s]*\.zip$", description="S3 key of the .zip"
        ),
    ]
    sha256: Annotated[
        str,
        Field(
            pattern=r"^[0-9a-f]{64}$",
            description="hex SHA-256 of the zip; checked against Lambda's CodeSha256",
        ),
    ]

    @field_validator("sha256", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class TrafficStep(_Strict):
    """Shift `percent` of every function's `live` traffic to green, then bake."""

    percent: Annotated[int, Field(ge=1, le=100, strict=True, description="share of live traffic on green")]
    bake_seconds: Annotated[
        int,
        Field(ge=0, le=MAX_BAKE_SECONDS, strict=True, description="watch alarms this long before moving on"),
    ]
    min_green_invocations: Annotated[
        int | None,
        Field(ge=0, strict=True, description="overrides the request's minimum for this step"),
    ] = None


class Strategy(_Strict):
    steps: Annotated[list[TrafficStep], Field(min_length=1, max_length=MAX_STEPS)]

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[TrafficStep]) -> list[TrafficStep]:
        for previous, current in zip(steps, steps[1:], strict=False):
            if current.percent <= previous.percent:
                raise ValueError(
                    f"percent must increase strictly from step to step ({previous.percent} then {current.percent})"
                )
        if steps and steps[-1].percent != 100:
            raise ValueError(f"the last step must be 100 percent, got {steps[-1].percent}")
        return steps


# Used when neither the request nor the environment configuration names a strategy.
DEFAULT_STRATEGY = Strategy(
    steps=[
        TrafficStep(percent=10, bake_seconds=300),
        TrafficStep(percent=50, bake_seconds=300),
        TrafficStep(percent=100, bake_seconds=300),
    ]
)


class SyntheticChecks(_Strict):
    """Thresholds of the synthetic WebSocket checks against green (the preview stage)."""

    clients: Annotated[int, Field(ge=1, le=500, strict=True)] = 10
    messages: Annotated[int, Field(ge=1, le=10_000, strict=True)] = 20
    p99_latency_ms: Annotated[int, Field(ge=1, le=29_000, strict=True)] = 1000
    min_success_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.99


class CanaryJudge(_Strict):
    """How JudgeCanary compares green with blue after each bake, over the same window and traffic.

    Errors: a one-sided two-proportion z-test of green's error rate against blue's; it fails when
    the difference is significant at `fail_alpha` and at least `min_error_rate_increase`, and is
    marginal when significant at `marginal_alpha`. Latency: green's p99 over blue's, per function;
    it fails above `p99_tolerance` and is marginal above `p99_marginal`, in both cases only when
    green is also slower by `p99_floor_ms` or more (a few milliseconds of jitter is not a
    regression). Either test is skipped, and says so, while a version has served fewer than
    `min_sample` invocations: a small canary is not judged on noise.
    """

    enabled: bool = True
    min_sample: Annotated[int, Field(ge=10, le=1_000_000, strict=True)] = 100
    fail_alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.01
    marginal_alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    min_error_rate_increase: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    p99_tolerance: Annotated[float, Field(ge=1.0, le=100.0)] = 1.5
    p99_marginal: Annotated[float, Field(ge=1.0, le=100.0)] = 1.2
    p99_floor_ms: Annotated[float, Field(ge=0.0, le=29_000.0)] = 50.0

    @model_validator(mode="after")
    def _ordered(self) -> CanaryJudge:
        if self.marginal_alpha < self.fail_alpha:
            raise ValueError(
                f"marginal_alpha ({self.marginal_alpha}) must be at least fail_alpha ({self.fail_alpha})"
            )
        if self.p99_marginal > self.p99_tolerance:
            raise ValueError(
                f"p99_marginal ({self.p99_marginal}) must not exceed p99_tolerance ({self.p99_tolerance})"
            )
        return self


class ReleaseRequest(_Strict):
    """What to release, and how carefully."""

    release_id: Annotated[
        str | None,
        Field(
            pattern=RELEASE_ID_PATTERN, description="unique id, also the execution name; generated if absent"
        ),
    ] = None
    version: Annotated[
        str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$", description="the service version released")
    ]
    artifact: Artifact
    strategy: Strategy | None = Field(
        default=None, description="traffic steps; the environment's default if absent"
    )
    checks: SyntheticChecks = SyntheticChecks()
    judge: CanaryJudge = Field(
        default=CanaryJudge(), description="how green is judged against blue after each bake"
    )
    routing: Routing = Field(
        default=DEFAULT_ROUTING,
        description=(
            "how a step sends traffic to green: `invocations` (every function's live alias weighted, "
            "per invocation) or `connections` (the edge sends the step's share of new WebSocket "
            "connections to the canary stage; a connection stays on one version)"
        ),
    )
    dry_run: bool = Field(default=False, description="run every check but never change the live alias")
    approval: Literal["required", "none"] = "none"
    approval_timeout_seconds: Annotated[int, Field(ge=60, le=7 * 24 * 3600, strict=True)] = 24 * 3600
    min_green_invocations: Annotated[
        int,
        Field(
            ge=0, strict=True, description="green must serve at least this many invocations during each bake"
        ),
    ] = 0
    requested_by: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e][\x20-\x7e]*$")]
    configuration: Annotated[
        dict[str, str],
        Field(description="environment variables applied to every service function's new version"),
    ] = {}

    @model_validator(mode="before")
    @classmethod
    def _bounded_size(cls, data: Any) -> Any:
        size = len(json.dumps(data, default=str).encode()) if isinstance(data, dict) else 0
        if size > MAX_REQUEST_BYTES:
            raise ValueError(f"request is {size} bytes, the limit is {MAX_REQUEST_BYTES}")
        return data

    @field_validator("configuration")
    @classmethod
    def _valid_configuration(cls, config: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        function_keys = (info.context or {}).get("function_keys")
        for name, value in config.items():
            if not ENV_NAME_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits, '_')")
            if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
                raise ValueError(f"{name!r} is reserved and cannot be set by a release")
            _check_known_setting(name, value, function_keys)
        size = sum(len(k.encode()) + len(v.encode()) for k, v in config.items())
        if size > MAX_CONFIGURATION_BYTES:
            raise ValueError(f"configuration is {size} bytes, the limit is {MAX_CONFIGURATION_BYTES}")
        return config

    def with_defaults(self, strategy: Strategy | None = None) -> ReleaseRequest:
        """The request with a release id and a strategy filled in (environment default, else built-in)."""
        updates: dict[str, Any] = {}
        if self.release_id is None:
            updates["release_id"] = new_release_id(self.version)
        if self.strategy is None:
            updates["strategy"] = strategy or DEFAULT_STRATEGY
        return self.model_copy(update=updates) if updates else self


class ReleaseDefaults(_Strict):
    """An environment's defaults for the fields a request leaves out (from its configuration)."""

    strategy: Strategy | None = None
    checks: SyntheticChecks | None = None
    judge: CanaryJudge | None = None
    routing: Routing | None = None
    approval: Literal["required", "none"] | None = None
    min_green_invocations: Annotated[int | None, Field(ge=0, strict=True)] = None

    def apply(self, raw: dict[str, Any]) -> dict[str, Any]:
        """`raw` with every absent field taken from these defaults (present fields win). The judge's
        thresholds merge one by one: `{"judge": {"enabled": false}}` or one changed tolerance keeps
        the environment's other thresholds."""
        filled = dict(raw)
        for name in ("strategy", "checks", "judge", "routing", "approval", "min_green_invocations"):
            value = getattr(self, name)
            if value is None:
                continue
            default = value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
            if name not in filled:
                filled[name] = default
            elif name == "judge" and isinstance(filled[name], dict):
                filled[name] = {**default, **filled[name]}
        return filled


def _check_known_setting(name: str, value: str, function_keys: Collection[str] | None) -> None:
    """Settings the service interprets are checked here, so a typo fails before deploying.

    `function_keys` (the service catalog's released keys) is given by callers that know the
    catalog; without it FAULT_FUNCTIONS is only checked for its form.
    """
    if name == "CACHE_SCHEMA_VERSION":
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"CACHE_SCHEMA_VERSION must be a positive integer, got {value!r}")
    elif name in ("FAULT_ERROR_RATE", "FAULT_DROP_RATE"):
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    elif name == "FAULT_DELAY_MS" and (not value.isdigit() or int(value) > 29_000):
        raise ValueError(f"FAULT_DELAY_MS must be an integer between 0 and 29000, got {value!r}")
    elif name == "FAULT_FUNCTIONS":
        named = {key.strip() for key in value.split(",") if key.strip()}
        unknown = sorted(named - set(function_keys)) if function_keys is not None else []
        if unknown:
            raise ValueError(
                f"FAULT_FUNCTIONS names unknown functions {unknown}; known: {sorted(function_keys or ())}"
            )
    elif len(value.encode()) > 1024:
        raise ValueError(f"value of {name} is longer than 1024 bytes")


def new_release_id(version: str) -> str:
    """A unique, execution-name-safe id: `<version>-<UTC time>-<random>`."""
    safe_version = re.sub(r"[^A-Za-z0-9_-]", "-", version)[:40]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{safe_version}-{stamp}-{secrets.token_hex(3)}"


class InvalidRequest(ValueError):
    """The request is invalid; the message names every offending field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid release request: " + "; ".join(problems))


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # json.loads would keep the last value silently; a request says each thing once.
            raise InvalidRequest([f"{key}: duplicate key in the request JSON"])
        seen[key] = value
    return seen


def loads_request(text: str | bytes) -> Any:
    """JSON text of a request as Python values, refusing a key given twice in one object.

    Raises InvalidRequest naming the duplicated key, or saying why the text is not JSON.
    """
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates)
    except InvalidRequest:
        raise
    except ValueError as exc:
        raise InvalidRequest([f"request: not valid JSON ({exc})"]) from None


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem, each starting with the dotted field path."""
    lines = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "request"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{field}: {message}")
    return lines


def parse_release_request(
    raw: str | bytes | dict[str, Any],
    defaults: ReleaseDefaults | None = None,
    *,
    function_keys: Collection[str] | None = None,
) -> ReleaseRequest:
    """Parse and validate a request from JSON text or a dict (absent fields from `defaults`;
    `function_keys`: the released service functions FAULT_FUNCTIONS may name).

    Raises InvalidRequest naming every offending field.
    """
    if isinstance(raw, str | bytes):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > MAX_REQUEST_BYTES:
            raise InvalidRequest([f"request: {size} bytes, the limit is {MAX_REQUEST_BYTES}"])
        raw = loads_request(raw)
    if not isinstance(raw, dict):
        raise InvalidRequest([f"request: must be a JSON object, got {type(raw).__name__}"])
    if defaults is not None:
        raw = defaults.apply(raw)
    try:
        context = {"function_keys": tuple(function_keys)} if function_keys is not None else None
        return ReleaseRequest.model_validate(raw, context=context)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc)) from None


def json_schema() -> dict[str, Any]:
    schema = ReleaseRequest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://realtime-analytics/schemas/release_request.schema.json"
    return schema


def export_schema(path: Path = SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":
    print(export_schema())
