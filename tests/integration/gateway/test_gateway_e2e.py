"""End to end through the local gateway with real WebSocket clients."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service import keys
from service.logic import authorizer
from tests.integration.gateway.conftest import Stack, eventually, fence, recv_json, request
from tests.support.moto_service import API_KEY, PREVIOUS_KEY, set_weights


def status_of(stack: Stack, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as info:
        stack.client(**kwargs)
    return info.value.response.status_code


def test_connect_needs_a_key_and_accepts_current_and_previous(stack: Stack) -> None:
    assert status_of(stack, key=None) == 403  # denied, not a function error (see the authorizer)
    assert status_of(stack, key="wrong-key") == 403
    with stack.client(key=PREVIOUS_KEY) as ws:
        assert fence(ws) == []
    # The query string works as well as the header.
    from websockets.sync.client import connect

    with connect(stack.urls.websocket["preview"] + f"?api_key={API_KEY}", open_timeout=10) as ws:
        assert fence(ws) == []


def test_rotation_keeps_the_previous_key_working(stack: Stack) -> None:
    new_key = "rotated-key-0123456789abcdefghijklmnopqrstuvwxyz"
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.account.api_keys_arn, SecretString=json.dumps({"api_key": new_key})
    )
    authorizer.CACHE.clear()  # as the 60 s cache expiry would
    for key in (new_key, API_KEY):
        with stack.client(key=key) as ws:
            assert fence(ws) == []
    assert status_of(stack, key=PREVIOUS_KEY) == 403  # two rotations ago


def test_unknown_stage_is_404(stack: Stack) -> None:
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as info:
        connect(
            stack.urls.websocket["live"].replace("/live", "/dev"), additional_headers={"x-api-key": API_KEY}
        )
    assert info.value.response.status_code == 404


def test_event_reaches_exactly_the_subscribers_and_new_subscribers_get_the_snapshot(stack: Stack) -> None:
    with stack.client() as a, stack.client() as b, stack.client() as c:
        assert request(a, action="subscribe", channel="price:eth", request_id="1") == [
            {"type": "subscribed", "channel": "price:eth", "request_id": "1"}
        ]
        request(b, action="subscribe", channel="price:eth")
        request(c, action="subscribe", channel="tvl:aave")
        sent = stack.publish(stack.account.events_url, channel="price:eth", payload={"price": 3150.5})
        for ws in (a, b):
            frame = recv_json(ws)
            assert (
                frame["type"] == "event"
                and frame["payload"] == {"price": 3150.5}
                and frame["ts"] == sent["ts"]
            )
        assert fence(c) == []  # nothing arrived for the other channel
        with stack.client() as d:
            frames = request(d, action="subscribe", channel="price:eth")
            assert [f["type"] for f in frames] == ["subscribed", "snapshot"]
            assert frames[1]["payload"] == {"price": 3150.5}
        assert request(b, action="unsubscribe", channel="price:eth")[0]["type"] == "unsubscribed"
        stack.publish(stack.account.events_url, channel="price:eth", payload={"price": 3200.0})
        assert recv_json(a)["payload"] == {"price": 3200.0}
        assert fence(b) == []
    r = redis.Redis.from_url(stack.redis_url)
    # live's fan-out wrote schema 1's namespace; disconnects emptied the registry.
    assert r.exists(keys.snapshot_key(1, "price:eth")) and not r.exists(keys.snapshot_key(2, "price:eth"))
    assert eventually(lambda: not r.keys("conn:*") and not r.keys("chan:*"))


def test_preview_events_run_through_green(stack: Stack) -> None:
    with stack.client("preview") as ws:
        request(ws, action="subscribe", channel="synthetic:check-1")
        stack.publish(
            stack.account.preview_url, channel="synthetic:check-1", payload={"n": 1}, synthetic=True
        )
        frame = recv_json(ws)
        assert frame["synthetic"] is True and frame["payload"] == {"n": 1}
    r = redis.Redis.from_url(stack.redis_url)
    assert r.exists(keys.snapshot_key(2, "synthetic:check-1"))  # green's CACHE_SCHEMA_VERSION


def test_malformed_frames_get_error_frames_and_keep_the_connection(stack: Stack) -> None:
    with stack.client() as ws:
        ws.send("not json")
        assert recv_json(ws)["code"] == "invalid_json"
        ws.send(b"\x00\x01binary")
        assert recv_json(ws)["code"] == "invalid_json"
        ws.send(json.dumps({"action": "launch", "request_id": "r9"}))
        assert recv_json(ws) == {
            "type": "error",
            "code": "unknown_action",
            "message": 'action "launch" is not one of: subscribe, unsubscribe, ping',
            "request_id": "r9",
        }
        frames = request(ws, action="subscribe", channel="price:" + "x" * 100)
        assert frames[0]["code"] == "invalid_channel"


def test_oversized_message_closes_with_1009(stack: Stack) -> None:
    with stack.client() as ws:
        ws.send("x" * (128 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_gone_connection_is_cleaned_when_its_disconnect_was_lost(stack: Stack) -> None:
    lam = boto3.client("lambda")
    name = stack.account.function_names["disconnect"]
    env = lam.get_function_configuration(FunctionName=name, Qualifier="1")["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**env, "FAULT_ERROR_RATE": "1"}}
    )
    broken = lam.publish_version(FunctionName=name)["Version"]
    set_weights(name, "live", broken)
    r = redis.Redis.from_url(stack.redis_url)
    with stack.client() as stays:
        request(stays, action="subscribe", channel="price:btc")
        with stack.client() as vanishing:
            request(vanishing, action="subscribe", channel="price:btc")
        assert eventually(lambda: stack.gateway.connection_count == 1)
        assert r.scard(keys.chan_key("price:btc")) == 2  # $disconnect failed: the registry still lists it
        stack.publish(stack.account.events_url, channel="price:btc", payload={"price": 1.0})
        assert recv_json(stays)["type"] == "event"
        assert eventually(lambda: r.scard(keys.chan_key("price:btc")) == 1)
        assert len(r.keys("conn:*")) == 1
    stack.recorder.flush()
    errors = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[
            {"Name": "FunctionName", "Value": name},
            {"Name": "Resource", "Value": f"{name}:live"},
            {"Name": "ExecutedVersion", "Value": broken},
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(d["Sum"] for d in errors) >= 1


def test_connections_api_works_with_boto3_unchanged(stack: Stack) -> None:
    api = boto3.client("apigatewaymanagementapi", endpoint_url=stack.urls.management["live"])
    with stack.client() as ws:
        request(ws, action="subscribe", channel="price:sol")
        (connection_id,) = [
            k.decode().split(":", 1)[1] for k in redis.Redis.from_url(stack.redis_url).keys("conn:*")
        ]
        info = api.get_connection(ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1" and info["ConnectedAt"] <= info["LastActiveAt"]
        api.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": 1}')
        assert recv_json(ws) == {"hello": 1}
        api.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=connection_id, Data=b"x")
    with pytest.raises(api.exceptions.PayloadTooLargeException):
        api.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))


def test_failed_records_stay_on_the_queue_and_reach_the_dlq(stack: Stack) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.account.events_url, MessageBody='{"channel": "price:eth"}')

    def in_dlq() -> bool:
        got = sqs.get_queue_attributes(
            QueueUrl=stack.account.events_dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return got["Attributes"]["ApproximateNumberOfMessages"] == "1"

    assert eventually(in_dlq)


def test_weighted_alias_sends_about_ten_percent_to_green(stack: Stack) -> None:
    name = stack.account.function_names["messages"]
    set_weights(name, "live", "1", {"2": 0.1})
    n = 1000
    with stack.client() as ws:
        for i in range(n):
            ws.send(json.dumps({"action": "ping", "request_id": str(i)}))
        pongs = [recv_json(ws) for _ in range(n)]
    assert [p["request_id"] for p in pongs] == [str(i) for i in range(n)]
    stack.recorder.flush()
    cw = boto3.client("cloudwatch")

    def invocations(version: str) -> float:
        points = cw.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "FunctionName", "Value": name},
                {"Name": "Resource", "Value": f"{name}:live"},
                {"Name": "ExecutedVersion", "Value": version},
            ],
            # Whole periods on both sides of now: a sample stamped in the current second must not
            # fall into a trailing partial period that the query leaves out.
            StartTime=datetime.now(UTC) - timedelta(minutes=10),
            EndTime=datetime.now(UTC) + timedelta(minutes=10),
            Period=600,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(p["Sum"] for p in points)

    # A pong can reach the client before its invocation's sample is recorded: poll (bounded).
    deadline = time.monotonic() + 20
    green, blue = invocations("2"), invocations("1")
    while green + blue < n and time.monotonic() < deadline:
        time.sleep(0.2)
        stack.recorder.flush()
        green, blue = invocations("2"), invocations("1")
    assert green + blue == n
    # Binomial(1000, 0.1): mean 100, sigma 9.5; 5 sigma either side.
    assert 53 <= green <= 147, green


def test_idle_connections_are_closed_with_1001_and_disconnected(redis_url: str) -> None:
    from moto import mock_aws

    from tests.integration.gateway.conftest import build_stack

    with mock_aws():
        authorizer.CACHE.clear()
        idle_stack, stop = build_stack(redis_url, idle_timeout_seconds=0.5)
        try:
            with idle_stack.client() as ws:
                request(ws, action="subscribe", channel="price:eth")
                with pytest.raises(ConnectionClosed) as info:
                    ws.recv(timeout=30)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1001
            r = redis.Redis.from_url(redis_url)
            assert eventually(lambda: not r.keys("conn:*") and not r.keys("chan:*"))
        finally:
            stop()
            authorizer.CACHE.clear()
