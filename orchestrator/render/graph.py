"""The state graph of an ASL definition and what an execution history says about each state.

Both the live view (`release watch`) and the renderers read executions through this module,
so "succeeded", "caught" and "failed" mean the same thing everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

START = "(start)"
END = "(end)"

# Status words, in the order a state goes through them.
PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
CAUGHT = "caught"  # failed, and a Catch moved the execution on
FAILED = "failed"
ABORTED = "aborted"

_FAILURE_EVENTS = {
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
    "MapStateFailed",
    "ParallelStateFailed",
}
_SUCCESS_EVENTS = {"TaskSucceeded", "LambdaFunctionSucceeded"}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str = ""  # "", "catch", "default", or the choice rule index


@dataclass
class Graph:
    start: str
    states: dict[str, dict[str, Any]]
    edges: list[Edge]

    def order(self) -> list[str]:
        """States in reading order: by depth on the longest forward path, then document order."""
        row, _, _ = self.rows()
        position = {name: index for index, name in enumerate(self.states)}
        return sorted(self.states, key=lambda name: (row.get(name, 0), position[name]))

    def rows(self) -> tuple[dict[str, int], set[tuple[str, str]], set[tuple[str, str]]]:
        """(depth of each node, forward edges, back edges): loops are the edges closing a cycle
        in a depth-first walk from the start; depth is the longest path over forward edges."""
        nodes = [START, *self.states, END]
        succ: dict[str, list[str]] = {n: [] for n in nodes}
        for edge in self.edges:
            if edge.source in succ and edge.target in succ and edge.target not in succ[edge.source]:
                succ[edge.source].append(edge.target)
        back: set[tuple[str, str]] = set()
        seen: dict[str, int] = {}
        finish: list[str] = []
        for root in nodes:
            if root in seen:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            seen[root] = 1
            while stack:
                node, index = stack.pop()
                if index < len(succ[node]):
                    stack.append((node, index + 1))
                    nxt = succ[node][index]
                    if seen.get(nxt) == 1:
                        back.add((node, nxt))
                    elif nxt not in seen:
                        seen[nxt] = 1
                        stack.append((nxt, 0))
                else:
                    seen[node] = 2
                    finish.append(node)
        forward = {(a, b) for a in nodes for b in succ[a] if (a, b) not in back}
        row: dict[str, int] = dict.fromkeys(nodes, 0)
        for node in reversed(finish):
            for nxt in succ[node]:
                if (node, nxt) in forward:
                    row[nxt] = max(row[nxt], row[node] + 1)
        row[END] = max(row[n] for n in nodes if n != END) + 1  # the end sits below everything
        return row, forward, back


def parse_definition(definition: dict[str, Any] | str) -> Graph:
    """Top-level states and transitions (Next, Choices, Default, Catch, End) of an ASL document."""
    asl = json.loads(definition) if isinstance(definition, str) else definition
    if not isinstance(asl, dict) or "StartAt" not in asl or not isinstance(asl.get("States"), dict):
        raise ValueError("not an Amazon States Language definition: StartAt and States are required")
    states: dict[str, dict[str, Any]] = asl["States"]
    edges: list[Edge] = [Edge(START, asl["StartAt"])]
    for name, state in states.items():
        kind = state.get("Type")
        if "Next" in state:
            edges.append(Edge(name, state["Next"]))
        if kind == "Choice":
            for index, rule in enumerate(state.get("Choices", [])):
                if "Next" in rule:
                    edges.append(Edge(name, rule["Next"], f"rule {index + 1}"))
            if "Default" in state:
                edges.append(Edge(name, state["Default"], "default"))
        for catcher in state.get("Catch", []):
            errors = ",".join(catcher.get("ErrorEquals", []))
            edges.append(Edge(name, catcher["Next"], f"catch {errors}"))
        if state.get("End") or kind in {"Succeed", "Fail"}:
            edges.append(Edge(name, END))
    unique = list(dict.fromkeys(edges))
    return Graph(asl["StartAt"], states, unique)


@dataclass
class StateRun:
    """What one state did in an execution (its latest visit; `visits` counts loops)."""

    name: str
    status: str = PENDING
    visits: int = 0
    entered: datetime | None = None
    exited: datetime | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    retries: int = 0
    durations: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if self.entered and self.exited:
            return (self.exited - self.entered).total_seconds()
        return None


@dataclass
class ExecutionView:
    """The execution as the console graph shows it, rebuilt from history events."""

    graph: Graph
    runs: dict[str, StateRun]
    path: list[str] = field(default_factory=list)  # states in the order entered (with repeats)
    status: str = "RUNNING"
    error: str | None = None
    cause: str | None = None
    started: datetime | None = None
    stopped: datetime | None = None
    last_event_id: int = 0
    last_event_time: datetime | None = None
    current: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def empty(cls, graph: Graph) -> ExecutionView:
        return cls(graph, {name: StateRun(name) for name in graph.states})

    def taken_edges(self) -> set[tuple[str, str]]:
        steps = [START, *self.path]
        if self.status in {"SUCCEEDED", "FAILED"} and self.path:
            steps.append(END)
        return set(zip(steps, steps[1:], strict=False))

    def apply(self, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Fold new events in; returns the (state, new status) changes they caused."""
        changes: list[tuple[str, str]] = []
        for event in events:
            if event["id"] <= self.last_event_id:
                continue
            self.events.append(event)
            self.last_event_id = event["id"]
            self.last_event_time = event["timestamp"]
            changes.extend(self._apply_one(event))
        return changes

    def _set(self, run: StateRun, status: str) -> tuple[str, str]:
        run.status = status
        return (run.name, status)

    def _apply_one(self, event: dict[str, Any]) -> list[tuple[str, str]]:
        kind: str = event["type"]
        when: datetime = event["timestamp"]
        out: list[tuple[str, str]] = []
        current = self.runs.get(self.current) if self.current else None
        if kind == "ExecutionStarted":
            self.started = when
        elif kind.endswith("StateEntered") and "stateEnteredEventDetails" in event:
            details = event["stateEnteredEventDetails"]
            name = details["name"]
            if current is not None and current.status in {RUNNING, FAILED}:
                # Left without a StateExited event: a Catch moved on from a failure.
                current.exited = when
                out.append(self._set(current, CAUGHT if current.error else SUCCEEDED))
            run = self.runs.setdefault(name, StateRun(name))
            run.visits += 1
            run.entered, run.exited = when, None
            run.error = run.cause = None
            run.input = _json(details.get("input"))
            self.path.append(name)
            self.current = name
            out.append(self._set(run, RUNNING))
        elif kind.endswith("StateExited") and "stateExitedEventDetails" in event:
            details = event["stateExitedEventDetails"]
            run = self.runs.setdefault(details["name"], StateRun(details["name"]))
            run.exited = when
            run.output = _json(details.get("output"))
            if run.entered:
                run.durations.append((when - run.entered).total_seconds())
            out.append(self._set(run, CAUGHT if run.error else SUCCEEDED))
        elif kind in _FAILURE_EVENTS and current is not None:
            details = _details(event)
            current.error, current.cause = details.get("error"), details.get("cause")
            out.append(self._set(current, FAILED))
        elif kind in {"TaskScheduled", "LambdaFunctionScheduled"} and current is not None:
            if current.error:  # scheduled again after a failure: a Retry
                current.retries += 1
                current.error = current.cause = None
                out.append(self._set(current, RUNNING))
        elif kind in _SUCCESS_EVENTS and current is not None:
            current.error = None
        elif kind.startswith("Execution") and kind != "ExecutionStarted":
            self.stopped = when
            status = {
                "ExecutionSucceeded": "SUCCEEDED",
                "ExecutionFailed": "FAILED",
                "ExecutionAborted": "ABORTED",
                "ExecutionTimedOut": "TIMED_OUT",
            }.get(kind, self.status)
            self.status = status
            details = _details(event)
            self.error, self.cause = details.get("error"), details.get("cause")
            if current is not None and current.status == RUNNING:
                current.exited = when
                final = {"SUCCEEDED": SUCCEEDED, "ABORTED": ABORTED}.get(status, FAILED)
                out.append(self._set(current, final))
            elif current is not None and current.status == FAILED:
                current.exited = when
        return out


