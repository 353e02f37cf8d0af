"""A self-contained HTML report of one execution: the graph with the path taken, every state's
input/output and timings, and green's share of traffic over time as an inline SVG plot.

No scripts, fonts or stylesheets are fetched: the file opens anywhere, including offline and
as a CI artifact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from contracts.text import counted
from orchestrator.render.diagram import COLOURS, to_svg
from orchestrator.render.graph import PENDING, ExecutionView


@dataclass(frozen=True)
class TrafficSample:
    """Share of `live` invocations routed away from blue (to the new version), at a moment."""

    at: datetime
    green_percent: float


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#202124;max-width:1200px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.meta{color:#5f6368;font-size:13px} .badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:bold}
table{border-collapse:collapse;width:100%;font-size:12px} th,td{border-bottom:1px solid #e0e0e0;padding:5px 6px;text-align:left;vertical-align:top}
th{background:#f8f9fa} pre{margin:0;white-space:pre-wrap;word-break:break-all;font-size:11px;max-height:260px;overflow:auto}
details summary{cursor:pointer;color:#1a73e8} .graph{overflow:auto;border:1px solid #e0e0e0;border-radius:6px;padding:8px}
.bar{height:10px;background:#1a73e8;border-radius:2px}
"""


def _fmt_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] if value else "–"


def _fmt_secs(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def traffic_svg(samples: list[TrafficSample], width: int = 760, height: int = 220) -> str:
    """A step plot of green's share of live traffic (0–100 %) against elapsed seconds."""
    left, right, top, bottom = 48, 16, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" font-family="Helvetica, Arial, sans-serif">'
        "<title>new version's share of live traffic over time</title>",
    ]
    for pct in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - pct / 100)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eceff1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#5f6368">{pct}%</text>'
        )
    if not samples:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" font-size="12" '
            'fill="#5f6368">no traffic samples recorded</text></svg>'
        )
        return "".join(parts)
    ordered = sorted(samples, key=lambda s: s.at)
    t0 = ordered[0].at
    span = max((ordered[-1].at - t0).total_seconds(), 1e-3)

    def point(sample: TrafficSample) -> tuple[float, float]:
        x = left + plot_w * (sample.at - t0).total_seconds() / span
        y = top + plot_h * (1 - max(0.0, min(100.0, sample.green_percent)) / 100)
        return x, y

    coords: list[str] = []
    prev_y: float | None = None
    for sample in ordered:
        x, y = point(sample)
        if prev_y is not None:
            coords.append(f"{x:.1f},{prev_y:.1f}")
        coords.append(f"{x:.1f},{y:.1f}")
        prev_y = y
    parts.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="#1a73e8" stroke-width="2"/>')
    for sample in ordered:
        x, y = point(sample)
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1a73e8"><title>'
            f"{_fmt_time(sample.at)}: {sample.green_percent:.0f}% green</title></circle>"
        )
    for frac in (0, 0.5, 1):
        x = left + plot_w * frac
        parts.append(
            f'<text x="{x:.1f}" y="{height - 14}" font-size="10" text-anchor="middle" fill="#5f6368">'
            f"{span * frac:.1f} s</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 2}" font-size="10" text-anchor="middle" fill="#5f6368">'
        "wall-clock seconds since the watch began</text></svg>"
    )
    return "".join(parts)


