"""Rollback: every function's `live` (and `green`) back on blue at 100%, recorded and notified.

Reached from any failure after the lock was taken. Blue is what `live` served before the
release: DeployGreen's record of it, or, when DeployGreen never finished, the version `live`
still points at (a release changes `live` only after DeployGreen). Idempotent.

In `connections` routing the edge's canary share goes to 0 first, so no new connection reaches
the canary stage; then the aliases move, so the connections already on the canary stage (its
integrations resolve `green`) are served by blue from their next invocation; DrainCanary then
closes them, and their clients reconnect through `live`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.names import GREEN_ALIAS, LIVE_ALIAS
from contracts.state import Deploy, Failure, Release, RolledBack
from tasks import canary_share, release_record
from tasks.common import (
    MetricUnit,
    Settings,
    add_metric,
    client,
    event_model,
    logger,
    task_handler,
)
from tasks.deploy_green import point_alias


class RollbackInput(BaseModel):
    """Rollback receives the whole state: `release`, `deploy` once DeployGreen wrote it, the caught `failure`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    release: Release
    deploy: Deploy | None = None
    failure: Failure | None = None


def blue_versions(lam: Any, settings: Settings, recorded: Mapping[str, str]) -> dict[str, str]:
    """Blue of every function: as recorded by DeployGreen, else what `live` serves now."""
    blue = {}
    for fn in settings.functions:
        if fn in recorded:
            blue[fn] = str(recorded[fn])
        else:
            blue[fn] = str(lam.get_alias(FunctionName=fn, Name=LIVE_ALIAS)["FunctionVersion"])
    return blue


def restore_blue(lam: Any, blue: dict[str, str]) -> None:
    """`live` and `green` of every function on its blue version alone (live first: it serves users)."""
    for fn, version in blue.items():
        point_alias(lam, fn, LIVE_ALIAS, version)
    for fn, version in blue.items():
        point_alias(lam, fn, GREEN_ALIAS, version)


def describe_failure(failure: Failure | None) -> str:
    """One line from a Catch's {Error, Cause} (a Lambda cause is a JSON error object)."""
    if failure is None:
        return "unknown failure"
    error = failure.error
    cause: Any = failure.cause or ""
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            cause = parsed["errorMessage"]
    except (TypeError, ValueError):
        pass
    return f"{error}: {cause}".strip().rstrip(":")[:1000]


def rollback(settings: Settings, state: RollbackInput) -> RolledBack:
    """`$.rollback`: the cause and the blue versions restored."""
    release = state.release
    lam = client("lambda")
    connections = release.routing == "connections"
    if connections:
        canary_share.set_share(settings, 0)
    blue = blue_versions(lam, settings, state.deploy.blue if state.deploy is not None else {})
    restore_blue(lam, blue)
    cause = describe_failure(state.failure)
    summary = f"rolled back to blue ({', '.join(f'{fn} v{v}' for fn, v in blue.items())}) after {cause}"
    release_record.finish(
        settings, release, release_record.ROLLED_BACK, summary, cause=cause, detail={"blue": blue}
    )
    add_metric("ReleaseRolledBack", MetricUnit.Count, 1)
    logger.warning("release rolled back", extra={"release_id": release.release_id, "cause": cause})
    return RolledBack(cause=cause, restored=blue, canary_share_reset=connections)


@task_handler
@event_model(RollbackInput)
def handler(event: RollbackInput, context: Any) -> dict[str, Any]:
    return rollback(Settings.from_env(), event).model_dump()
