"""ApprovalGate: park the release until an operator approves or rejects it.

The state machine invokes this task with `.waitForTaskToken`; the task stores the token on the
release record (where `orchestrator release approve|reject` finds it) and notifies with the
exact commands. Approval is `SendTaskSuccess`; rejection is `SendTaskFailure` with error
`ApprovalRejected`; no answer within the request's `approval_timeout_seconds` is
`States.Timeout`. Both of the latter roll back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.state import ApprovalRequested, Release, SyntheticResult
from tasks import release_record
from tasks.common import Settings, event_model, iso, task_handler, utc_now


class ApprovalInput(BaseModel):
    """ApprovalGate's Parameters: the task token, `release` and the synthetic checks' figures."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    task_token: str = Field(min_length=1)
    release: Release
    synthetic: SyntheticResult | None = None


def approve_command(release: Release, settings: Settings) -> str:
    return f"orchestrator release approve {release.release_id} --env {settings.environment}"


def reject_command(release: Release, settings: Settings) -> str:
    return f"orchestrator release reject {release.release_id} --env {settings.environment}"


def request_approval(settings: Settings, event: ApprovalInput) -> ApprovalRequested:
    release = event.release
    token = event.task_token
    now = utc_now()
    expires = iso(now + timedelta(seconds=release.approval_timeout_seconds))
    approve, reject = approve_command(release, settings), reject_command(release, settings)
    summary = (
        f"release {release.release_id} (version {release.version}) passed its checks and waits for approval "
        f"until {expires}. Approve: `{approve}`  Reject: `{reject}`"
    )
    release_record.transition(
        settings,
        release,
        "ApprovalRequested",
        summary,
        detail={
            "approve_command": approve,
            "reject_command": reject,
            "expires_at": expires,
            "synthetic": event.synthetic.model_dump() if event.synthetic is not None else None,
        },
        updates={"approval_token": token, "approval_requested_at": iso(now), "approval_expires_at": expires},
    )
    return ApprovalRequested(approval_requested=True, expires_at=expires)


@task_handler
@event_model(ApprovalInput)
def handler(event: ApprovalInput, context: Any) -> dict[str, Any]:
    return request_approval(Settings.from_env(), event).model_dump()
