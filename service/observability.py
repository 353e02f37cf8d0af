"""Powertools logger, tracer and per-invocation EMF metrics for every handler.

Metrics use an `EphemeralMetrics` instance per invocation (held in a context variable) rather
than the process-wide `Metrics` singleton: the local gateway runs invocations of several
versions concurrently in one process, and a shared metric set would mix (or race on) them.
In Lambda, one invocation at a time per container, the output is identical.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from service.settings import env, settings

NAMESPACE_DEFAULT = "RealtimeAnalytics"

logger = Logger(service="realtime-analytics")
tracer = Tracer(service="realtime-analytics")

_current: ContextVar[EphemeralMetrics | None] = ContextVar("service_metrics", default=None)

F = TypeVar("F", bound=Callable[..., Any])


def _new_metrics() -> EphemeralMetrics:
    current = env()
    return EphemeralMetrics(
        namespace=current.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE_DEFAULT,
        service=current.get("POWERTOOLS_SERVICE_NAME") or "realtime-analytics",
    )


@contextmanager
def metrics_scope() -> Iterator[EphemeralMetrics]:
    """Collect the metrics of one invocation and emit them as one EMF record at its end."""
    metrics = _new_metrics()
    metrics.add_metadata(key="service_version", value=settings().service_version)
    token = _current.set(metrics)
    try:
        yield metrics
    finally:
        _current.reset(token)
        if metrics.metric_set:
            metrics.flush_metrics()


def log_metrics(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(event: Any, context: Any) -> Any:
        with metrics_scope():
            return fn(event, context)

    return wrapper  # type: ignore[return-value]


def add_metric(name: str, unit: MetricUnit, value: float) -> None:
    """Record a business metric on the current invocation (ignored outside one)."""
    metrics = _current.get()
    if metrics is not None and value:
        metrics.add_metric(name=name, unit=unit, value=value)


__all__ = ["MetricUnit", "add_metric", "log_metrics", "logger", "metrics_scope", "tracer"]