def _details(event: dict[str, Any]) -> dict[str, Any]:
    """The event's `<kind>EventDetails` object (every history event carries at most one)."""
    found: Any = next((v for k, v in event.items() if k.endswith("EventDetails")), None)
    return found if isinstance(found, dict) else {}


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def view_from_history(definition: dict[str, Any] | str, events: list[dict[str, Any]]) -> ExecutionView:
    view = ExecutionView.empty(parse_definition(definition))
    view.apply(events)
    return view


def wait_deadline(view: ExecutionView) -> tuple[datetime, float] | None:
    """(entered, seconds) of the Wait state running now, if its duration can be read."""
    if not view.current:
        return None
    state = view.graph.states.get(view.current, {})
    run = view.runs[view.current]
    if state.get("Type") != "Wait" or run.status != RUNNING or run.entered is None:
        return None
    if "Seconds" in state:
        return run.entered, float(state["Seconds"])
    path = state.get("SecondsPath")
    if isinstance(path, str) and path.startswith("$") and isinstance(run.input, dict):
        value: Any = run.input
        for part in path.lstrip("$").strip(".").split("."):
            if not part:
                continue
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            return run.entered, float(value)
    for key in ("Timestamp", "TimestampPath"):
        if key == "Timestamp" and key in state:
            end = datetime.fromisoformat(str(state[key]).replace("Z", "+00:00"))
            return run.entered, (end - run.entered).total_seconds()
    return None
