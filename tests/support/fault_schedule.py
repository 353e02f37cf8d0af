"""Fault schedules for release executions: what goes wrong, where, and what the release must then do.

A schedule names at most one task fault (which task, at which of its invocations, which kind),
an alarm that fires while a given traffic step bakes, a green that JudgeCanary finds worse than
blue after a given step's bake, the operator's answer at the approval gate, and the request's
shape (steps, dry run, routing). `FaultInjector` acts it out by wrapping the
in-process task handlers the engine routes to; the code under test is never changed.
`expected_outcome` is the model the property test holds each execution to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from orchestrator.engine import invoke_error
from tasks.check_alarms import CheckAlarmsInput
from tasks.judge_canary import JudgeCanaryInput

# Retry budgets of state_machines/policies.py: transient Lambda errors are retried
# `attempts` times (Rollback: 8), a timeout once; the ApprovalGate never retries a timeout.
TRANSIENT_RETRIES = {"rollback": 8}
DEFAULT_TRANSIENT_RETRIES = 4

# Tasks of the happy path, in the order the state machine first calls them.
PRE_LOCK = ("validate_request",)
BEFORE_ANY_CHANGE = ("record_release",)
# Faults in these never change the outcome: clean-up failures are caught and ignored, and a
# rollback must survive transient faults (a rollback that fails for good stops in
# RollbackFailed with the lock held on purpose, for an operator: not a schedule we generate).
# DrainCanary's failures are caught too: blue already serves the canary stage, and the rollback
# goes on to release the lock (the connections it did not close are what changes).
OUTCOME_NEUTRAL = ("cleanup_cache", "drain_canary")


class InjectedFault(RuntimeError):
    """The failure a schedule injects into a task (the state machine sees `InjectedFault`)."""


@dataclass(frozen=True)
class TaskFault:
    task: str
    at: int  # 1-based invocation of that task (retries count as invocations)
    kind: str  # exception | throttled | timeout
    repeats: int = 1  # consecutive invocations that fail this way

    @property
    def fatal(self) -> bool:
        """Does the fault outlast the task's retries?"""
        if self.kind == "exception":
            return True
        if self.kind == "throttled":
            return self.repeats > TRANSIENT_RETRIES.get(self.task, DEFAULT_TRANSIENT_RETRIES)
        return self.repeats > 1  # a timeout is retried once

    @property
    def error(self) -> str:
        """The error Step Functions reports for this fault once the retries are spent."""
        return {
            "exception": "InjectedFault",
            "throttled": "Lambda.TooManyRequestsException",
            "timeout": "Sandbox.Timedout",
        }[self.kind]


@dataclass(frozen=True)
class Schedule:
    steps: tuple[int, ...]  # traffic percents, the last one 100
    bake_seconds: int
    dry_run: bool
    approval: str | None  # None (no gate), "approve", "reject", "timeout"
    fault: TaskFault | None
    alarm_step: int | None  # 0-based traffic step during whose bake a guard alarm fires
    # 0-based traffic step (below 100%) after whose bake green's metrics are worse than blue's
    judged_faulty_step: int | None = None
    routing: str = "invocations"  # or "connections": the edge's share, the canary stage


@dataclass(frozen=True)
class Outcome:
    status: str  # the execution's status
    error: str | None  # the execution's error
    cause_prefix: str | None  # how the rollback's cause (or the failure's error) starts
    record: str | None  # the release record's status (None: never written)
    final_state: str

    @property
    def rolled_back(self) -> bool:
        return self.error == "ReleaseRolledBack"


def happy_path(schedule: Schedule) -> list[tuple[str, int]]:
    """(task, n-th call) in the order a fault-free execution makes them; ("bake", i) and
    ("decision", 0) mark where an alarm or the operator's answer takes effect."""
    calls = [
        ("validate_request", 1),
        ("record_release", 1),
        ("deploy_green", 1),
        ("warm_cache", 1),
        ("synthetic_checks", 1),
    ]
    if schedule.approval is not None:
        calls += [("request_approval", 1), ("decision", 0)]
    for index in range(len(schedule.steps)):
        # The alarm fires during the bake, so CheckAlarms of that step reads it.
        calls += [
            ("set_weights", index + 1),
            ("check_alarms", index + 1),
            ("bake", index),
            ("judge_canary", index + 1),
            ("judged", index),
        ]
    calls.append(("finalize", 1))
    if schedule.dry_run:
        calls.append(("cleanup_cache", 1))
    return calls


