"""The demo's summary waits (bounded) for the alarm-rollback record before it prints the figure."""

from __future__ import annotations

import threading
import time

from rich.console import Console

from orchestrator.aws import Aws, Names, Target
from orchestrator.demo import Outcome, summary, wait_for_rollback_record

from .conftest import ENV, client


def _record_later(url: str, release_id: str, delay: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay)
        client("dynamodb", url).put_item(
            TableName=Names(ENV).release_table,
            Item={
                "pk": {"S": f"release#{release_id}"},
                "sk": {"S": "event#2026-01-01T00:00:01Z"},
                "actor": {"S": "alarm-rollback"},
                "detail": {"M": {"detect_to_rollback_ms": {"N": "812.5"}}},
            },
        )

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_the_figure_recorded_after_the_execution_ended_is_waited_for(moto_url: str, stage: dict) -> None:
    aws = Aws(Target(region="eu-west-1", endpoint_url=moto_url))
    writer = _record_later(moto_url, "demo-late", delay=1.0)
    started = time.monotonic()
    figure, note = wait_for_rollback_record(
        aws, Names(ENV), "demo-late", bound_seconds=20.0, poll_seconds=0.05
    )
    writer.join()
    assert figure == 812.5 and note == ""
    assert 0.9 <= time.monotonic() - started < 20.0  # it waited for the record, not for the bound


def test_without_a_record_the_wait_is_bounded_and_says_why(moto_url: str, stage: dict) -> None:
    aws = Aws(Target(region="eu-west-1", endpoint_url=moto_url))
    started = time.monotonic()
    figure, note = wait_for_rollback_record(
        aws, Names(ENV), "demo-none", bound_seconds=0.5, poll_seconds=0.05
    )
    assert figure is None and time.monotonic() - started < 30.0  # bounded (a hang guard, not a speed check)
    assert note == "the state machine rolled back before the alarm rule"


def test_the_summary_prints_the_latency_or_the_reason(tmp_path) -> None:
    def outcome(version: str, figure: float | None, note: str) -> Outcome:
        return Outcome(
            release_id=version,
            version=version,
            execution_arn="arn",
            status="ABORTED",
            exit_code=1,
            wall_seconds=1.0,
            transitions=3,
            path=[],
            error="AlarmTriggered",
            cause="alarm",
            report=tmp_path / f"{version}.html",
            detect_to_rollback_ms=figure,
            rollback_note=note,
        )

    console = Console(record=True, width=200)

    class State:
        startup_seconds = 1.0

    summary(
        console,
        [outcome("1.2.0", 812.0, ""), outcome("1.3.0", None, "not recorded within 30 s")],
        None,
        2.0,
        State(),
    )  # type: ignore[arg-type]
    text = console.export_text()
    assert "812 ms" in text
    assert "– (not recorded within 30 s)" in text
