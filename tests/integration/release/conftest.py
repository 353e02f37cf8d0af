"""The release state machine, as synthesized, run by the local engine against moto and a real Redis.

The template is synthesized once per session (jsii is slow); each test gets a fresh moto world.
Task functions run the real `tasks/` modules (warm_cache against the real Redis server).
SyntheticChecks needs the WebSocket gateway, which these tests do not start: its function runs
`passing_synthetic_checks`, which answers with the contract's output shape (or raises
GreenUnhealthy when a test asks it to), so the state machine's handling of both is exercised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from contracts.names import task_function_name
from contracts.state import Latency, ReleaseState, Shift, SyntheticResult
from orchestrator.engine import ExecutionResult, LocalEngine, Sandbox
from tasks.errors import GreenUnhealthy
from tests.support.release_stack import synth_release_template
from tests.support.release_world import ENV, World, build_world

SANDBOX = Sandbox(stack_name="ReleaseTest", region="eu-west-1")

# A fault a test schedules for a task: raised (or acted out) on that task's next invocation.
Fault = Callable[[Any], Any]


def _sources_digest() -> str:
    """Hash of everything the template depends on, so a cached synth is reused only if current."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    digest = hashlib.sha256()
    for path in sorted(
        [
            *root.glob("state_machines/*.py"),
            root / "tasks/catalog.py",
            root / "tests/support/release_stack.py",
        ]
    ):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def release_template(request: pytest.FixtureRequest) -> dict[str, Any]:
    # jsii start-up dominates the suite: reuse the last synth while its sources are unchanged.
    key = f"release/template/{_sources_digest()}"
    cached = request.config.cache.get(key, None)
    if cached is None:
        cached = synth_release_template(ENV)
        request.config.cache.set(key, cached)
    return cached


