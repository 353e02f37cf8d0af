"""`release watch`: the live state graph of one execution, rebuilt from its history.

Each refresh reads only the events added since the last one (newest-first pages until a known
event id), plus the `live`/`green` aliases and the release-guard alarms at most once per
`side_every` seconds, so watching a day-long bake costs a handful of small requests per tick.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from contracts import names
from orchestrator.aws import AlarmState, AliasSplit, Aws, AwsError, Names
from orchestrator.render.graph import (
    ABORTED,
    CAUGHT,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    ExecutionView,
    parse_definition,
    wait_deadline,
)
from orchestrator.render.report import TrafficSample

SYMBOLS = {
    PENDING: ("·", "dim"),
    RUNNING: ("▶", "bold blue"),
    SUCCEEDED: ("✔", "green"),
    CAUGHT: ("↷", "yellow"),
    FAILED: ("✘", "bold red"),
    ABORTED: ("■", "magenta"),
}
TERMINAL = {"SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"}


def exit_code_for(status: str) -> int:
    """0 only for a release that succeeded; rollback, failure, abort and timeout are 1."""
    return 0 if status == "SUCCEEDED" else 1


@dataclass
class Watcher:
    aws: Aws
    execution_arn: str
    names: Names
    interval: float = 2.0
    side_every: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    view: ExecutionView | None = None
    splits: dict[str, AliasSplit] = field(default_factory=dict)
    green_version: str | None = None
    blue_version: str | None = None  # what live served when the watch began
    alarms: dict[str, AlarmState] = field(default_factory=dict)
    traffic: list[TrafficSample] = field(default_factory=list)
    # In `connections` routing: the share of new connections the edge sends to green, as the
    # history tells it (SetWeights' step below 100%; 0 once Rollback, Finalize or the end comes).
    # None in `invocations` routing, where the alias weights are the whole story.
    edge_share: int | None = None
    requests: int = 0
    warning: str | None = None
    # Virtual seconds per wall second of the history clock (the sandbox compresses time).
    time_scale: float = 1.0
    # (state, wall time.time()) of every state entered, as this watch first saw it: the history's
    # own timestamps are on the sandbox's compressed clock.
    entered_seen: list[tuple[str, float]] = field(default_factory=list)
    _wait_seen: dict[tuple[str, int], float] = field(default_factory=dict)
    _side_at: float = -1e9

    def refresh(self) -> list[dict[str, Any]]:
        """Read what changed; returns machine-readable change records (the --json stream)."""
        records: list[dict[str, Any]] = []
        if self.view is None:
            self.view = ExecutionView.empty(
                parse_definition(self.aws.definition_for_execution(self.execution_arn))
            )
            self.requests += 1
        events = self.aws.history_after(self.execution_arn, self.view.last_event_id)
        self.requests += 1
        share_before = self.edge_share
        for name, status in self.view.apply(events):
            if status == RUNNING:
                self.entered_seen.append((name, time.time()))
            self._follow_edge_share(name, status)
            run = self.view.runs[name]
            when = run.exited if status != RUNNING and run.exited else run.entered
            records.append(
                {
                    "type": "state",
                    "state": name,
                    "state_type": self.view.graph.states.get(name, {}).get("Type", ""),
                    "status": status,
                    "visit": run.visits,
                    "timestamp": _iso(when),
                    "error": run.error,
                    "cause": run.cause,
                }
            )
        if self.finished and self.edge_share:
            self.edge_share = 0  # every path out of an execution leaves the share at 0
        if self.edge_share != share_before:
            self._sample()
        if time.monotonic() - self._side_at >= self.side_every or self.finished:
            self._side_at = time.monotonic()
            try:
                records.extend(self._read_traffic())
                records.extend(self._read_alarms())
            except AwsError as exc:
                # The graph is what matters under pressure: show why the side panel is stale, keep going.
                if str(exc) != self.warning:
                    self.warning = str(exc)
                    records.append(
                        {"type": "warning", "message": self.warning, "timestamp": _iso(datetime.now(UTC))}
                    )
        if self.finished:
            view = self.view
            records.append(
                {
                    "type": "execution",
                    "execution_arn": self.execution_arn,
                    "status": view.status,
                    "error": view.error,
                    "cause": view.cause,
                    "timestamp": _iso(view.stopped),
                    "exit_code": exit_code_for(view.status),
                }
            )
        return records

    @property
    def finished(self) -> bool:
        return self.view is not None and self.view.status in TERMINAL

    def _read_traffic(self) -> list[dict[str, Any]]:
        functions = self.names.functions()
        splits = {fn: self.aws.alias_split(fn, names.LIVE_ALIAS) for fn in functions}
        green = self.aws.alias_split(functions[0], names.GREEN_ALIAS).version if functions else None
        self.requests += len(functions) + 1
        changed = {
            fn: s for fn, s in splits.items() if fn not in self.splits or self.splits[fn].weights != s.weights
        }
        green_changed = green != self.green_version
        self.splits, self.green_version = splits, green
        if self.blue_version is None and splits:
            self.blue_version = next(iter(splits.values())).version
        now = self._sample()
        if not changed and not green_changed:
            return []
        record: dict[str, Any] = {
            "type": "traffic",
            "timestamp": _iso(now),
            "green_version": green,
            "green_percent": self.green_percent(),
            "functions": {fn: {"version": s.version, "weights": s.weights} for fn, s in splits.items()},
        }
        if self.edge_share is not None:
            record["canary_share"] = self.edge_share
        return [record]

    def _sample(self) -> datetime:
        now = datetime.now(UTC)
        percent = self.green_percent()
        if not self.traffic or self.traffic[-1].green_percent != percent:
            self.traffic.append(TrafficSample(now, percent))
        return now

    def _follow_edge_share(self, state: str, status: str) -> None:
        assert self.view is not None
        run = self.view.runs.get(state)
        output = run.output if run is not None and isinstance(run.output, dict) else {}
        if state == "ValidateRequest" and status == SUCCEEDED:
            release = output.get("release")
            if isinstance(release, dict) and release.get("routing") == "connections":
                self.edge_share = 0
        elif self.edge_share is None:
            return
        elif state == "SetWeights" and status == SUCCEEDED:
            found = output.get("shift")
            shift: dict[str, Any] = found if isinstance(found, dict) else {}
            percent = shift.get("percent")
            if isinstance(percent, int) and percent < 100 and not shift.get("dry_run"):
                self.edge_share = percent  # at 100% the aliases move, and the share waits for Finalize
        elif state == "Rollback" and status == RUNNING:
            self.edge_share = 0  # Rollback sets the share to 0 first
        elif state == "Finalize" and status == SUCCEEDED:
            self.edge_share = 0

    def alias_percent(self) -> float:
        """Share of `live` invocations off blue, the version live served when the watch began
        (first function; releases move all of them in lockstep)."""
        if not self.splits or self.blue_version is None:
            return 0.0
        split = next(iter(self.splits.values()))
        return round((1.0 - split.weights.get(self.blue_version, 0.0)) * 100, 3)

    def green_percent(self) -> float:
        """The new version's share: 0 before the shift, the step's percent during it, 100 once
        finalized, 0 again after a rollback. In `invocations` routing that is the `live` aliases'
        weight off blue; in `connections` routing, below the 100% step, the share of new
        connections the edge sends to green (the aliases stay on blue until then)."""
        return max(self.alias_percent(), float(self.edge_share or 0))

    def _read_alarms(self) -> list[dict[str, Any]]:
        alarms = {a.name: a for a in self.aws.alarm_states(self.names.alarm_prefix)}
        self.requests += 1
        records = [
            {
                "type": "alarm",
                "name": a.name,
                "state": a.state,
                "reason": a.reason,
                "timestamp": _iso(a.updated),
            }
            for a in alarms.values()
            if a.name not in self.alarms or self.alarms[a.name].state != a.state
        ]
        self.alarms = alarms
        return records

    # ---- outputs ------------------------------------------------------------------------

    def run_json(self, stream: IO[str]) -> int:
        while True:
            for record in self.refresh():
                stream.write(json.dumps(record, default=str) + "\n")
            stream.flush()
            if self.finished:
                assert self.view is not None
                return exit_code_for(self.view.status)
            self.sleep(self.interval)

    def run_live(self, console: Console) -> int:
        self.refresh()
        with Live(self.render(), console=console, refresh_per_second=8, transient=False) as live:
            while not self.finished:
                self.sleep(self.interval)
                self.refresh()
                live.update(self.render())
        assert self.view is not None
        status = self.view.status
        colour = "green" if status == "SUCCEEDED" else "red"
        detail = f": {self.view.error} {self.view.cause or ''}".rstrip() if self.view.error else ""
        console.print()
        console.print(f"[bold {colour}]{status}[/]{detail}", markup=True)
        return exit_code_for(status)

    def shown_states(self) -> list[str]:
        """The states entered so far, in the order first entered (the running one last among
        them); states never entered are left out, however many the definition has."""
        assert self.view is not None
        return list(dict.fromkeys(name for name in self.view.path if name in self.view.runs))

    def time_cell(self, state_type: str, history_seconds: float | None) -> str:
        """Time in a state as a reader should take it. History timestamps are on the sandbox's
        compressed clock: a Wait keeps that clock (a 90 s bake reads 90 s), everything else is
        shown on the wall clock (a task that took 1 s reads 1 s, not 60)."""
        if history_seconds is None:
            return ""
        if self.time_scale == 1.0:
            return f"{history_seconds:.1f}s"
        if state_type == "Wait":
            return f"{history_seconds:.0f}s at {self.time_scale:g}x"
        return f"{history_seconds / self.time_scale:.2f}s wall"

    def render(self) -> Group:
        assert self.view is not None
        view = self.view
        table = Table(title=f"{self.execution_arn.rsplit(':', 1)[-1]}  [{view.status}]", title_justify="left")
        compressed = self.time_scale != 1.0
        if compressed:
            table.caption = (
                f"time: tasks and other states on the wall clock; Wait states (bakes) on the "
                f"sandbox's {self.time_scale:g}x clock, as the history records them"
            )
            table.caption_justify = "left"
        table.add_column("")
        table.add_column("state")
        table.add_column("type", style="dim")
        table.add_column("status")
        table.add_column("time", justify="right")
        table.add_column("detail", overflow="fold")
        for name in self.shown_states():
            run = view.runs[name]
            symbol, style = SYMBOLS.get(run.status, ("?", ""))
            state_type = str(view.graph.states[name].get("Type", ""))
            spent = sum(run.durations) if run.durations else run.seconds
            extras = []
            if run.visits > 1:
                extras.append(f"×{run.visits}")
            if run.retries:
                extras.append(f"{run.retries} retries")
            if run.error:
                extras.append(f"{run.error}: {(run.cause or '')[:80]}")
            table.add_row(
                Text(symbol, style=style),
                name,
                state_type,
                Text(run.status, style=style),
                self.time_cell(state_type, spent),
                " ".join(extras),
            )
        lines: list[Any] = [table]
        bake = wait_deadline(view)
        if bake is not None and view.current is not None:
            entered, seconds = bake
            if self.time_scale == 1.0:
                elapsed = (datetime.now(UTC) - entered).total_seconds()
            else:
                # History timestamps are on the sandbox's compressed clock: count from when this
                # watch first saw the wait, scaled.
                key = (view.current, view.runs[view.current].visits)
                now = self.monotonic()
                first_seen = self._wait_seen.setdefault(key, now)
                elapsed = (now - first_seen) * self.time_scale
            remaining = max(0.0, seconds - elapsed)
            lines.append(
                Text(f"bake: {view.current} {seconds:.0f} s, about {remaining:.0f} s left", style="blue")
            )
        if self.splits:
            described = {split.describe() for split in self.splits.values()}
            if len(described) == 1:  # lockstep, as releases keep them: one line for all
                traffic = Text(f"live ({len(self.splits)} functions): {described.pop()}")
            else:
                traffic = Text(
                    "live: "
                    + "; ".join(
                        f"{fn.removeprefix(self.names.env + '-realtime-')} {split.describe()}"
                        for fn, split in self.splits.items()
                    )
                )
            if self.edge_share and self.alias_percent() < 100:
                traffic.append(f"  (edge: {self.edge_share}% of new connections to green)", style="bold")
            else:
                traffic.append(
                    f"  (off blue v{self.blue_version}: {self.green_percent():.0f}%)", style="bold"
                )
            lines.append(traffic)
        if self.alarms:
            firing = [a.name for a in self.alarms.values() if a.state == "ALARM"]
            summary = Text(
                f"alarms: {len(self.alarms) - len(firing)} of {len(self.alarms)} not in ALARM", style="green"
            )
            if firing:
                summary = Text(f"alarms: ALARM {', '.join(firing)}", style="bold red")
            lines.append(summary)
        if self.warning:
            lines.append(Text(f"side panel stale: {self.warning}", style="yellow"))
        return Group(*lines)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
