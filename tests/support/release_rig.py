"""One engine and one moto world for a whole test module (a fresh world per test costs more than
a release): the synthesized release state machine with every task routed to its real in-process
handler, wrapped by a FaultInjector, and SyntheticChecks answered by a healthy stand-in unless a
module passes the real task.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from contracts.names import task_function_name
from contracts.state import Latency, SyntheticResult
from orchestrator.engine import LocalEngine, import_handler, lambda_functions
from orchestrator.engine.intrinsics import ResourceMap
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


@dataclass(repr=False)
class Rig:
    engine: LocalEngine
    world: World
    state_machine_arn: str
    injector: FaultInjector
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
            yield Rig(engine, world, arn, injector)
