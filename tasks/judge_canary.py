"""JudgeCanary: after each bake, is green worse than blue under the same traffic?

CheckAlarms judges green against fixed thresholds; this step judges it against blue over the
same window, from the metrics Lambda publishes per executed version of an alias
(`AWS/Lambda` Invocations, Errors and Duration with dimensions FunctionName, Resource
`<fn>:live` and ExecutedVersion): during a step both versions serve `live`, so both see the same
clients, the same payloads and the same hour of the day.

In `connections` routing green serves the canary stage's connections through the `green` aliases
while blue serves the `live` stage's through `live`: green's figures are read from Resource
`<fn>:green`, blue's from `<fn>:live`, over the same window. The two stages hold different
connections of the same population, which the edge split at random.

- Errors: a one-sided two-proportion z-test of green's error rate against blue's, all service
  functions together. It fails when green is worse at the `fail_alpha` significance level and by
  at least `min_error_rate_increase`; it is marginal at `marginal_alpha`.
- Latency: green's p99 over blue's, per function (percentiles of different functions cannot be
  merged). It fails above `p99_tolerance` and is marginal above `p99_marginal`, both only when
  green's p99 is also `p99_floor_ms` or more above blue's.
- A test is skipped, and says so, while either version has served fewer than `min_sample`
  invocations (`release.judge`), so a small canary is not judged on noise.

The verdict is the worst outcome of the tests that ran: pass, marginal or fail. Pass and marginal
return `$.judgement` (with the verdicts of the steps so far) and are audited on the release
record; a fail is audited too, then raises CanaryFailed with the numbers, which the state machine
catches into Rollback like an alarm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.names import GREEN_ALIAS, LIVE_ALIAS
from contracts.release import CanaryJudge
from contracts.state import (
    Deploy,
    ErrorComparison,
    Judgement,
    LatencyComparison,
    Release,
    Shift,
    StepVerdict,
    TestOutcome,
    Verdict,
)
from tasks import release_record
from tasks.common import Settings, client, event_model, iso, logger, metrics_window, task_handler
from tasks.errors import CanaryFailed

SEVERITY: dict[str, int] = {"skipped": 0, "pass": 0, "marginal": 1, "fail": 2}
# GetMetricData takes up to 500 queries per call.
MAX_QUERIES_PER_CALL = 500


class JudgeCanaryInput(BaseModel):
    """JudgeCanary receives the whole state; it reads `release`, `deploy`, `shift` and the
    verdicts of the earlier steps in `judgement`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    release: Release
    deploy: Deploy
    shift: Shift
    judgement: Judgement | None = None


class VersionSample(BaseModel):
    """One version's figures for one function over the window."""

    model_config = ConfigDict(frozen=True)

    invocations: int = 0
    errors: int = 0
    p99_ms: float | None = None


# -- the statistics -------------------------------------------------------------------------------


def two_proportion_z(errors_a: int, n_a: int, errors_b: int, n_b: int) -> tuple[float, float]:
    """(z, one-sided p-value) of "a's error rate is higher than b's", with the pooled standard error.

    With no error (or nothing but errors) in either sample the rates cannot differ: (0, 0.5).
    """
    if n_a <= 0 or n_b <= 0:
        raise ValueError("both samples need at least one invocation")
    pooled = (errors_a + errors_b) / (n_a + n_b)
    if pooled in (0.0, 1.0):
        return 0.0, 0.5
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (errors_a / n_a - errors_b / n_b) / se
    return z, 0.5 * math.erfc(z / math.sqrt(2))


def compare_errors(green: VersionSample, blue: VersionSample, judge: CanaryJudge) -> ErrorComparison:
    figures: dict[str, Any] = {
        "green_invocations": green.invocations,
        "green_errors": green.errors,
        "blue_invocations": blue.invocations,
        "blue_errors": blue.errors,
    }
    if min(green.invocations, blue.invocations) < judge.min_sample:
        return ErrorComparison(
            outcome="skipped",
            reason=(
                f"too few invocations to compare error rates (green {green.invocations}, "
                f"blue {blue.invocations}; at least {judge.min_sample} each)"
            ),
            **figures,
        )
    green_rate = green.errors / green.invocations
    blue_rate = blue.errors / blue.invocations
    z, p_value = two_proportion_z(green.errors, green.invocations, blue.errors, blue.invocations)
    increase = green_rate - blue_rate
    rates = f"green {green_rate:.2%} vs blue {blue_rate:.2%} (z={z:.2f}, p={p_value:.4f})"
    outcome: TestOutcome
    if p_value < judge.fail_alpha and increase >= judge.min_error_rate_increase:
        outcome, reason = "fail", f"error rate worse: {rates}"
    elif p_value < judge.marginal_alpha and increase > 0:
        outcome, reason = "marginal", f"error rate possibly worse: {rates}"
    else:
        outcome, reason = "pass", f"error rate not worse: {rates}"
    return ErrorComparison(
        outcome=outcome,
        green_error_rate=round(green_rate, 6),
        blue_error_rate=round(blue_rate, 6),
        z=round(z, 4),
        p_value=round(p_value, 6),
        reason=reason,
        **figures,
    )


