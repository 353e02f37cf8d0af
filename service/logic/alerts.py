"""Threshold alert rules, evaluated on each event against the channel's previous snapshot.

Rules come from env ALERT_RULES (a JSON list of AlertRule) or DEFAULT_RULES. Kinds:
- change_pct / rise_pct / drop_pct: |change|, rise or fall of `payload[field]` versus the
  previous event of the channel, in percent, at least `threshold`;
- above / below: `payload[field]` at or beyond `threshold`.
An alert fires at most once per rule, channel and window (`window_seconds`, aligned to the
event's time): the window key is claimed with SET NX EX before publishing. Synthetic events
never raise alerts.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from service import keys
from service.models import Event

RuleKind = Literal["change_pct", "rise_pct", "drop_pct", "above", "below"]


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    channel_prefix: str = Field(min_length=1, max_length=80)
    field: str = Field(min_length=1, max_length=64)
    kind: RuleKind
    threshold: float
    window_seconds: int = Field(default=300, ge=1, le=86_400)


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    kind: RuleKind
    channel: str
    field: str
    threshold: float
    value: float
    previous_value: float | None
    change_pct: float | None
    event_id: str
    event_ts: float
    window: int


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule(id="price-move-5pct", channel_prefix="price:", field="price", kind="change_pct", threshold=5.0),
    AlertRule(id="tvl-drop-10pct", channel_prefix="tvl:", field="tvl", kind="drop_pct", threshold=10.0),
)

_RULES = TypeAdapter(list[AlertRule])


def parse_rules(raw: list[dict[str, Any]] | None) -> tuple[AlertRule, ...]:
    return DEFAULT_RULES if raw is None else tuple(_RULES.validate_python(raw))


def _number(payload: dict[str, Any], field: str) -> float | None:
    value = payload.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def evaluate(rules: tuple[AlertRule, ...], event: Event, previous: Event | None) -> list[Alert]:
    if event.synthetic:
        return []
    alerts = []
    for rule in rules:
        if not event.channel.startswith(rule.channel_prefix):
            continue
        value = _number(event.payload, rule.field)
        if value is None:
            continue
        before = _number(previous.payload, rule.field) if previous else None
        change = (value - before) / abs(before) * 100 if before not in (None, 0.0) else None
        fired = {
            "above": value >= rule.threshold,
            "below": value <= rule.threshold,
            "change_pct": change is not None and abs(change) >= rule.threshold,
            "rise_pct": change is not None and change >= rule.threshold,
            "drop_pct": change is not None and -change >= rule.threshold,
        }[rule.kind]
        if fired:
            alerts.append(
                Alert(
                    rule_id=rule.id,
                    kind=rule.kind,
                    channel=event.channel,
                    field=rule.field,
                    threshold=rule.threshold,
                    value=value,
                    previous_value=before,
                    change_pct=round(change, 4) if change is not None else None,
                    event_id=event.id,
                    event_ts=event.ts,
                    window=int(event.ts // 1000 // rule.window_seconds),
                )
            )
    return alerts


def publish(
    alerts: list[Alert], rules: tuple[AlertRule, ...], r: redis.Redis, sns: Any, topic_arn: str
) -> int:
    """Publish the alerts not yet published in their window; returns how many were sent."""
    windows = {rule.id: rule.window_seconds for rule in rules}
    sent = 0
    for alert in alerts:
        dedup = keys.alert_dedup_key(alert.rule_id, alert.channel, alert.window)
        if not r.set(dedup, alert.event_id, nx=True, ex=windows[alert.rule_id]):
            continue
        try:
            sns.publish(
                TopicArn=topic_arn,
                Subject=f"Alert {alert.rule_id} on {alert.channel}"[:100],
                Message=json.dumps(alert.model_dump(), separators=(",", ":")),
                MessageAttributes={
                    "rule_id": {"DataType": "String", "StringValue": alert.rule_id},
                    "channel": {"DataType": "String", "StringValue": alert.channel},
                },
            )
        except Exception:
            # Give the window back so the redelivered event can publish it.
            r.delete(dedup)
            raise
        sent += 1
    return sent
