"""Cost Explorer for the sandbox: a seeded cost history that answers GetCostAndUsage.

moto's Cost Explorer answers from a queue of canned results, one per distinct request, so a
daily check that asks about a new day each time would read whatever was queued next. The
sandbox answers from data instead: every day has a cost per service, the staging stage's
usual spend (about the offline estimate of `orchestrator cost estimate --env staging`, some
7 USD a day, with a steady day-to-day wobble), and days can be overridden (`set_day`) so a test
or an operator can make one day cost what an incident would. Requests get DAILY or MONTHLY
periods over [Start, End), grouped by SERVICE or not, for the metrics asked; the Filter is
accepted as given (everything seeded is the project's, under its cost-allocation tags), and the
current and previous day read `Estimated`, as Cost Explorer's unsettled days do.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

# USD per day of the staging stage, by Cost Explorer's SERVICE names.
BASELINE: dict[str, float] = {
    "Amazon ElastiCache": 2.45,
    "Amazon Virtual Private Cloud": 1.72,
    "Amazon Elastic Compute Cloud - Compute": 1.08,
    "AWS Lambda": 0.52,
    "Amazon CloudWatch": 0.41,
    "AWS Key Management Service": 0.30,
    "Amazon API Gateway": 0.22,
    "AWS Secrets Manager": 0.13,
    "Amazon Simple Queue Service": 0.06,
    "AWS Step Functions": 0.04,
    "Amazon CloudFront": 0.03,
    "Amazon Simple Storage Service": 0.03,
    "Amazon DynamoDB": 0.02,
}
WOBBLE = 0.06  # +-6% per service and day, the same for the same day every time


class CostData:
    def __init__(self, today: Callable[[], date], baseline: dict[str, float] | None = None) -> None:
        self.today = today
        self.baseline = dict(BASELINE if baseline is None else baseline)
        self._overrides: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def set_day(self, day: date, costs: dict[str, float]) -> None:
        """That day costs exactly `costs` (service -> USD)."""
        with self._lock:
            self._overrides[day.isoformat()] = {k: float(v) for k, v in costs.items()}

    def reset(self) -> None:
        with self._lock:
            self._overrides.clear()

    def day(self, day: date) -> dict[str, float]:
        with self._lock:
            override = self._overrides.get(day.isoformat())
        if override is not None:
            return dict(override)
        if day > self.today():
            return {}  # no cost before it is incurred
        out = {}
        for service, usd in self.baseline.items():
            digest = hashlib.sha256(f"{day.isoformat()}/{service}".encode()).digest()
            factor = 1 + WOBBLE * (digest[0] / 127.5 - 1)
            out[service] = round(usd * factor, 4)
        return out

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """GetCostAndUsage's response for `request` (its JSON body)."""
        period = request.get("TimePeriod") or {}
        start, end = date.fromisoformat(period["Start"]), date.fromisoformat(period["End"])
        granularity = request.get("Granularity", "DAILY")
        metrics = request.get("Metrics") or ["UnblendedCost"]
        by_service = any(g.get("Key") == "SERVICE" for g in request.get("GroupBy") or [])
        settled_before = self.today() - timedelta(days=1)
        results = []
        for first, last in _periods(start, end, granularity):
            totals: dict[str, float] = {}
            day = first
            while day < last:
                for service, usd in self.day(day).items():
                    totals[service] = totals.get(service, 0.0) + usd
                day += timedelta(days=1)
            entry: dict[str, Any] = {
                "TimePeriod": {"Start": first.isoformat(), "End": last.isoformat()},
                "Estimated": last > settled_before,
                "Total": {},
                "Groups": [],
            }
            if by_service:
                entry["Groups"] = [
                    {"Keys": [service], "Metrics": {m: _amount(usd) for m in metrics}}
                    for service, usd in sorted(totals.items())
                ]
            else:
                entry["Total"] = {m: _amount(sum(totals.values())) for m in metrics}
            results.append(entry)
        return {
            "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}] if by_service else [],
            "ResultsByTime": results,
            "DimensionValueAttributes": [],
        }


def _amount(usd: float) -> dict[str, str]:
    return {"Amount": f"{usd:.10f}".rstrip("0").rstrip(".") or "0", "Unit": "USD"}


def _periods(start: date, end: date, granularity: str) -> list[tuple[date, date]]:
    periods = []
    first = start
    while first < end:
        if granularity == "MONTHLY":
            following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        else:
            following = first + timedelta(days=1)
        periods.append((first, min(following, end)))
        first = following
    return periods


def today_of(clock_now: Callable[[], datetime]) -> Callable[[], date]:
    return lambda: clock_now().date()