@dataclass
class ReleaseHarness:
    engine: LocalEngine
    world: World
    state_machine_arn: str
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    last_event: dict[str, Any] = field(default_factory=dict)
    synthetic_healthy: bool = True
    invocations: dict[str, int] = field(default_factory=dict)

    def request(self, release_id: str, **overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "release_id": release_id,
            "version": "1.1.0",
            "artifact": self.world.artifact("green"),
            "requested_by": "alice",
            "strategy": {
                "steps": [
                    {"percent": 10, "bake_seconds": 600},
                    {"percent": 50, "bake_seconds": 600},
                    {"percent": 100, "bake_seconds": 600},
                ]
            },
        }
        base.update(overrides)
        return base

    def run(self, release_id: str, timeout: float = 60.0, **overrides: Any) -> ExecutionResult:
        return self.engine.run(
            self.state_machine_arn, self.request(release_id, **overrides), name=release_id, timeout=timeout
        )

    def start(self, release_id: str, **overrides: Any):
        return self.engine.start(
            self.state_machine_arn, self.request(release_id, **overrides), name=release_id
        )

    def fail_next(self, task_key: str, *faults: Fault) -> None:
        self.faults.setdefault(task_key, []).extend(faults)

    def wrap(self, key: str, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def run(event: Any, context: Any) -> Any:
            self.invocations[key] = self.invocations.get(key, 0) + 1
            self.last_event[key] = event  # what a fault may read (the task's input)
            pending = self.faults.get(key)
            if pending:
                fault = pending.pop(0)
                fault(context)
            return handler(event, context)

        return run

    def assert_invariant(self, release_id: str, result: ExecutionResult) -> None:
        """Whatever happened: every live alias on one version at 100%, the lock released,
        and the record telling the same story as the execution."""
        live = self.world.aliases("live")
        assert all(not weights for _, weights in live.values()), live
        assert len({version for version, _ in live.values()}) == 1, live
        assert self.world.lock() is None, self.world.lock()
        record = self.world.record(release_id)
        if result.status == "SUCCEEDED":
            # The final state reads back section by section as the contract types it.
            final = ReleaseState.model_validate(output_of(result))
            expected = "DRY_RUN_SUCCEEDED" if final.release.dry_run else "SUCCEEDED"
            assert final.finalize is not None and final.finalize.status == expected, final.finalize
            assert final.deploy is not None and final.alarms is not None and final.synthetic is not None
            assert isinstance(final.shift, Shift) and final.shift.is_last and final.shift.percent == 100
            assert final.warm is not None and final.warm.done
            assert final.failure is None and final.rollback is None
            assert record is not None and record["status"] == expected
            if expected == "SUCCEEDED":
                assert {v for v, _ in live.values()} == {"2"}
                assert {fn: (version, {}) for fn, version in final.deploy.green.items()} == live
        elif result.error == "ReleaseRolledBack":
            assert record is not None and record["status"] == "ROLLED_BACK", record
            blue = record.get("blue_versions") or {}
            assert all(live[fn][0] == version for fn, version in blue.items()), (live, blue)
        else:
            # Failed before anything changed: nothing recorded for this release.
            assert record is None, record


def passing_synthetic_checks(harness: ReleaseHarness) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        expected = int(event["clients"]) * int(event["messages"])
        if not harness.synthetic_healthy:
            raise GreenUnhealthy(
                f"success rate 0.50 below {event['min_success_rate']} ({expected // 2}/{expected})"
            )
        return SyntheticResult(
            passed=True,
            clients=event["clients"],
            messages_expected=expected,
            messages_received=expected,
            success_rate=1.0,
            latency_ms=Latency(p50=4.0, p95=9.0, p99=12.0),
            unauthorized_refused=True,
        ).model_dump()

    return handler


@pytest.fixture
def harness(
    release_template: dict[str, Any], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ReleaseHarness]:
    from orchestrator.engine import import_handler, lambda_functions
    from orchestrator.engine.intrinsics import ResourceMap

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    with LocalEngine(sandbox=SANDBOX) as engine:
        world = build_world()
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        h = ReleaseHarness(engine=engine, world=world, state_machine_arn="")
        synthetic_name = task_function_name(ENV, "synthetic_checks")
        handlers = {}
        for spec in lambda_functions(release_template, ResourceMap(release_template, SANDBOX)).values():
            key = spec.name.removeprefix(f"{ENV}-release-").replace("-", "_")
            base = (
                passing_synthetic_checks(h) if spec.name == synthetic_name else import_handler(spec.handler)
            )
            handlers[spec.name] = h.wrap(key, base)
        arns = engine.load_template(release_template, handlers=handlers)
        h.state_machine_arn = next(iter(arns.values()))
        yield h


# What the staging stage's template sets on every task function (the test stack's inline
# functions carry no environment): the world's names, the local Redis, quiet logs.
def isolated_environment(world: World, redis_url: str) -> dict[str, str]:
    return {
        **world.env(),
        "REDIS_URL": redis_url,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_SERVICE_NAME": "release-orchestrator",
        "POWERTOOLS_METRICS_NAMESPACE": "RealtimeAnalytics",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


@pytest.fixture
def isolated_harness(
    release_template: dict[str, Any],
    redis_url: str,
    moto_server_url: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ReleaseHarness]:
    """The release harness with every task (SyntheticChecks aside: it needs the gateway) in a
    Lambda worker process from its own asset, with its template settings and role credentials.
    Faults cannot be injected here (`fail_next` needs in-process handlers); logs under tmp_path."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    with LocalEngine(
        sandbox=SANDBOX, worker_endpoint_url=moto_server_url, lambda_log_dir=tmp_path / "logs"
    ) as engine:
        world = build_world()
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        h = ReleaseHarness(engine=engine, world=world, state_machine_arn="")
        synthetic = {task_function_name(ENV, "synthetic_checks"): passing_synthetic_checks(h)}
        arns = engine.load_template(
            release_template,
            handlers=synthetic,
            isolated=True,
            environment=isolated_environment(world, redis_url),
        )
        h.state_machine_arn = next(iter(arns.values()))
        yield h


def error_of(exception: type[BaseException], message: str = "injected") -> Fault:
    def fault(context: Any) -> None:
        raise exception(message)

    return fault


def timeout_fault(context: Any) -> None:
    """The function runs past its timeout (in virtual time): Lambda reports Sandbox.Timedout."""
    context.clock.sleep(context.get_remaining_time_in_millis() / 1000 + 1)


def throttle_fault(context: Any) -> None:
    from orchestrator.engine import invoke_error

    raise invoke_error("TooManyRequestsException", "Rate exceeded")


def output_of(result: ExecutionResult) -> dict[str, Any]:
    return result.output if isinstance(result.output, dict) else json.loads(result.output or "{}")
