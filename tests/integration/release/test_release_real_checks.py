"""Whole releases whose SyntheticChecks step runs the real `tasks/synthetic_checks.py` against the
local WebSocket gateway, which runs the real service handlers (moto + the real Redis server) and
resolves every invocation through the `green` alias of the preview stage, as API Gateway does.

The service functions of the release world get the service's real handlers and settings (as
the stack deploys them), so the version DeployGreen publishes is what the preview stage serves:
healthy, the release finalizes; with `FAULT_DROP_RATE` in the release's configuration, green
drops fan-out posts, the checks fail with GreenUnhealthy and the release rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from contracts.state import ReleaseState
from orchestrator.engine import LocalEngine, import_handler
from orchestrator.gateway import Gateway, LambdaRuntime, QueueBinding
from orchestrator.sandbox.redis_server import RedisServer
from service import catalog
from service.clients import aws as aws_clients
from service.clients import connections as posting
from service.logic import authorizer
from service.redis_client import reset_clients
from tests.integration.release.conftest import SANDBOX
from tests.support.moto_service import provision
from tests.support.release_rig import Rig, release_rig
from tests.support.release_world import ENV, FUNCTIONS, REGION

CHECKS = {"clients": 4, "messages": 3, "p99_latency_ms": 5000, "min_success_rate": 1.0}


def _reset_service_clients() -> None:
    aws_clients.reset()
    posting.reset()
    authorizer.CACHE.clear()
    reset_clients()


def serve_real_handlers(redis_url: str) -> tuple[dict[str, str], str, str, str]:
    """Give every service function of the world its real handler and settings, as version blue.

    Returns (catalog key -> function name, API keys secret ARN, preview queue URL, live queue URL).
    """
    account = provision()
    base = account.base_env(redis_url)
    lam = boto3.client("lambda", region_name=REGION)
    names = {}
    for fn in catalog.RELEASED_FUNCTIONS:
        name = f"{ENV}-realtime-{fn.key}"
        assert name in FUNCTIONS, f"the release world has no function {name}"
        lam.update_function_configuration(
            FunctionName=name,
            Handler=fn.handler,
            MemorySize=fn.memory_mb,
            Timeout=fn.timeout_seconds,
            Environment={"Variables": base},
        )
        version = lam.publish_version(FunctionName=name, Description="blue: the service as deployed")[
            "Version"
        ]
        for alias in ("live", "green"):
            lam.update_alias(
                FunctionName=name,
                Name=alias,
                FunctionVersion=version,
                RoutingConfig={"AdditionalVersionWeights": {}},
            )
        names[fn.key] = name
    return names, account.api_keys_arn, account.preview_url, account.events_url


@pytest.fixture(scope="module")
def rig(release_template: dict[str, Any], redis_server: RedisServer) -> Iterator[Rig]:
    with (
        LocalEngine(sandbox=SANDBOX) as engine,
        release_rig(
            release_template,
            redis_server.url,
            engine=engine,
            synthetic_checks=import_handler("tasks.synthetic_checks.handler"),
        ) as built,
        pytest.MonkeyPatch.context() as patch,
    ):
        _reset_service_clients()
        names, keys_arn, preview_queue, live_queue = serve_real_handlers(redis_server.url)
        runtime = LambdaRuntime(boto3.client("lambda", region_name=REGION), names, alias_cache_seconds=0.0)
        gateway = Gateway(
            runtime,
            sqs=boto3.client("sqs", region_name=REGION),
            queue_bindings=[QueueBinding(preview_queue, "green"), QueueBinding(live_queue, "live")],
        )
        urls = gateway.start()
        try:
            patch.setenv("PREVIEW_WS_URL", urls.websocket["preview"])
            patch.setenv("API_KEYS_SECRET_ARN", keys_arn)
            patch.setenv("PREVIEW_EVENTS_QUEUE_URL", preview_queue)
            patch.setenv("SYNTHETIC_CONNECT_RATE", "200")
            patch.setenv("SYNTHETIC_MESSAGE_INTERVAL_MS", "50")
            yield built
        finally:
            gateway.stop()
            _reset_service_clients()


def release(rig: Rig, prefix: str, **overrides: Any) -> tuple[str, dict[str, str], Any]:
    rig.reset()
    blue = {fn: version for fn, (version, _) in rig.world.aliases("live").items()}
    release_id = rig.next_id(prefix)
    request = {
        "release_id": release_id,
        "version": "4.0.0",
        "artifact": rig.world.artifact(release_id),
        "requested_by": "alice",
        "checks": CHECKS,
        "strategy": {"steps": [{"percent": 25, "bake_seconds": 300}, {"percent": 100, "bake_seconds": 300}]},
        **overrides,
    }
    return release_id, blue, rig.engine.run(rig.state_machine_arn, request, name=release_id, timeout=180)


def synthetic_result(result: Any) -> dict[str, Any] | None:
    for event in result.events("LambdaFunctionSucceeded", "LambdaFunctionFailed"):
        scheduled = next(e for e in result.history if e["id"] == event["previousEventId"] - 1)
        if scheduled["lambdaFunctionScheduledEventDetails"]["resource"].endswith("synthetic-checks"):
            return event
    return None


def test_a_healthy_green_passes_the_real_checks_and_the_release_finalizes(rig: Rig) -> None:
    release_id, blue, result = release(rig, "real-checks-ok")
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    checks = ReleaseState.model_validate(result.output).synthetic
    assert checks is not None and checks.passed is True and checks.unauthorized_refused is True, checks
    expected = CHECKS["clients"] * CHECKS["messages"]
    assert (checks.clients, checks.messages_expected, checks.messages_received) == (4, expected, expected)
    assert checks.success_rate == 1.0 and checks.errors == {}
    latency = checks.latency_ms
    assert latency.p50 is not None and latency.p99 is not None
    assert 0 < latency.p50 <= latency.p99 <= CHECKS["p99_latency_ms"]
    assert synthetic_result(result)["type"] == "LambdaFunctionSucceeded"
    green = {fn: str(v) for fn, v in rig.world.record(release_id)["green_versions"].items()}
    assert rig.world.aliases("live") == {fn: (green[fn], {}) for fn in FUNCTIONS}
    assert all(green[fn] != blue[fn] for fn in FUNCTIONS)
    assert rig.world.record(release_id)["status"] == "SUCCEEDED" and rig.world.lock() is None


def test_green_that_drops_messages_fails_the_real_checks_and_rolls_back(rig: Rig) -> None:
    release_id, blue, result = release(rig, "real-checks-drop", configuration={"FAULT_DROP_RATE": "0.7"})
    assert result.status == "FAILED" and result.error == "ReleaseRolledBack", (result.error, result.cause)
    assert result.cause.startswith("GreenUnhealthy: "), result.cause
    assert "success rate" in result.cause and "\n" not in result.cause
    failed = synthetic_result(result)
    assert failed["type"] == "LambdaFunctionFailed"
    assert failed["lambdaFunctionFailedEventDetails"]["error"] == "GreenUnhealthy"
    # Green never took live traffic: no traffic step ran.
    assert "SetWeights" not in result.states_entered()
    assert rig.world.aliases("live") == {fn: (blue[fn], {}) for fn in FUNCTIONS}
    assert rig.world.aliases("green") == {fn: (blue[fn], {}) for fn in FUNCTIONS}
    record = rig.world.record(release_id)
    assert record["status"] == "ROLLED_BACK" and record["cause"].startswith("GreenUnhealthy"), record
    assert rig.world.lock() is None
