"""The daily cost check against moto's Cost Explorer (results queued through moto's API),
CloudWatch and SNS."""

from __future__ import annotations

from datetime import date, timedelta

import boto3
import pytest
import requests

from tasks import cost_check
from tasks.cost_check import CostSettings, evaluate
from tests.support.ops_world import lambda_context

DAY = date(2026, 3, 9)


def _period(day: date, services: dict[str, float], estimated: bool = False) -> dict:
    return {
        "TimePeriod": {"Start": day.isoformat(), "End": (day + timedelta(days=1)).isoformat()},
        "Total": {},
        "Groups": [
            {"Keys": [name], "Metrics": {"UnblendedCost": {"Amount": str(usd), "Unit": "USD"}}}
            for name, usd in services.items()
        ],
        "Estimated": estimated,
    }


def queue_costs(days: list[dict[str, float]], last: dict[str, float]) -> None:
    """Seven trailing days then DAY, as one Cost Explorer answer (moto serves queued results)."""
    periods = [_period(DAY - timedelta(days=7 - i), services) for i, services in enumerate(days)]
    periods.append(_period(DAY, last, estimated=True))
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results",
        json={"results": [{"ResultsByTime": periods}]},
        timeout=5,
    )
    assert response.status_code == 201


NORMAL = {"Amazon ElastiCache": 8.0, "AWS Lambda": 3.0, "Amazon Virtual Private Cloud": 4.0}


def test_normal_day_publishes_cost_and_no_anomaly(ops_world, clock, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_BUDGET_USD", "25")
    queue_costs([NORMAL] * 7, {**NORMAL, "AWS Lambda": 3.5})
    result = cost_check.handler({}, lambda_context())
    assert result["day"] == DAY.isoformat() and result["estimated"]
    assert result["total_usd"] == 15.5 and result["trailing_mean_usd"] == 15.0 and not result["anomaly"]
    assert ops_world.metric("EstimatedDailyCost") == [15.5]
    assert ops_world.metric("CostAnomaly") == [0.0]
    assert ops_world.metric("CostVsBudgetPercent") == [62.0]
    assert ops_world.notices() == []


def test_jump_above_mean_notifies_with_the_service_that_grew(ops_world, clock, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_BUDGET_USD", "100")
    queue_costs([NORMAL] * 7, {**NORMAL, "Amazon Virtual Private Cloud": 19.0})
    result = cost_check.handler({}, lambda_context())
    assert result["anomaly"] and result["total_usd"] == 30.0 and result["mean_percent"] == 200.0
    assert result["by_service"][0]["service"] == "Amazon Virtual Private Cloud"
    assert ops_world.metric("CostAnomaly") == [1.0]
    [notice] = ops_world.notices()
    assert notice["kind"] == "cost anomaly"
    assert "200% of the 7-day mean 15.00 USD" in notice["summary"]
    assert notice["detail"]["top_growth"].startswith("Amazon Virtual Private Cloud +15.00")


def test_over_budget_is_an_anomaly_even_when_steady(ops_world, clock, monkeypatch) -> None:
    monkeypatch.setenv("DAILY_BUDGET_USD", "10")
    queue_costs([NORMAL] * 7, NORMAL)
    result = cost_check.handler({}, lambda_context())
    assert result["anomaly"] and result["reasons"] == ["15.00 USD is over the daily budget of 10.00 USD"]


def test_request_filters_on_project_and_environment_tags(ops_world, clock, monkeypatch) -> None:
    ce = boto3.client("ce", region_name="us-east-1")
    sent: list[dict] = []
    ce.meta.events.register(
        "provide-client-params.ce.GetCostAndUsage", lambda params, **_: sent.append(params)
    )
    cost_check.check(CostSettings(environment="staging", daily_budget_usd=25), ce)
    [request] = sent
    assert request["TimePeriod"] == {"Start": "2026-03-02", "End": "2026-03-10"}
    assert request["GroupBy"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]
    assert request["Filter"] == {
        "And": [
            {"Tags": {"Key": "Project", "Values": ["realtime-analytics"], "MatchOptions": ["EQUALS"]}},
            {"Tags": {"Key": "Environment", "Values": ["staging"], "MatchOptions": ["EQUALS"]}},
        ]
    }


def test_small_absolute_jump_and_short_history_are_not_anomalies() -> None:
    settings = CostSettings(environment="staging", daily_budget_usd=25, anomaly_min_usd=1.0)
    tiny = {
        DAY.isoformat(): {"AWS Lambda": 0.9},
        **{(DAY - timedelta(days=n)).isoformat(): {"AWS Lambda": 0.1} for n in range(1, 8)},
    }
    assert not evaluate(tiny, DAY, settings)["anomaly"]
    short = {
        DAY.isoformat(): {"AWS Lambda": 20.0},
        (DAY - timedelta(days=1)).isoformat(): {"AWS Lambda": 1.0},
    }
    result = evaluate(short, DAY, settings)
    assert result["trailing_mean_usd"] is None and not result["anomaly"]


def test_settings_name_the_bad_variable() -> None:
    with pytest.raises(ValueError, match="DAILY_BUDGET_USD must be a number"):
        CostSettings.from_env({"ENVIRONMENT": "staging", "DAILY_BUDGET_USD": "lots"})
