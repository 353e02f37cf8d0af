"""$connect, $disconnect and client messages against the real Redis and a real @connections API."""

from __future__ import annotations

import json
import threading

import pytest

from service import keys, models
from service.handlers import connect, disconnect, messages
from service.logic import connections
from service.logic.messages import parse
from service.settings import use_env
from tests.support.ws_events import CONNECTED_AT, connect_event, disconnect_event, message_event


def route_event(connection_id: str, body: str | None = None, route: str = "$default") -> dict:
    """The event API Gateway sends for `route` (`$connect`, `$disconnect` or a message route)."""
    if route == "$connect":
        return connect_event(connection_id)
    if route == "$disconnect":
        return disconnect_event(connection_id)
    return message_event(connection_id, body, route)


def frames(hub, connection_id: str) -> list[dict]:
    return [json.loads(f) for f in hub.inbox[connection_id]]


def send(hub, context, connection_id: str, message: dict | str) -> list[dict]:
    before = len(hub.inbox.get(connection_id, []))
    body = message if isinstance(message, str) else json.dumps(message)
    assert messages.handler(route_event(connection_id, body), context) == {"statusCode": 200}
    return frames(hub, connection_id)[before:]


@pytest.fixture
def client(env, hub, r, context):
    recording, endpoint = hub
    recording.open("c1=")
    assert connect.handler(route_event("c1=", route="$connect"), context) == {"statusCode": 200}
    return recording


def test_connect_registers_endpoint_and_ttl_idempotently(client, r, hub, context) -> None:
    stored = r.hgetall(keys.conn_key("c1="))
    assert stored[b"endpoint"].decode() == hub[1]
    assert stored[b"principal"] == b"key-abc"
    assert stored[b"connected_at"] == str(CONNECTED_AT).encode()
    assert 7200 < r.ttl(keys.conn_key("c1=")) <= keys.CONNECTION_TTL_SECONDS
    connect.handler(route_event("c1=", route="$connect"), context)
    assert r.hgetall(keys.conn_key("c1=")) == stored


def test_callback_endpoint_defaults_to_the_stage_url() -> None:
    ctx = {"domainName": "ws.example.com", "stage": "preview"}
    assert connections.callback_endpoint(ctx, None) == "https://ws.example.com/preview"
    assert connections.callback_endpoint(ctx, "http://127.0.0.1:1/preview/") == "http://127.0.0.1:1/preview"


def test_subscribe_unsubscribe_ping(client, r, context) -> None:
    got = send(client, context, "c1=", {"action": "subscribe", "channel": "price:eth", "request_id": "r1"})
    assert got == [{"type": "subscribed", "channel": "price:eth", "request_id": "r1"}]
    assert r.smembers(keys.chan_key("price:eth")) == {b"c1="}
    # Subscribing twice is harmless.
    assert (
        send(client, context, "c1=", {"action": "subscribe", "channel": "price:eth"})[0]["type"]
        == "subscribed"
    )
    got = send(client, context, "c1=", {"action": "unsubscribe", "channel": "price:eth", "request_id": "r2"})
    assert got == [{"type": "unsubscribed", "channel": "price:eth", "request_id": "r2"}]
    assert r.smembers(keys.chan_key("price:eth")) == set()
    pong = send(client, context, "c1=", {"action": "ping", "request_id": "p"})
    assert pong[0]["type"] == "pong" and pong[0]["request_id"] == "p" and pong[0]["ts"] > 0


def test_new_subscriber_gets_the_latest_snapshot_of_its_schema(client, r, env, context) -> None:
    event = models.Event(channel="tvl:aave", type="tvl_update", payload={"tvl": 12.5}, ts=1000.0)
    r.set(keys.snapshot_key(1, "tvl:aave"), event.model_dump_json())
    r.set(keys.snapshot_key(2, "tvl:aave"), "not the schema-1 shape")
    got = send(client, context, "c1=", {"action": "subscribe", "channel": "tvl:aave"})
    assert [f["type"] for f in got] == ["subscribed", "snapshot"]
    assert (
        got[1]["payload"] == {"tvl": 12.5}
        and got[1]["event_type"] == "tvl_update"
        and got[1]["id"] == event.id
    )
    with use_env({**env, "CACHE_SCHEMA_VERSION": "2"}):
        # An unreadable snapshot is skipped, never an error.
        got = send(client, context, "c1=", {"action": "subscribe", "channel": "tvl:aave"})
    assert [f["type"] for f in got] == ["subscribed"]


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        ("not json", "invalid_json", "not valid JSON"),
        ("[1, 2]", "invalid_json", "JSON object"),
        ('{"channel": "price:eth"}', "unknown_action", "missing"),
        ('{"action": "launch", "request_id": "q"}', "unknown_action", '"launch"'),
        ('{"action": "subscribe"}', "invalid_message", "'channel' is required"),
        ('{"action": "subscribe", "channel": "weather:paris"}', "invalid_channel", "unknown channel kind"),
        ('{"action": "subscribe", "channel": 7}', "invalid_channel", "channel"),
        ('{"action": "ping", "extra": true}', "invalid_message", "'extra' is not allowed"),
        ('{"action": "ping", "request_id": ""}', "invalid_message", "request_id"),
    ],
)
def test_bad_messages_get_error_frames(client, context, body, code, text) -> None:
    got = send(client, context, "c1=", body)
    assert len(got) == 1 and got[0]["type"] == "error" and got[0]["code"] == code
    assert text in got[0]["message"]
    if '"request_id": "q"' in body:
        assert got[0]["request_id"] == "q"


