"""One queued event: validate, keep as the channel's snapshot, alert, post to subscribers.

Delivery is at least once: when every post of an event failed (the @connections endpoint is
unreachable or erroring), the record fails and SQS redelivers it; clients can drop repeats by
the event `id`. Posts that fail for single connections are counted and logged, not retried
through SQS, so one broken connection cannot hold an event back from everyone else.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from pydantic import ValidationError

from service import faults, keys, models
from service.clients import connections as posting
from service.logic import alerts as alert_rules
from service.logic import connections

_STORE_SNAPSHOT_LUA = """
local previous = redis.call('GET', KEYS[1])
if previous then
  local ok, decoded = pcall(cjson.decode, previous)
  if ok and type(decoded) == 'table' and tonumber(decoded['ts']) and tonumber(decoded['ts']) > tonumber(ARGV[2]) then
    return {0, previous}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
if previous then return {1, previous} end
return {1}
"""


class EventRejected(ValueError):
    """The record can never be delivered as it is (too large, not an event): DLQ path."""


class DeliveryFailed(RuntimeError):
    """No subscriber could be reached; the record is retried."""


@dataclass
class DeliveryReport:
    subscribers: int = 0
    sent: int = 0
    gone: int = 0
    dropped: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)


@dataclass
class RecordResult:
    event: models.Event
    stored_snapshot: bool
    delivery: DeliveryReport
    alerts_published: int
    latency_ms: float


_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool(size: int) -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="fanout-post")
        return _executor


def parse_event(body: str | bytes) -> models.Event:
    size = len(body.encode() if isinstance(body, str) else body)
    if size > models.MAX_MESSAGE_BYTES:
        raise EventRejected(f"event is {size} bytes, over the {models.MAX_MESSAGE_BYTES}-byte WebSocket message limit")
    try:
        return models.Event.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise EventRejected(f"not a valid event: {where}: {first['msg']}") from None


def store_snapshot(r: redis.Redis, schema: int, event: models.Event, ttl: int) -> tuple[bool, models.Event | None]:
    """Keep the event as the channel's latest unless a newer one is stored; returns (stored, previous)."""
    result = r.eval(
        _STORE_SNAPSHOT_LUA, 1, keys.snapshot_key(schema, event.channel), event.model_dump_json(), repr(event.ts), str(ttl)
    )
    stored = bool(result[0])
    previous = None
    if len(result) > 1:
        try:
            previous = models.Event.model_validate_json(result[1])
        except ValidationError:
            previous = None
    return stored, previous


def deliver(r: redis.Redis, channel: str, data: bytes, concurrency: int, drop_rate: float = 0.0) -> DeliveryReport:
    targets = connections.subscribers(r, channel)
    report = DeliveryReport(subscribers=len(targets))
    if not targets:
        return report

    def post_one(item: tuple[str, str]) -> tuple[str, str, str]:
        connection_id, endpoint = item
        if faults.drop_post(drop_rate):
            return connection_id, "dropped", "FAULT_DROP_RATE"
        outcome, reason = posting.post(endpoint, connection_id, data, pool_size=concurrency)
        return connection_id, outcome, reason

    gone: list[str] = []
    for connection_id, outcome, reason in _pool(concurrency).map(post_one, targets.items()):
        if outcome == "sent":
            report.sent += 1
        elif outcome == "gone":
            report.gone += 1
            gone.append(connection_id)
        elif outcome == "dropped":
            report.dropped += 1
        else:
            report.failed += 1
            report.failures[reason] += 1
    for connection_id in gone:
        connections.unregister(r, connection_id)
    return report


def process(
    body: str | bytes,
    r: redis.Redis,
    *,
    schema: int,
    snapshot_ttl: int,
    rules: tuple[alert_rules.AlertRule, ...],
    sns: Any,
    topic_arn: str | None,
    concurrency: int,
    drop_rate: float = 0.0,
) -> RecordResult:
    event = parse_event(body)
    data = models.encode_frame(event.frame())
    if len(data) > models.MAX_MESSAGE_BYTES:
        raise EventRejected(f"event frame is {len(data)} bytes, over the {models.MAX_MESSAGE_BYTES}-byte limit")
    stored, previous = store_snapshot(r, schema, event, snapshot_ttl)
    published = 0
    # A stale (out-of-order) event is delivered but not compared: its "previous" is newer.
    if stored and topic_arn:
        found = alert_rules.evaluate(rules, event, previous)
        if found:
            published = alert_rules.publish(found, rules, r, sns, topic_arn)
    report = deliver(r, event.channel, data, concurrency, drop_rate)
    if report.failed and not (report.sent or report.gone):
        reasons = ", ".join(f"{k} x{v}" for k, v in report.failures.most_common())
        raise DeliveryFailed(f"no subscriber of {event.channel} reachable ({reasons})")
    return RecordResult(event, stored, report, published, max(0.0, time.time() * 1000 - event.ts))
