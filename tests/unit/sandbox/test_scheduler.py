"""The sandbox's scheduler: runs on the virtual clock, calls targets as their role, retries, DLQ."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.engine.clock import VirtualClock
from orchestrator.sandbox.scheduler import SandboxScheduler

ROLE = "arn:aws:iam::111111111111:role/staging-ops-scheduler"
FUNCTION = "arn:aws:lambda:eu-west-1:111111111111:function:staging-ops-backup"
MACHINE = "arn:aws:states:eu-west-1:111111111111:stateMachine:staging-dr-drill"
DLQ = "arn:aws:sqs:eu-west-1:111111111111:staging-ops-schedules-dlq"


def error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} says no"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Invoke",
    )


class FakeScheduler:
    def __init__(self, schedules: dict[str, dict[str, Any]]) -> None:
        self.schedules = schedules
        self.deleted: list[str] = []

    def list_schedule_groups(self) -> dict[str, Any]:
        return {"ScheduleGroups": [{"Name": "ops"}]}

    def list_schedules(self, GroupName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"Schedules": [{"Name": name} for name in self.schedules]}

    def get_schedule(self, Name: str, GroupName: str) -> dict[str, Any]:  # noqa: N803
        return {
            "Name": Name,
            "GroupName": GroupName,
            "Arn": f"arn:schedule/{GroupName}/{Name}",
            **self.schedules[Name],
        }

    def delete_schedule(self, Name: str, GroupName: str) -> None:  # noqa: N803
        self.deleted.append(Name)
        del self.schedules[Name]


class FakeClient:
    def __init__(
        self, calls: list[tuple[str, str, dict[str, Any]]], role: str, failures: list[Exception]
    ) -> None:
        self.calls, self.role, self.failures = calls, role, failures

    def _call(self, operation: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((self.role, operation, kwargs))
        if operation in ("invoke", "start_execution") and self.failures:
            raise self.failures.pop(0)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self._call("invoke", kwargs)
        return {"StatusCode": 202}

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self._call("start_execution", kwargs)
        return {"executionArn": f"{MACHINE.replace(':stateMachine:', ':execution:')}:{kwargs['name']}"}

    def get_queue_url(self, **kwargs: Any) -> dict[str, Any]:
        self._call("get_queue_url", kwargs)
        return {"QueueUrl": "http://sqs/dlq"}

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self._call("send_message", kwargs)
        return {"MessageId": "m-1"}


def schedule(expression: str, arn: str = FUNCTION, **extra: Any) -> dict[str, Any]:
    target = {
        "Arn": arn,
        "RoleArn": ROLE,
        "Input": json.dumps({"source": "schedule"}),
        "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
        "DeadLetterConfig": {"Arn": DLQ},
    }
    return {
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": "UTC",
        "State": "ENABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": target,
        **extra,
    }


def make(
    tmp_path: Path, schedules: dict[str, dict[str, Any]], start: str, failures: list[Exception] | None = None
) -> tuple[SandboxScheduler, VirtualClock, list[tuple[str, str, dict[str, Any]]]]:
    clock = VirtualClock(datetime.fromisoformat(start).replace(tzinfo=UTC), auto_advance=True, speed=1.0)
    calls: list[tuple[str, str, dict[str, Any]]] = []
    pending = failures if failures is not None else []

    class Session:
        def __init__(self, role: str) -> None:
            self.role = role

        def client(self, service: str, **_: Any) -> FakeClient:
            return FakeClient(calls, self.role, pending)

    runner = SandboxScheduler(
        clock=clock,
        scheduler=FakeScheduler(schedules),
        session_for=Session,
        endpoint_url="http://moto",
        region="eu-west-1",
        runs_path=tmp_path / "runs.jsonl",
        seed=7,
        refresh_seconds=0.0,
    )
    runner.refresh(clock.now())
    return runner, clock, calls


def fire(runner: SandboxScheduler) -> None:
    for thread in runner.tick():
        thread.join(5)


def test_a_cron_schedule_fires_when_the_clock_reaches_it_as_its_role(tmp_path: Path) -> None:
    runner, clock, calls = make(
        tmp_path, {"staging-backup": schedule("cron(0 3 * * ? *)")}, "2026-11-29T02:59:00"
    )
    fire(runner)
    assert calls == []
    clock.advance(60)
    fire(runner)
    [(role, operation, kwargs)] = calls
    assert (role, operation) == (ROLE, "invoke")
    assert kwargs["InvocationType"] == "Event" and json.loads(kwargs["Payload"]) == {"source": "schedule"}
    [run] = _runs(tmp_path)
    assert run["outcome"] == "delivered" and run["scheduled_for"] == "2026-11-29T03:00:00+00:00"
    assert runner.next_runs()["ops/staging-backup"] == "2026-11-30T03:00:00+00:00"
    fire(runner)  # nothing more until tomorrow
    assert len(calls) == 1


def _runs(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]


def test_a_state_machine_target_is_started_with_a_generated_name(tmp_path: Path) -> None:
    runner, clock, calls = make(
        tmp_path, {"staging-dr-drill": schedule("cron(0 9 ? * WED *)", MACHINE)}, "2026-12-02T08:59:59"
    )
    clock.advance(1)
    fire(runner)
    [(_, operation, kwargs)] = calls
    assert operation == "start_execution" and kwargs["stateMachineArn"] == MACHINE
    assert len(kwargs["name"]) == 36
    assert _runs(tmp_path)[0]["execution_arn"].endswith(kwargs["name"])


def test_disabled_schedules_do_not_fire(tmp_path: Path) -> None:
    runner, clock, calls = make(
        tmp_path, {"s": schedule("cron(0 3 * * ? *)", State="DISABLED")}, "2026-11-29T02:59:00"
    )
    clock.advance(120)
    fire(runner)
    assert calls == []


def test_retryable_errors_are_retried_then_delivered(tmp_path: Path) -> None:
    failures: list[Exception] = [error("TooManyRequestsException", 429), error("ServiceException", 500)]
    runner, clock, calls = make(
        tmp_path,
        {"s": schedule("rate(1 hour)", StartDate="2026-11-29T03:00:00Z")},
        "2026-11-29T02:59:00",
        failures,
    )
    clock.advance(60)
    fire(runner)
    assert [op for _, op, _ in calls] == ["invoke", "invoke", "invoke"]
    [run] = _runs(tmp_path)
    assert run["outcome"] == "delivered" and run["attempts"] == 3


def test_after_the_retry_policy_the_event_goes_to_the_dlq_with_schedulers_attributes(tmp_path: Path) -> None:
    failures: list[Exception] = [error("ThrottlingException", 429) for _ in range(5)]
    runner, clock, calls = make(
        tmp_path, {"s": schedule("cron(0 3 * * ? *)")}, "2026-11-29T02:59:00", failures
    )
    clock.advance(60)
    fire(runner)
    operations = [op for _, op, _ in calls]
    assert operations == ["invoke", "invoke", "invoke", "get_queue_url", "send_message"]  # 1 + 2 retries
    sent = calls[-1][2]
    assert json.loads(sent["MessageBody"]) == {"source": "schedule"}
    attributes = {k: v["StringValue"] for k, v in sent["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "ThrottlingException" and attributes["RETRY_ATTEMPTS"] == "2"
    assert attributes["TARGET_ARN"] == FUNCTION and attributes["SCHEDULE_ARN"] == "arn:schedule/ops/s"
    assert _runs(tmp_path)[0]["outcome"] == "dead-lettered"


def test_an_error_retrying_cannot_fix_goes_to_the_dlq_at_once(tmp_path: Path) -> None:
    runner, clock, calls = make(
        tmp_path,
        {"s": schedule("cron(0 3 * * ? *)")},
        "2026-11-29T02:59:00",
        [error("AccessDeniedException", 403)],
    )
    clock.advance(60)
    fire(runner)
    assert [op for _, op, _ in calls] == ["invoke", "get_queue_url", "send_message"]
    assert _runs(tmp_path)[0]["attempts"] == 1


def test_the_maximum_event_age_stops_retries(tmp_path: Path) -> None:
    definition = schedule("cron(0 3 * * ? *)")
    definition["Target"]["RetryPolicy"] = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 60}
    failures: list[Exception] = [error("ThrottlingException", 429) for _ in range(50)]
    runner, clock, calls = make(tmp_path, {"s": definition}, "2026-11-29T02:59:00", failures)
    clock.advance(60)
    fire(runner)
    invokes = [op for _, op, _ in calls if op == "invoke"]
    assert 1 < len(invokes) < 10  # back-off 2, 4, 8, 16 ... s: about 5 tries fit in 60 s
    assert _runs(tmp_path)[0]["outcome"] == "dead-lettered"


def test_a_flexible_window_delays_the_call_within_the_window(tmp_path: Path) -> None:
    runner, clock, calls = make(
        tmp_path,
        {
            "s": schedule(
                "cron(0 3 * * ? *)", FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
            )
        },
        "2026-11-29T02:59:00",
    )
    clock.advance(60)
    fire(runner)
    [run] = _runs(tmp_path)
    assert 0 < run["delay_seconds"] <= 900
    fired = datetime.fromisoformat(run["fired_at"])
    assert 0 < (fired - datetime(2026, 11, 29, 3, tzinfo=UTC)).total_seconds() <= 901


def test_runs_a_clock_jump_passed_over_are_recorded_as_skipped_not_run(tmp_path: Path) -> None:
    runner, clock, calls = make(
        tmp_path,
        {
            "daily": schedule("cron(0 3 * * ? *)"),
            "once": schedule("at(2026-11-30T12:00:00)", ActionAfterCompletion="DELETE"),
        },
        "2026-11-29T02:59:00",
    )
    clock.advance(3 * 86400)  # to 2 December 02:59
    fire(runner)
    runs = _runs(tmp_path)
    assert [(r["scheduled_for"][:10], r["outcome"]) for r in runs if r["schedule"] == "ops/daily"] == [
        ("2026-11-29", "skipped"),
        ("2026-11-30", "skipped"),
        ("2026-12-01", "skipped"),
    ]
    assert [r["outcome"] for r in runs if r["schedule"] == "ops/once"] == ["skipped"]
    assert runner.scheduler.deleted == ["once"]
    assert calls == []
    clock.advance(61)  # a run due a minute ago is still fired
    fire(runner)
    assert [op for _, op, _ in calls] == ["invoke"]
    assert _runs(tmp_path)[-1]["outcome"] == "delivered" and _runs(tmp_path)[-1]["trigger"] == "clock"


def test_end_date_stops_a_schedule(tmp_path: Path) -> None:
    runner, clock, calls = make(
        tmp_path, {"s": schedule("cron(0 3 * * ? *)", EndDate="2026-11-29T12:00:00Z")}, "2026-11-29T02:59:00"
    )
    clock.advance(61)
    fire(runner)
    clock.advance(2 * 86400)
    fire(runner)
    assert len(calls) == 1
    assert runner.next_runs()["ops/s"] is None


@pytest.mark.parametrize("expression", ["cron(0 3 15W * ? *)"])
def test_a_schedule_the_sandbox_cannot_evaluate_is_not_tracked(tmp_path: Path, expression: str) -> None:
    runner, _, _ = make(tmp_path, {"s": schedule(expression)}, "2026-11-29T02:59:00")
    assert runner.next_runs() == {}
