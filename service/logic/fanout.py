"""One queued message: an event (validate, keep as the channel's snapshot, alert, post to the
subscribers) or a delivery shard of a split event (post to its slice of the subscribers).

Delivery is at least once: when every post of an event failed (the @connections endpoint is
unreachable or erroring), the record fails and SQS redelivers it; clients can drop repeats by
the event `id`. Posts that fail for single connections are counted and logged, not retried
through SQS, so one broken connection cannot hold an event back from everyone else.

Splitting. When a channel has more subscribers than the split threshold (the shard size, or
more where the queue's batching window makes small splits slow), the invocation that
received the event stores the snapshot and raises the alerts once, slices the sorted subscriber
ids into shards (`models.DeliveryShard`), queues shards 1..n-1 (SendMessageBatch) on the queue
the event came from and posts shard 0 itself; whichever invocation receives a queued shard
posts the event to that slice. One hot channel so uses as many invocations as the queue's
poller starts for the backlog.
- Per message: `fanout:split:<message id>` is set, holding shard 0, once the other shards are
  queued, so a redelivered or duplicated event message queues nothing again and posts only its
  own shard 0 (if that is not done yet). A split that failed before the mark is redone under a
  new split id: connections of the shards queued the first time get the event twice.
- Per shard: an invocation claims its shard in `fanout:shards:<split id>` for its remaining run
  time, posts, then marks the shard done. A redelivered shard that is done is acknowledged
  without posting; one that another invocation holds fails and comes back after the visibility
  timeout; one whose holder crashed is claimed again once the claim expires (the posts made
  before the crash are made again).
- A connection is in exactly one shard of a split (the slices partition the sorted ids), and a
  shard posts only to ids that are still subscribed when it runs.
- Order per connection: as without splitting, a batch's records are processed in order, and a
  standard queue orders nothing between batches; shards of consecutive events of a channel may
  run on different invocations, so a connection can see two of its channel's events out of
  order. Frames carry the producer's `ts`; the snapshot keeps the newest.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from json.encoder import encode_basestring  # JSON string without escaping non-ASCII, as pydantic writes it
from typing import Any, Literal

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

# KEYS[1] the split's shard hash; ARGV: shard index, claim value "<expiry> <token>", now, ttl.
# 1: claimed; 0: already done; -1: held by a claim that has not expired.
_CLAIM_SHARD_LUA = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held == 'done' then return 0 end
if held then
  local expiry = tonumber(string.match(held, '^(%d+)'))
  if expiry and expiry > tonumber(ARGV[3]) then return -1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Give a claim back (only our own), so a redelivery need not wait for it to expire.
_RELEASE_SHARD_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

# Lambda's longest run time: the claim of an invocation whose remaining time is unknown.
DEFAULT_LEASE_SECONDS = 900
# Rounds of SendMessageBatch for the entries SQS reports as failed before the split fails.
SEND_ROUNDS = 3


class EventRejected(ValueError):
    """The record can never be delivered as it is (too large, not an event): DLQ path."""


class DeliveryFailed(RuntimeError):
    """No subscriber could be reached; the record is retried."""


class SplitFailed(DeliveryFailed):
    """Some shards of a split event could not be queued; the event's record is retried."""


class ShardInProgress(RuntimeError):
    """Another invocation holds this shard (a duplicate delivery); the record comes back later."""


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
    # "event": posted to every subscriber; "split": split into `shards` shards, shard 0 posted
    # here and the others queued; "shard": posted to one queued shard (`shard` of `shards`);
    # "duplicate": a split message or a shard seen again after it was done.
    kind: Literal["event", "split", "shard", "duplicate"] = "event"
    shard: int | None = None
    shards: int = 0


@dataclass(frozen=True)
class Sharding:
    """Whether and how this invocation splits large channels.

    shard_size: at most this many connections per shard.
    split_above: split only channels with more subscribers than this (at least the shard size).
    queue_url: the queue the record came from, where its shards go; None never splits.
    window_seconds: how long SQS may redeliver a message: the life of the split and shard marks.
    lease_seconds: how long a shard claim holds: the invocation's remaining run time.
    """

    shard_size: int = 500
    split_above: int = 0
    queue_url: str | None = None
    sqs: Any = None
    window_seconds: int = 900
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    @property
    def threshold(self) -> int:
        return max(self.shard_size, self.split_above)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard size must be at least 1, got {self.shard_size}")
        if self.queue_url is not None and self.sqs is None:
            raise ValueError("a shard queue needs an SQS client")


