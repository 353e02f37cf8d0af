"""Per-version Lambda metrics as CloudWatch would record them (AWS/Lambda namespace).

Each invocation is counted under the three dimension sets Lambda publishes for an alias:
{FunctionName, Resource=<fn>:<alias>, ExecutedVersion}, {FunctionName, Resource} and
{FunctionName}. Samples are buffered and sent with batched PutMetricData calls as statistic sets
(SampleCount, Sum, Minimum, Maximum per metric and dimension set and flush), as CloudWatch keeps
Lambda's metrics in aggregate: moto stores one datum per set instead of one per invocation, so
its store and GetMetricStatistics stay cheap however long traffic runs. The one exception is
Duration per executed version, which is sent as Values/Counts (a distribution): CloudWatch
computes percentiles from those, not from statistic sets, and JudgeCanary compares green's p99
with blue's.

API Gateway's metrics (`record_api`) go to AWS/ApiGateway under the dimensions {ApiId, Stage}
(WebSocket APIs: ConnectCount, MessageCount, ClientError, IntegrationError, ExecutionError as
statistic sets; IntegrationLatency as Values/Counts, like Duration).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NAMESPACE = "AWS/Lambda"
API_NAMESPACE = "AWS/ApiGateway"
# API Gateway's metrics of a WebSocket API sent as distributions (milliseconds); the rest are counts.
API_LATENCIES = {"IntegrationLatency"}
MAX_DATUMS_PER_CALL = 500  # PutMetricData takes up to 1,000 metrics per request
MAX_VALUES_PER_DATUM = 150  # PutMetricData: up to 150 distinct Values in one datum


@dataclass(frozen=True)
class Sample:
    function_name: str
    alias: str
    version: str
    duration_ms: float
    error: bool


@dataclass(frozen=True)
class ApiSample:
    """One API Gateway datum: a count (1 or 0) or, for API_LATENCIES, milliseconds."""

    api_id: str
    stage: str
    metric: str
    value: float


def dimension_sets(sample: Sample) -> list[tuple[tuple[str, str], ...]]:
    resource = f"{sample.function_name}:{sample.alias}"
    return [
        (("FunctionName", sample.function_name), ("Resource", resource), ("ExecutedVersion", sample.version)),
        (("FunctionName", sample.function_name), ("Resource", resource)),
        (("FunctionName", sample.function_name),),
    ]


def _statistics(values: list[float]) -> dict[str, float]:
    return {
        "SampleCount": float(len(values)),
        "Sum": float(sum(values)),
        "Minimum": min(values),
        "Maximum": max(values),
    }


def _distribution(durations: list[float]) -> list[tuple[list[float], list[float]]]:
    """(Values, Counts) chunks of at most MAX_VALUES_PER_DATUM distinct values (0.1 ms resolution)."""
    counts: dict[float, int] = defaultdict(int)
    for duration in durations:
        counts[round(duration, 1)] += 1
    items = sorted(counts.items())
    return [
        ([value for value, _ in chunk], [float(count) for _, count in chunk])
        for chunk in (
            items[start : start + MAX_VALUES_PER_DATUM]
            for start in range(0, len(items), MAX_VALUES_PER_DATUM)
        )
    ]


def build_metric_data(samples: list[Sample], timestamp: datetime) -> list[dict[str, Any]]:
    errors: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    durations: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    for sample in samples:
        for dims in dimension_sets(sample):
            errors[dims].append(float(sample.error))
            durations[dims].append(round(sample.duration_ms, 3))
    data: list[dict[str, Any]] = []
    for dims, failed in errors.items():
        base = {"Dimensions": [{"Name": k, "Value": v} for k, v in dims], "Timestamp": timestamp}
        count = float(len(failed))
        data.append(
            {
                **base,
                "MetricName": "Invocations",
                "Unit": "Count",
                "StatisticValues": {"SampleCount": count, "Sum": count, "Minimum": 1.0, "Maximum": 1.0},
            }
        )
        data.append({**base, "MetricName": "Errors", "Unit": "Count", "StatisticValues": _statistics(failed)})
        if any(name == "ExecutedVersion" for name, _ in dims):
            for values, counts in _distribution(durations[dims]):
                data.append(
                    {
                        **base,
                        "MetricName": "Duration",
                        "Unit": "Milliseconds",
                        "Values": values,
                        "Counts": counts,
                    }
                )
        else:
            data.append(
                {
                    **base,
                    "MetricName": "Duration",
                    "Unit": "Milliseconds",
                    "StatisticValues": _statistics(durations[dims]),
                }
            )
    return data


def build_api_metric_data(samples: list[ApiSample], timestamp: datetime) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for sample in samples:
        grouped[(sample.api_id, sample.stage, sample.metric)].append(float(sample.value))
    data: list[dict[str, Any]] = []
    for (api_id, stage, metric), values in grouped.items():
        base = {
            "MetricName": metric,
            "Dimensions": [{"Name": "ApiId", "Value": api_id}, {"Name": "Stage", "Value": stage}],
            "Timestamp": timestamp,
        }
        if metric in API_LATENCIES:
            for chunk_values, counts in _distribution(values):
                data.append({**base, "Unit": "Milliseconds", "Values": chunk_values, "Counts": counts})
        else:
            data.append({**base, "Unit": "Count", "StatisticValues": _statistics(values)})
    return data


class MetricRecorder:
    """Buffers samples; a background thread flushes them every `flush_seconds`."""

    def __init__(self, cloudwatch: Any, flush_seconds: float = 1.0) -> None:
        self._cloudwatch = cloudwatch
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        self._api_samples: list[ApiSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flush_errors = 0

    def record(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)

    def record_api(self, sample: ApiSample) -> None:
        with self._lock:
            self._api_samples.append(sample)

    def flush(self) -> int:
        """Send what is buffered now; returns the number of Lambda samples sent."""
        with self._lock:
            samples, self._samples = self._samples, []
            api_samples, self._api_samples = self._api_samples, []
        now = datetime.now(UTC)
        for namespace, data in (
            (NAMESPACE, build_metric_data(samples, now) if samples else []),
            (API_NAMESPACE, build_api_metric_data(api_samples, now) if api_samples else []),
        ):
            for start in range(0, len(data), MAX_DATUMS_PER_CALL):
                self._cloudwatch.put_metric_data(
                    Namespace=namespace, MetricData=data[start : start + MAX_DATUMS_PER_CALL]
                )
        return len(samples)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gateway-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a metrics hiccup must not stop the gateway
                self.flush_errors += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()
