"""The live view's text: bake countdown on AWS time and on the sandbox's compressed clock."""

from __future__ import annotations

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
    watcher = Watcher(
        aws=None,  # type: ignore[arg-type]
        execution_arn="arn:x:execution:m:r1",
        names=Names("staging"),
        time_scale=60.0,
        monotonic=lambda: 1000.0,  # the watch's clock stands still: the countdown is exact
    )
    watcher.view = view_from_history(LOOP, history_two_loops_then_catch()[:6])
    watcher._wait_seen[("Bake", 1)] = 1000.0 - 0.25  # seen a quarter second ago: 15 virtual seconds
    assert "about 15 s left" in _text(watcher)


def test_exit_codes() -> None:
    assert exit_code_for("SUCCEEDED") == 0
    assert {exit_code_for(s) for s in ("FAILED", "ABORTED", "TIMED_OUT")} == {1}


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if "│" in line or "|" in line]


def test_the_table_lists_only_the_states_entered_and_the_running_one() -> None:
    watcher = Watcher(aws=None, execution_arn="arn:x:execution:m:r1", names=Names("staging"))  # type: ignore[arg-type]
    watcher.view = view_from_history(LOOP, history_two_loops_then_catch()[:6])  # SetWeights done, in Bake
    assert watcher.shown_states() == ["SetWeights", "Bake"]
    text = _text(watcher)
    assert "SetWeights" in text and "Bake" in text
    for never_entered in ("More", "Finalize", "Rollback"):
        assert never_entered not in text
    watcher.view = view_from_history(LOOP, history_two_loops_then_catch())
    assert watcher.shown_states() == ["SetWeights", "Bake", "More", "Rollback"]  # in the order entered
    assert "Finalize" not in _text(watcher)


def test_task_times_on_the_wall_clock_and_waits_on_the_compressed_clock() -> None:
    watcher = Watcher(aws=None, execution_arn="arn:x:execution:m:r1", names=Names("staging"), time_scale=60.0)  # type: ignore[arg-type]
    events = history_two_loops_then_catch()[:7]  # SetWeights 1 s, Bake 30 s of history time
    for event in events[4:]:
        event["timestamp"] += timedelta(seconds=59)  # the task took 60 s of history time: 1 s of wall time
    watcher.view = view_from_history(LOOP, events)
    text = _text(watcher)
    set_weights = next(line for line in text.splitlines() if "SetWeights" in line)
    bake = next(line for line in text.splitlines() if "Bake" in line and "bake:" not in line)
    assert "1.00s wall" in set_weights and "60" not in set_weights
    assert "30s at 60x" in bake
    assert (
        "tasks and other states on the wall clock; Wait states (bakes) on the sandbox's 60x clock"
        in " ".join(text.split())
    )


def test_on_aws_time_is_shown_as_the_history_has_it() -> None:
    watcher = Watcher(aws=None, execution_arn="arn:x:execution:m:r1", names=Names("staging"))  # type: ignore[arg-type]
    watcher.view = view_from_history(LOOP, history_two_loops_then_catch()[:7])
    text = _text(watcher)
    assert "wall" not in text and "60x" not in text
    assert "30.0s" in next(line for line in text.splitlines() if "Bake" in line)