NO_SPLIT = Sharding()

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool(size: int) -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="fanout-post")
        return _executor


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def parse_event(body: str | bytes) -> models.Event:
    size = len(body.encode() if isinstance(body, str) else body)
    if size > models.MAX_MESSAGE_BYTES:
        raise EventRejected(
            f"event is {size} bytes, over the {models.MAX_MESSAGE_BYTES}-byte WebSocket message limit"
        )
    try:
        return models.Event.model_validate_json(body)
    except ValidationError as exc:
        raise EventRejected(f"not a valid event: {_first_error(exc)}") from None


def parse_message(body: str | bytes) -> models.Event | models.DeliveryShard:
    """An event as producers queue it, or a delivery shard as a split queued it."""
    size = len(body.encode() if isinstance(body, str) else body)
    if size > models.MAX_QUEUE_MESSAGE_BYTES:
        raise EventRejected(
            f"message is {size} bytes, over the {models.MAX_QUEUE_MESSAGE_BYTES}-byte queue limit"
        )
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == models.SHARD_KIND:
        try:
            return models.DeliveryShard.model_validate(decoded)
        except ValidationError as exc:
            raise EventRejected(f"not a valid delivery shard: {_first_error(exc)}") from None
    return parse_event(body)


def store_snapshot(
    r: redis.Redis, schema: int, event: models.Event, ttl: int
) -> tuple[bool, models.Event | None]:
    """Keep the event as the channel's latest unless a newer one is stored; returns (stored, previous)."""
    result = r.eval(
        _STORE_SNAPSHOT_LUA,
        1,
        keys.snapshot_key(schema, event.channel),
        event.model_dump_json(),
        repr(event.ts),
        str(ttl),
    )
    stored = bool(result[0])
    previous = None
    if len(result) > 1:
        try:
            previous = models.Event.model_validate_json(result[1])
        except ValidationError:
            previous = None
    return stored, previous


PostFunction = Callable[[str, str, bytes, int], tuple[posting.PostOutcome, str]]


def post_frames(
    targets: dict[str, str],
    data: bytes,
    concurrency: int,
    drop_rate: float = 0.0,
    post: PostFunction | None = None,
) -> tuple[DeliveryReport, list[str]]:
    """Post `data` to every connection id -> endpoint of `targets`, `concurrency` at a time.

    Returns the report and the ids that are gone. Up to `concurrency` workers of the shared
    pool each take the next target until none is left: one task per worker rather than one
    future per post, which costs a third less CPU per post than `map` over the targets.
    """
    send = post or posting.post
    report = DeliveryReport(subscribers=len(targets))
    if not targets:
        return report, []
    items = iter(list(targets.items()))
    lock = threading.Lock()
    outcomes: list[tuple[str, str, str]] = []

    def drain() -> None:
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            connection_id, endpoint = item
            if faults.drop_post(drop_rate):
                outcomes.append((connection_id, "dropped", "FAULT_DROP_RATE"))
                continue
            outcome, reason = send(endpoint, connection_id, data, concurrency)
            outcomes.append((connection_id, outcome, reason))

    workers = [_pool(concurrency).submit(drain) for _ in range(min(concurrency, len(targets)))]
    for worker in workers:
        worker.result()
    gone: list[str] = []
    for connection_id, outcome, reason in outcomes:
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
    return report, gone


def _post_all(
    r: redis.Redis, targets: dict[str, str], data: bytes, concurrency: int, drop_rate: float
) -> DeliveryReport:
    report, gone = post_frames(targets, data, concurrency, drop_rate)
    for connection_id in gone:
        connections.unregister(r, connection_id)
    return report


def _raise_if_unreachable(report: DeliveryReport, channel: str) -> None:
    if report.failed and not (report.sent or report.gone):
        reasons = ", ".join(f"{k} x{v}" for k, v in report.failures.most_common())
        raise DeliveryFailed(f"no subscriber of {channel} reachable ({reasons})")


