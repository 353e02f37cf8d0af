"""Daily cost check: yesterday's cost of the project (by its cost-allocation tags), per service,
against the configured daily budget and the trailing 7-day mean.

Cost Explorer data for a day settles over the following day, so the check reads the last full
UTC day (marked `estimated` when Cost Explorer says so). It publishes, dimension Environment:

  EstimatedDailyCost      yesterday's total, USD
  CostVsBudgetPercent     yesterday / daily budget * 100
  CostVsTrailingMeanPercent  yesterday / mean of the 7 days before * 100 (when 3+ days exist)
  CostAnomaly             1 when over budget or above the mean by the threshold, else 0

and notifies the operations topic on an anomaly with the services that grew most. AWS Budgets
(forecast alerts, in infra) watch the month; this check catches a one-day jump within a day.

Settings (environment, tasks.settings.CostSettings): ENVIRONMENT, DAILY_BUDGET_USD, COST_TAG_KEY / COST_TAG_VALUE (default
Project / realtime-analytics), ANOMALY_THRESHOLD_PERCENT (default 30), ANOMALY_MIN_USD
(default 1: jumps smaller than this are noise, whatever their percentage).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date, timedelta
from statistics import mean
from typing import Any

import boto3

from tasks.common import _CLIENT_CONFIG, logger, task_handler, utc_now
from tasks.operations import OpsContext
from tasks.settings import CostSettings

# Cost Explorer has one endpoint, in us-east-1 (aws partition).
COST_EXPLORER_REGION = "us-east-1"
TRAILING_DAYS = 7
MIN_HISTORY_DAYS = 3
COST_METRIC = "UnblendedCost"


def cost_explorer(session: boto3.Session | None = None, endpoint_url: str | None = None) -> Any:
    session = session or boto3.Session()
    return session.client(
        "ce", region_name=COST_EXPLORER_REGION, endpoint_url=endpoint_url, config=_CLIENT_CONFIG
    )


def daily_costs_by_service(
    ce: Any, *, start: date, end: date, tag_key: str, tag_value: str, environment: str | None
) -> tuple[dict[str, dict[str, float]], set[str]]:
    """{day: {service: USD}} for start <= day < end, and the days Cost Explorer marks estimated."""
    tags = [{"Tags": {"Key": tag_key, "Values": [tag_value], "MatchOptions": ["EQUALS"]}}]
    if environment:
        tags.append({"Tags": {"Key": "Environment", "Values": [environment], "MatchOptions": ["EQUALS"]}})
    request: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [COST_METRIC],
        "Filter": {"And": tags} if len(tags) > 1 else tags[0],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    days: dict[str, dict[str, float]] = defaultdict(dict)
    estimated: set[str] = set()
    while True:
        page = ce.get_cost_and_usage(**request)
        for period in page.get("ResultsByTime", []):
            day = period["TimePeriod"]["Start"]
            days[day]  # a day with no cost is a day, not a gap
            if period.get("Estimated"):
                estimated.add(day)
            for group in period.get("Groups", []):
                service = group["Keys"][0]
                amount = float(group["Metrics"][COST_METRIC]["Amount"])
                days[day][service] = days[day].get(service, 0.0) + amount
            if not period.get("Groups") and period.get("Total", {}).get(COST_METRIC):
                days[day]["(total)"] = float(period["Total"][COST_METRIC]["Amount"])
        token = page.get("NextPageToken")
        if not token:
            return dict(days), estimated
        request["NextPageToken"] = token


def evaluate(
    costs: Mapping[str, Mapping[str, float]],
    day: date,
    settings: CostSettings,
    estimated: set[str] | None = None,
) -> dict[str, Any]:
    """Compare `day` with the budget and the mean of the TRAILING_DAYS before it."""
    key = day.isoformat()
    today = dict(costs.get(key, {}))
    total = round(sum(today.values()), 4)
    history = [
        sum(costs[d].values())
        for d in ((day - timedelta(days=n)).isoformat() for n in range(1, TRAILING_DAYS + 1))
        if d in costs
    ]
    trailing_mean = round(mean(history), 4) if len(history) >= MIN_HISTORY_DAYS else None
    over_budget = total > settings.daily_budget_usd
    vs_mean = round(total / trailing_mean * 100, 2) if trailing_mean else None
    above_mean = bool(
        trailing_mean is not None
        and total > trailing_mean * (1 + settings.anomaly_threshold_percent / 100)
        and total - trailing_mean >= settings.anomaly_min_usd
    )
    growth: list[dict[str, Any]] = []
    for service, amount in today.items():
        past = [
            costs[d].get(service, 0.0)
            for d in ((day - timedelta(days=n)).isoformat() for n in range(1, TRAILING_DAYS + 1))
            if d in costs
        ]
        baseline = mean(past) if past else 0.0
        growth.append(
            {
                "service": service,
                "usd": round(amount, 4),
                "mean_usd": round(baseline, 4),
                "delta_usd": round(amount - baseline, 4),
            }
        )
    growth.sort(key=lambda g: g["delta_usd"], reverse=True)
    reasons = []
    if over_budget:
        reasons.append(f"{total:.2f} USD is over the daily budget of {settings.daily_budget_usd:.2f} USD")
    if above_mean and trailing_mean is not None:
        reasons.append(
            f"{total:.2f} USD is {vs_mean:.0f}% of the 7-day mean {trailing_mean:.2f} USD "
            f"(threshold +{settings.anomaly_threshold_percent:.0f}%)"
        )
    return {
        "environment": settings.environment,
        "day": key,
        "estimated": key in (estimated or set()),
        "total_usd": total,
        "daily_budget_usd": settings.daily_budget_usd,
        "budget_percent": round(total / settings.daily_budget_usd * 100, 2),
        "trailing_mean_usd": trailing_mean,
        "trailing_days": len(history),
        "mean_percent": vs_mean,
        "anomaly": over_budget or above_mean,
        "reasons": reasons,
        "by_service": growth,
    }


def check(settings: CostSettings, ce: Any, day: date | None = None) -> dict[str, Any]:
    day = day or (utc_now().date() - timedelta(days=1))
    costs, estimated = daily_costs_by_service(
        ce,
        start=day - timedelta(days=TRAILING_DAYS),
        end=day + timedelta(days=1),
        tag_key=settings.tag_key,
        tag_value=settings.tag_value,
        environment=settings.environment,
    )
    return evaluate(costs, day, settings, estimated)


def publish(ops: OpsContext, result: Mapping[str, Any]) -> None:
    metrics: dict[str, tuple[float, str]] = {
        "EstimatedDailyCost": (result["total_usd"], "None"),
        "CostVsBudgetPercent": (result["budget_percent"], "Percent"),
        "CostAnomaly": (1 if result["anomaly"] else 0, "Count"),
    }
    if result["mean_percent"] is not None:
        metrics["CostVsTrailingMeanPercent"] = (result["mean_percent"], "Percent")
    ops.put_metrics(metrics)
    if result["anomaly"]:
        top = ", ".join(
            f"{g['service']} +{g['delta_usd']:.2f}" for g in result["by_service"][:3] if g["delta_usd"] > 0
        )
        ops.notify(
            "cost anomaly",
            f"{result['day']}: " + "; ".join(result["reasons"]),
            {**result, "top_growth": top, "runbook": "runbooks/cost-anomaly.md"},
        )


@task_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = CostSettings.from_env()
    day = date.fromisoformat(event["day"]) if isinstance(event, dict) and event.get("day") else None
    result = check(settings, cost_explorer(), day)
    publish(OpsContext.of(settings), result)
    logger.info("cost check", extra={"cost": {k: v for k, v in result.items() if k != "by_service"}})
    return result