def calls_of(schedule: Schedule, task: str) -> int:
    return sum(1 for name, _ in happy_path(schedule) if name == task)


def expected_outcome(schedule: Schedule) -> Outcome:
    fault = schedule.fault
    for name, n in happy_path(schedule):
        if (
            fault is not None
            and fault.fatal
            and name == fault.task
            and n == fault.at
            and name not in OUTCOME_NEUTRAL
        ):
            if name in PRE_LOCK:
                return Outcome("FAILED", fault.error, fault.error, None, "RequestRejected")
            if name in BEFORE_ANY_CHANGE:
                # A timed-out attempt wrote the record before it failed: RecordReleaseAborted marks it.
                record = "ABORTED" if fault.kind == "timeout" else None
                return Outcome("FAILED", fault.error, fault.error, record, "ReleaseAborted")
            return Outcome("FAILED", "ReleaseRolledBack", fault.error, "ROLLED_BACK", "ReleaseRolledBack")
        if name == "decision" and schedule.approval == "reject":
            return Outcome(
                "FAILED", "ReleaseRolledBack", "ApprovalRejected", "ROLLED_BACK", "ReleaseRolledBack"
            )
        if name == "decision" and schedule.approval == "timeout":
            return Outcome(
                "FAILED", "ReleaseRolledBack", "States.Timeout", "ROLLED_BACK", "ReleaseRolledBack"
            )
        if name == "bake" and schedule.alarm_step == n:
            return Outcome(
                "FAILED", "ReleaseRolledBack", "AlarmTriggered", "ROLLED_BACK", "ReleaseRolledBack"
            )
        if name == "judged" and schedule.judged_faulty_step == n:
            return Outcome("FAILED", "ReleaseRolledBack", "CanaryFailed", "ROLLED_BACK", "ReleaseRolledBack")
    record = "DRY_RUN_SUCCEEDED" if schedule.dry_run else "SUCCEEDED"
    return Outcome("SUCCEEDED", None, None, record, "ReleaseSucceeded")


def drains_the_canary_stage(schedule: Schedule) -> bool:
    """After the execution, is the canary stage empty? A rollback in `connections` routing runs
    DrainCanary, unless a fault keeps its handler from running at all (a timed-out attempt did
    its work before it was reported late)."""
    if schedule.routing != "connections" or not expected_outcome(schedule).rolled_back:
        return False
    fault = schedule.fault
    return not (
        fault is not None and fault.task == "drain_canary" and fault.fatal and fault.kind != "timeout"
    )


def reaches_approval_gate(schedule: Schedule) -> bool:
    fault = schedule.fault
    for name, n in happy_path(schedule):
        if name == "decision":
            return True
        if (
            fault is not None
            and fault.fatal
            and name == fault.task
            and n == fault.at
            and name not in OUTCOME_NEUTRAL
        ):
            return False
    return False


# -- hypothesis strategies ------------------------------------------------------------------------
FAULTABLE = (
    "validate_request",
    "record_release",
    "deploy_green",
    "warm_cache",
    "synthetic_checks",
    "request_approval",
    "set_weights",
    "check_alarms",
    "judge_canary",
    "finalize",
    "cleanup_cache",
    "rollback",
    "drain_canary",
)


