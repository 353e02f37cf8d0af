"""Renderers: the graph model, the layout, SVG/Mermaid/HTML output, template flattening."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from orchestrator.cli import main
from orchestrator.render.cli_support import definitions_in_template, load_definition
from orchestrator.render.diagram import to_mermaid, to_svg
from orchestrator.render.graph import END, START, parse_definition, view_from_history, wait_deadline
from orchestrator.render.layout import layout
from orchestrator.render.report import TrafficSample, execution_report, traffic_svg

LOOP = {
    "StartAt": "SetWeights",
    "States": {
        "SetWeights": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:1:function:x",
            "Next": "Bake",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Rollback"}],
        },
        "Bake": {"Type": "Wait", "Seconds": 30, "Next": "More"},
        "More": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.more", "BooleanEquals": True, "Next": "SetWeights"}],
            "Default": "Finalize",
        },
        "Finalize": {"Type": "Succeed"},
        "Rollback": {"Type": "Fail", "Error": "ReleaseRolledBack"},
    },
}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(i: int, kind: str, seconds: float, **details: object) -> dict:
    event: dict = {
        "id": i,
        "type": kind,
        "timestamp": T0 + timedelta(seconds=seconds),
        "previousEventId": i - 1,
    }
    event.update(details)
    return event


def entered(i: int, kind: str, name: str, t: float, data: dict | None = None) -> dict:
    return ev(
        i, f"{kind}StateEntered", t, stateEnteredEventDetails={"name": name, "input": json.dumps(data or {})}
    )


def exited(i: int, kind: str, name: str, t: float, data: dict | None = None) -> dict:
    return ev(
        i, f"{kind}StateExited", t, stateExitedEventDetails={"name": name, "output": json.dumps(data or {})}
    )


def history_two_loops_then_catch() -> list[dict]:
    return [
        ev(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
        entered(2, "Task", "SetWeights", 0),
        ev(3, "TaskScheduled", 0),
        ev(4, "TaskSucceeded", 1),
        exited(5, "Task", "SetWeights", 1, {"more": True}),
        entered(6, "Wait", "Bake", 1),
        exited(7, "Wait", "Bake", 31),
        entered(8, "Choice", "More", 31),
        exited(9, "Choice", "More", 31),
        entered(10, "Task", "SetWeights", 31),
        ev(11, "TaskScheduled", 31),
        ev(
            12,
            "TaskFailed",
            32,
            taskFailedEventDetails={"error": "Lambda.TooManyRequestsException", "cause": "slow down"},
        ),
        ev(13, "TaskScheduled", 33),
        ev(14, "TaskFailed", 34, taskFailedEventDetails={"error": "GreenUnhealthy", "cause": "p99"}),
        entered(15, "Fail", "Rollback", 34),
        ev(
            16,
            "ExecutionFailed",
            34,
            executionFailedEventDetails={"error": "ReleaseRolledBack", "cause": "p99"},
        ),
    ]


def test_graph_edges_include_choices_defaults_catches_and_end() -> None:
    graph = parse_definition(LOOP)
    edges = {(e.source, e.target, e.label) for e in graph.edges}
    assert (START, "SetWeights", "") in edges
    assert ("More", "SetWeights", "rule 1") in edges and ("More", "Finalize", "default") in edges
    assert ("SetWeights", "Rollback", "catch States.ALL") in edges
    assert ("Finalize", END, "") in edges and ("Rollback", END, "") in edges
    assert graph.order() == ["SetWeights", "Bake", "Rollback", "More", "Finalize"]


def test_layout_sends_loops_round_the_side() -> None:
    lay = layout(parse_definition(LOOP))
    assert ("More", "SetWeights") in lay.back
    assert lay.boxes[START].row == 0 and lay.boxes[END].row == max(b.row for b in lay.boxes.values())
    assert (
        lay.boxes["SetWeights"].row
        < lay.boxes["Bake"].row
        < lay.boxes["More"].row
        < lay.boxes["Finalize"].row
    )


def test_history_statuses_retries_visits_and_caught() -> None:
    view = view_from_history(LOOP, history_two_loops_then_catch())
    runs = view.runs
    assert view.status == "FAILED" and view.error == "ReleaseRolledBack"
    assert runs["SetWeights"].visits == 2 and runs["SetWeights"].retries == 1
    assert runs["SetWeights"].status == "caught" and runs["SetWeights"].error == "GreenUnhealthy"
    assert runs["Bake"].status == "succeeded" and runs["Bake"].durations == [30.0]
    assert runs["Rollback"].status == "failed"
    assert runs["Finalize"].status == "pending"
    assert view.path == ["SetWeights", "Bake", "More", "SetWeights", "Rollback"]
    assert ("More", "SetWeights") in view.taken_edges() and ("Rollback", END) in view.taken_edges()


def test_wait_deadline_while_baking() -> None:
    view = view_from_history(LOOP, history_two_loops_then_catch()[:6])
    assert wait_deadline(view) == (T0 + timedelta(seconds=1), 30.0)


def test_svg_is_well_formed_and_coloured_by_status() -> None:
    view = view_from_history(LOOP, history_two_loops_then_catch())
    svg = to_svg(view.graph, view, title="t & <x>")
    root = ET.fromstring(svg)
    groups = {g.get("data-state"): g.get("class") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert groups["SetWeights"] == "state caught" and groups["Rollback"] == "state failed"
    assert groups["Finalize"] == "state pending"
    assert "url(#arrow-on)" in svg  # the taken path is highlighted


def test_mermaid_marks_taken_edges_and_classes() -> None:
    view = view_from_history(LOOP, history_two_loops_then_catch())
    text = to_mermaid(view.graph, view)
    assert text.startswith("flowchart TD\n")
    assert "s4_More ==>|rule 1| s1_SetWeights" in text
    assert "s1_SetWeights ==>|catch States.ALL| s3_Rollback" in text
    assert "class s3_Rollback failed" in text


def test_report_is_self_contained() -> None:
    view = view_from_history(LOOP, history_two_loops_then_catch())
    traffic = [
        TrafficSample(T0, 0),
        TrafficSample(T0 + timedelta(seconds=1), 10),
        TrafficSample(T0 + timedelta(seconds=34), 0),
    ]
    html = execution_report(
        view,
        execution_arn="arn:aws:states:eu-west-1:1:execution:m:r1",
        traffic=traffic,
        notes={"detect-to-rollback": "0.4 s"},
    )
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "GreenUnhealthy" in html and "detect-to-rollback" in html and "slow down" not in html
    assert html.count("<svg") == 2
    ET.fromstring(traffic_svg(traffic))


JUDGED = {
    "StartAt": "JudgeCanary",
    "States": {
        "JudgeCanary": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:1:function:judge",
            "Next": "More",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Rollback"}],
        },
        "More": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.more", "BooleanEquals": True, "Next": "JudgeCanary"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
        "Rollback": {"Type": "Fail", "Error": "ReleaseRolledBack"},
    },
}


def test_report_shows_each_steps_canary_verdict_and_the_failing_numbers() -> None:
    passed = {
        "more": True,
        "judgement": {
            "verdict": "pass",
            "steps": [
                {"index": 0, "percent": 10, "verdict": "pass", "summary": "pass: error rate not worse"},
                {"index": 1, "percent": 20, "verdict": "pass", "summary": "pass (not judged): too few"},
            ],
        },
    }
    failure = json.dumps(
        {"errorType": "CanaryFailed", "errorMessage": "green judged worse than blue at 50%: fail: p99 x3.2"}
    )
    history = [
        ev(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
        entered(2, "Task", "JudgeCanary", 0),
        exited(3, "Task", "JudgeCanary", 1, passed),
        entered(4, "Choice", "More", 1),
        exited(5, "Choice", "More", 1, passed),
        entered(6, "Task", "JudgeCanary", 2),
        ev(7, "TaskFailed", 3, taskFailedEventDetails={"error": "CanaryFailed", "cause": failure}),
        entered(8, "Fail", "Rollback", 3),
        ev(9, "ExecutionFailed", 3, executionFailedEventDetails={"error": "ReleaseRolledBack", "cause": "x"}),
    ]
    html = execution_report(
        view_from_history(JUDGED, history), execution_arn="arn:aws:states:::execution:m:r"
    )
    section = html[html.index("Canary judgment") : html.index("<h2>States")]
    assert "1 (10%)" in section and "pass: error rate not worse" in section
    assert ">not judged<" in section and "2 (20%)" in section
    assert ">fail<" in section and "green judged worse than blue at 50%: fail: p99 x3.2" in section
    # A release without the step has no such section.
    assert "Canary judgment" not in execution_report(
        view_from_history(LOOP, history_two_loops_then_catch()),
        execution_arn="arn:aws:states:::execution:m:r",
    )


def test_template_definition_is_flattened(tmp_path) -> None:
    template = {
        "Resources": {
            "ReleaseMachineABC": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": {
                        "Fn::Join": [
                            "",
                            [
                                '{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"',
                                {"Fn::GetAtt": ["Fn1", "Arn"]},
                                '","End":true}}}',
                            ],
                        ]
                    }
                },
            },
            "Other": {"Type": "AWS::SQS::Queue"},
        }
    }
    found = definitions_in_template(template)
    assert found["ReleaseMachineABC"]["States"]["A"]["Resource"] == "${Fn1.Arn}"
    path = tmp_path / "stack.template.json"
    path.write_text(json.dumps(template))
    assert load_definition(str(path), "release")[0] == "ReleaseMachineABC"
    assert main(["render", str(path), "--out", str(tmp_path / "g.svg")]) == 0
    ET.fromstring((tmp_path / "g.svg").read_text())
    assert main(["render", str(path), "--format", "html", "--out", str(tmp_path / "g.html")]) == 0


def test_render_mermaid_to_stdout(tmp_path, capsys) -> None:
    path = tmp_path / "loop.asl.json"
    path.write_text(json.dumps(LOOP))
    assert main(["render", str(path)]) == 0
    assert capsys.readouterr().out.startswith("flowchart TD")


def test_the_traffic_chart_says_what_it_shows_in_connections_routing() -> None:
    from orchestrator.render.graph import ExecutionView, Graph, StateRun
    from orchestrator.render.report import _routing_note

    def view(routing: str) -> ExecutionView:
        run = StateRun("ValidateRequest", output={"release": {"routing": routing}})
        return ExecutionView(Graph("ValidateRequest", {}, []), {"ValidateRequest": run})

    (note,) = _routing_note(view("connections"))
    assert "stay on blue until the 100% step" in note and "new connections" in note
    assert _routing_note(view("invocations")) == []


DRAINED = {
    "StartAt": "Rollback",
    "States": {
        "Rollback": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:1:function:r",
            "Next": "DrainCanary",
        },
        "DrainCanary": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:1:function:d",
            "Next": "Failed",
        },
        "Failed": {"Type": "Fail", "Error": "ReleaseRolledBack"},
    },
}


def test_the_drain_section_shows_only_when_drain_canary_ran() -> None:
    drained = {"drain": {"closed": 1, "gone": 0, "remaining": 0, "rounds": 1, "drain_seconds": 0.8}}
    history = [
        ev(1, "ExecutionStarted", 0, executionStartedEventDetails={"input": "{}"}),
        entered(2, "Task", "Rollback", 0),
        exited(3, "Task", "Rollback", 1),
        entered(4, "Task", "DrainCanary", 1),
        exited(5, "Task", "DrainCanary", 2, drained),
        entered(6, "Fail", "Failed", 2),
        ev(7, "ExecutionFailed", 2, executionFailedEventDetails={"error": "ReleaseRolledBack", "cause": "x"}),
    ]
    arn = "arn:aws:states:::execution:m:r"
    html = execution_report(view_from_history(DRAINED, history), execution_arn=arn)
    section = html[html.index("Canary stage drain") : html.index("<h2>States")]
    assert "1 connection closed, 0 already gone, in 0.80 s over 1 round: no connection left" in section
    # Never entered (a release that finalized, or one the alarm rollback stopped): no section.
    assert "Canary stage drain" not in execution_report(
        view_from_history(DRAINED, history[:3]), execution_arn=arn
    )
