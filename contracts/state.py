"""The release execution's state: one JSON object, one typed section per step.

ValidateRequest returns the whole state (`release` plus the two loop cursors); every later
Lambda task receives the state, or the part its Parameters select, and returns one section,
which the state machine stores under the task's ResultPath. The tasks parse what they receive
into these models once, at the handler (tasks.common.event_model), and return these models'
JSON. A section written by one task and read by another is typed here once, so a change to its
shape is a change to both sides.

    section    model            written by (ResultPath)              read by
    ---------  ---------------  -----------------------------------  ------------------------------------
    release    Release          ValidateRequest ("$")                every task; AcquireLock, the Choices
    record     Recorded         RecordReleaseStarted
    deploy     Deploy           DeployGreen                          SetWeights, CheckAlarms, Finalize,
                                                                     Rollback, WarmCache, CleanUp*Cache
    warm       WarmCursor       ValidateRequest                      WarmCache (cursor), IsCacheWarm (done)
               WarmBatch        WarmCache
    synthetic  SyntheticResult  SyntheticChecks                      ApprovalGate
    approval   Approval         ApprovalGate (the operator's answer)
    shift      ShiftCursor      ValidateRequest                      SetWeights (next_index)
               Shift            SetWeights                           Bake, CheckAlarms, IsTrafficFullyShifted
    alarms     AlarmsChecked    CheckAlarms
    judgement  Judgement        JudgeCanary (a fail raises CanaryFailed)   JudgeCanary (the steps so far)
    finalize   Finalized        Finalize
    failure    Failure          a Catch ({Error, Cause})             Rollback, RecordReleaseAborted
    rollback   RolledBack       Rollback                             ReleaseRolledBack (cause)

Readers ignore fields they do not know (a newer writer may extend a section); a missing or
malformed field fails the reading task with an error naming it (`describe_errors`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.canary import DEFAULT_ROUTING, Routing
from contracts.release import CanaryJudge

Count = Annotated[int, Field(ge=0)]
# Step Functions' timestamp format (`2026-01-01T00:00:00.000Z`, tasks.common.iso).
Timestamp = Annotated[str, Field(min_length=1, description="Step Functions timestamp (UTC)")]
Versions = Annotated[dict[str, str], Field(description="function name -> version")]


class _Section(BaseModel):
    # Extra fields are ignored: a reader takes what it needs from a section a newer writer extended.
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- release --------------------------------------------------------------------------------


class ArtifactRef(_Section):
    """`$.release.artifact`: the bundle every service function is deployed from."""

    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class StepRef(_Section):
    """One traffic step of `$.release.strategy.steps`."""

    percent: Annotated[int, Field(ge=1, le=100)]
    bake_seconds: Count
    min_green_invocations: Count | None = None


class StrategyRef(_Section):
    steps: tuple[StepRef, ...] = Field(min_length=1)


class ChecksRef(_Section):
    """`$.release.checks`: the synthetic checks' thresholds (SyntheticChecks' Parameters)."""

    clients: Annotated[int, Field(ge=1)] = 10
    messages: Annotated[int, Field(ge=1)] = 20
    p99_latency_ms: Annotated[int, Field(ge=1)] = 1000
    min_success_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.99


class ReleaseRef(_Section):
    """What notices and the audit trail name a release by.

    A `Release` is one; the alarm rollback, which acts outside the execution, rebuilds one from
    the release record.
    """

    release_id: str = Field(min_length=1)
    version: str | None = None
    requested_by: str | None = None
    dry_run: bool = False
    execution_arn: str = ""


class Release(ReleaseRef):
    """`$.release`: the validated request (contracts.release.ReleaseRequest, defaults applied)
    and the execution's context, as ValidateRequest wrote it."""

    version: str = Field(min_length=1)
    requested_by: str = Field(min_length=1)
    artifact: ArtifactRef
    strategy: StrategyRef
    checks: ChecksRef = ChecksRef()
    judge: CanaryJudge = CanaryJudge()
    routing: Routing = DEFAULT_ROUTING
    approval: Literal["required", "none"] = "none"
    approval_timeout_seconds: Count = 24 * 3600
    min_green_invocations: Count = 0
    configuration: dict[str, str] = Field(default_factory=dict)
    environment: str = Field(min_length=1)
    execution_arn: str = Field(min_length=1)
    execution_name: str = Field(min_length=1)
    started_at: Timestamp
    lock_expires_at: Timestamp
    console_url: str
    step_count: Count

    def json_dict(self) -> dict[str, Any]:
        """The section as the state holds it (absent optional fields left out, as ValidateRequest writes them)."""
        return self.model_dump(mode="json", exclude_none=True)


