"""One synthetic run: real WebSocket clients against the preview stage, events through its queue.

Phases, all bounded by one deadline:
1. an unauthorized connect (a wrong key, and no key) must be refused with HTTP 401/403;
2. `clients` connections open, paced at `connect_rate` per second (API Gateway's 500 new
   connections per second are shared by the account's real users), each subscribes to the
   run's own channel `synthetic:<release>-<nonce>`;
3. one warm-up event goes through the preview events queue and is awaited by every client: a
   freshly published green version's fan-out starts cold (on AWS as here), and one cold start
   is not the steady-state latency the threshold is about; its latency is reported apart
   (`warmup_latency_ms`) and a client that never gets it counts as `warmup_not_delivered`;
4. `messages` marked events (`synthetic: true`, the run nonce and a sequence number) go to the
   preview events queue, one every `message_interval` seconds;
5. each client must receive each event; latency is measured from just before the event was
   sent to its arrival (one monotonic clock, one process);
6. every client unsubscribes (the acknowledgement is awaited) and closes.
A connection that failed still counts in the expected deliveries, so it lowers the success
rate instead of vanishing from it.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from service.models import Event
from tasks.checks.report import RunResult

API_KEY_HEADER = "x-api-key"
EVENT_TYPE = "synthetic_check"
WARMUP_SUFFIX = "-warmup"  # the id of the unscored warm-up event ends so
_CHANNEL_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RunPlan:
    url: str
    api_key: str
    clients: int
    messages: int
    connect_rate: float
    deadline_seconds: float
    message_interval_seconds: float = 0.1
    # How long to wait for the last deliveries after the last event was sent.
    collect_seconds: float = 5.0
    reply_timeout_seconds: float = 5.0
    release_id: str = "release"


def run_channel(release_id: str, nonce: str) -> str:
    """`synthetic:<release>-<nonce>`, within the service's channel rules (name <= 64 chars)."""
    name = _CHANNEL_NAME.sub("-", release_id).strip("-._")[:47] or "release"
    return f"synthetic:{name}-{nonce}"


@dataclass
class _Client:
    index: int
    channel: str
    nonce: str
    sent_at: dict[str, float]
    errors: Counter[str]
    ws: ClientConnection | None = None
    received: dict[str, float] = field(default_factory=dict)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    unsubscribed: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False
    reader: asyncio.Task[None] | None = None
    on_delivery: Callable[[], None] | None = None

    def handle(self, raw: str | bytes) -> None:
        now = time.perf_counter()
        try:
            frame = json.loads(raw)
        except ValueError:
            self.errors["frame_not_json"] += 1
            return
        if not isinstance(frame, dict):
            self.errors["frame_not_object"] += 1
            return
        kind = frame.get("type")
        if kind == "event" and frame.get("channel") == self.channel:
            payload = frame.get("payload") or {}
            event_id = str(frame.get("id"))
            if payload.get("nonce") != self.nonce or event_id not in self.sent_at:
                self.errors["foreign_event"] += 1
            elif not frame.get("synthetic"):
                self.errors["event_not_marked_synthetic"] += 1
            elif event_id in self.received:
                self.errors["duplicate_delivery"] += 1
            else:
                self.received[event_id] = (now - self.sent_at[event_id]) * 1000
                if self.on_delivery is not None and not event_id.endswith(WARMUP_SUFFIX):
                    self.on_delivery()
        elif kind == "subscribed" and frame.get("channel") == self.channel:
            self.subscribed.set()
        elif kind == "unsubscribed" and frame.get("channel") == self.channel:
            self.unsubscribed.set()
        elif kind in ("snapshot", "pong"):
            return
        elif kind == "error":
            self.errors[f"error_frame_{frame.get('code', 'unknown')}"] += 1
        elif "message" in frame and kind is None:
            # API Gateway's own answer when an integration failed.
            self.errors["integration_error"] += 1
        else:
            self.errors["unexpected_frame"] += 1

    async def read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self.handle(raw)
        except ConnectionClosed:
            pass
        if not self.closing:
            self.errors["closed_by_server"] += 1