def test_base64_frames_are_decoded(client, context) -> None:
    import base64

    event = message_event("c1=", base64.b64encode(b'{"action":"ping"}').decode(), base64=True)
    messages.handler(event, context)
    assert frames(client, "c1=")[-1]["type"] == "pong"


def test_subscription_limit_holds_under_concurrent_subscribes(client, r, env, context) -> None:
    limit = 5
    results: list[str] = []
    lock = threading.Lock()

    def sub(i: int) -> None:
        outcome = connections.subscribe(r, "c1=", f"price:t{i}", limit)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=sub, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("subscribed") == limit and results.count("limit_reached") == 15
    with use_env({**env, "MAX_SUBSCRIPTIONS": str(limit)}):
        got = send(
            client, context, "c1=", {"action": "subscribe", "channel": "price:one-more", "request_id": "x"}
        )
    assert got == [
        {
            "type": "error",
            "code": "subscription_limit",
            "message": "this connection already has 5 subscriptions; unsubscribe first",
            "request_id": "x",
        }
    ]


def test_subscribe_reregisters_a_connection_the_registry_lost(client, r, hub, context) -> None:
    r.delete(keys.conn_key("c1="))
    assert (
        send(client, context, "c1=", {"action": "subscribe", "channel": "price:eth"})[0]["type"]
        == "subscribed"
    )
    assert r.hget(keys.conn_key("c1="), "endpoint").decode() == hub[1]


def test_a_malformed_event_fails_naming_the_field(client, context) -> None:
    from pydantic import ValidationError

    event = connect_event("c2=")
    del event["requestContext"]["connectionId"]
    with pytest.raises(ValidationError, match=r"requestContext\.connectionId\n  Field required"):
        connect.handler(event, context)
    event = message_event("c1=", '{"action":"ping"}')
    event["requestContext"]["eventType"] = "CONNECT"
    with pytest.raises(ValidationError, match=r"requestContext\.eventType"):
        messages.handler(event, context)


def test_a_connection_without_an_authorizer_is_anonymous(client, r, context) -> None:
    connect.handler(connect_event("c3=", principal=None), context)
    assert r.hget(keys.conn_key("c3="), "principal") == b"anonymous"


def test_a_disconnect_without_a_close_frame_is_handled(client, r, context) -> None:
    # The local gateway (and an abrupt drop) sends no headers and no status code.
    event = disconnect_event("c1=")
    del event["headers"], event["multiValueHeaders"]
    event["requestContext"]["disconnectStatusCode"] = None
    assert disconnect.handler(event, context) == {"statusCode": 200}
    assert not r.exists(keys.conn_key("c1="))


def test_disconnect_removes_everything_and_is_idempotent(client, r, context) -> None:
    send(client, context, "c1=", {"action": "subscribe", "channel": "price:eth"})
    send(client, context, "c1=", {"action": "subscribe", "channel": "tvl:aave"})
    for _ in range(2):
        assert disconnect.handler(route_event("c1=", route="$disconnect"), context) == {"statusCode": 200}
    assert not r.exists(keys.conn_key("c1="), keys.chan_key("price:eth"), keys.chan_key("tvl:aave"))


def test_reply_to_a_vanished_client_cleans_the_registry(client, r, context) -> None:
    send(client, context, "c1=", {"action": "subscribe", "channel": "price:eth"})
    client.gone.add("c1=")
    send(client, context, "c1=", {"action": "ping"})
    assert not r.exists(keys.conn_key("c1="), keys.chan_key("price:eth"))


def test_parse_returns_models() -> None:
    assert isinstance(parse('{"action":"subscribe","channel":"price:eth"}'), models.Subscribe)
    assert isinstance(parse(b'{"action":"ping"}'), models.Ping)
    assert isinstance(parse(None), models.ErrorFrame)