@st.composite
def task_faults(draw: st.DrawFn, steps: int) -> TaskFault:
    task = draw(st.sampled_from(FAULTABLE))
    # Sometimes past the task's last call: the fault never fires.
    per_step = ("set_weights", "check_alarms", "judge_canary")
    at = draw(st.integers(min_value=1, max_value=steps + 1 if task in per_step else 2))
    kinds = ["exception", "throttled", "timeout"]
    if task == "rollback":
        kinds = ["throttled", "timeout"]  # transient only (see OUTCOME_NEUTRAL)
    if task == "request_approval":
        # The gate's own invocation is not retried on timeout, and its wait's timeout is
        # the approval timeout: covered by the "timeout" decision instead.
        kinds = ["exception", "throttled"]
    kind = draw(st.sampled_from(kinds))
    budget = TRANSIENT_RETRIES.get(task, DEFAULT_TRANSIENT_RETRIES)
    if kind == "throttled":
        repeats = draw(st.integers(min_value=1, max_value=budget + 1))
        if task == "rollback":
            repeats = min(repeats, budget)
    elif kind == "timeout":
        survivable_only = task == "rollback"
        repeats = 1 if survivable_only else draw(st.integers(min_value=1, max_value=2))
    else:
        repeats = 1
    return TaskFault(task=task, at=at, kind=kind, repeats=repeats)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    count = draw(st.integers(min_value=1, max_value=5))
    percents = sorted(
        draw(st.sets(st.integers(min_value=1, max_value=99), min_size=count - 1, max_size=count - 1))
    )
    steps = (*percents, 100)
    dry_run = draw(st.booleans())
    # A dry run sends green no live traffic, and at 100% blue serves none: nothing to judge there.
    judged = st.none() if dry_run or count == 1 else st.integers(min_value=0, max_value=count - 2)
    return Schedule(
        steps=steps,
        bake_seconds=draw(st.sampled_from([0, 60, 600, 3600, 86_400])),
        dry_run=dry_run,
        approval=draw(st.sampled_from([None, None, "approve", "reject", "timeout"])),
        fault=draw(st.one_of(st.none(), task_faults(len(steps)))),
        alarm_step=draw(st.one_of(st.none(), st.none(), st.integers(min_value=0, max_value=count - 1))),
        judged_faulty_step=draw(st.one_of(st.none(), st.none(), judged)),
        routing=draw(st.sampled_from(["invocations", "connections"])),
    )


# -- acting a schedule out --------------------------------------------------------------------------
Handler = Callable[[Any, Any], Any]


def _throttle(context: Any) -> None:
    raise invoke_error("TooManyRequestsException", "Rate exceeded")


def _time_out(context: Any) -> None:
    # The function runs past its timeout (virtual time); Lambda then reports Sandbox.Timedout
    # although the handler's work (below) happened: a timed-out task may have had its effect.
    context.clock.sleep(context.get_remaining_time_in_millis() / 1000 + 1)


def _raise(context: Any) -> None:
    raise InjectedFault("injected by the fault schedule")


_ACTIONS: dict[str, Callable[[Any], None]] = {
    "exception": _raise,
    "throttled": _throttle,
    "timeout": _time_out,
}


@dataclass
class FaultInjector:
    """Wraps task handlers; `arm(schedule, fire_alarm)` sets what the next execution meets."""

    schedule: Schedule | None = None
    fire_alarm: Callable[[], None] | None = None
    # Given the judge's input, sends the metrics of a green worse than blue over its window.
    degrade_green: Callable[[JudgeCanaryInput], None] | None = None
    invocations: dict[str, int] = field(default_factory=dict)
    alarm_fired: bool = False
    green_degraded: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(
        self,
        schedule: Schedule,
        fire_alarm: Callable[[], None],
        degrade_green: Callable[[JudgeCanaryInput], None] | None = None,
    ) -> None:
        with self._lock:
            self.schedule, self.fire_alarm, self.degrade_green = schedule, fire_alarm, degrade_green
            self.invocations = {}
            self.alarm_fired = self.green_degraded = False

    def wrap(self, key: str, handler: Handler) -> Handler:
        def run(event: Any, context: Any) -> Any:
            with self._lock:
                n = self.invocations[key] = self.invocations.get(key, 0) + 1
                schedule = self.schedule
            if schedule is not None:
                if key == "check_alarms" and schedule.alarm_step is not None and not self.alarm_fired:
                    if CheckAlarmsInput.model_validate(event).shift.index == schedule.alarm_step:
                        assert self.fire_alarm is not None
                        self.fire_alarm()
                        self.alarm_fired = True
                if key == "judge_canary" and schedule.judged_faulty_step is not None:
                    judged = JudgeCanaryInput.model_validate(event)
                    if judged.shift.index == schedule.judged_faulty_step and not self.green_degraded:
                        # Once: a retried JudgeCanary reads the same metrics again.
                        assert self.degrade_green is not None
                        self.degrade_green(judged)
                        self.green_degraded = True
                fault = schedule.fault
                if fault is not None and fault.task == key and fault.at <= n < fault.at + fault.repeats:
                    _ACTIONS[fault.kind](context)
            return handler(event, context)

        return run
