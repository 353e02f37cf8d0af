"""The catalog, key layout, models and settings accessor that other parts build on."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from service import catalog, keys, models
from service.settings import SettingsError, env, settings, use_env


def test_catalog_lists_the_released_functions_in_lockstep_order() -> None:
    assert catalog.released_keys() == ("authorizer", "connect", "disconnect", "messages", "fanout")
    assert catalog.ROTATION_FUNCTION.key not in catalog.released_keys()
    assert catalog.route_table() == {
        "$connect": "connect",
        "$disconnect": "disconnect",
        "subscribe": "messages",
        "unsubscribe": "messages",
        "ping": "messages",
        "$default": "messages",
    }
    with pytest.raises(KeyError, match="no service function"):
        catalog.by_key("nope")


def test_key_layout() -> None:
    assert keys.cache_namespace(3) == "cache:v3:"
    assert keys.cache_namespace("12") == "cache:v12:"
    assert keys.snapshot_key("2", "price:eth") == "cache:v2:snap:price:eth"
    assert keys.conn_key("abc=") == "conn:abc="
    assert keys.chan_key("tvl:aave") == "chan:tvl:aave"
    assert keys.dry_run_namespace("r1") == "cache:dryrun:r1:"
    for bad in ("v3", "-1", "", "1.5"):
        with pytest.raises(ValueError, match="non-negative integer"):
            keys.cache_namespace(bad)


@pytest.mark.parametrize("channel", ["price:eth", "tvl:uniswap-v3", "volume:BTC-USD", "synthetic:rel_1.2"])
def test_valid_channels(channel: str) -> None:
    assert models.validate_channel(channel) == channel


@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        ("price", "look like"),
        ("price:", "look like"),
        ("price:-eth", "look like"),
        ("price:e th", "look like"),
        ("weather:paris", "unknown channel kind"),
        ("price:" + "a" * 75, "longer than 80"),
        ("price:" + "a" * 65, "look like"),
    ],
)
def test_invalid_channels(channel: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        models.validate_channel(channel)


def test_client_messages_are_discriminated_by_action_and_strict() -> None:
    msg = models.CLIENT_MESSAGE.validate_python(
        {"action": "unsubscribe", "channel": "tvl:aave", "request_id": "r"}
    )
    assert isinstance(msg, models.Unsubscribe)
    assert isinstance(models.CLIENT_MESSAGE.validate_python({"action": "ping"}), models.Ping)
    with pytest.raises(ValidationError):
        models.CLIENT_MESSAGE.validate_python({"action": "ping", "extra": 1})
    with pytest.raises(ValidationError):
        models.CLIENT_MESSAGE.validate_python({"action": "subscribe"})


def test_event_frames_carry_the_event_type_separately() -> None:
    event = models.Event(
        channel="price:eth", type="price_update", payload={"price": 1.0}, ts=5.0, synthetic=True
    )
    frame = models.encode_frame(event.frame())
    assert (
        b'"type":"event"' in frame
        and b'"event_type":"price_update"' in frame
        and b'"synthetic":true' in frame
    )
    assert event.snapshot_frame().type == "snapshot"
    assert models.encode_frame(models.ErrorFrame(code="invalid_json", message="x")) == (
        b'{"type":"error","code":"invalid_json","message":"x"}'
    )


def test_settings_follow_the_bound_environment_per_thread() -> None:
    seen: dict[str, int] = {}
    barrier = threading.Barrier(2)

    def run(name: str, schema: str) -> None:
        with use_env({"CACHE_SCHEMA_VERSION": schema}):
            barrier.wait()
            seen[name] = settings().cache_schema_version

    threads = [threading.Thread(target=run, args=("a", "4")), threading.Thread(target=run, args=("b", "7"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": 4, "b": 7}
    import os

    assert env() is os.environ


def test_settings_errors_name_the_variable() -> None:
    with use_env({"FAULT_ERROR_RATE": "2"}), pytest.raises(SettingsError, match="FAULT_ERROR_RATE"):
        settings()
    with use_env({"ALERT_RULES": "{nope"}), pytest.raises(SettingsError, match="ALERT_RULES"):
        settings()
