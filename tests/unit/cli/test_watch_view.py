"""The live view's text: bake countdown on AWS time and on the sandbox's compressed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from orchestrator.aws import AliasSplit, Names
from orchestrator.render.graph import view_from_history
from orchestrator.watch import Watcher, exit_code_for

from .test_render import LOOP, entered, ev, exited, history_two_loops_then_catch


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


CONNECTIONS = {
    "StartAt": "ValidateRequest",
    "States": {
        "ValidateRequest": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:1:function:v",
            "Next": "SetWeights",
        },
        "SetWeights": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:1:function:x",
            "Next": "Bake",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Rollback"}],
        },
        "Bake": {"Type": "Wait", "Seconds": 30, "Next": "Rollback"},
        "Rollback": {"Type": "Task", "Resource": "arn:aws:lambda:eu-west-1:1:function:r", "Next": "Failed"},
        "Failed": {"Type": "Fail", "Error": "ReleaseRolledBack"},
    },
}


class _Aws:
    """What the watch reads: the history in the order given, and `live` left on blue throughout
    (`connections` routing keeps the aliases on blue below the 100% step)."""

    def __init__(self, batches: list[list[dict]]) -> None:
        self.batches = batches

    def definition_for_execution(self, _arn: str) -> dict:
        return CONNECTIONS

    def history_after(self, _arn: str, _after: int) -> list[dict]:
        return self.batches.pop(0) if self.batches else []

    def alias_split(self, function: str, alias: str = "live") -> AliasSplit:
        return AliasSplit(function, alias, "1")

    def alarm_states(self, _prefix: str) -> list:
        return []


def test_connections_routing_shows_the_edge_share_and_ends_at_zero() -> None:
    release = {"release": {"routing": "connections"}}
    shifted = {**release, "shift": {"percent": 50, "index": 0, "is_last": False}}
    batches = [
        [
            ev(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
            entered(2, "Task", "ValidateRequest", 0),
            exited(3, "Task", "ValidateRequest", 1, release),
            entered(4, "Task", "SetWeights", 1),
            exited(5, "Task", "SetWeights", 2, shifted),
            entered(6, "Wait", "Bake", 2),
        ],
        [
            exited(7, "Wait", "Bake", 32, shifted),
            entered(8, "Task", "Rollback", 32),
            exited(9, "Task", "Rollback", 33, shifted),
            entered(10, "Fail", "Failed", 33),
            ev(
                11,
                "ExecutionFailed",
                33,
                executionFailedEventDetails={"error": "ReleaseRolledBack", "cause": "x"},
            ),
        ],
    ]
    watcher = Watcher(aws=_Aws(batches), execution_arn="arn:x:execution:m:r1", names=Names("staging"))  # type: ignore[arg-type]
    records = watcher.refresh()
    assert watcher.edge_share == 50 and watcher.alias_percent() == 0.0 and watcher.green_percent() == 50.0
    traffic = next(r for r in records if r["type"] == "traffic")
    assert traffic["canary_share"] == 50 and traffic["green_percent"] == 50.0
    assert "edge: 50% of new connections to green" in _text(watcher)
    watcher.refresh()
    assert watcher.finished and watcher.edge_share == 0
    assert [sample.green_percent for sample in watcher.traffic] == [50.0, 0.0]


def test_invocations_routing_has_no_edge_share() -> None:
    batches = [
        [
            ev(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
            entered(2, "Task", "ValidateRequest", 0),
            exited(3, "Task", "ValidateRequest", 1, {"release": {"routing": "invocations"}}),
            entered(4, "Task", "SetWeights", 1),
            exited(5, "Task", "SetWeights", 2, {"shift": {"percent": 50}}),
        ]
    ]
    watcher = Watcher(aws=_Aws(batches), execution_arn="arn:x:execution:m:r1", names=Names("staging"))  # type: ignore[arg-type]
    records = watcher.refresh()
    assert watcher.edge_share is None and watcher.green_percent() == 0.0
    assert "canary_share" not in next(r for r in records if r["type"] == "traffic")
