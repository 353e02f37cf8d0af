"""Figures of a synthetic run and the verdict against the release's thresholds."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (the value that pct% of samples do not exceed)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Thresholds:
    p99_latency_ms: int
    min_success_rate: float


@dataclass
class RunResult:
    clients: int
    messages: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    unauthorized_refused: bool = False
    connected: int = 0
    connect_rate_configured: float = 0.0
    connect_rate_achieved: float = 0.0
    duration_ms: int = 0
    cpu_seconds: float = 0.0  # CPU of the event loop thread (the clients), not of the process
    warmup_latency_ms: float | None = None  # the unscored first event (green's cold start), slowest client

    @property
    def messages_expected(self) -> int:
        return self.clients * self.messages

    @property
    def messages_received(self) -> int:
        return len(self.latencies_ms)

    @property
    def success_rate(self) -> float:
        return self.messages_received / self.messages_expected if self.messages_expected else 0.0

    def latency(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies_ms)
        return {
            name: _round(percentile(ordered, pct)) for name, pct in (("p50", 50), ("p95", 95), ("p99", 99))
        }

    def failures(self, thresholds: Thresholds) -> list[str]:
        """Why the run fails the thresholds (empty when it passes)."""
        problems = []
        if self.success_rate < thresholds.min_success_rate:
            problems.append(
                f"success rate {self.success_rate:.3f} < {thresholds.min_success_rate:g} "
                f"({self.messages_received}/{self.messages_expected} deliveries)"
            )
        p99 = self.latency()["p99"]
        if p99 is not None and p99 > thresholds.p99_latency_ms:
            problems.append(f"p99 latency {p99:.0f} ms > {thresholds.p99_latency_ms} ms")
        if not self.unauthorized_refused:
            problems.append("an unauthorized connect was not refused")
        return problems

    def summary(self, thresholds: Thresholds) -> str:
        """One line for the state machine's error cause and the release record."""
        problems = self.failures(thresholds) or ["all thresholds met"]
        lat = self.latency()
        shown = ", ".join(f"{k}={'-' if v is None else f'{v:.0f}'}" for k, v in lat.items())
        errors = ", ".join(f"{kind}={count}" for kind, count in sorted(self.errors.items())) or "none"
        return (
            f"synthetic checks: {'; '.join(problems)} | clients {self.connected}/{self.clients} connected, "
            f"latency ms {shown}, errors: {errors}"
        )

    def output(self, thresholds: Thresholds) -> dict[str, object]:
        return {
            "passed": not self.failures(thresholds),
            "clients": self.clients,
            "messages_expected": self.messages_expected,
            "messages_received": self.messages_received,
            "success_rate": round(self.success_rate, 4),
            "latency_ms": self.latency(),
            "warmup_latency_ms": self.warmup_latency_ms,
            "errors": dict(sorted(self.errors.items())),
            "unauthorized_refused": self.unauthorized_refused,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
