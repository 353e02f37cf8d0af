"""EventBridge rules of the stage, evaluated locally: pattern matching and target delivery,
plus the Step Functions execution status events moto does not emit.

moto stores rules but does not deliver to in-process targets (and its TestEventPattern answers
without a result), so the sandbox matches the documented pattern syntax itself: exact values,
`prefix`, `suffix`, `anything-but`, `exists`, `numeric` and nested objects, with OR inside a
list and AND across keys.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


def _match_value(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, dict):
        if "exists" in rule:
            return bool(rule["exists"]) == present
        if not present:
            return False
        if "prefix" in rule:
            return isinstance(value, str) and value.startswith(rule["prefix"])
        if "suffix" in rule:
            return isinstance(value, str) and value.endswith(rule["suffix"])
        if "anything-but" in rule:
            banned = rule["anything-but"]
            banned = banned if isinstance(banned, list) else [banned]
            return value not in banned
        if "numeric" in rule:
            ops = rule["numeric"]
            if not isinstance(value, int | float):
                return False
            checks = {
                "<": value.__lt__,
                "<=": value.__le__,
                "=": value.__eq__,
                ">": value.__gt__,
                ">=": value.__ge__,
            }
            return all(checks[ops[i]](ops[i + 1]) for i in range(0, len(ops), 2))
        return False
    return present and rule == value


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    for key, rule in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(rule, dict):
            if not present or not isinstance(value, dict) or not matches(rule, value):
                return False
            continue
        options = rule if isinstance(rule, list) else [rule]
        values = value if isinstance(value, list) else [value]
        if not any(_match_value(option, v, present) for option in options for v in values):
            return False
    return True


@dataclass
class Rule:
    name: str
    pattern: dict[str, Any]
    targets: list[dict[str, Any]]  # {"Arn": ..., "Input"?: ...}
    enabled: bool = True


def alarm_state_change_event(
    *,
    alarm_name: str,
    alarm_arn: str,
    state: str,
    previous: str,
    reason: str,
    when: datetime,
    region: str,
    account: str,
) -> dict[str, Any]:
    """The `CloudWatch Alarm State Change` event as EventBridge delivers it."""
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [alarm_arn],
        "detail": {
            "alarmName": alarm_name,
            "state": {"value": state, "reason": reason, "timestamp": stamp},
            "previousState": {"value": previous},
            "configuration": {},
        },
    }


class EventBus:
    """Delivers an event to every enabled rule whose pattern matches, through `deliver(arn, event)`."""

    def __init__(self, rules: list[Rule], deliver: Callable[[str, dict[str, Any]], Any]) -> None:
        self.rules = rules
        self._deliver = deliver
        self.delivered: list[tuple[str, str]] = []  # (rule, target arn)

    def put(self, event: dict[str, Any]) -> list[Any]:
        results = []
        for rule in self.rules:
            if not rule.enabled or not matches(rule.pattern, event):
                continue
            for target in rule.targets:
                payload = json.loads(target["Input"]) if "Input" in target else event
                try:
                    results.append(self._deliver(target["Arn"], payload))
                    self.delivered.append((rule.name, target["Arn"]))
                except Exception:  # noqa: BLE001 - EventBridge retries; the sandbox logs and moves on
                    log.exception("rule %s: delivery to %s failed", rule.name, target["Arn"])
        return results


def execution_status_event(execution: dict[str, Any], region: str, account: str) -> dict[str, Any]:
    """`Step Functions Execution Status Change` as EventBridge delivers it (times in epoch ms)."""

    def millis(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if isinstance(value, datetime) else None

    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [execution["executionArn"]],
        "detail": {
            "executionArn": execution["executionArn"],
            "stateMachineArn": execution["stateMachineArn"],
            "name": execution["name"],
            "status": execution["status"],
            "startDate": millis(execution.get("startDate")),
            "stopDate": millis(execution.get("stopDate")),
        },
    }


class ExecutionEvents:
    """Polls the sandbox's state machines and puts a status-change event for every execution
    that starts or ends, as Step Functions does on AWS (moto emits none)."""

    def __init__(
        self, sfn: Any, machines: list[str], bus: EventBus, region: str, account: str, interval: float = 0.25
    ) -> None:
        self._sfn, self._machines, self._bus = sfn, machines, bus
        self._region, self._account, self._interval = region, account, interval
        self._seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[dict[str, Any]]:
        emitted = []
        for machine in self._machines:
            for page in self._sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
                for execution in page["executions"]:
                    arn, status = execution["executionArn"], execution["status"]
                    if self._seen.get(arn) != status:
                        self._seen[arn] = status
                        event = execution_status_event(execution, self._region, self._account)
                        emitted.append(event)
                        self._bus.put(event)
        return emitted

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="execution-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - keep polling; the next tick catches up
                log.exception("execution status polling failed")
