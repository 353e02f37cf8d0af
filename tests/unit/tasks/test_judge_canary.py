"""JudgeCanary: the statistics on their own, then the task against moto with metrics sent as the
sandbox gateway sends them (Duration per executed version as a distribution, so p99 exists)."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import boto3
import pytest
from moto.cloudwatch.models import Statistics

from contracts.release import CanaryJudge
from contracts.state import ReleaseState
from orchestrator.engine.moto_hooks import percentile_statistics
from tasks import release_record
from tasks.common import parse_time
from tasks.deploy_green import deploy_green
from tasks.errors import CanaryFailed
from tasks.judge_canary import (
    JudgeCanaryInput,
    VersionSample,
    compare_errors,
    compare_latency,
    judge_canary,
    two_proportion_z,
    window_period,
)
from tasks.set_weights import SetWeightsInput, set_weights
from tests.support.release_world import FUNCTIONS, REGION, record_version_traffic
from tests.support.task_state import hold_lock, task_input, validated_state

JUDGE = CanaryJudge()


# -- the statistics ---------------------------------------------------------------------------------


def test_two_proportion_z_matches_the_textbook_value():
    # 10/100 against 5/100: pooled 0.075, se = sqrt(0.075 * 0.925 * 0.02) = 0.037249
    z, p = two_proportion_z(10, 100, 5, 100)
    assert z == pytest.approx(1.3423, abs=1e-4)
    assert p == pytest.approx(0.08975, abs=1e-4)
    # Symmetric: blue worse than green is a negative z and a p-value above one half.
    z_back, p_back = two_proportion_z(5, 100, 10, 100)
    assert z_back == pytest.approx(-z) and p_back == pytest.approx(1 - p)


def test_two_proportion_z_without_any_error_cannot_tell_the_versions_apart():
    assert two_proportion_z(0, 500, 0, 4500) == (0.0, 0.5)
    assert two_proportion_z(500, 500, 4500, 4500) == (0.0, 0.5)
    with pytest.raises(ValueError, match="at least one invocation"):
        two_proportion_z(0, 0, 1, 10)


def test_a_small_canary_is_not_judged_on_noise():
    # 3 errors in 20 would be a 15% error rate: alarming, and meaningless on 20 invocations.
    outcome = compare_errors(VersionSample(invocations=20, errors=3), VersionSample(invocations=900), JUDGE)
    assert outcome.outcome == "skipped"
    assert "green 20, blue 900; at least 100 each" in outcome.reason
    latency = compare_latency(
        "fn", VersionSample(invocations=99, p99_ms=900.0), VersionSample(invocations=900, p99_ms=10.0), JUDGE
    )
    assert latency.outcome == "skipped"


def test_error_rates_pass_marginal_and_fail():
    blue = VersionSample(invocations=9000, errors=90)  # 1%
    same = compare_errors(VersionSample(invocations=1000, errors=10), blue, JUDGE)
    assert same.outcome == "pass" and same.p_value == pytest.approx(0.5, abs=0.01)
    # 1.7% against 1%: significant at 5% but not at 1%.
    marginal = compare_errors(VersionSample(invocations=1000, errors=17), blue, JUDGE)
    assert marginal.outcome == "marginal", marginal.reason
    assert 0.01 <= (marginal.p_value or 0) < 0.05
    failed = compare_errors(VersionSample(invocations=1000, errors=40), blue, JUDGE)
    assert failed.outcome == "fail"
    assert "green 4.00% vs blue 1.00%" in failed.reason
    assert failed.z is not None and failed.z > 2.33


def test_a_significant_but_tiny_error_increase_does_not_fail():
    # A million invocations make 0.12% against 0.10% significant; it is under the 1-point minimum.
    green = VersionSample(invocations=1_000_000, errors=1_200)
    blue = VersionSample(invocations=9_000_000, errors=9_000)
    outcome = compare_errors(green, blue, JUDGE)
    assert outcome.p_value is not None and outcome.p_value < JUDGE.fail_alpha
    assert outcome.outcome == "marginal"


def test_latency_is_judged_by_ratio_above_a_floor():
    def judged(green_ms: float, blue_ms: float) -> str:
        return compare_latency(
            "fn",
            VersionSample(invocations=500, p99_ms=green_ms),
            VersionSample(invocations=4500, p99_ms=blue_ms),
            JUDGE,
        ).outcome

    assert judged(12.0, 4.0) == "pass"  # x3, but 8 ms is jitter (floor 50 ms)
    assert judged(110.0, 100.0) == "pass"
    assert judged(130.0, 80.0) == "fail"  # x1.63 and 50 ms slower
    assert judged(300.0, 100.0) == "fail"
    assert judged(140.0, 100.0) == "pass"  # 40 ms slower: under the floor
    assert judged(260.0, 200.0) == "marginal"  # x1.3, 60 ms slower


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="marginal_alpha"):
        CanaryJudge(fail_alpha=0.05, marginal_alpha=0.01)
    with pytest.raises(ValueError, match="p99_marginal"):
        CanaryJudge(p99_tolerance=1.2, p99_marginal=1.5)


def test_the_window_is_one_period_of_whole_minutes():
    start = parse_time("2026-01-01T00:00:00.000Z")
    assert window_period(start, start + timedelta(seconds=10)) == 60
    assert window_period(start, start + timedelta(seconds=61)) == 120
    assert window_period(start, start + timedelta(hours=24, seconds=1)) == 86_460


# -- the task against moto ------------------------------------------------------------------------


@pytest.fixture
def percentiles(monkeypatch):
    """CloudWatch's percentiles in moto (the engine and sandbox install the same hook)."""
    original = Statistics.get_statistics_for_type
    monkeypatch.setattr(Statistics, "get_statistics_for_type", percentile_statistics(original))