class _Deliveries:
    """Counts deliveries; wakes the collector when every subscribed client has every event."""

    def __init__(self) -> None:
        self.count = 0
        self.target: int | None = None
        self.complete = asyncio.Event()

    def add(self) -> None:
        self.count += 1
        if self.target is not None and self.count >= self.target:
            self.complete.set()

    def expect(self, target: int) -> None:
        self.target = target
        if self.count >= target:
            self.complete.set()


async def _refused(url: str, headers: dict[str, str], timeout: float) -> bool | str:
    """True when the handshake is refused with 401/403; otherwise the reason it was not."""
    try:
        async with connect(url, additional_headers=headers, open_timeout=timeout, ping_interval=None):
            return "accepted"
    except InvalidStatus as exc:
        status = exc.response.status_code
        return True if status in (401, 403) else f"status_{status}"
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        return f"failed_{type(exc).__name__}"


async def _open(client: _Client, plan: RunPlan, start_at: float, deliveries: _Deliveries) -> float | None:
    """Connect at `start_at` (loop time) and subscribe; returns when the handshake finished."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    try:
        client.ws = await connect(
            plan.url,
            additional_headers={API_KEY_HEADER: plan.api_key},
            open_timeout=plan.reply_timeout_seconds,
            ping_interval=None,  # the run is short; API Gateway closes only after 10 idle minutes
            close_timeout=2,
            max_size=128 * 1024,
            compression=None,
            user_agent_header="realtime-analytics-synthetic-checks",
        )
    except InvalidStatus as exc:
        client.errors[f"handshake_{exc.response.status_code}"] += 1
        return None
    except TimeoutError:
        client.errors["connect_timeout"] += 1
        return None
    except (OSError, InvalidHandshake) as exc:
        client.errors[f"connect_{type(exc).__name__}"] += 1
        return None
    connected_at = loop.time()
    client.on_delivery = deliveries.add
    client.reader = asyncio.create_task(client.read())
    try:
        await client.ws.send(
            json.dumps(
                {"action": "subscribe", "channel": client.channel, "request_id": f"sub-{client.index}"}
            )
        )
        await asyncio.wait_for(client.subscribed.wait(), plan.reply_timeout_seconds)
    except TimeoutError:
        client.errors["subscribe_timeout"] += 1
    except ConnectionClosed:
        client.errors["subscribe_closed"] += 1
    return connected_at


async def _close(client: _Client, plan: RunPlan) -> None:
    if client.ws is None:
        return
    try:
        if client.subscribed.is_set():
            await client.ws.send(
                json.dumps(
                    {
                        "action": "unsubscribe",
                        "channel": client.channel,
                        "request_id": f"unsub-{client.index}",
                    }
                )
            )
            try:
                await asyncio.wait_for(client.unsubscribed.wait(), plan.reply_timeout_seconds)
            except TimeoutError:
                client.errors["unsubscribe_timeout"] += 1
        client.closing = True
        await client.ws.close(1000, "synthetic check done")
    except ConnectionClosed:
        client.closing = True
    if client.reader is not None:
        await client.reader


async def run(plan: RunPlan, publish: Callable[[Event], None]) -> RunResult:
    """Execute the plan; `publish` sends one event to the preview events queue (blocking)."""
    loop = asyncio.get_running_loop()
    started, cpu_started = loop.time(), time.thread_time()
    deadline = started + plan.deadline_seconds
    nonce = secrets.token_hex(4)
    channel = run_channel(plan.release_id, nonce)
    errors: Counter[str] = Counter()
    sent_at: dict[str, float] = {}
    result = RunResult(clients=plan.clients, messages=plan.messages, errors=errors)
    result.connect_rate_configured = plan.connect_rate
    clients = [_Client(i, channel, nonce, sent_at, errors) for i in range(plan.clients)]
    deliveries = _Deliveries()
    try:
        async with asyncio.timeout_at(deadline):
            result.unauthorized_refused = await _check_unauthorized(plan, errors)
            first = loop.time()
            opened = await asyncio.gather(
                *(_open(c, plan, first + i / plan.connect_rate, deliveries) for i, c in enumerate(clients))
            )
            done = [t for t in opened if t is not None]
            result.connected = len(done)
            if len(done) > 1:
                result.connect_rate_achieved = round((len(done) - 1) / max(max(done) - first, 1e-6), 1)
            listeners = sum(1 for c in clients if c.subscribed.is_set())
            if listeners:
                await _warm_up(plan, publish, channel, nonce, sent_at, clients, result)
            deliveries.expect(listeners * plan.messages)
            if listeners:
                await _publish_all(plan, publish, channel, nonce, sent_at)
                try:
                    await asyncio.wait_for(deliveries.complete.wait(), plan.collect_seconds)
                except TimeoutError:
                    pass
    except TimeoutError:
        errors["deadline_exceeded"] += 1
    finally:
        # Always leave: unsubscribe and close every connection, even after the deadline.
        await asyncio.gather(*(_close(c, plan) for c in clients), return_exceptions=True)
    for client in clients:
        # A warm-up event that arrived after its wait is still not a measured one.
        result.latencies_ms.extend(v for k, v in client.received.items() if not k.endswith(WARMUP_SUFFIX))
    result.duration_ms = int((loop.time() - started) * 1000)
    result.cpu_seconds = time.thread_time() - cpu_started
    return result


async def _check_unauthorized(plan: RunPlan, errors: Counter[str]) -> bool:
    verdicts = await asyncio.gather(
        _refused(
            plan.url,
            {API_KEY_HEADER: "synthetic-invalid-" + secrets.token_hex(16)},
            plan.reply_timeout_seconds,
        ),
        _refused(plan.url, {}, plan.reply_timeout_seconds),
    )
    for verdict in verdicts:
        if verdict is not True:
            errors[f"unauthorized_{verdict}"] += 1
    return all(v is True for v in verdicts)


def _event(plan: RunPlan, channel: str, nonce: str, seq: int | str) -> Event:
    return Event(
        id=f"synthetic-{nonce}-{seq}",
        channel=channel,
        type=EVENT_TYPE,
        payload={"nonce": nonce, "seq": seq, "release_id": plan.release_id},
        synthetic=True,
    )


async def _send(publish: Callable[[Event], None], event: Event, sent_at: dict[str, float]) -> None:
    def send() -> None:
        sent_at[event.id] = time.perf_counter()
        publish(event)

    await asyncio.to_thread(send)


async def _warm_up(
    plan: RunPlan,
    publish: Callable[[Event], None],
    channel: str,
    nonce: str,
    sent_at: dict[str, float],
    clients: list[_Client],
    result: RunResult,
) -> None:
    """One unscored event through the whole path, awaited by every subscribed client."""
    event = _event(plan, channel, nonce, WARMUP_SUFFIX.lstrip("-"))
    listeners = [c for c in clients if c.subscribed.is_set()]
    await _send(publish, event, sent_at)
    limit = asyncio.get_running_loop().time() + plan.collect_seconds
    while any(event.id not in c.received for c in listeners) and asyncio.get_running_loop().time() < limit:
        await asyncio.sleep(0.01)
    arrived = [c.received.pop(event.id) for c in listeners if event.id in c.received]
    missing = len(listeners) - len(arrived)
    if missing:
        result.errors["warmup_not_delivered"] += missing
    result.warmup_latency_ms = round(max(arrived), 1) if arrived else None


async def _publish_all(
    plan: RunPlan, publish: Callable[[Event], None], channel: str, nonce: str, sent_at: dict[str, float]
) -> None:
    for seq in range(plan.messages):
        await _send(publish, _event(plan, channel, nonce, seq), sent_at)
        if seq + 1 < plan.messages:
            await asyncio.sleep(plan.message_interval_seconds)


def execute(plan: RunPlan, publish: Callable[[Event], None]) -> RunResult:
    """Run in a fresh event loop (the Lambda handler is synchronous)."""
    return asyncio.run(run(plan, publish))


def sqs_publisher(sqs: Any, queue_url: str) -> Callable[[Event], None]:
    def publish(event: Event) -> None:
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=event.model_dump_json(),
            MessageAttributes={"synthetic": {"DataType": "String", "StringValue": "true"}},
        )

    return publish