def compare_latency(
    function: str, green: VersionSample, blue: VersionSample, judge: CanaryJudge
) -> LatencyComparison:
    figures: dict[str, Any] = {
        "function": function,
        "green_invocations": green.invocations,
        "blue_invocations": blue.invocations,
        "green_p99_ms": green.p99_ms,
        "blue_p99_ms": blue.p99_ms,
    }
    if min(green.invocations, blue.invocations) < judge.min_sample:
        return LatencyComparison(
            outcome="skipped",
            reason=(
                f"too few invocations to compare p99 (green {green.invocations}, blue {blue.invocations}; "
                f"at least {judge.min_sample} each)"
            ),
            **figures,
        )
    if green.p99_ms is None or blue.p99_ms is None:
        return LatencyComparison(
            outcome="skipped", reason="CloudWatch returned no p99 for a version", **figures
        )
    ratio = green.p99_ms / blue.p99_ms if blue.p99_ms > 0 else math.inf
    slower_by = green.p99_ms - blue.p99_ms
    numbers = f"p99 green {green.p99_ms:.1f} ms vs blue {blue.p99_ms:.1f} ms (x{ratio:.2f})"
    outcome: TestOutcome
    if slower_by < judge.p99_floor_ms or ratio <= judge.p99_marginal:
        outcome, reason = "pass", numbers
    elif ratio > judge.p99_tolerance:
        outcome, reason = "fail", f"{numbers}, over the x{judge.p99_tolerance:g} tolerance"
    else:
        outcome, reason = "marginal", f"{numbers}, over x{judge.p99_marginal:g}"
    return LatencyComparison(
        outcome=outcome, ratio=round(ratio, 4) if math.isfinite(ratio) else None, reason=reason, **figures
    )


def verdict_of(errors: ErrorComparison, latency: tuple[LatencyComparison, ...]) -> Verdict:
    tests: list[ErrorComparison | LatencyComparison] = [errors, *latency]
    worst = max((SEVERITY[test.outcome] for test in tests), default=0)
    return ("pass", "marginal", "fail")[worst]


def summarize(verdict: Verdict, errors: ErrorComparison, latency: tuple[LatencyComparison, ...]) -> str:
    """One line: the verdict, then the reasons of the tests that decided it (or all, on a pass)."""
    tests: list[ErrorComparison | LatencyComparison] = [errors, *latency]
    deciding = [test for test in tests if test.outcome == verdict] if verdict != "pass" else tests
    parts = [
        f"{test.function}: {test.reason}" if isinstance(test, LatencyComparison) else test.reason
        for test in deciding
    ]
    # A pass on which no test ran judged nothing: it says so rather than look like a clean bill.
    label = "pass (not judged)" if all(test.outcome == "skipped" for test in tests) else verdict
    return f"{label}: " + "; ".join(parts)


def judge_samples(
    samples: Mapping[str, tuple[VersionSample, VersionSample]], judge: CanaryJudge
) -> tuple[Verdict, ErrorComparison, tuple[LatencyComparison, ...]]:
    """The verdict from each function's (green, blue) samples."""
    green_total = VersionSample(
        invocations=sum(green.invocations for green, _ in samples.values()),
        errors=sum(green.errors for green, _ in samples.values()),
    )
    blue_total = VersionSample(
        invocations=sum(blue.invocations for _, blue in samples.values()),
        errors=sum(blue.errors for _, blue in samples.values()),
    )
    errors = compare_errors(green_total, blue_total, judge)
    latency = tuple(compare_latency(fn, green, blue, judge) for fn, (green, blue) in sorted(samples.items()))
    return verdict_of(errors, latency), errors, latency


# -- the metrics ------------------------------------------------------------------------------------