def baking(world, settings, **overrides) -> ReleaseState:
    state = validated_state(world, settings, **overrides)
    hold_lock(world)
    release_record.start(settings, state.release)
    state = state.with_sections(deploy=deploy_green(settings, state.release))
    return state.with_sections(shift=set_weights(settings, task_input(SetWeightsInput, state)))


def traffic(
    state: ReleaseState, *, green_delay_ms: float = 0.0, green_errors: int = 0, seed: int = 7
) -> None:
    """300 invocations per function on green, 2,700 on blue, latencies 5-25 ms (plus green's delay)."""
    rng = random.Random(seed)
    assert state.deploy is not None
    for fn in FUNCTIONS:
        green = [rng.uniform(5, 25) + green_delay_ms for _ in range(300)]
        blue = [rng.uniform(5, 25) for _ in range(2700)]
        record_version_traffic(fn, state.deploy.green[fn], green, errors=green_errors)
        record_version_traffic(fn, state.deploy.blue[fn], blue)


def judged(settings, state: ReleaseState):
    return judge_canary(settings, task_input(JudgeCanaryInput, state))


def test_a_healthy_green_passes_with_its_numbers_recorded(world, settings, percentiles):
    state = baking(world, settings)
    traffic(state)
    judgement = judged(settings, state)
    assert judgement.verdict == "pass", judgement.summary
    assert judgement.errors.outcome == "pass"
    assert (judgement.errors.green_invocations, judgement.errors.blue_invocations) == (
        300 * len(FUNCTIONS),
        2700 * len(FUNCTIONS),
    )
    assert [test.function for test in judgement.latency] == sorted(FUNCTIONS)
    for test in judgement.latency:
        assert test.outcome == "pass"
        assert test.green_p99_ms is not None and 20 < test.green_p99_ms <= 25.1
        assert test.blue_p99_ms is not None and 20 < test.blue_p99_ms <= 25.1
    assert [(s.index, s.percent, s.verdict) for s in judgement.steps] == [(0, 10, "pass")]
    record = world.record("rel-1")
    assert record["canary_verdicts"][0]["verdict"] == "pass"
    audit = [e for e in release_record.events(settings, "rel-1") if e.get("transition") == "CANARY_JUDGED"]
    assert len(audit) == 1 and audit[0]["detail"]["verdict"] == "pass"
    # A pass is audited but not notified.
    assert not [n for n in world.notifications() if "CANARY_JUDGED" in json.dumps(n)]


