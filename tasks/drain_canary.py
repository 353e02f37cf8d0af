"""DrainCanary: after a rollback in `connections` routing, close every connection on the canary stage.

Rollback has already set the edge's canary share to 0 and moved every `green` alias back to
blue, so a connection left on the canary stage is served by blue from its next invocation.
It is closed anyway: the next release points `green` at its own candidate, and a connection
still on the canary stage would then meet that candidate without the edge having chosen it.
A client whose connection closes reconnects to `wss://<host>/live`, where the edge, reading a
share of 0, keeps it.

API Gateway lists no connections, so the service's connection registry (service.keys: one
`conn:<id>` hash per connection, with the `@connections` endpoint of the stage it connected
through) is scanned for the canary stage's endpoint. Each one found gets `DELETE
@connections/<id>`; API Gateway then runs `$disconnect`, which removes it from the registry.
A connection API Gateway no longer knows (410 Gone) is removed from the registry here, as
`$disconnect` would have. The scan repeats until no canary connection is left (a client that
reconnected before the edge saw the share at 0 is closed too) or `drain_timeout_seconds`
passes; `$.drain` reports what was closed, what remained and the drain time.

Reached from the state machine's rollback path and invoked by the alarm rollback (which stops
the execution, so the state machine's path never runs). Idempotent: a second drain finds
nothing and reports 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import redis
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from contracts.state import Drained, ReleaseRef
from contracts.text import counted
from service import keys
from service.logic import connections as registry
from service.redis_client import get_redis
from tasks import release_record
from tasks.common import MetricUnit, add_metric, event_model, logger, task_handler
from tasks.settings import DrainSettings

SCAN_BATCH = 500
_CLIENT_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=2, read_timeout=5)


class DrainInput(BaseModel):
    """The state machine passes the whole state; the alarm rollback `{"release": {...}}` from its record."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    release: ReleaseRef


def canary_connections(r: redis.Redis, endpoint: str) -> Iterator[str]:
    """Ids of the registered connections whose `@connections` endpoint is `endpoint`."""
    wanted = endpoint.rstrip("/")
    prefix = keys.conn_key("")
    batch: list[bytes] = []
    for key in r.scan_iter(match=f"{prefix}*", count=SCAN_BATCH):
        batch.append(key if isinstance(key, bytes) else str(key).encode())
        if len(batch) >= SCAN_BATCH:
            yield from _matching(r, batch, wanted, prefix)
            batch = []
    if batch:
        yield from _matching(r, batch, wanted, prefix)


def _matching(r: redis.Redis, batch: list[bytes], endpoint: str, prefix: str) -> Iterator[str]:
    pipe = r.pipeline(transaction=False)
    for key in batch:
        pipe.hget(key, "endpoint")
    for key, found in zip(batch, pipe.execute(), strict=True):
        if found is not None and found.decode().rstrip("/") == endpoint:
            yield key.decode()[len(prefix) :]


def close(api: Any, r: redis.Redis, connection_id: str) -> str:
    """`closed`, or `gone` when API Gateway no longer knows the connection (then unregistered here)."""
    try:
        api.delete_connection(ConnectionId=connection_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "GoneException":
            raise
        registry.unregister(r, connection_id)
        return "gone"
    return "closed"


def drain(
    settings: DrainSettings,
    release: ReleaseRef,
    *,
    r: redis.Redis | None = None,
    api: Any = None,
    clock: Any = time.monotonic,
    sleep: Any = time.sleep,
) -> Drained:
    r = r if r is not None else get_redis()
    api = api if api is not None else _management_client(settings)
    started = clock()
    deadline = started + settings.drain_timeout_seconds
    closed: set[str] = set()
    gone: set[str] = set()
    rounds = 0
    remaining: list[str] = []
    while True:
        rounds += 1
        remaining = list(canary_connections(r, settings.connections_endpoint))
        if not remaining or clock() >= deadline:
            break
        for connection_id in remaining:
            # A second DELETE of a connection closed in an earlier round (its `$disconnect` not
            # yet run) answers Gone and unregisters it: it still counts as closed by the drain.
            if close(api, r, connection_id) == "closed":
                closed.add(connection_id)
            elif connection_id not in closed:
                gone.add(connection_id)
        sleep(settings.drain_poll_seconds)
    seconds = round(clock() - started, 3)
    result = Drained(
        closed=len(closed), gone=len(gone), remaining=len(remaining), rounds=rounds, drain_seconds=seconds
    )
    summary = (
        f"canary stage drained in {seconds:.1f}s: {counted(result.closed, 'connection')} closed, {result.gone} already gone"
        if not remaining
        else f"canary stage not drained within {settings.drain_timeout_seconds:g}s: {counted(len(remaining), 'connection')} left"
    )
    # Audited, not published: the role may not publish (the rollback's own notice names the
    # outcome, and the alarm rollback's carries this result).
    release_record.transition(
        settings, release, "CANARY_DRAINED", summary, detail=result.model_dump(), publish=False
    )
    add_metric("CanaryDrainSeconds", MetricUnit.Seconds, seconds)
    logger.info("canary drain done", extra={"release_id": release.release_id, **result.model_dump()})
    return result


def _management_client(settings: DrainSettings) -> Any:
    return boto3.session.Session().client(
        "apigatewaymanagementapi",
        endpoint_url=settings.connections_endpoint,
        region_name=settings.region,
        config=_CLIENT_CONFIG,
    )


@task_handler
@event_model(DrainInput)
def handler(event: DrainInput, context: Any) -> dict[str, Any]:
    return drain(DrainSettings.from_env(), event.release).model_dump()
