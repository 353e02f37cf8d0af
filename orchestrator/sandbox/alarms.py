"""The sandbox's CloudWatch alarm evaluator.

moto stores alarms and metric data but never evaluates them. This evaluator does what
CloudWatch does for the stage's static-threshold metric alarms and composite alarms, on the
metrics the gateway really records: every tick it computes each alarm's statistic over its last
`EvaluationPeriods` periods, compares with the threshold (`DatapointsToAlarm` of them must
breach; missing data per `TreatMissingData`), sets the new state in moto (SetAlarmState) and
puts a `CloudWatch Alarm State Change` event on the stage's rules. A state set from outside
(SetAlarmState, e.g. `orchestrator release rollback`) emits the same event, as on AWS.

The datapoints come from `MetricStore`, fed by the gateway's recorder as it records each
invocation (the same samples it sends to moto's CloudWatch): moto's GetMetricStatistics
truncates its window to whole seconds and matches dimension subsets (counting an alias's
invocations twice), while CloudWatch matches the exact dimension set an alarm names.

Time is compressed: a period of P seconds lasts P / time_scale seconds of wall time.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.gateway.metrics import (
    API_NAMESPACE,
    NAMESPACE,
    ApiSample,
    MetricRecorder,
    Sample,
    dimension_sets,
)
from orchestrator.sandbox.events import EventBus, alarm_state_change_event

log = logging.getLogger(__name__)

_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


Dimensions = frozenset[tuple[str, str]]


class MetricStore:
    """Recent datapoints by (namespace, metric name, exact dimension set), with wall-clock times."""

    def __init__(self, keep_seconds: float = 600.0) -> None:
        self._lock = threading.Lock()
        self._points: dict[tuple[str, str, Dimensions], list[tuple[datetime, float]]] = {}
        self._keep = timedelta(seconds=keep_seconds)

    def put(
        self, namespace: str, name: str, dimensions: Dimensions, value: float, at: datetime | None = None
    ) -> None:
        at = at or datetime.now(UTC)
        with self._lock:
            series = self._points.setdefault((namespace, name, dimensions), [])
            series.append((at, value))
            while series and series[0][0] < at - self._keep:
                series.pop(0)

    def values(
        self, namespace: str, name: str, dimensions: Dimensions, start: datetime, end: datetime
    ) -> list[float]:
        with self._lock:
            series = list(self._points.get((namespace, name, dimensions), ()))
        return [value for at, value in series if start <= at < end]


def statistic(values: list[float], stat: str) -> float:
    if stat == "Sum":
        return sum(values)
    if stat == "Average":
        return sum(values) / len(values)
    if stat == "Maximum":
        return max(values)
    if stat == "Minimum":
        return min(values)
    if stat == "SampleCount":
        return float(len(values))
    raise ValueError(f"statistic {stat} is not evaluated by the sandbox")


@dataclass
class Transition:
    alarm: str
    state: str
    previous: str
    reason: str
    at: datetime


@dataclass
class AlarmEvaluator:
    cloudwatch: Any
    bus: EventBus
    store: MetricStore
    region: str
    account: str
    time_scale: float = 60.0
    tick_seconds: float = 0.2
    composites: list[dict[str, Any]] = field(default_factory=list)  # when DescribeAlarms returns none
    known: dict[str, str] = field(default_factory=dict)  # alarm name -> last state seen
    _children: dict[str, tuple[tuple[str, str], ...]] = field(
        default_factory=dict
    )  # composite -> child states evaluated
    # How the evaluator reads the stored alarms: DescribeAlarms by default; the sandbox passes
    # `stored_alarms` (CloudWatch's evaluation reads its own store, not its public API).
    read_alarms: Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]] | None = None
    transitions: list[Transition] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad tick must not stop alarm evaluation
                log.exception("alarm evaluation failed")

    def _alarms(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if self.read_alarms is not None:
            return self.read_alarms()
        metric: list[dict[str, Any]] = []
        composite: list[dict[str, Any]] = []
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate(
            AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        ):
            metric.extend(page.get("MetricAlarms", []))
            composite.extend(page.get("CompositeAlarms", []))
        return metric, composite

    def tick(self, now: datetime | None = None) -> list[Transition]:
        now = now or datetime.now(UTC)
        metric, composite = self._alarms()
        composite = composite or self.composites
        changes: list[Transition] = []
        # States changed by someone else since the last tick (SetAlarmState) emit their event first.
        for alarm in metric:
            name, state = alarm["AlarmName"], alarm.get("StateValue", "INSUFFICIENT_DATA")
            previous = self.known.get(name)
            if previous is not None and previous != state:
                changes.append(self._emit(alarm, state, previous, alarm.get("StateReason", ""), now))
            self.known[name] = state
        states = {a["AlarmName"]: self.known[a["AlarmName"]] for a in metric}
        for alarm in metric:
            if "MetricName" not in alarm:  # metric-math alarms are not evaluated by the sandbox
                continue
            verdict = self._evaluate(alarm, now)
            if verdict is None:
                continue
            state, reason = verdict
            states[alarm["AlarmName"]] = state
            if state != self.known[alarm["AlarmName"]]:
                changes.append(self._set(alarm, state, reason, now))
        arn_to_name = {a["AlarmArn"]: a["AlarmName"] for a in metric + composite}
        children = tuple(sorted(states.items()))
        for alarm in composite:
            name = alarm["AlarmName"]
            stored = alarm.get("StateValue")
            previous = self.known.setdefault(name, stored or "INSUFFICIENT_DATA")
            if stored is not None and stored != previous:
                # Set by SetAlarmState (e.g. `release rollback`): CloudWatch emits the change, and
                # the rule is evaluated again only when a child alarm changes state.
                changes.append(self._emit(alarm, stored, previous, alarm.get("StateReason", ""), now))
                self.known[name] = previous = stored
            if self._children.get(name) == children:
                continue
            self._children[name] = children
            state = evaluate_rule(alarm.get("AlarmRule", ""), states, arn_to_name)
            if state != previous:
                reason = composite_reason(alarm.get("AlarmRule", ""), state, states, arn_to_name)
                if stored is not None:
                    self.cloudwatch.set_alarm_state(
                        AlarmName=name, StateValue=state, StateReason=reason[:1023]
                    )
                self.known[name] = state
                changes.append(self._emit(alarm, state, previous, reason, now))
        return changes

    def _evaluate(self, alarm: dict[str, Any], now: datetime) -> tuple[str, str] | None:
        period = timedelta(seconds=float(alarm.get("Period", 60)) / self.time_scale)
        periods = int(alarm.get("EvaluationPeriods", 1))
        needed = int(alarm.get("DatapointsToAlarm") or periods)
        stat = alarm.get("Statistic", "Sum")
        compare = _COMPARE.get(alarm.get("ComparisonOperator", ""))
        if compare is None:
            return None
        breaching = 0
        missing = 0
        values: list[float] = []
        dimensions = frozenset((d["Name"], d["Value"]) for d in alarm.get("Dimensions", []))
        for index in range(periods):
            end = now - period * index
            points = self.store.values(alarm["Namespace"], alarm["MetricName"], dimensions, end - period, end)
            if not points:
                missing += 1
                continue
            value = statistic(points, stat)
            values.append(value)
            if compare(value, float(alarm["Threshold"])):
                breaching += 1
        treat = alarm.get("TreatMissingData", "missing")
        if treat == "breaching":
            breaching += missing
        if breaching >= needed:
            return "ALARM", (
                f"Threshold Crossed: {breaching} of the last {periods} datapoints {values} breached "
                f"{alarm['ComparisonOperator']} {alarm['Threshold']} (compressed periods of {period.total_seconds():.2f} s)"
            )
        if missing == periods and treat == "missing":
            return None  # keeps its state, like CloudWatch with no data and 'missing'
        return "OK", f"Threshold not crossed: datapoints {values}"

    def _set(self, alarm: dict[str, Any], state: str, reason: str, now: datetime) -> Transition:
        previous = self.known[alarm["AlarmName"]]
        self.cloudwatch.set_alarm_state(
            AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason[:1023]
        )
        self.known[alarm["AlarmName"]] = state
        return self._emit(alarm, state, previous, reason, now)

    def _emit(
        self, alarm: dict[str, Any], state: str, previous: str, reason: str, now: datetime
    ) -> Transition:
        transition = Transition(alarm["AlarmName"], state, previous, reason, now)
        self.transitions.append(transition)
        log.info("alarm %s: %s -> %s (%s)", alarm["AlarmName"], previous, state, reason)
        self.bus.put(
            alarm_state_change_event(
                alarm_name=alarm["AlarmName"],
                alarm_arn=alarm.get("AlarmArn", ""),
                state=state,
                previous=previous,
                reason=reason,
                when=now,
                region=self.region,
                account=self.account,
            )
        )
        return transition


def composite_reason(rule: str, state: str, states: dict[str, str], arn_to_name: dict[str, str]) -> str:
    """The composite's state reason, naming first the children in ALARM that its rule refers to
    (as CloudWatch's reason names the triggering alarms), so a truncated reason still says why."""
    referenced = sorted({name for arn, name in arn_to_name.items() if arn in rule or f'"{name}"' in rule})
    firing = [name for name in referenced if states.get(name) == "ALARM"]
    lead = f"{', '.join(firing)} in ALARM: " if firing else ""
    return f"{lead}composite rule {rule} is {state}"


_TERM = re.compile(
    r'\s*(ALARM|OK|INSUFFICIENT_DATA)\(\s*"?([^")]+?)"?\s*\)|\s*(AND|OR|NOT|\(|\)|TRUE|FALSE)', re.I
)


def evaluate_rule(rule: str, states: dict[str, str], arn_to_name: dict[str, str]) -> str:
    """A composite AlarmRule (ALARM(x) / OK(x) terms with AND, OR, NOT, parentheses) -> state."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(rule.rstrip()):
        match = _TERM.match(rule, pos)
        if match is None:
            raise ValueError(f"cannot parse alarm rule at {rule[pos : pos + 30]!r}")
        if match.group(1):
            tokens.append(("term", f"{match.group(1).upper()}|{match.group(2)}"))
        else:
            tokens.append(("op", match.group(3).upper()))
        pos = match.end()
    index = 0

    def term_value(text: str) -> bool:
        wanted, ref = text.split("|", 1)
        name = arn_to_name.get(ref, ref.rsplit(":alarm:", 1)[-1])
        return states.get(name, "INSUFFICIENT_DATA") == wanted

    def parse_or() -> bool:
        nonlocal index
        value = parse_and()
        while index < len(tokens) and tokens[index] == ("op", "OR"):
            index += 1
            value = parse_and() or value
        return value

    def parse_and() -> bool:
        nonlocal index
        value = parse_not()
        while index < len(tokens) and tokens[index] == ("op", "AND"):
            index += 1
            value = parse_not() and value
        return value

    def parse_not() -> bool:
        nonlocal index
        kind, text = tokens[index]
        index += 1
        if (kind, text) == ("op", "NOT"):
            return not parse_not()
        if (kind, text) == ("op", "("):
            value = parse_or()
            index += 1  # ")"
            return value
        if kind == "op":
            return text == "TRUE"
        return term_value(text)

    return "ALARM" if tokens and parse_or() else "OK"


class StoringRecorder(MetricRecorder):
    """The gateway's recorder, also keeping each sample's datapoints for the alarm evaluator."""

    def __init__(self, cloudwatch: Any, store: MetricStore, flush_seconds: float = 0.25) -> None:
        super().__init__(cloudwatch, flush_seconds=flush_seconds)
        self.store = store

    def record(self, sample: Sample) -> None:
        super().record(sample)
        now = datetime.now(UTC)
        for dims in dimension_sets(sample):
            key = frozenset(dims)
            self.store.put(NAMESPACE, "Invocations", key, 1.0, now)
            self.store.put(NAMESPACE, "Errors", key, 1.0 if sample.error else 0.0, now)
            self.store.put(NAMESPACE, "Duration", key, sample.duration_ms, now)

    def record_api(self, sample: ApiSample) -> None:
        """API Gateway's per-stage metrics too: the release guards on the canary stage watch them."""
        super().record_api(sample)
        key = frozenset((("ApiId", sample.api_id), ("Stage", sample.stage)))
        self.store.put(API_NAMESPACE, sample.metric, key, float(sample.value), datetime.now(UTC))


def stored_alarms(
    account: str, region: str
) -> Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """The alarms in the moto server of this process, in DescribeAlarms' shape (metric, composite).

    Reading the store directly spares the sandbox's CloudWatch evaluation a DescribeAlarms round
    trip several times a second (about 45 ms of moto's rendering each for the stage's 40 alarms);
    tests/unit/cli/test_sandbox_parts.py holds the two readings equal."""
    from moto.cloudwatch.models import cloudwatch_backends

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        metric: list[dict[str, Any]] = []
        composite: list[dict[str, Any]] = []
        for alarm in list(cloudwatch_backends[account][region].alarms.values()):
            item: dict[str, Any] = {
                "AlarmName": alarm.name,
                "AlarmArn": alarm.alarm_arn,
                "StateValue": alarm.state_value,
                "StateReason": alarm.state_reason,
            }
            if alarm.rule is not None:
                composite.append({**item, "AlarmRule": alarm.rule})
                continue
            optional = {
                "MetricName": alarm.metric_name,
                "Namespace": alarm.namespace,
                "Statistic": alarm.statistic,
                "Period": alarm.period,
                "EvaluationPeriods": alarm.evaluation_periods,
                "DatapointsToAlarm": alarm.datapoints_to_alarm,
                "Threshold": alarm.threshold,
                "ComparisonOperator": alarm.comparison_operator,
                "TreatMissingData": alarm.treat_missing_data,
            }
            item.update({k: v for k, v in optional.items() if v is not None})
            item["Dimensions"] = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions]
            metric.append(item)
        return metric, composite

    return read
