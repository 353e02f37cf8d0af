"""The DR drill state machine, as synthesized, run by the local engine against moto and a real Redis.

The real Redis server stands in for both the live cache (the backup's manifest is taken from
it) and the restored temporary group (the verification reads it): moto restores no data.
Tests steer what the restored group looks like by changing the server between backup and drill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import boto3
import pytest

from orchestrator.engine import ExecutionResult, LocalEngine, Sandbox, import_handler, lambda_functions
from orchestrator.engine.intrinsics import ResourceMap
from tests.support.drill_stack import synth_drill_template
from tests.support.ops_world import GROUP, REGION, TABLE, OpsWorld, build_ops_world, lambda_context

SANDBOX = Sandbox(stack_name="DrillTest", region=REGION)
Hook = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="session")
def drill_template() -> dict[str, Any]:
    return synth_drill_template()


@dataclass
class DrillHarness:
    engine: LocalEngine
    world: OpsWorld
    state_machine_arn: str
    before: dict[str, list[Hook]] = field(default_factory=dict)
    after: dict[str, list[Hook]] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)

    def wrap(self, handler: Callable[[Any, Any], Any], verify: bool) -> Callable[[Any, Any], Any]:
        def run(event: Any, context: Any) -> Any:
            step = "verify" if verify else event.get("step")
            self.steps.append(step)
            for hook in self.before.get(step, []):
                hook(event)
            result = handler(event, context)
            for hook in self.after.get(step, []):
                hook(event)
            return result

        return run

    def backup(self) -> dict[str, Any]:
        from tasks import backup

        return backup.handler({}, lambda_context())

    def run(self, name: str = "drill-1", **request: Any) -> ExecutionResult:
        payload = {"requested_by": "oncall", "failover": False, **request}
        return self.engine.run(self.state_machine_arn, payload, name=name, timeout=60)

    def lock(self) -> dict[str, Any] | None:
        item = (
            boto3.resource("dynamodb", region_name=REGION)
            .Table(TABLE)
            .get_item(Key={"pk": "lock#staging", "sk": "lock"})
            .get("Item")
        )
        return dict(item) if item else None

    def record(self, drill_id: str) -> dict[str, Any] | None:
        item = (
            boto3.resource("dynamodb", region_name=REGION)
            .Table(TABLE)
            .get_item(Key={"pk": f"drill#{drill_id}", "sk": "record"})
            .get("Item")
        )
        return dict(item) if item else None

    def set_group_status(self, group_id: str, status: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.elasticache.models import elasticache_backends

        elasticache_backends[DEFAULT_ACCOUNT_ID][REGION].replication_groups[group_id].status = status

    def assert_cleaned_up(self, drill_id: str = "drill-1") -> None:
        """The invariant: whatever happened, no temporary group is left and the lock is free."""
        temporary = {g: s for g, s in self.world.groups().items() if g != GROUP}
        assert all(status == "deleting" for status in temporary.values()), temporary
        assert self.lock() is None, self.lock()


@pytest.fixture
def drill(
    drill_template: dict[str, Any], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DrillHarness]:
    from tasks.common import set_clock

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    with LocalEngine(sandbox=SANDBOX) as engine:
        world = build_ops_world()
        env = {
            **world.env(),
            "CACHE_SUBNET_GROUP": "staging-cache-subnets",
            "CACHE_SECURITY_GROUP_IDS": "sg-0123456789abcdef0",
            "REDIS_PORT": "6390",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        harness = DrillHarness(engine=engine, world=world, state_machine_arn="")
        handlers = {
            spec.name: harness.wrap(
                import_handler(spec.handler), verify=spec.handler.endswith("verify_handler")
            )
            for spec in lambda_functions(drill_template, ResourceMap(drill_template, SANDBOX)).values()
        }
        harness.state_machine_arn = next(
            iter(engine.load_template(drill_template, handlers=handlers).values())
        )
        # The tasks read the engine's virtual clock, so RTO includes the virtual waits.
        set_clock(lambda: engine.clock.now().astimezone(UTC))
        yield harness
        set_clock(None)
