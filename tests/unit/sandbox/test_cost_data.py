"""The sandbox's Cost Explorer: a seeded history answering GetCostAndUsage, read by the cost check."""

from __future__ import annotations

from datetime import date, timedelta

from orchestrator.sandbox.cost_data import BASELINE, CostData
from tasks.cost_check import CostSettings, daily_costs_by_service, evaluate

TODAY = date(2026, 12, 2)


class Explorer:
    """What the cost check's client sees: the request's JSON shape in, the answer out."""

    def __init__(self, data: CostData) -> None:
        self.data = data

    def get_cost_and_usage(self, **request: object) -> dict[str, object]:
        return self.data.answer(request)  # type: ignore[arg-type]


def test_every_past_day_costs_about_the_baseline_and_the_same_each_time() -> None:
    data = CostData(lambda: TODAY)
    day = data.day(TODAY - timedelta(days=3))
    assert set(day) == set(BASELINE)
    assert abs(sum(day.values()) - sum(BASELINE.values())) < 0.06 * sum(BASELINE.values())
    assert data.day(TODAY - timedelta(days=3)) == day
    assert data.day(TODAY + timedelta(days=1)) == {}


def test_the_answer_has_cost_explorers_shape_daily_by_service() -> None:
    data = CostData(lambda: TODAY)
    answer = data.answer(
        {
            "TimePeriod": {"Start": "2026-11-28", "End": "2026-12-02"},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"],
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
        }
    )
    periods = answer["ResultsByTime"]
    assert [p["TimePeriod"]["Start"] for p in periods] == [
        "2026-11-28",
        "2026-11-29",
        "2026-11-30",
        "2026-12-01",
    ]
    assert [p["Estimated"] for p in periods] == [False, False, False, True]  # yesterday has not settled
    group = periods[0]["Groups"][0]
    assert (
        group["Metrics"]["UnblendedCost"]["Unit"] == "USD"
        and float(group["Metrics"]["UnblendedCost"]["Amount"]) > 0
    )


def test_monthly_totals_add_the_days() -> None:
    data = CostData(lambda: TODAY, baseline={"AWS Lambda": 1.0})
    data.set_day(date(2026, 11, 3), {"AWS Lambda": 2.0})
    [november] = data.answer(
        {
            "TimePeriod": {"Start": "2026-11-01", "End": "2026-12-01"},
            "Granularity": "MONTHLY",
            "Metrics": ["UnblendedCost"],
        }
    )["ResultsByTime"]
    assert abs(float(november["Total"]["UnblendedCost"]["Amount"]) - 31.0) < 1.0


def test_the_cost_check_finds_a_normal_day_normal_and_an_overridden_day_anomalous() -> None:
    data = CostData(lambda: TODAY)
    settings = CostSettings(environment="staging", daily_budget_usd=25)
    yesterday = TODAY - timedelta(days=1)

    def judge() -> dict[str, object]:
        costs, estimated = daily_costs_by_service(
            Explorer(data),
            start=yesterday - timedelta(days=7),
            end=TODAY,
            tag_key="Project",
            tag_value="x",
            environment="staging",
        )
        return evaluate(costs, yesterday, settings, estimated)

    normal = judge()
    assert normal["anomaly"] is False and normal["total_usd"] < 25

    data.set_day(yesterday, {**data.day(yesterday), "Amazon ElastiCache": 31.0})
    spike = judge()
    assert spike["anomaly"] is True and spike["total_usd"] > 25
    assert spike["by_service"][0]["service"] == "Amazon ElastiCache"

    data.reset()
    assert judge()["anomaly"] is False
