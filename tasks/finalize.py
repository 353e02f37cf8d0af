"""Finalize: green becomes blue. Every `live` alias on green alone, the outcome recorded.

In `connections` routing the edge's canary share then returns to 0: `live` serves green now,
so new connections need no canary stage (those on it stay on green, which `live` serves).

A dry run ends here too, without having touched `live`: its `green` aliases return to blue so
the preview stage serves what `live` serves.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.names import GREEN_ALIAS, LIVE_ALIAS
from contracts.state import Deploy, Finalized, Release
from tasks import canary_share, release_record
from tasks.common import (
    MetricUnit,
    Settings,
    add_metric,
    client,
    event_model,
    parse_time,
    task_handler,
    utc_now,
)
from tasks.deploy_green import point_alias
from tasks.set_weights import assert_lock_held


class FinalizeInput(BaseModel):
    """Finalize receives the whole state; it reads `release` and `deploy`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    release: Release
    deploy: Deploy


def finalize(settings: Settings, state: FinalizeInput) -> Finalized:
    """`$.finalize`: the outcome and what `live` serves now."""
    release, deploy = state.release, state.deploy
    lam = client("lambda")
    duration = (utc_now() - parse_time(release.started_at)).total_seconds()
    if release.dry_run:
        for fn in settings.functions:
            point_alias(lam, fn, GREEN_ALIAS, deploy.blue[fn])
        summary = f"dry run of version {release.version} passed every check; live unchanged"
        release_record.finish(settings, release, release_record.DRY_RUN_SUCCEEDED, summary)
        return Finalized(status="DRY_RUN_SUCCEEDED", live=deploy.blue)
    assert_lock_held(settings, release.release_id)
    for fn in settings.functions:
        point_alias(lam, fn, LIVE_ALIAS, deploy.green[fn])
    if release.routing == "connections":
        canary_share.set_share(settings, 0)
    summary = f"version {release.version} is live: " + ", ".join(
        f"{fn} v{v}" for fn, v in deploy.green.items()
    )
    release_record.finish(settings, release, release_record.SUCCEEDED, summary, detail={"live": deploy.green})
    add_metric("ReleaseSucceeded", MetricUnit.Count, 1)
    add_metric("ReleaseDurationSeconds", MetricUnit.Seconds, max(duration, 0.0))
    return Finalized(status="SUCCEEDED", live=deploy.green)


@task_handler
@event_model(FinalizeInput)
def handler(event: FinalizeInput, context: Any) -> dict[str, Any]:
    return finalize(Settings.from_env(), event).model_dump()