def test_a_slower_green_fails_with_the_numbers_and_is_notified(world, settings, percentiles):
    state = baking(world, settings)
    traffic(state, green_delay_ms=200)
    with pytest.raises(CanaryFailed) as caught:
        judged(settings, state)
    message = str(caught.value)
    assert message.startswith("green judged worse than blue at 10%: fail: ")
    assert "over the x1.5 tolerance" in message and "p99 green 2" in message
    record = world.record("rel-1")
    assert record["canary_verdicts"] == [
        {"index": 0, "percent": 10, "verdict": "fail", "summary": record["canary_verdicts"][0]["summary"]}
    ]
    assert [n for n in world.notifications() if "CANARY_JUDGED" in json.dumps(n)]


def test_a_green_with_more_errors_fails_on_the_error_test(world, settings, percentiles):
    state = baking(world, settings)
    traffic(state, green_errors=30)  # 10% of green's invocations against none of blue's
    with pytest.raises(CanaryFailed, match=r"error rate worse: green 10\.00% vs blue 0\.00%"):
        judged(settings, state)


def test_traffic_before_the_step_is_not_judged(world, settings, percentiles):
    state = baking(world, settings)
    assert state.deploy is not None and state.shift is not None
    before = parse_time(state.shift.shifted_at) - timedelta(minutes=10)
    for fn in FUNCTIONS:
        record_version_traffic(fn, state.deploy.green[fn], [900.0] * 300, errors=300, when=before)
        record_version_traffic(fn, state.deploy.blue[fn], [5.0] * 300, when=before)
    judgement = judged(settings, state)
    assert judgement.verdict == "pass"
    assert judgement.errors.outcome == "skipped" and judgement.errors.green_invocations == 0
    # Nothing was judged, and the summary says so rather than look like a clean bill of health.
    assert judgement.summary.startswith("pass (not judged): too few invocations")


def test_no_baseline_at_100_percent_and_a_disabled_judge_both_pass(world, settings, percentiles):
    state = baking(world, settings, judge={"enabled": False})
    traffic(state, green_delay_ms=500)
    judgement = judged(settings, state)
    assert (judgement.verdict, judgement.errors.outcome) == ("pass", "skipped")
    assert "disabled" in judgement.summary
    assert state.shift is not None
    full = state.with_sections(
        shift={**state.shift.model_dump(), "percent": 100, "index": 1, "is_last": True}
    )
    full = full.with_sections(release={**full.release.json_dict(), "judge": CanaryJudge().model_dump()})
    judgement = judged(settings, full)
    assert judgement.verdict == "pass" and "blue serves no traffic" in judgement.summary


def test_the_steps_so_far_are_carried_forward(world, settings, percentiles):
    state = baking(world, settings)
    traffic(state)
    first = judged(settings, state)
    assert state.shift is not None
    later = state.with_sections(
        judgement=first.model_dump(mode="json"),
        shift={**state.shift.model_dump(), "index": 1, "percent": 50},
    )
    second = judged(settings, later)
    assert [(s.index, s.percent) for s in second.steps] == [(0, 10), (1, 50)]
    # A retried step replaces its own verdict rather than adding a second one.
    again = judged(settings, later.with_sections(judgement=second.model_dump(mode="json")))
    assert [(s.index, s.percent) for s in again.steps] == [(0, 10), (1, 50)]


def test_the_task_asks_cloudwatch_for_p99_per_executed_version(world, settings, percentiles, monkeypatch):
    state = baking(world, settings)
    calls = []
    real = boto3.client("cloudwatch", region_name=REGION)

    class Spy:
        def get_metric_data(self, **kwargs):
            calls.append(kwargs)
            return real.get_metric_data(**kwargs)

    monkeypatch.setattr("tasks.judge_canary.client", lambda service: Spy())
    judged(settings, state)
    queries = calls[0]["MetricDataQueries"]
    assert len(queries) == 3 * 2 * len(FUNCTIONS)
    stats = {(q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"]) for q in queries}
    assert stats == {("Invocations", "Sum"), ("Errors", "Sum"), ("Duration", "p99")}
    dims = {d["Name"] for d in queries[0]["MetricStat"]["Metric"]["Dimensions"]}
    assert dims == {"FunctionName", "Resource", "ExecutedVersion"}