def deliver(
    r: redis.Redis,
    channel: str,
    data: bytes,
    concurrency: int,
    drop_rate: float = 0.0,
    connection_ids: list[str] | None = None,
) -> DeliveryReport:
    """Post to the channel's subscribers (or to those of `connection_ids` still subscribed)."""
    if connection_ids is None:
        targets = connections.subscribers(r, channel)
    else:
        targets = connections.live_subscribers(r, channel, connection_ids)
    return _post_all(r, targets, data, concurrency, drop_rate)


# --------------------------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------------------------


def plan_shards(
    event: models.Event, connection_ids: list[str], shard_size: int, split_id: str
) -> list[models.DeliveryShard]:
    """Slice `connection_ids` (in their order) into shards of at most `shard_size` ids whose
    messages each fit in one SQS message; every id lands in exactly one shard."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    if not connection_ids:
        return []
    digits = len(str(len(connection_ids)))
    probe = models.DeliveryShard(split_id=split_id, shard=0, shards=1, event=event, connections=["x"])
    # The message without its ids, with room for the widest shard and shards numbers.
    fixed = len(probe.model_dump_json().encode()) - len(b'"x"') + 2 * digits
    budget = models.MAX_QUEUE_MESSAGE_BYTES - fixed
    slices: list[list[str]] = []
    current: list[str] = []
    used = 0
    for connection_id in connection_ids:
        cost = len(encode_basestring(connection_id).encode()) + (1 if current else 0)  # as JSON, + comma
        if current and (len(current) >= shard_size or used + cost > budget):
            slices.append(current)
            current, used = [], 0
            cost -= 1
        if cost > budget:
            raise EventRejected(
                f"event {event.id} leaves {budget} bytes of a queue message for connection ids; "
                f"{connection_id[:20]!r}... needs {cost}"
            )
        current.append(connection_id)
        used += cost
    slices.append(current)
    return [
        models.DeliveryShard(split_id=split_id, shard=index, shards=len(slices), event=event, connections=ids)
        for index, ids in enumerate(slices)
    ]


def _batches(bodies: list[str]) -> list[list[tuple[str, str]]]:
    """SendMessageBatch entries: at most 10 per call and 256 KiB per call in all."""
    batches: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    for index, body in enumerate(bodies):
        length = len(body.encode())
        if length > models.MAX_QUEUE_MESSAGE_BYTES:
            raise EventRejected(
                f"shard {index} is {length} bytes, over the {models.MAX_QUEUE_MESSAGE_BYTES}-byte limit"
            )
        if current and (len(current) == 10 or size + length > models.MAX_QUEUE_MESSAGE_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append((str(index), body))
        size += length
    if current:
        batches.append(current)
    return batches


def queue_shards(sqs: Any, queue_url: str, shards: list[models.DeliveryShard], concurrency: int) -> None:
    """SendMessageBatch every shard (batches in parallel); raises SplitFailed if any stays unsent."""
    bodies = [shard.model_dump_json() for shard in shards]

    def send(batch: list[tuple[str, str]]) -> list[str]:
        pending = dict(batch)
        problems: list[str] = []
        for _ in range(SEND_ROUNDS):
            answer = sqs.send_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": i, "MessageBody": body} for i, body in pending.items()]
            )
            failed = answer.get("Failed") or []
            problems = [f"{f.get('Code')}: {f.get('Message', '')}".strip() for f in failed]
            pending = {f["Id"]: pending[f["Id"]] for f in failed}
            if not pending or any(f.get("SenderFault") for f in failed):
                break
        return problems if pending else []

    problems = [p for found in _pool(concurrency).map(send, _batches(bodies)) for p in found]
    if problems:
        raise SplitFailed(
            f"{len(problems)} of {len(shards)} shards not queued ({'; '.join(sorted(set(problems)))})"
        )


def _claim(r: redis.Redis, shard: models.DeliveryShard, sharding: Sharding) -> tuple[int, str]:
    now = int(time.time())
    value = f"{now + sharding.lease_seconds} {uuid.uuid4().hex}"
    state = int(
        r.eval(
            _CLAIM_SHARD_LUA,
            1,
            keys.shard_marks_key(shard.split_id),
            str(shard.shard),
            value,
            str(now),
            str(sharding.window_seconds),
        )
    )
    return state, value


def deliver_shard(
    r: redis.Redis,
    shard: models.DeliveryShard,
    data: bytes,
    concurrency: int,
    drop_rate: float,
    sharding: Sharding,
) -> DeliveryReport | None:
    """Post a shard's frame to its connections once; None when the shard was already delivered."""
    key = keys.shard_marks_key(shard.split_id)
    field_name = str(shard.shard)
    state, claim = _claim(r, shard, sharding)
    if state == 0:
        return None
    if state < 0:
        raise ShardInProgress(
            f"shard {shard.shard}/{shard.shards} of split {shard.split_id} is held by another invocation"
        )
    try:
        report = deliver(
            r, shard.event.channel, data, concurrency, drop_rate, connection_ids=list(shard.connections)
        )
        _raise_if_unreachable(report, shard.event.channel)
    except BaseException:
        r.eval(_RELEASE_SHARD_LUA, 1, key, field_name, claim)
        raise
    pipe = r.pipeline(transaction=True)
    pipe.hset(key, field_name, "done")
    pipe.expire(key, sharding.window_seconds)
    pipe.execute()
    return report


