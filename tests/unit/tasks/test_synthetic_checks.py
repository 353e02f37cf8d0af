"""synthetic_checks logic against a small in-test WebSocket server that speaks the service's
message schema, to drive the cases a healthy gateway never shows (accepting a bad key,
duplicate or unmarked deliveries), plus the report, input and settings rules."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from service import models
from service.models import Event
from tasks import synthetic_checks
from tasks.checks.report import RunResult, Thresholds, percentile
from tasks.checks.run import RunPlan, execute, run_channel
from tasks.errors import InvalidRelease
from tasks.settings import CheckTaskSettings, SettingsError

GOOD_KEY = "good-key"

# A refused input publishes no metrics; Powertools warns about that, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@dataclass
class FakeService:
    """Accepts x-api-key == GOOD_KEY (or anything when `open_door`), answers subscribe and
    unsubscribe, and broadcasts published events to the channel's subscribers."""

    open_door: bool = False
    duplicate: bool = False
    unmarked: bool = False
    subscribers: dict[str, set[ServerConnection]] = field(default_factory=dict)
    handshakes: int = 0

    def __enter__(self) -> FakeService:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def open_server() -> Any:
            return await serve(self._serve, "127.0.0.1", 0, process_request=self._auth)

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(open_server())
            self.url = f"ws://127.0.0.1:{next(iter(self.server.sockets)).getsockname()[1]}/preview"
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(5), "the fake service did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def _auth(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if self.open_door or request.headers.get("x-api-key") == GOOD_KEY:
            return None
        return connection.respond(401, "Unauthorized\n")

    async def _serve(self, ws: ServerConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            channel = message.get("channel")
            if message["action"] == "subscribe":
                self.subscribers.setdefault(channel, set()).add(ws)
                await ws.send(
                    models.encode_frame(
                        models.SubscribedFrame(channel=channel, request_id=message.get("request_id"))
                    ).decode()
                )
            elif message["action"] == "unsubscribe":
                self.subscribers.get(channel, set()).discard(ws)
                await ws.send(models.encode_frame(models.UnsubscribedFrame(channel=channel)).decode())

    def publish(self, event: Event) -> None:
        frame = event.frame()
        if self.unmarked:
            frame = frame.model_copy(update={"synthetic": False})
        data = models.encode_frame(frame).decode()

        async def broadcast() -> None:
            for ws in list(self.subscribers.get(event.channel, ())):
                for _ in range(2 if self.duplicate else 1):
                    await ws.send(data)

        asyncio.run_coroutine_threadsafe(broadcast(), self.loop).result(5)


@pytest.fixture
def service() -> Iterator[FakeService]:
    with FakeService() as fake:
        yield fake


def plan(url: str, **overrides: Any) -> RunPlan:
    values: dict[str, Any] = {
        "url": url,
        "api_key": GOOD_KEY,
        "clients": 5,
        "messages": 3,
        "connect_rate": 500,
        "deadline_seconds": 30,
        "message_interval_seconds": 0,
        "collect_seconds": 2,
        "release_id": "rel-1",
    }
    return RunPlan(**{**values, **overrides})


THRESHOLDS = Thresholds(p99_latency_ms=1000, min_success_rate=1.0)


def test_a_correct_service_passes(service: FakeService) -> None:
    result = execute(plan(service.url), service.publish)
    assert result.output(THRESHOLDS)["passed"] is True
    assert result.messages_received == 15 and result.connected == 5 and not result.errors
    assert result.unauthorized_refused is True
    assert all(not subs for subs in service.subscribers.values())  # everyone unsubscribed


def test_a_service_that_accepts_a_bad_key_fails(service: FakeService) -> None:
    service.open_door = True
    result = execute(plan(service.url), service.publish)
    assert result.unauthorized_refused is False
    assert result.errors["unauthorized_accepted"] == 2
    assert "an unauthorized connect was not refused" in result.summary(THRESHOLDS)


def test_duplicates_and_unmarked_events_are_reported(service: FakeService) -> None:
    service.duplicate = True
    result = execute(plan(service.url, clients=2, messages=2), service.publish)
    # Each copy after the first is a duplicate, never a delivery. The warm-up event goes through the
    # same checks, so up to 2 clients x (1 warm-up + 2) duplicates are seen; the collector stops as
    # soon as every first copy is in, so a client may leave before reading the last duplicate.
    assert result.messages_received == 4
    assert 4 <= result.errors["duplicate_delivery"] <= 6
    service.duplicate, service.unmarked = False, True
    result = execute(plan(service.url, clients=2, messages=2), service.publish)
    assert result.errors["event_not_marked_synthetic"] == 6 and result.messages_received == 0
    assert result.errors["warmup_not_delivered"] == 2 and result.warmup_latency_ms is None
    assert "success rate 0.000 < 1 (0/4 deliveries)" in result.summary(THRESHOLDS)


def test_the_warm_up_absorbs_a_cold_start_and_is_reported_apart(service: FakeService) -> None:
    cold = [True]
    publish = service.publish

    def first_slow(event: Event) -> None:
        if cold:  # green's fan-out starting cold: only its first invocation is slow
            cold.clear()
            time.sleep(0.8)
        publish(event)

    result = execute(plan(service.url, clients=3, messages=4), first_slow)
    assert result.messages_received == 12 and not result.errors
    assert result.warmup_latency_ms is not None and result.warmup_latency_ms >= 800
    assert result.latency()["p99"] < 800
    assert result.output(Thresholds(p99_latency_ms=700, min_success_rate=1.0))["warmup_latency_ms"] >= 800


def test_a_wrong_key_for_the_checker_counts_every_client_as_failed(service: FakeService) -> None:
    result = execute(plan(service.url, api_key="stale"), service.publish)
    assert result.connected == 0 and result.errors["handshake_401"] == 5
    assert result.output(THRESHOLDS)["success_rate"] == 0.0


def test_connections_are_paced_below_the_configured_rate(service: FakeService) -> None:
    result = execute(plan(service.url, clients=6, messages=1, connect_rate=20), service.publish)
    assert result.connected == 6
    # Six connections 1/20 s apart take at least 0.25 s: the achieved rate cannot exceed 20/s.
    assert 0 < result.connect_rate_achieved <= 20


def test_nothing_listening_fails_fast_with_named_errors() -> None:
    from orchestrator.sandbox.redis_server import free_port

    result = execute(plan(f"ws://127.0.0.1:{free_port()}/preview", clients=2), lambda event: None)
    assert result.connected == 0
    assert result.errors["connect_ConnectionRefusedError"] == 2
    assert result.errors["unauthorized_failed_ConnectionRefusedError"] == 2


def test_percentiles_are_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


def test_the_summary_is_one_line_naming_every_failed_threshold() -> None:
    result = RunResult(
        clients=4, messages=5, latencies_ms=[10.0] * 15 + [2500.0] * 3, unauthorized_refused=True, connected=4
    )
    result.errors["subscribe_timeout"] = 1
    summary = result.summary(THRESHOLDS)
    assert "\n" not in summary
    assert "success rate 0.900 < 1 (18/20 deliveries)" in summary
    assert "p99 latency 2500 ms > 1000 ms" in summary
    assert "errors: subscribe_timeout=1" in summary
    output = result.output(THRESHOLDS)
    assert output == {
        "passed": False,
        "clients": 4,
        "messages_expected": 20,
        "messages_received": 18,
        "success_rate": 0.9,
        "latency_ms": {"p50": 10.0, "p95": 2500.0, "p99": 2500.0},
        "warmup_latency_ms": None,
        "errors": {"subscribe_timeout": 1},
        "unauthorized_refused": True,
    }


def test_run_channels_follow_the_services_channel_rules() -> None:
    for release_id in ("rel-42", "exec:2026-01-01T00:00:00Z/ü" * 5, "..."):
        channel = run_channel(release_id, "0a1b2c3d")
        assert models.validate_channel(channel) == channel


@pytest.mark.parametrize(
    ("override", "field_name"),
    [
        ({"clients": 0}, "clients"),
        ({"min_success_rate": 1.5}, "min_success_rate"),
        ({"release_id": ""}, "release_id"),
        ({"p99_latency_ms": "fast"}, "p99_latency_ms"),
    ],
)
def test_invalid_input_is_refused_naming_the_field(override: dict[str, Any], field_name: str) -> None:
    with pytest.raises(InvalidRelease, match=field_name):
        synthetic_checks.handler({"release_id": "r", "environment": "staging", **override}, Context())


class Context:
    function_name = "synthetic-checks"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:synthetic-checks"
    aws_request_id = "req-unit"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def test_missing_settings_are_named_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PREVIEW_WS_URL", "API_KEYS_SECRET_ARN", "PREVIEW_EVENTS_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    request = synthetic_checks.SyntheticChecksInput(release_id="r", environment="staging")
    with pytest.raises(SettingsError) as caught:
        synthetic_checks.plan_from_env(request, None)
    assert str(caught.value) == (
        "synthetic checks settings missing: PREVIEW_WS_URL, API_KEYS_SECRET_ARN, PREVIEW_EVENTS_QUEUE_URL"
    )
    monkeypatch.setenv("API_KEYS_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:k")
    monkeypatch.setenv("PREVIEW_EVENTS_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/q")
    monkeypatch.setenv("PREVIEW_WS_URL", "ws://api.example.com/preview")
    monkeypatch.setenv("SYNTHETIC_CONNECT_RATE", "900")
    monkeypatch.setenv("SYNTHETIC_DEADLINE_SECONDS", "soon")
    with pytest.raises(SettingsError) as caught:
        CheckTaskSettings.from_env()
    message = str(caught.value)
    assert "PREVIEW_WS_URL: must be a wss:// URL" in message
    assert "SYNTHETIC_CONNECT_RATE must be between 1 and 500, got 900" in message
    assert "SYNTHETIC_DEADLINE_SECONDS must be a number, got 'soon'" in message
    monkeypatch.setenv("PREVIEW_WS_URL", "wss://api.example.com/preview")
    monkeypatch.delenv("SYNTHETIC_CONNECT_RATE")
    monkeypatch.delenv("SYNTHETIC_DEADLINE_SECONDS")
    settings = CheckTaskSettings.from_env()
    assert (settings.connect_rate, settings.deadline_seconds, settings.message_interval_ms) == (50, 120, 100)
