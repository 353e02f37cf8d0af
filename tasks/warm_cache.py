"""WarmCache step: copy blue's cache namespace into green's before green takes traffic.

`handler` runs bounded batches for at most the time budget and returns the SCAN cursor; the
state machine calls it again with that cursor until `done`. `cleanup_handler` (rollback)
deletes green's namespace, or a dry run's scratch namespace, unless it is blue's.

Configuration (environment, tasks.settings.CacheTaskSettings): WARM_TIME_BUDGET_SECONDS
(default 60; capped by the invocation's remaining time less a safety margin), WARM_BATCH_KEYS
(keys per server-side batch, default 1000: a batch blocks the server for a few milliseconds),
and the Redis settings read by `service.redis_client`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from contracts.state import WarmBatch
from service.keys import cache_namespace, dry_run_namespace, parse_schema
from service.redis_client import get_redis
from tasks.cache.warm import cleanup, plan_warm, warm
from tasks.common import event_model
from tasks.errors import InvalidRelease
from tasks.settings import CacheTaskSettings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# Leave this much of the invocation for the reply, logs and metrics after the last batch.
SAFETY_MARGIN_SECONDS = 5.0

Schema = Annotated[int, BeforeValidator(parse_schema)]
ReleaseId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class WarmCacheInput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    release_id: ReleaseId
    environment: str = Field(min_length=1, max_length=64)
    blue_schema: Schema
    green_schema: Schema
    cursor: str = Field(default="0", pattern=r"^[0-9]+$")
    dry_run: bool = False


# `$.warm` after a batch (contracts.state.WarmBatch).
WarmCacheOutput = WarmBatch


class CleanupInput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    release_id: ReleaseId
    blue_schema: Schema
    green_schema: Schema
    dry_run: bool = False


def time_budget(context: Any, settings: CacheTaskSettings | None = None) -> float:
    budget = float((settings or CacheTaskSettings.from_env()).time_budget_seconds)
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        budget = min(budget, remaining_ms() / 1000 - SAFETY_MARGIN_SECONDS)
    return max(budget, 0.5)


def warm_cache(request: WarmCacheInput, *, budget_seconds: float, batch_keys: int) -> WarmCacheOutput:
    started = time.monotonic()
    plan = plan_warm(
        request.blue_schema, request.green_schema, release_id=request.release_id, dry_run=request.dry_run
    )
    progress = warm(get_redis(), plan, request.cursor, budget_seconds=budget_seconds, batch_keys=batch_keys)
    return WarmCacheOutput(
        cursor=progress.cursor,
        done=progress.done,
        noop=plan.noop,
        keys_copied=progress.keys_copied,
        bytes_copied=progress.bytes_copied,
        duration_ms=int((time.monotonic() - started) * 1000),
        target_namespace=plan.target,
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_model(WarmCacheInput, error=InvalidRelease)
def handler(request: WarmCacheInput, context: Any) -> dict[str, Any]:
    logger.append_keys(release_id=request.release_id, environment=request.environment)
    metrics.add_dimension(name="environment", value=request.environment)
    settings = CacheTaskSettings.from_env()
    result = warm_cache(
        request, budget_seconds=time_budget(context, settings), batch_keys=settings.batch_keys
    )
    metrics.add_metric(name="CacheWarmKeysCopied", unit=MetricUnit.Count, value=result.keys_copied)
    metrics.add_metric(name="CacheWarmBytesCopied", unit=MetricUnit.Bytes, value=result.bytes_copied)
    metrics.add_metric(name="CacheWarmDuration", unit=MetricUnit.Milliseconds, value=result.duration_ms)
    logger.info(
        "cache warm batch finished",
        extra={
            "blue_schema": request.blue_schema,
            "green_schema": request.green_schema,
            **result.model_dump(),
        },
    )
    return result.model_dump()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_model(CleanupInput, error=InvalidRelease)
def cleanup_handler(request: CleanupInput, context: Any) -> dict[str, Any]:
    logger.append_keys(release_id=request.release_id)
    blue = cache_namespace(request.blue_schema)
    target = (
        dry_run_namespace(request.release_id) if request.dry_run else cache_namespace(request.green_schema)
    )
    deleted = cleanup(get_redis(), target, protected=blue, batch_keys=CacheTaskSettings.from_env().batch_keys)
    metrics.add_metric(name="CacheNamespaceKeysDeleted", unit=MetricUnit.Count, value=deleted)
    logger.info(
        "cache namespace cleaned up", extra={"namespace": target, "blue_namespace": blue, "deleted": deleted}
    )
    return {"deleted": deleted}
