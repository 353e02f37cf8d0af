"""ValidateRequest: the state machine's first state checks the request again.

StartExecution can be called directly, bypassing the CLI, so the same model validates here.
The output becomes the whole state of the execution: the normalized `release` plus the
initial cursors of the cache warm loop and the traffic shift loop.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.release import (
    RELEASE_ID_PATTERN,
    InvalidRequest,
    ReleaseDefaults,
    ReleaseRequest,
    parse_release_request,
)
from contracts.state import Release, initial_sections
from service.catalog import released_keys
from tasks.common import Settings, console_url, event_model, iso, logger, parse_time, task_handler
from tasks.errors import InvalidRelease
from tasks.settings import release_defaults

# Deploy, cache warm-up and synthetic checks get this long on top of the bakes and the approval
# wait before a lock counts as abandoned (an execution stopped without clean-up).
LOCK_MARGIN = timedelta(hours=6)


class ValidateInput(BaseModel):
    """ValidateRequest's Parameters: the execution's input as given, and its context."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # Anything StartExecution was given; the release request model judges it.
    request: Any = None
    execution_arn: str = Field(min_length=1)
    execution_name: str = Field(min_length=1)
    started_at: str = Field(min_length=1)


def defaults_from_env(env: dict[str, str] | None = None) -> ReleaseDefaults:
    """RELEASE_DEFAULTS alone (the release task settings read it as `defaults`)."""
    if env is None:
        return Settings.from_env().defaults
    return release_defaults(env.get("RELEASE_DEFAULTS") or None)


def lock_expiry(request: ReleaseRequest, started_at: str) -> str:
    assert request.strategy is not None
    budget = timedelta(seconds=sum(step.bake_seconds for step in request.strategy.steps)) + LOCK_MARGIN
    if request.approval == "required":
        budget += timedelta(seconds=request.approval_timeout_seconds)
    return iso(parse_time(started_at) + budget)


def validate(event: ValidateInput, settings: Settings, defaults: ReleaseDefaults) -> dict[str, Any]:
    """The state an execution starts from: `release` (contracts.state.Release) and the loop cursors."""
    raw = event.request
    execution_name = event.execution_name
    if isinstance(raw, dict) and "release_id" not in raw and re.match(RELEASE_ID_PATTERN, execution_name):
        # Started without an id (e.g. StartExecution by hand): the execution name identifies it.
        raw = {**raw, "release_id": execution_name}
    try:
        request = parse_release_request(
            raw if raw is not None else {}, defaults, function_keys=released_keys()
        ).with_defaults()
    except InvalidRequest as exc:
        raise InvalidRelease(str(exc)) from None
    started_at = event.started_at
    release = request.model_dump(mode="json", exclude_none=True)
    release.update(
        environment=settings.environment,
        execution_arn=event.execution_arn,
        execution_name=execution_name,
        started_at=started_at,
        lock_expires_at=lock_expiry(request, started_at),
        console_url=console_url(settings.region, event.execution_arn),
        step_count=len(request.strategy.steps) if request.strategy else 0,
    )
    # The section every later task parses: checked here, where it is written. The request's own
    # fields pass through as the request model dumped them.
    Release.model_validate(release)
    logger.info("release request valid", extra={"release_id": request.release_id, "version": request.version})
    return {"release": release, **initial_sections()}


@task_handler
@event_model(ValidateInput)
def handler(event: ValidateInput, context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return validate(event, settings, settings.defaults)