def execution_report(
    view: ExecutionView,
    *,
    execution_arn: str,
    traffic: list[TrafficSample] | None = None,
    notes: dict[str, str] | None = None,
) -> str:
    """The HTML page for one execution."""
    fill, stroke = {
        "SUCCEEDED": COLOURS["succeeded"],
        "RUNNING": COLOURS["running"],
    }.get(view.status, COLOURS["failed"])
    total = (view.stopped - view.started).total_seconds() if view.started and view.stopped else None
    name = execution_arn.rsplit(":", 1)[-1]
    head = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>Release execution {escape(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Execution {escape(name)} "
        f'<span class="badge" style="background:{fill};color:{stroke};border:1px solid {stroke}">'
        f"{escape(view.status)}</span></h1>",
        f'<div class="meta">{escape(execution_arn)}<br>started {_fmt_time(view.started)} UTC · '
        f"stopped {_fmt_time(view.stopped)} UTC · duration {_fmt_secs(total)} · "
        f"{len(view.path)} states entered · {len(view.events)} history events</div>",
    ]
    if view.error or view.cause:
        head.append(f"<p><b>{escape(view.error or '')}</b> {escape(view.cause or '')}</p>")
    for key, value in (notes or {}).items():
        head.append(f'<div class="meta"><b>{escape(key)}:</b> {escape(value)}</div>')
    body = [
        "<h2>State graph (path taken highlighted)</h2>",
        f'<div class="graph">{to_svg(view.graph, view, title=name)}</div>',
        "<h2>New version's share of live traffic (off blue)</h2>",
        *_routing_note(view),
        traffic_svg(traffic or []),
        *_judgement_section(view),
        *_drain_section(view),
        "<h2>States</h2>",
        _state_table(view),
        "</body></html>",
    ]
    return "".join(head + body)


_VERDICT_COLOURS = {
    "pass": COLOURS["succeeded"],
    "marginal": COLOURS["caught"],
    "fail": COLOURS["failed"],
}


def _judged_steps(view: ExecutionView) -> list[tuple[str, str, str]]:
    """(step, verdict, summary) of every JudgeCanary run: the verdicts carried in its last output,
    then the failing one, whose numbers are in the error it raised."""
    run = view.runs.get("JudgeCanary")
    if run is None:
        return []
    steps: list[tuple[str, str, str]] = []
    output = run.output if isinstance(run.output, dict) else {}
    found = output.get("judgement")
    judgement: dict[str, Any] = found if isinstance(found, dict) else {}
    for step in judgement.get("steps") or []:
        label = f"{int(step.get('index', 0)) + 1} ({step.get('percent')}%)"
        steps.append((label, str(step.get("verdict")), str(step.get("summary"))))
    if run.error == "CanaryFailed":
        cause = run.cause or ""
        try:
            parsed = json.loads(cause)
            cause = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
        except ValueError:
            pass
        steps.append(("last", "fail", str(cause)))
    return steps


def _judgement_section(view: ExecutionView) -> list[str]:
    steps = _judged_steps(view)
    if not steps:
        return []
    rows = [
        "<h2>Canary judgment: green against blue after each bake</h2>",
        "<table><tr><th>Step</th><th>Verdict</th><th>Numbers</th></tr>",
    ]
    for label, verdict, summary in steps:
        if summary.startswith("pass (not judged)"):
            verdict = "not judged"  # every test skipped: shown apart from a judged pass
        fill, stroke = _VERDICT_COLOURS.get(verdict, COLOURS[PENDING])
        rows.append(
            f"<tr><td>{escape(label)}</td>"
            f'<td><span class="badge" style="background:{fill};color:{stroke}">{escape(verdict)}</span></td>'
            f"<td>{escape(summary)}</td></tr>"
        )
    rows.append("</table>")
    return rows


def _routing_note(view: ExecutionView) -> list[str]:
    """In `connections` routing the alias weights below stay on blue until the 100% step."""
    run = view.runs.get("ValidateRequest")
    output: dict[str, Any] = run.output if run is not None and isinstance(run.output, dict) else {}
    found = output.get("release")
    release: dict[str, Any] = found if isinstance(found, dict) else {}
    if release.get("routing") != "connections":
        return []
    return [
        '<div class="meta">connections routing: below the 100% step the chart shows the share of new '
        "connections the edge sends to the canary stage (green), as each SetWeights set it; the live "
        "aliases stay on blue until the 100% step moves them.</div>"
    ]


def _drain_section(view: ExecutionView) -> list[str]:
    """DrainCanary's figures after a rollback in `connections` routing."""
    run = view.runs.get("DrainCanary")
    if run is None or run.visits == 0:
        return []  # not in `connections` routing, no rollback, or the alarm rollback drained
    output = run.output if isinstance(run.output, dict) else {}
    drain = output.get("drain")
    if not isinstance(drain, dict):
        reason = f"{run.error or 'no result'}: {run.cause or ''}".strip().rstrip(":")
        return ["<h2>Canary stage drain</h2>", f"<p>not completed ({escape(reason)})</p>"]
    remaining = int(drain.get("remaining", 0))
    outcome = (
        f"{remaining} connections still on the canary stage when the drain gave up"
        if remaining
        else "no connection left on the canary stage"
    )
    return [
        "<h2>Canary stage drain</h2>",
        f"<p>{counted(int(drain.get('closed', 0)), 'connection')} closed, {int(drain.get('gone', 0))} already gone, "
        f"in {float(drain.get('drain_seconds', 0.0)):.2f} s over {counted(int(drain.get('rounds', 1)), 'round')}: "
        f"{escape(outcome)}; their clients reconnect through live, to blue.</p>",
    ]


def _state_table(view: ExecutionView) -> str:
    durations = [sum(run.durations) for run in view.runs.values()]
    longest = max(durations + [1e-9])
    rows = [
        "<table><tr><th>State</th><th>Type</th><th>Status</th><th>Visits</th><th>Last entered (UTC)</th>"
        "<th>Time in state</th><th>Retries</th><th>Error</th><th>Input / output</th></tr>"
    ]
    for name in view.graph.order():
        run = view.runs[name]
        kind = view.graph.states[name].get("Type", "")
        fill, stroke = COLOURS.get(run.status, COLOURS[PENDING])
        spent = sum(run.durations) if run.durations else run.seconds
        bar = f'<div class="bar" style="width:{100 * (spent or 0) / longest:.0f}%"></div>' if spent else ""
        error = escape(" ".join(x for x in (run.error, run.cause) if x))
        io = ""
        if run.input is not None or run.output is not None:
            io = (
                "<details><summary>show</summary><b>input</b><pre>"
                f"{escape(_pretty(run.input))}</pre><b>output</b><pre>{escape(_pretty(run.output))}</pre></details>"
            )
        rows.append(
            f"<tr><td>{escape(name)}</td><td>{escape(str(kind))}</td>"
            f'<td><span class="badge" style="background:{fill};color:{stroke}">{run.status}</span></td>'
            f"<td>{run.visits}</td><td>{_fmt_time(run.entered)}</td><td>{_fmt_secs(spent)}{bar}</td>"
            f"<td>{run.retries}</td><td>{error}</td><td>{io}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def definition_page(svg: str, title: str) -> str:
    """An HTML page holding just a graph (render without an execution)."""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><div class="graph">{svg}</div></body></html>'
    )
