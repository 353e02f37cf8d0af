"""One engine and one moto world for a whole test module (a fresh world per test costs more than
a release): the synthesized release state machine with every task routed to its real in-process
handler, wrapped by a FaultInjector, and SyntheticChecks answered by a healthy stand-in unless a
module passes the real task.

For `connections` routing the rig has the edge's KeyValueStore (the sandbox's stand-in, answered
in-process under mock_aws) and a canary stage's `@connections` API (the gateway's management
server) whose hub plays API Gateway: closing a connection it knows runs `$disconnect` (the
connection leaves the registry in Redis); one it does not know is Gone.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import redis

from contracts.canary import CANARY_SHARE_KEY, CANARY_STAGE, parse_share
from contracts.names import task_function_name
from contracts.state import Latency, SyntheticResult
from orchestrator.engine import LocalEngine, import_handler, lambda_functions
from orchestrator.engine.intrinsics import ResourceMap
from orchestrator.gateway.management import ManagementApi
from orchestrator.sandbox import emulation
from orchestrator.sandbox.keyvaluestore import STORES
from service.logic import connections as registry
from tests.integration.release.conftest import SANDBOX
from tests.support.fault_schedule import FaultInjector
from tests.support.release_world import ENV, GUARD_ALARMS, HEALTH_ALARM, REGION, TABLE, World, build_world

Handler = Callable[[Any, Any], Any]
WORLD_VARIABLES = ("ENVIRONMENT", "SERVICE_FUNCTION_NAMES", "RELEASE_TABLE_NAME", "RELEASE_TOPIC_ARN")


def synthetic_checks_pass(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A healthy verdict in the task's output shape (the real checks need the gateway)."""
    expected = int(event["clients"]) * int(event["messages"])
    return SyntheticResult(
        passed=True,
        clients=event["clients"],
        messages_expected=expected,
        messages_received=expected,
        success_rate=1.0,
        latency_ms=Latency(p50=4.0, p95=9.0, p99=12.0),
        unauthorized_refused=True,
    ).model_dump()


class CanaryHub:
    """API Gateway's side of the canary stage's `@connections`: which connections it holds."""

    def __init__(self, redis_url: str) -> None:
        self.redis = redis.Redis.from_url(redis_url)
        self.open: set[str] = set()

    def post(self, connection_id: str, data: bytes) -> Any:
        return "ok" if connection_id in self.open else "gone"

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        return {"connectedAt": "2026-01-01T00:00:00Z"} if connection_id in self.open else None

    def disconnect(self, connection_id: str) -> bool:
        if connection_id not in self.open:
            return False
        self.open.discard(connection_id)
        registry.unregister(self.redis, connection_id)  # API Gateway runs $disconnect
        return True


@dataclass(repr=False)
class Rig:
    engine: LocalEngine
    world: World
    state_machine_arn: str
    injector: FaultInjector
    kvs_arn: str = ""
    canary_endpoint: str = ""
    hub: CanaryHub | None = None
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __repr__(self) -> str:  # hypothesis prints fixture arguments of failing examples
        return f"Rig({self.state_machine_arn})"

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    def reset(self) -> None:
        """Alarms OK and no lock, so one test's failure does not poison the next."""
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        for name in (*GUARD_ALARMS, HEALTH_ALARM):
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="reset between runs")
        boto3.resource("dynamodb", region_name=REGION).Table(TABLE).delete_item(
            Key={"pk": f"lock#{ENV}", "sk": "lock"}
        )
        self.injector.schedule = None
        if self.hub is not None:
            self.hub.open.clear()
            for key in self.hub.redis.scan_iter(match="conn:*"):
                registry.unregister(self.hub.redis, key.decode().removeprefix("conn:"))

    def canary_share(self) -> int:
        """The share the edge reads now (a missing key is 0)."""
        kvs = boto3.client("cloudfront-keyvaluestore", region_name=REGION)
        try:
            return parse_share(kvs.get_key(KvsARN=self.kvs_arn, Key=CANARY_SHARE_KEY)["Value"])
        except kvs.exceptions.ResourceNotFoundException:
            return 0

    def connect(self, connection_id: str, *, canary: bool, open_: bool = True) -> None:
        """A client connected through the canary (or live) stage, registered as `$connect` does."""
        assert self.hub is not None
        endpoint = self.canary_endpoint if canary else "https://api.example.com/live"
        registry.register(self.hub.redis, connection_id, endpoint, "property", 0)
        registry.subscribe(self.hub.redis, connection_id, "price:eth", limit=10)
        if open_ and canary:
            self.hub.open.add(connection_id)

    def registered(self, *, canary: bool) -> set[str]:
        assert self.hub is not None
        found = set()
        for key in self.hub.redis.scan_iter(match="conn:*"):
            raw: Any = self.hub.redis.hget(key, "endpoint")
            endpoint = raw.decode() if isinstance(raw, bytes) else str(raw or "")
            name = key.decode() if isinstance(key, bytes) else str(key)
            if (endpoint == self.canary_endpoint) == canary:
                found.add(name.removeprefix("conn:"))
        return found


@contextlib.contextmanager
def release_rig(
    template: dict[str, Any],
    redis_url: str,
    *,
    synthetic_checks: Handler | None = None,
    environment: dict[str, str] | None = None,
    engine: LocalEngine | None = None,
) -> Iterator[Rig]:
    """Start an engine (or use `engine`, already open), build the world, register the wrapped tasks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", redis_url)
        patch.setenv("POWERTOOLS_LOG_LEVEL", "ERROR")
        for name, value in (environment or {}).items():
            patch.setenv(name, value)
        # build_world exports these; recording them first lets the patch restore them afterwards.
        for name in WORLD_VARIABLES:
            patch.delenv(name, raising=False)
        with contextlib.ExitStack() as stack:
            if engine is None:
                engine = stack.enter_context(LocalEngine(sandbox=SANDBOX))
            emulation.install()  # the edge's KeyValueStore (and moto corrections the sandbox makes)
            stack.callback(emulation.uninstall)
            store = STORES.create_in(SANDBOX.account_id, f"{ENV}-realtime-canary")
            stack.callback(STORES.clear)
            hub = CanaryHub(redis_url)
            stack.callback(hub.redis.close)
            management = ManagementApi(hub, [CANARY_STAGE]).start()
            stack.callback(management.stop)
            canary_endpoint = management.endpoint(CANARY_STAGE)
            patch.setenv("CANARY_KVS_ARN", store.arn)
            patch.setenv("CANARY_CONNECTIONS_ENDPOINT", canary_endpoint)
            patch.setenv("DRAIN_POLL_SECONDS", "0.05")
            patch.setenv("DRAIN_TIMEOUT_SECONDS", "10")
            world = build_world()
            injector = FaultInjector()
            synthetic_name = task_function_name(ENV, "synthetic_checks")
            handlers = {}
            for spec in lambda_functions(template, ResourceMap(template, SANDBOX)).values():
                key = spec.name.removeprefix(f"{ENV}-release-").replace("-", "_")
                if spec.name == synthetic_name:
                    base = synthetic_checks or synthetic_checks_pass
                else:
                    base = import_handler(spec.handler)
                handlers[spec.name] = injector.wrap(key, base)
            arn = next(iter(engine.load_template(template, handlers=handlers).values()))
            yield Rig(engine, world, arn, injector, store.arn, canary_endpoint, hub)
