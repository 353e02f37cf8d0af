"""The live view's text: bake countdown on AWS time and on the sandbox's compressed clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from rich.console import Console

from orchestrator.aws import Names
from orchestrator.render.graph import view_from_history
from orchestrator.watch import Watcher, exit_code_for

from .test_render import LOOP, history_two_loops_then_catch


def _text(watcher: Watcher) -> str:
    console = Console(record=True, width=120)
    console.print(watcher.render())
    return console.export_text()


def test_bake_countdown_on_aws_time() -> None:
    events = history_two_loops_then_catch()[:6]  # inside Bake (30 s)
    now, base = datetime.now(UTC), events[0]["timestamp"]
    for event in events:
        event["timestamp"] = now - timedelta(seconds=10) + (event["timestamp"] - base)
    watcher = Watcher(
        aws=None, execution_arn="arn:aws:states:eu-west-1:1:execution:m:r1", names=Names("staging")
    )  # type: ignore[arg-type]
    watcher.view = view_from_history(LOOP, events)
    text = _text(watcher)
    assert "bake: Bake 30 s, about 21 s left" in text or "bake: Bake 30 s, about 20 s left" in text
    assert "▶" in text and "r1  [RUNNING]" in text


def test_bake_countdown_on_the_compressed_clock() -> None:
    watcher = Watcher(aws=None, execution_arn="arn:x:execution:m:r1", names=Names("staging"), time_scale=60.0)  # type: ignore[arg-type]
    watcher.view = view_from_history(LOOP, history_two_loops_then_catch()[:6])
    watcher._wait_seen[("Bake", 1)] = time.monotonic() - 0.25  # seen a quarter second ago: 15 virtual seconds
    assert "about 15 s left" in _text(watcher)


def test_exit_codes() -> None:
    assert exit_code_for("SUCCEEDED") == 0
    assert {exit_code_for(s) for s in ("FAILED", "ABORTED", "TIMED_OUT")} == {1}