# -- the sections the steps write ---------------------------------------------------------------


class Recorded(_Section):
    """`$.record`: whether RecordReleaseStarted wrote the record (False: an earlier attempt had)."""

    recorded: bool


class Deploy(_Section):
    """`$.deploy`: what `live` served before the release (blue) and the new versions (green)."""

    blue: Versions = Field(description="function name -> version `live` served before the release")
    green: Versions = Field(description="function name -> the version published by this release")
    blue_schema: str = Field(description="blue's CACHE_SCHEMA_VERSION")
    green_schema: str = Field(description="green's CACHE_SCHEMA_VERSION")


class WarmCursor(_Section):
    """`$.warm`: the cache warm-up's SCAN cursor; `done` ends the WarmCache loop."""

    cursor: str = Field(default="0", pattern=r"^[0-9]+$")
    done: bool = False


class WarmBatch(WarmCursor):
    """`$.warm` after WarmCache: the cursor and `done` that drive the loop, and what this batch did."""

    noop: bool
    keys_copied: Count
    bytes_copied: Count  # estimated from MEMORY USAGE of a sample of the copied keys
    duration_ms: Count
    target_namespace: str


class Latency(_Section):
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class SyntheticResult(_Section):
    """`$.synthetic`: the synthetic checks' figures (a failed run raises GreenUnhealthy instead)."""

    passed: bool
    clients: Count
    messages_expected: Count
    messages_received: Count
    success_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    latency_ms: Latency
    warmup_latency_ms: float | None = None
    errors: dict[str, int] = Field(default_factory=dict)
    unauthorized_refused: bool


class ApprovalRequested(_Section):
    """What the ApprovalGate's task returns to its caller (the state holds the operator's answer)."""

    approval_requested: bool
    expires_at: Timestamp


class Approval(_Section):
    """`$.approval`: the operator's SendTaskSuccess output (`orchestrator release approve`)."""

    approved: bool = True
    approved_by: str | None = None
    comment: str | None = None


class ShiftCursor(_Section):
    """`$.shift` before the first traffic step: which step SetWeights applies next."""

    next_index: Count = 0


class Shift(ShiftCursor):
    """`$.shift` after SetWeights: the step in force, baked by `Bake` and judged by CheckAlarms."""

    index: Count
    percent: Annotated[int, Field(ge=1, le=100)]
    bake_seconds: Count
    min_green_invocations: Count = 0
    is_last: bool
    shifted_at: Timestamp = Field(description="when the weights were set (Step Functions timestamp format)")
    dry_run: bool = False


class AlarmsChecked(_Section):
    """`$.alarms`: CheckAlarms' verdict after a bake (only a healthy green returns one)."""

    checked_at: Timestamp
    alarms_checked: Count
    green_invocations: Count
    required: Count


Verdict = Literal["pass", "marginal", "fail"]
TestOutcome = Literal["pass", "marginal", "fail", "skipped"]


class ErrorComparison(_Section):
    """Green's error rate against blue's over the bake, all service functions together."""

    outcome: TestOutcome
    green_invocations: Count
    green_errors: Count
    blue_invocations: Count
    blue_errors: Count
    green_error_rate: float | None = None
    blue_error_rate: float | None = None
    z: float | None = None
    p_value: float | None = Field(default=None, description="one-sided: green worse than blue")
    reason: str