def _queries(function: str, version: str, prefix: str, period: int, alias: str) -> list[dict[str, Any]]:
    dimensions = [
        {"Name": "FunctionName", "Value": function},
        {"Name": "Resource", "Value": f"{function}:{alias}"},
        {"Name": "ExecutedVersion", "Value": version},
    ]
    return [
        {
            "Id": f"{prefix}_{name.lower()}",
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": dimensions},
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for name, stat in (("Invocations", "Sum"), ("Errors", "Sum"), ("Duration", "p99"))
    ]


def window_period(start: datetime, end: datetime) -> int:
    """One period over the whole window, in whole minutes: a percentile cannot be summed."""
    return max(60, math.ceil((end - start).total_seconds() / 60) * 60)


def version_samples(
    deploy: Deploy, start: datetime, end: datetime, green_alias: str = LIVE_ALIAS
) -> dict[str, tuple[VersionSample, VersionSample]]:
    """Function -> (green, blue) figures over [start, end) from GetMetricData; green's through
    `green_alias` (`live` when both versions serve it, `green` for the canary stage)."""
    period = window_period(start, end)
    queries: list[dict[str, Any]] = []
    ids: dict[str, tuple[str, str]] = {}
    for index, function in enumerate(sorted(deploy.green)):
        for side, version in (("g", deploy.green[function]), ("b", deploy.blue.get(function, ""))):
            if not version or (side == "b" and version == deploy.green[function]):
                continue
            prefix = f"{side}{index}"
            ids[prefix] = (function, side)
            alias = green_alias if side == "g" else LIVE_ALIAS
            queries.extend(_queries(function, version, prefix, period, alias))
    values: dict[str, list[float]] = {}
    cloudwatch = client("cloudwatch")
    for start_at in range(0, len(queries), MAX_QUERIES_PER_CALL):
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries[start_at : start_at + MAX_QUERIES_PER_CALL],
            "StartTime": start,
            "EndTime": end,
        }
        while True:
            page = cloudwatch.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                values.setdefault(result["Id"], []).extend(
                    float(value) for value in result.get("Values", []) if value is not None
                )
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    figures: dict[str, dict[str, VersionSample]] = {}
    for prefix, (function, side) in ids.items():
        p99 = values.get(f"{prefix}_duration") or []
        figures.setdefault(function, {})[side] = VersionSample(
            invocations=int(sum(values.get(f"{prefix}_invocations", []))),
            errors=int(sum(values.get(f"{prefix}_errors", []))),
            # Should the window straddle two periods, the worse one speaks for the version.
            p99_ms=max(p99) if p99 else None,
        )
    return {
        function: (sides.get("g", VersionSample()), sides.get("b", VersionSample()))
        for function, sides in figures.items()
    }


# -- the step -----------------------------------------------------------------------------------------


def _not_compared(reason: str) -> ErrorComparison:
    return ErrorComparison(
        outcome="skipped",
        green_invocations=0,
        green_errors=0,
        blue_invocations=0,
        blue_errors=0,
        reason=reason,
    )


def judge_canary(settings: Settings, state: JudgeCanaryInput) -> Judgement:
    """`$.judgement`, or CanaryFailed (after auditing the verdict) to send the release to Rollback."""
    shift, judge = state.shift, state.release.judge
    start, end = metrics_window(shift.shifted_at)
    earlier = state.judgement.steps if state.judgement is not None else ()
    verdict: Verdict = "pass"
    latency: tuple[LatencyComparison, ...] = ()
    if not judge.enabled:
        errors = _not_compared("the canary judge is disabled for this release")
    elif shift.percent >= 100:
        # At 100% blue serves nothing: there is no baseline left to compare with.
        errors = _not_compared("at 100% blue serves no traffic to compare with")
    else:
        green_alias = GREEN_ALIAS if state.release.routing == "connections" else LIVE_ALIAS
        samples = version_samples(state.deploy, start, end, green_alias)
        verdict, errors, latency = judge_samples(samples, judge)
    summary = summarize(verdict, errors, latency)
    step = StepVerdict(index=shift.index, percent=shift.percent, verdict=verdict, summary=summary)
    judgement = Judgement(
        verdict=verdict,
        index=shift.index,
        percent=shift.percent,
        window_start=shift.shifted_at,
        window_end=iso(end),
        errors=errors,
        latency=latency,
        summary=summary,
        steps=(*[s for s in earlier if s.index != shift.index], step),
    )
    release_record.transition(
        settings,
        state.release,
        "CANARY_JUDGED",
        f"step {shift.index + 1} at {shift.percent}%: {summary}",
        detail=judgement.model_dump(mode="json", exclude={"steps"}),
        updates={"canary_verdicts": [s.model_dump(mode="json") for s in judgement.steps]},
        publish=verdict != "pass",
    )
    log = logger.warning if verdict != "pass" else logger.info
    log("canary judged", extra={"verdict": verdict, "percent": shift.percent, "summary": summary})
    if verdict == "fail":
        raise CanaryFailed(f"green judged worse than blue at {shift.percent}%: {summary}")
    return judgement


@task_handler
@event_model(JudgeCanaryInput)
def handler(event: JudgeCanaryInput, context: Any) -> dict[str, Any]:
    return judge_canary(Settings.from_env(), event).model_dump(mode="json")
