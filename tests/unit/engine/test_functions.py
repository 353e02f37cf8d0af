"""In-process Lambda invocation: payloads, error shapes, timeouts, function references."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.engine.clock import VirtualClock
from orchestrator.engine.functions import FunctionRegistry, invoke_error, split_function_ref


class ReleaseInProgress(Exception):
    pass


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("fn", ("fn", None)),
        ("fn:live", ("fn", "live")),
        ("arn:aws:lambda:eu-west-1:123456789012:function:fn", ("fn", None)),
        ("arn:aws:lambda:eu-west-1:123456789012:function:fn:7", ("fn", "7")),
        ("123456789012:function:fn:green", ("fn", "green")),
    ],
)
def test_split_function_ref(ref: str, expected: tuple[str, str | None]) -> None:
    assert split_function_ref(ref) == expected


def test_split_rejects_non_function_arns() -> None:
    with pytest.raises(ValueError, match="not a Lambda function ARN"):
        split_function_ref("arn:aws:sns:eu-west-1:123456789012:topic")


def _registry(handler: Any, **kwargs: Any) -> FunctionRegistry:
    registry = FunctionRegistry()
    registry.register("fn", handler, **kwargs)
    return registry


def test_result_round_trips_as_json() -> None:
    result = _registry(
        lambda e, c: {"n": e["n"] + 1, "fn": c.function_name, "ver": c.function_version}
    ).invoke("fn:3", b'{"n": 1}', VirtualClock())
    assert (result.status_code, result.function_error, result.executed_version) == (200, None, "3")
    assert result.payload == {"n": 2, "fn": "fn", "ver": "3"}


def test_exception_becomes_unhandled_payload_named_by_class() -> None:
    def handler(event: Any, context: Any) -> None:
        raise ReleaseInProgress("staging is locked by release 1.7.0")

    result = _registry(handler).invoke("fn", b"{}", VirtualClock())
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "ReleaseInProgress"
    assert result.payload["errorMessage"] == "staging is locked by release 1.7.0"
    assert isinstance(result.payload["stackTrace"], list)


def test_client_error_is_an_invoke_api_failure() -> None:
    def handler(event: Any, context: Any) -> None:
        raise invoke_error("TooManyRequestsException", "Rate exceeded")

    with pytest.raises(ClientError, match="TooManyRequestsException"):
        _registry(handler).invoke("fn", b"{}", VirtualClock())


def test_unknown_function_is_resource_not_found_naming_it() -> None:
    with pytest.raises(
        ClientError, match=r"Function not found: arn:aws:lambda:eu-west-1:123456789012:function:ghost:live"
    ):
        FunctionRegistry().invoke("ghost:live", b"{}", VirtualClock())


def test_fallback_resolves_unknown_functions() -> None:
    fallback_registry = _registry(lambda e, c: "v2")
    registry = FunctionRegistry(
        fallback=lambda name, qualifier: fallback_registry.resolve(name)[0] if name == "fn" else None
    )
    assert registry.invoke("fn:green", None, VirtualClock()).payload == "v2"


def test_handler_running_past_its_timeout_is_killed_like_lambda() -> None:
    def slow(event: Any, context: Any) -> str:
        context.clock.sleep(context.get_remaining_time_in_millis() / 1000 + 1)
        return "late"

    result = _registry(slow, timeout_seconds=10).invoke("fn", b"{}", VirtualClock())
    assert result.function_error == "Unhandled"
    assert result.payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 10.00 seconds" in result.payload["errorMessage"]


def test_an_error_raised_after_the_deadline_is_reported_as_the_timeout() -> None:
    # Lambda kills the function at its deadline: a later exception never reaches the caller.
    def slow_then_failing(event: Any, context: Any) -> str:
        context.clock.sleep(context.get_remaining_time_in_millis() / 1000 + 1)
        raise RuntimeError("too late to be seen")

    result = _registry(slow_then_failing, timeout_seconds=10).invoke("fn", b"{}", VirtualClock())
    assert result.payload["errorType"] == "Sandbox.Timedout", result.payload
    failing = _registry(lambda e, c: (_ for _ in ()).throw(RuntimeError("in time")), timeout_seconds=10)
    assert failing.invoke("fn", b"{}", VirtualClock()).payload["errorType"] == "RuntimeError"


def test_unserialisable_result_is_a_marshal_error() -> None:
    result = _registry(lambda e, c: {"when": object()}).invoke("fn", b"{}", VirtualClock())
    assert result.payload["errorType"] == "Runtime.MarshalError"


def test_event_invocation_answers_202_at_once() -> None:
    import threading

    ran = threading.Event()
    result = _registry(lambda e, c: ran.set()).invoke("fn", b"{}", VirtualClock(), invocation_type="Event")
    assert result.status_code == 202 and result.payload == ""
    assert ran.wait(5)


def test_register_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="not callable"):
        FunctionRegistry().register("fn", "tasks.x.handler")  # type: ignore[arg-type]