class LatencyComparison(_Section):
    """Green's p99 against blue's for one function over the bake."""

    function: str
    outcome: TestOutcome
    green_invocations: Count
    blue_invocations: Count
    green_p99_ms: float | None = None
    blue_p99_ms: float | None = None
    ratio: float | None = None
    reason: str


class StepVerdict(_Section):
    """One bake's judgment, as the release record and the report keep it."""

    index: Count
    percent: Annotated[int, Field(ge=1, le=100)]
    verdict: Verdict
    summary: str


class Judgement(_Section):
    """`$.judgement`: JudgeCanary's verdict on the last bake, with its numbers, and the steps so far."""

    verdict: Verdict
    index: Count
    percent: Annotated[int, Field(ge=1, le=100)]
    window_start: Timestamp
    window_end: Timestamp
    errors: ErrorComparison
    latency: tuple[LatencyComparison, ...] = ()
    summary: str
    steps: tuple[StepVerdict, ...] = ()


class Finalized(_Section):
    """`$.finalize`: the outcome and what `live` serves now (blue for a dry run)."""

    status: Literal["SUCCEEDED", "DRY_RUN_SUCCEEDED"]
    live: Versions


class Failure(_Section):
    """`$.failure`: what a Catch caught. `Cause` of a Lambda error is its JSON error object."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    error: str = Field(default="States.ALL", alias="Error")
    cause: str | None = Field(default=None, alias="Cause")


class RolledBack(_Section):
    """`$.rollback`: why, and the blue versions every `live` and `green` alias serves again."""

    cause: str
    restored: Versions
    # `connections` routing: the edge's canary share was set to 0 before the aliases moved.
    canary_share_reset: bool = False


class Drained(_Section):
    """`$.drain`: DrainCanary's work after a rollback in `connections` routing.

    Every connection the registry held on the canary stage was closed through `@connections`
    DELETE (a connection already gone counts as closed); the clients reconnect through `live`
    to blue. `remaining` is what was still registered on the canary stage when the drain gave up
    (0 when it finished within `drain_timeout_seconds`)."""

    closed: Count
    gone: Count = 0
    remaining: Count = 0
    rounds: Count = 1
    drain_seconds: Annotated[float, Field(ge=0.0)]


# -- what a task receives -----------------------------------------------------------------------

# `$.shift` and `$.warm` hold a cursor until their step has run once; the richer shape is tried first.
ShiftSection = Annotated[Shift | ShiftCursor, Field(union_mode="left_to_right")]
WarmSection = Annotated[WarmBatch | WarmCursor, Field(union_mode="left_to_right")]


class ReleaseState(_Section):
    """The whole state after ValidateRequest: `release` always, the other sections once written."""

    release: Release
    record: Recorded | None = None
    deploy: Deploy | None = None
    warm: WarmSection | None = None
    synthetic: SyntheticResult | None = None
    approval: Approval | None = None
    shift: ShiftSection | None = None
    alarms: AlarmsChecked | None = None
    judgement: Judgement | None = None
    finalize: Finalized | None = None
    failure: Failure | None = None
    rollback: RolledBack | None = None
    drain: Drained | None = None

    def json_dict(self) -> dict[str, Any]:
        """The state as Step Functions holds it (sections not yet written left out)."""
        state = self.model_dump(mode="json", exclude_none=True, by_alias=True)
        state["release"] = self.release.json_dict()
        return state

    def with_sections(self, **sections: Any) -> ReleaseState:
        """The state after tasks returned `sections` (their JSON) under their ResultPaths, read back
        as the next task would read it."""
        return ReleaseState.model_validate({**self.json_dict(), **sections})


def initial_sections() -> dict[str, dict[str, object]]:
    """The loop cursors ValidateRequest starts an execution with."""
    return {"warm": WarmCursor().model_dump(), "shift": ShiftCursor().model_dump()}


def describe_errors(error: ValidationError) -> str:
    """One line naming every offending field by its dotted path (`deploy.green: Field required`)."""
    problems = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"]) or "input"
        problems.append(f"{path}: {str(item['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)
