"""DrainCanary against a real Redis server (the service's connection registry) and a management
API that behaves as API Gateway's: DELETE closes a connection, API Gateway then runs `$disconnect`
(which unregisters it), a connection it no longer knows answers 410 Gone."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError

from contracts.state import Drained, ReleaseRef
from service.logic import connections as registry
from tasks import release_record
from tasks.drain_canary import canary_connections, drain
from tasks.settings import DrainSettings

CANARY = "https://api.example.com/canary"
LIVE = "https://api.example.com/live"
RELEASE = ReleaseRef(release_id="rel-1", version="1.3.0", requested_by="alice")


@pytest.fixture
def r(service_redis: redis.Redis) -> redis.Redis:
    return service_redis


@pytest.fixture
def drain_settings(world: Any, monkeypatch: pytest.MonkeyPatch) -> DrainSettings:
    monkeypatch.setenv("CANARY_CONNECTIONS_ENDPOINT", CANARY + "/")
    monkeypatch.setenv("DRAIN_POLL_SECONDS", "0.05")
    monkeypatch.setenv("DRAIN_TIMEOUT_SECONDS", "5")
    return DrainSettings.from_env()


class ManagementApi:
    """API Gateway's `@connections` as the drain sees it; with `late`, deletes run
    `$disconnect` late (on the next round), as a busy API Gateway may."""

    def __init__(self, r: redis.Redis, known: set[str], *, late: bool = False) -> None:
        self.r, self.known, self.late = r, known, late
        self.deleted: list[str] = []
        self._pending: list[str] = []

    def delete_connection(self, ConnectionId: str) -> None:  # noqa: N803 - boto3's parameter name
        for pending in self._pending:
            registry.unregister(self.r, pending)
        self._pending.clear()
        if ConnectionId not in self.known:
            raise ClientError({"Error": {"Code": "GoneException", "Message": "gone"}}, "DeleteConnection")
        self.known.discard(ConnectionId)
        self.deleted.append(ConnectionId)
        if self.late:
            self._pending.append(ConnectionId)
        else:
            registry.unregister(self.r, ConnectionId)


def register(r: redis.Redis, connection_id: str, endpoint: str, channel: str = "price:eth") -> None:
    registry.register(r, connection_id, endpoint, "key-1", 0)
    registry.subscribe(r, connection_id, channel, limit=10)


def test_only_the_canary_stage_connections_are_found(r: redis.Redis) -> None:
    for index in range(1200):  # more than one SCAN batch
        register(r, f"c{index}", CANARY if index % 3 == 0 else LIVE)
    found = set(canary_connections(r, CANARY + "/"))
    assert found == {f"c{index}" for index in range(0, 1200, 3)}


def test_a_drain_closes_every_canary_connection_and_leaves_live_alone(
    r: redis.Redis, drain_settings: DrainSettings, world: Any
) -> None:
    canary = {f"canary-{i}" for i in range(25)}
    for connection_id in canary:
        register(r, connection_id, CANARY)
    register(r, "live-1", LIVE)
    api = ManagementApi(r, set(canary) | {"live-1"})
    result = drain(drain_settings, RELEASE, r=r, api=api)
    assert isinstance(result, Drained)
    assert (result.closed, result.gone, result.remaining) == (25, 0, 0)
    assert set(api.deleted) == canary
    assert list(canary_connections(r, CANARY)) == []
    assert r.exists("conn:live-1") and r.sismember("chan:price:eth", "live-1")
    # Fan-out finds no canary connection left in the channel.
    assert {m.decode() for m in r.smembers("chan:price:eth")} == {"live-1"}
    events = release_record.events(drain_settings, "rel-1")
    drained = [e for e in events if e["transition"] == "CANARY_DRAINED"]
    assert len(drained) == 1 and drained[0]["detail"]["closed"] == 25
    # Audited, not notified (the role may not publish; the rollback's notice carries the outcome).
    assert not [m for m in world.notifications() if m["transition"] == "CANARY_DRAINED"]


def test_a_connection_api_gateway_forgot_is_unregistered_and_counted_gone(
    r: redis.Redis, drain_settings: DrainSettings, world: Any
) -> None:
    register(r, "known", CANARY)
    register(r, "stale", CANARY)  # its $disconnect never came
    api = ManagementApi(r, {"known"})
    result = drain(drain_settings, RELEASE, r=r, api=api)
    assert (result.closed, result.gone, result.remaining) == (1, 1, 0)
    assert not r.exists("conn:stale") and not r.sismember("chan:price:eth", "stale")


def test_a_late_disconnect_is_waited_for_and_not_counted_twice(
    r: redis.Redis, drain_settings: DrainSettings, world: Any
) -> None:
    for index in range(5):
        register(r, f"c{index}", CANARY)
    api = ManagementApi(r, {f"c{index}" for index in range(5)}, late=True)
    result = drain(drain_settings, RELEASE, r=r, api=api)
    assert (result.closed, result.gone, result.remaining) == (5, 0, 0)
    assert result.rounds >= 2


def test_a_drain_that_cannot_finish_reports_what_remains(
    r: redis.Redis, drain_settings: DrainSettings, world: Any
) -> None:
    register(r, "stuck", CANARY)

    class Refusing:
        def delete_connection(self, ConnectionId: str) -> None:  # noqa: N803
            """Accepted, but API Gateway never runs $disconnect (and never forgets it)."""

    clock = iter(float(second) for second in range(100))
    result = drain(
        drain_settings.model_copy(update={"drain_timeout_seconds": 3}),
        RELEASE,
        r=r,
        api=Refusing(),
        clock=lambda: next(clock),
        sleep=lambda _: None,
    )
    assert result.remaining == 1 and result.closed == 1
    audited = [
        e for e in release_record.events(drain_settings, "rel-1") if e["transition"] == "CANARY_DRAINED"
    ]
    assert audited and "1 connection left" in audited[0]["summary"]


def test_a_second_drain_finds_nothing(r: redis.Redis, drain_settings: DrainSettings, world: Any) -> None:
    register(r, "c1", CANARY)
    api = ManagementApi(r, {"c1"})
    drain(drain_settings, RELEASE, r=r, api=api)
    again = drain(drain_settings, RELEASE, r=r, api=api)
    assert (again.closed, again.gone, again.remaining, again.rounds) == (0, 0, 0, 1)


def test_the_drain_settings_name_a_missing_endpoint(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.settings import SettingsError

    monkeypatch.delenv("CANARY_CONNECTIONS_ENDPOINT", raising=False)
    with pytest.raises(SettingsError, match="CANARY_CONNECTIONS_ENDPOINT"):
        DrainSettings.from_env()
    monkeypatch.setenv("CANARY_CONNECTIONS_ENDPOINT", "http://api.example.com/canary")
    with pytest.raises(SettingsError, match="https://"):
        DrainSettings.from_env()
