"""The sections of a release execution's state that the tasks write and read.

The state is one JSON object (state_machines/release.py): each Lambda task returns its
section, which the state machine stores under its ResultPath, and later tasks read it back.
A section written by one task and read by another is typed here once, so a change to its
shape is a change to both sides.

    release   the validated request and its context (contracts.release.ReleaseRequest + context)
    deploy    Deploy       DeployGreen -> SetWeights, CheckAlarms, Finalize, Rollback
    warm      WarmCursor   ValidateRequest, WarmCache -> IsCacheWarm, WarmCache
    shift     ShiftCursor  ValidateRequest; Shift  SetWeights -> Bake, CheckAlarms, IsTrafficFullyShifted
    alarms    AlarmsChecked  CheckAlarms
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Count = Annotated[int, Field(ge=0)]


class _Section(BaseModel):
    # Extra fields are ignored: a reader takes what it needs from a section a newer writer extended.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Deploy(_Section):
    """`$.deploy`: what `live` served before the release (blue) and the new versions (green)."""

    blue: dict[str, str] = Field(description="function name -> version `live` served before the release")
    green: dict[str, str] = Field(description="function name -> the version published by this release")
    blue_schema: str = Field(description="blue's CACHE_SCHEMA_VERSION")
    green_schema: str = Field(description="green's CACHE_SCHEMA_VERSION")


class WarmCursor(_Section):
    """`$.warm`: the cache warm-up's SCAN cursor; `done` ends the WarmCache loop."""

    cursor: str = Field(default="0", pattern=r"^[0-9]+$")
    done: bool = False


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
    shifted_at: str = Field(description="when the weights were set (Step Functions timestamp format)")
    dry_run: bool = False


class AlarmsChecked(_Section):
    """`$.alarms`: CheckAlarms' verdict after a bake (only a healthy green returns one)."""

    checked_at: str
    alarms_checked: Count
    green_invocations: Count
    required: Count


def initial_sections() -> dict[str, dict[str, object]]:
    """The loop cursors ValidateRequest starts an execution with."""
    return {"warm": WarmCursor().model_dump(), "shift": ShiftCursor().model_dump()}