# --------------------------------------------------------------------------------------------
# One record
# --------------------------------------------------------------------------------------------


def _frame(event: models.Event) -> bytes:
    data = models.encode_frame(event.frame())
    if len(data) > models.MAX_MESSAGE_BYTES:
        raise EventRejected(
            f"event frame is {len(data)} bytes, over the {models.MAX_MESSAGE_BYTES}-byte limit"
        )
    return data


def _latency_ms(event: models.Event) -> float:
    return max(0.0, time.time() * 1000 - event.ts)


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
    message_id: str | None = None,
    sharding: Sharding = NO_SPLIT,
) -> RecordResult:
    message = parse_message(body)
    if isinstance(message, models.DeliveryShard):
        data = _frame(message.event)
        report = deliver_shard(r, message, data, concurrency, drop_rate, sharding)
        if report is None:
            return RecordResult(
                message.event, False, DeliveryReport(), 0, 0.0, "duplicate", message.shard, message.shards
            )
        return RecordResult(
            message.event,
            False,
            report,
            0,
            _latency_ms(message.event),
            "shard",
            message.shard,
            message.shards,
        )

    event = message
    data = _frame(event)
    stored, previous = store_snapshot(r, schema, event, snapshot_ttl)
    published = 0
    # A stale (out-of-order) event is delivered but not compared: its "previous" is newer.
    if stored and topic_arn:
        found = alert_rules.evaluate(rules, event, previous)
        if found:
            published = alert_rules.publish(found, rules, r, sns, topic_arn)
    if sharding.queue_url is None:
        report = deliver(r, event.channel, data, concurrency, drop_rate)
        _raise_if_unreachable(report, event.channel)
        return RecordResult(event, stored, report, published, _latency_ms(event))

    members = connections.members(r, event.channel)
    if len(members) <= sharding.threshold:
        report = deliver(r, event.channel, data, concurrency, drop_rate, connection_ids=members)
        _raise_if_unreachable(report, event.channel)
        return RecordResult(event, stored, report, published, _latency_ms(event))

    # The split: shards 1..n-1 are queued, shard 0 is posted here (this invocation is already
    # running). The mark keeps shard 0, so a redelivered split message posts the same slice.
    mark = keys.split_mark_key(message_id) if message_id else None
    kept = r.get(mark) if mark is not None else None
    if kept is not None:
        first = models.DeliveryShard.model_validate_json(kept)
    else:
        shards = plan_shards(event, members, sharding.shard_size, uuid.uuid4().hex)
        first = shards[0]
        queue_shards(sharding.sqs, sharding.queue_url, shards[1:], concurrency)
        if mark is not None:
            r.set(mark, first.model_dump_json(), ex=sharding.window_seconds)
    report = deliver_shard(r, first, data, concurrency, drop_rate, sharding)
    if report is None:
        return RecordResult(event, stored, DeliveryReport(), published, 0.0, "duplicate", 0, first.shards)
    return RecordResult(event, stored, report, published, _latency_ms(event), "split", 0, first.shards)


def source_queue_url(queue_arn: str, queue_urls: tuple[str | None, ...]) -> str | None:
    """Which configured queue URL a record's eventSourceARN names (matched by queue name)."""
    name = queue_arn.rsplit(":", 1)[-1]
    for url in queue_urls:
        if url and url.rstrip("/").rsplit("/", 1)[-1] == name:
            return url
    return None
