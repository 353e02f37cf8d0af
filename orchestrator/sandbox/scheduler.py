"""EventBridge Scheduler in the sandbox: the stage's schedules fire on the sandbox's clock.

The schedules live in moto's Scheduler (deployed from the template by `Deployer._schedules`),
so ListSchedules/GetSchedule/UpdateSchedule answer as on AWS and this runner reads them back
on every tick: a schedule disabled or changed through the API is honoured at once. Each
schedule runs when its expression (cron, rate or at, in its time zone; see
schedule_expressions.py) says so on the sandbox's virtual clock (60x by default, and moved by
`orchestrator --sandbox schedule skip-to`), within its StartDate/EndDate, delayed by a random
offset inside its flexible time window when one is set. A run the clock jumped over by more
than LATE_LIMIT_SECONDS is recorded as skipped (it did not run at its time); one a busy machine
delayed by less is fired late.

A run calls the target as EventBridge Scheduler does, with the schedule's role (its session
credentials, so the sandbox's IAM enforcement judges the call against the role's policies):
Lambda `Invoke` with InvocationType `Event` and the target's Input, or Step Functions
`StartExecution` with the Input (and a generated execution name). A call that fails with a
retryable error (throttling, 5xx) is retried with exponential back-off on the virtual clock,
at most `MaximumRetryAttempts` times and while the event is younger than
`MaximumEventAgeInSeconds`; then, or at once for an error that retrying cannot fix (access
denied, no such resource, a bad parameter), the run goes to the target's dead-letter queue: the
Input as the body, and the attributes Scheduler sets on a dead-letter event (ERROR_CODE,
ERROR_MESSAGE, EXECUTION_ID, RETRY_ATTEMPTS, SCHEDULE_ARN, TARGET_ARN). A one-time `at()`
schedule whose ActionAfterCompletion is DELETE is deleted after its run.

Every run is appended to `<sandbox>/schedule-runs.jsonl` (what the CLI's `schedule list` shows
as the last run, and what the tests read).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from orchestrator.engine.clock import VirtualClock
from orchestrator.sandbox.schedule_expressions import ExpressionError, ScheduleExpression, parse_expression

log = logging.getLogger(__name__)

RUNS_FILE = "schedule-runs.jsonl"
TICK_SECONDS = 0.05  # real seconds between looks at the clock
REFRESH_SECONDS = 1.0  # real seconds between reads of the definitions (5 API calls for the stage's 3)
# A run found due later than this (virtual seconds) was jumped over by a clock move (`schedule
# skip-to`): nothing ran at its time, so it is recorded as skipped instead of fired late with the
# wrong timestamps. Below it, a run is fired late (a busy machine delays ticks: at 60x, one real
# second is a virtual minute).
LATE_LIMIT_SECONDS = 900.0
DEFAULT_MAX_ATTEMPTS = 185
DEFAULT_MAX_EVENT_AGE = 86400
FIRST_BACKOFF_SECONDS = 2.0  # virtual seconds; doubled per retry, at most MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 300.0
RETRYABLE = {
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceException",
    "ServiceUnavailableException",
    "InternalServerError",
    "InternalServerException",
    "EC2ThrottledException",
    "ResourceConflictException",
}


@dataclass
class Run:
    """One run of a schedule, as it is recorded."""

    schedule: str  # <group>/<name>
    scheduled_for: str  # the expression's time (ISO, UTC)
    fired_at: str  # when the target was called (virtual clock)
    target: str
    trigger: str  # clock | late
    attempts: int = 0
    outcome: str = "pending"  # delivered | dead-lettered | dropped | skipped
    execution_arn: str | None = None
    error: str | None = None
    dead_letter_message_id: str | None = None
    delay_seconds: float = 0.0  # the flexible window's offset

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class _Tracked:
    arn: str
    definition: dict[str, Any]
    expression: ScheduleExpression
    next_due: datetime | None
    fingerprint: str


@dataclass
class SandboxScheduler:
    """Fires the schedules moto holds, on `clock`. `session_for(role_arn)` gives a boto3 session
    signing as that role; `endpoint_url` is the sandbox's moto server."""

    clock: VirtualClock
    scheduler: Any  # boto3 scheduler client (the sandbox's own credentials: it reads definitions)
    session_for: Callable[[str], Any]
    endpoint_url: str
    region: str
    runs_path: Path
    seed: int | None = None
    tick_seconds: float = TICK_SECONDS
    _tracked: dict[str, _Tracked] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _write_lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(init=False)
    _deliveries: list[threading.Thread] = field(default_factory=list)
    refresh_seconds: float = REFRESH_SECONDS
    _refreshed: float = float("-inf")

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - a schedule's flexible offset, not a secret

    # -- reading the definitions ----------------------------------------------------------------
    def definitions(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        groups = [g["Name"] for g in self.scheduler.list_schedule_groups().get("ScheduleGroups", [])]
        for group in groups or ["default"]:
            for item in self.scheduler.list_schedules(GroupName=group).get("Schedules", []):
                definition = self.scheduler.get_schedule(Name=item["Name"], GroupName=group)
                found[f"{group}/{item['Name']}"] = definition
        return found

    def refresh(self, now: datetime) -> None:
        """Track what moto holds now: new schedules get their next run, changed ones a new one."""
        current = self.definitions()
        for key in set(self._tracked) - set(current):
            del self._tracked[key]
        for key, definition in current.items():
            fingerprint = json.dumps(
                {
                    k: v
                    for k, v in definition.items()
                    if k not in ("ResponseMetadata", "LastModificationDate")
                },
                sort_keys=True,
                default=str,
            )
            tracked = self._tracked.get(key)
            if tracked is not None and tracked.fingerprint == fingerprint:
                continue
            try:
                expression = parse_expression(
                    definition["ScheduleExpression"], definition.get("ScheduleExpressionTimezone")
                )
            except ExpressionError as exc:
                log.warning("schedule %s never runs in the sandbox: %s", key, exc)
                self._tracked.pop(key, None)
                continue
            self._tracked[key] = _Tracked(
                arn=str(definition.get("Arn", key)),
                definition=definition,
                expression=expression,
                next_due=self._next(expression, definition, now),
                fingerprint=fingerprint,
            )

    @staticmethod
    def _next(expression: ScheduleExpression, definition: dict[str, Any], after: datetime) -> datetime | None:
        start = _aware(definition.get("StartDate"))
        if expression.kind == "rate" and start is None:
            start = _aware(definition.get("CreationDate")) or after
        due = expression.next_after(after, start=start)
        end = _aware(definition.get("EndDate"))
        return None if due is None or (end is not None and due > end) else due

    def next_runs(self) -> dict[str, str | None]:
        """<group>/<name> -> the next run (ISO), as this runner will fire it."""
        return {key: t.next_due.isoformat() if t.next_due else None for key, t in self._tracked.items()}

    # -- the loop ------------------------------------------------------------------------------------
    def start(self) -> SandboxScheduler:
        self.refresh(self.clock.now())
        self._thread = threading.Thread(target=self._loop, name="sandbox-scheduler", daemon=True)
        self._thread.start()
        return self

    @property
    def firing(self) -> bool:
        """Whether the loop runs (a sandbox started with schedules off only lists them)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self.clock.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bad tick must not stop the schedules for good
                log.exception("scheduler tick failed")
            self._stop.wait(self.tick_seconds)

    def tick(self) -> list[threading.Thread]:
        """Fire every run that is due on the clock; returns the delivery threads started."""
        now = self.clock.now()
        if time.monotonic() - self._refreshed >= self.refresh_seconds:
            self.refresh(now)
            self._refreshed = time.monotonic()
        started = []
        for key, tracked in list(self._tracked.items()):
            if tracked.definition.get("State", "ENABLED") != "ENABLED":
                continue
            due_runs: list[datetime] = []
            while tracked.next_due is not None and tracked.next_due <= now:
                due_runs.append(tracked.next_due)
                tracked.next_due = self._next(tracked.expression, tracked.definition, tracked.next_due)
            for due in due_runs:
                late = (now - due).total_seconds()
                if late > LATE_LIMIT_SECONDS:
                    self._skip(key, tracked, due)
                    continue
                started.append(self._fire(key, tracked, due, "clock" if late < 60 else "late"))
            if due_runs and tracked.next_due is None and tracked.expression.kind == "at":
                self._after_completion(key, tracked.definition)
        return started

    def _skip(self, key: str, tracked: _Tracked, due: datetime) -> None:
        log.info("schedule %s: the run of %s was jumped over by a clock move", key, due.isoformat())
        self._record(
            Run(
                schedule=key,
                scheduled_for=due.isoformat(),
                fired_at="",
                target=str(tracked.definition["Target"]["Arn"]),
                trigger="clock-jump",
                outcome="skipped",
            )
        )

    def _fire(self, key: str, tracked: _Tracked, due: datetime, trigger: str) -> threading.Thread:
        definition = tracked.definition
        window = definition.get("FlexibleTimeWindow") or {}
        delay = 0.0
        if window.get("Mode") == "FLEXIBLE":
            delay = self._rng.uniform(0, float(window.get("MaximumWindowInMinutes", 1)) * 60)
        run = Run(
            schedule=key,
            scheduled_for=due.isoformat(),
            fired_at="",
            target=str(definition["Target"]["Arn"]),
            trigger=trigger,
            delay_seconds=round(delay, 3),
        )
        thread = threading.Thread(
            target=self._deliver,
            args=(tracked.arn, definition, run, due),
            name=f"schedule {key}",
            daemon=True,
        )
        thread.start()
        self._deliveries = [t for t in self._deliveries if t.is_alive()] + [thread]
        return thread

    def _deliver(self, schedule_arn: str, definition: dict[str, Any], run: Run, due: datetime) -> None:
        target = definition["Target"]
        policy = target.get("RetryPolicy") or {}
        max_attempts = int(policy.get("MaximumRetryAttempts", DEFAULT_MAX_ATTEMPTS)) + 1
        max_age = float(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE))
        if run.delay_seconds:
            self.clock.sleep(run.delay_seconds, keep_waiting=lambda: not self._stop.is_set())
        backoff = FIRST_BACKOFF_SECONDS
        error: ClientError | None = None
        while not self._stop.is_set():
            run.attempts += 1
            run.fired_at = run.fired_at or self.clock.now().isoformat()
            try:
                run.execution_arn = self._call_target(target)
                run.outcome, run.error = "delivered", None
                break
            except ClientError as exc:
                error = exc
                code = exc.response.get("Error", {}).get("Code", "")
                run.error = f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
                retryable = code in RETRYABLE or status >= 500
                age = (self.clock.now() - due).total_seconds() + backoff
                if not retryable or run.attempts >= max_attempts or age > max_age:
                    run.outcome = self._dead_letter(schedule_arn, target, run, exc)
                    break
                log.info("schedule %s: %s, retry %d in %.0fs", run.schedule, run.error, run.attempts, backoff)
                self.clock.sleep(backoff, keep_waiting=lambda: not self._stop.is_set())
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        if run.outcome == "pending":
            run.outcome = "dropped"  # the sandbox stopped meanwhile
        if error is not None and run.outcome != "delivered":
            log.warning(
                "schedule %s: run of %s %s: %s", run.schedule, run.scheduled_for, run.outcome, run.error
            )
        else:
            log.info("schedule %s fired (%s, %s)", run.schedule, run.scheduled_for, run.trigger)
        self._record(run)

    def _call_target(self, target: dict[str, Any]) -> str | None:
        arn = str(target["Arn"])
        session = self.session_for(str(target.get("RoleArn", "")))
        payload = target.get("Input") or "{}"
        if ":function:" in arn:
            client = session.client("lambda", region_name=self.region, endpoint_url=self.endpoint_url)
            client.invoke(FunctionName=arn, InvocationType="Event", Payload=payload.encode())
            return None
        if ":stateMachine:" in arn:
            client = session.client("stepfunctions", region_name=self.region, endpoint_url=self.endpoint_url)
            return str(
                client.start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input=payload)[
                    "executionArn"
                ]
            )
        raise ClientError(
            {
                "Error": {
                    "Code": "ValidationException",
                    "Message": f"target {arn} is not emulated by the sandbox",
                }
            },
            "Target",
        )

    def _dead_letter(self, schedule_arn: str, target: dict[str, Any], run: Run, exc: ClientError) -> str:
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        if not dlq:
            return "dropped"
        _, _, _, region, account, queue = dlq.split(":", 5)
        session = self.session_for(str(target.get("RoleArn", "")))
        sqs = session.client("sqs", region_name=self.region, endpoint_url=self.endpoint_url)
        error = exc.response.get("Error", {})

        def attribute(value: str) -> dict[str, str]:
            return {"DataType": "String", "StringValue": value[:1024] or "-"}

        try:
            url = sqs.get_queue_url(QueueName=queue, QueueOwnerAWSAccountId=account)["QueueUrl"]
            sent = sqs.send_message(
                QueueUrl=url,
                MessageBody=target.get("Input") or "{}",
                MessageAttributes={
                    "ERROR_CODE": attribute(str(error.get("Code", ""))),
                    "ERROR_MESSAGE": attribute(str(error.get("Message", ""))),
                    "EXECUTION_ID": attribute(str(uuid.uuid4())),
                    "RETRY_ATTEMPTS": {"DataType": "Number", "StringValue": str(run.attempts - 1)},
                    "SCHEDULE_ARN": attribute(schedule_arn),
                    "TARGET_ARN": attribute(str(target["Arn"])),
                },
            )
        except ClientError as dlq_error:
            log.warning(
                "schedule %s: dead-letter queue %s refused the event: %s", run.schedule, dlq, dlq_error
            )
            return "dropped"
        run.dead_letter_message_id = sent.get("MessageId")
        return "dead-lettered"

    def _after_completion(self, key: str, definition: dict[str, Any]) -> None:
        if definition.get("ActionAfterCompletion") == "DELETE":
            group, name = key.split("/", 1)
            self.scheduler.delete_schedule(Name=name, GroupName=group)

    def _record(self, run: Run) -> None:
        with self._write_lock:
            self.runs_path.parent.mkdir(parents=True, exist_ok=True)
            with self.runs_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(run.to_json()) + "\n")

    def wait_deliveries(self, timeout: float = 10.0) -> None:
        for thread in list(self._deliveries):
            thread.join(timeout)


def _aware(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_runs(directory: Path) -> list[dict[str, Any]]:
    """The runs a sandbox recorded (oldest first); empty when there are none."""
    try:
        lines = (directory / RUNS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    runs = []
    for line in lines:
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return runs


def skip_target(due: datetime, lead_seconds: float) -> datetime:
    """Where to move the clock so that a run due at `due` fires `lead_seconds` later."""
    return due - timedelta(seconds=lead_seconds)
