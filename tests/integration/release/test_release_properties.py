"""Property: whatever a fault schedule throws at a release, the execution ends as the model says and
leaves the world safe: every `live` alias on exactly one version at 100%, the lock released, the
release record telling the execution's story, and after a rollback `live` back on blue. In
`connections` routing also: the edge's canary share back at 0, and after a rollback no
connection left on the canary stage (closed through `@connections`, or unregistered when API
Gateway no longer knew it), while the live stage's connections stay.

One engine and one moto world serve every example (a fresh world per example would cost more
than the release itself); each example resets the alarms and the lock and uses its own release
id and artifact, so versions accumulate but nothing else carries over.

Profiles (env HYPOTHESIS_PROFILE): `ci` (default) 300 examples, `dev` 40, split over SHARDS
tests with fixed seeds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings

from orchestrator.engine import ExecutionResult
from orchestrator.sandbox.redis_server import RedisServer
from tasks.common import parse_time
from tasks.judge_canary import JudgeCanaryInput
from tests.support.fault_schedule import (
    Schedule,
    TaskFault,
    drains_the_canary_stage,
    expected_outcome,
    reaches_approval_gate,
    schedules,
)
from tests.support.release_rig import Rig, release_rig
from tests.support.release_world import FUNCTIONS, GUARD_ALARMS, record_version_traffic

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "dev",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rig(release_template: dict[str, Any], redis_server: RedisServer) -> Iterator[Rig]:
    if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("STRESS_LOAD"):
        # Hundreds of releases are pure CPU: under parallel workers this one yields the CPU to
        # tests whose synthetic checks judge latency (from here on, for the rest of this worker).
        # Not under `make stress`: its busy loops run at normal priority, and a worker niced
        # behind them would get a tenth of a core for the rest of the round.
        os.nice(10)
    with release_rig(release_template, redis_server.url) as built:
        yield built


def degrade_green(judged: JudgeCanaryInput) -> None:
    """One function's green, during the step's bake: 20% errors and 300 ms, against a clean 10 ms blue
    (green through the canary stage's `green` aliases in `connections` routing)."""
    fn = FUNCTIONS[0]
    during = parse_time(judged.shift.shifted_at) + timedelta(seconds=1)
    alias = "green" if judged.release.routing == "connections" else "live"
    record_version_traffic(fn, judged.deploy.green[fn], [300.0] * 120, errors=24, when=during, alias=alias)
    record_version_traffic(fn, judged.deploy.blue[fn], [10.0] * 1080, when=during)


def run_schedule(rig: Rig, schedule: Schedule) -> tuple[str, ExecutionResult]:
    release_id = rig.next_id("prop")
    request: dict[str, Any] = {
        "release_id": release_id,
        "version": "2.0.0",
        "artifact": rig.world.artifact(release_id),  # distinct code: every release publishes a new version
        "requested_by": "property",
        "dry_run": schedule.dry_run,
        "routing": schedule.routing,
        "strategy": {
            "steps": [{"percent": p, "bake_seconds": schedule.bake_seconds} for p in schedule.steps]
        },
    }
    if schedule.approval is not None:
        request.update(approval="required", approval_timeout_seconds=60)
    if schedule.routing == "connections":
        # Clients already on the canary stage (one API Gateway no longer holds), and one on live.
        rig.connect(f"{release_id}-c1", canary=True)
        rig.connect(f"{release_id}-c2", canary=True)
        rig.connect(f"{release_id}-stale", canary=True, open_=False)
        rig.connect(f"{release_id}-live", canary=False)
    rig.injector.arm(schedule, lambda: rig.world.set_alarm(GUARD_ALARMS[0], "ALARM"), degrade_green)
    execution = rig.engine.start(rig.state_machine_arn, request, name=release_id)
    if schedule.approval is not None and reaches_approval_gate(schedule):
        # Bounds on wall time guard against a hang only: a loaded machine (a property run beside
        # `make stress` took over 30 s to reach the gate) must not fail an example that is on its way.
        token = execution.wait_for_task_token(timeout=180)
        if schedule.approval == "approve":
            execution.send_task_success({"approved_by": "property"}, token=token)
        elif schedule.approval == "reject":
            execution.send_task_failure("ApprovalRejected", "rejected by property", token=token)
        else:
            rig.engine.clock.advance(61)  # nobody answers within the approval timeout
    return release_id, execution.wait(300)


def check_invariant(
    rig: Rig, schedule: Schedule, release_id: str, blue: dict[str, str], result: ExecutionResult
) -> None:
    expected = expected_outcome(schedule)
    path = result.states_entered()
    context = f"{schedule}\npath: {path}\nerror: {result.error}\ncause: {result.cause}"
    # The execution ended as the model says.
    assert (result.status, result.error) == (expected.status, expected.error), context
    assert path[-1] == expected.final_state, context
    if expected.cause_prefix is not None:
        told = result.cause if expected.rolled_back else result.error
        assert told is not None and told.startswith(expected.cause_prefix), context
    # Every live alias: exactly one version, no additional weights.
    live = rig.world.aliases("live")
    assert all(not weights for _, weights in live.values()), (live, context)
    # The lock is released.
    assert rig.world.lock() is None, (rig.world.lock(), context)
    # The record matches the outcome.
    record = rig.world.record(release_id)
    status = record["status"] if record is not None else None
    assert status == expected.record, (record, context)
    if expected.cause_prefix == "CanaryFailed":
        # The judged step's verdict, with its numbers, is on the record.
        assert record is not None and record["canary_verdicts"][-1]["verdict"] == "fail", context
        assert "p99 green 300.0 ms vs blue 10.0 ms" in record["canary_verdicts"][-1]["summary"], context
    versions = {fn: version for fn, (version, _) in live.items()}
    if expected.record == "SUCCEEDED":
        assert versions == {fn: str(v) for fn, v in record["green_versions"].items()}, context
        assert all(versions[fn] != blue[fn] for fn in FUNCTIONS), context
    else:
        # Rolled back, dry run, rejected or aborted: live serves blue.
        assert versions == blue, (versions, blue, context)
    # Green (the preview stage) serves what live serves once the release ended: a failed
    # release's version must not keep taking preview traffic.
    green = rig.world.aliases("green")
    assert {fn: (version, weights) for fn, (version, weights) in green.items()} == {
        fn: (version, {}) for fn, version in versions.items()
    }, (green, context)
    # The edge sends no new connection to the canary stage once the execution ended.
    assert rig.canary_share() == 0, context
    if schedule.routing == "connections":
        canary = rig.registered(canary=True)
        if drains_the_canary_stage(schedule):
            assert not canary, (canary, context)
        elif not expected.rolled_back:
            assert len(canary) == 3, (canary, context)  # nothing closes them outside a rollback
        assert rig.registered(canary=False) == {f"{release_id}-live"}, context


# The profile's examples run as SHARDS tests, each with its own fixed seed and an equal share of
# the examples, so that parallel test workers (`--dist load`) can take them side by side: as many whole releases
# as one test would run, each shard reproducible from its seed. A shard's releases take minutes
# on a small machine: above the suite's default timeout.
SHARDS = 4
SHARD_SEEDS = (20_261_129, 31_415_926, 27_182_818, 16_180_339)


def _property_shard(index: int) -> Any:
    profile = settings.get_profile(PROFILE)

    @pytest.mark.property_shard
    @pytest.mark.timeout(1800)
    @seed(SHARD_SEEDS[index])
    @settings(profile, max_examples=-(-profile.max_examples // SHARDS), derandomize=False)
    @given(schedule=schedules())
    def test(rig: Rig, schedule: Schedule) -> None:
        rig.reset()
        blue = {fn: version for fn, (version, _) in rig.world.aliases("live").items()}
        release_id, result = run_schedule(rig, schedule)
        check_invariant(rig, schedule, release_id, blue, result)

    test.__name__ = test.__qualname__ = (
        f"test_every_fault_schedule_ends_safe_and_as_modelled_{index + 1}_of_{SHARDS}"
    )
    return test


for _index in range(SHARDS):
    _shard = _property_shard(_index)
    globals()[_shard.__name__] = _shard


def test_a_record_written_by_a_timed_out_attempt_tells_the_outcome(rig: Rig) -> None:
    rig.reset()
    schedule = Schedule(
        steps=(100,),
        bake_seconds=0,
        dry_run=False,
        approval=None,
        fault=TaskFault("record_release", 1, "timeout", 2),
        alarm_step=None,
    )
    blue = {fn: version for fn, (version, _) in rig.world.aliases("live").items()}
    release_id, result = run_schedule(rig, schedule)
    assert result.states_entered()[-1] == "ReleaseAborted" and rig.world.lock() is None
    record = rig.world.record(release_id)
    assert record is not None and record["status"] == "ABORTED", record
    check_invariant(rig, schedule, release_id, blue, result)
