"""A self-contained HTML report of one DR drill execution, like the release's (report.py): the
drill's figures (RTO, RPO, the verification against the manifest), a timeline from the snapshot
to the deletion of the temporary group, what fired it, the state graph with the path taken and
every state's input, output and timings. No scripts, fonts or stylesheets are fetched."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from orchestrator.render.diagram import COLOURS, to_svg
from orchestrator.render.graph import ExecutionView
from orchestrator.render.report import _CSS, _state_table

_EXTRA_CSS = """
.figures{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.figure{flex:1;border:1px solid #e0e0e0;border-radius:6px;padding:10px 14px;min-width:140px}
.figure .v{font-size:22px;font-weight:bold} .figure .k{font-size:12px;color:#5f6368}
table.kv{width:auto} table.kv th{width:220px}
"""


def duration(seconds: float | None) -> str:
    """`3 h 05 min 12 s`, `64.3 s`, `–`."""
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if days or hours:
        parts.append(f"{hours} h")
    parts.append(f"{minutes:02d} min")
    if not days:
        parts.append(f"{secs:02d} s")
    return " ".join(parts)


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def timeline_svg(marks: list[tuple[str, datetime | None]], width: int = 1000, height: int = 150) -> str:
    """Points in time on one axis, labelled alternately above and below; RPO and RTO spans drawn
    between the marks they join (`snapshot taken` -> `drill started`, `restore requested` ->
    `temporary group available`). The axis is linear in time unless the gap before the drill
    would crush the drill's own steps, then it is broken at the drill's start."""
    points = [(label, at) for label, at in marks if at is not None]
    if len(points) < 2:
        return ""
    left, right, axis_y = 40, width - 40, 75
    points.sort(key=lambda p: p[1])
    first, last = points[0][1], points[-1][1]
    drill_start = next((at for label, at in points if label == "drill started"), None)
    broken = drill_start is not None and (drill_start - first).total_seconds() > 4 * max(
        (last - drill_start).total_seconds(), 1
    )

    def x(at: datetime) -> float:
        if broken and drill_start is not None:
            split = left + 0.25 * (right - left)
            if at <= drill_start:
                span = max((drill_start - first).total_seconds(), 1)
                return left + (at - first).total_seconds() / span * (split - left)
            span = max((last - drill_start).total_seconds(), 1)
            return split + (at - drill_start).total_seconds() / span * (right - split)
        span = max((last - first).total_seconds(), 1)
        return left + (at - first).total_seconds() / span * (right - left)

    at_of = dict((label, at) for label, at in points)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height}" '
        'role="img" font-family="Helvetica, Arial, sans-serif">',
        f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="#9aa0a6" stroke-width="2"/>',
    ]
    for name, start, end, colour, y in (
        ("RPO", "snapshot taken", "drill started", "#e37400", axis_y - 12),
        ("RTO", "restore requested", "temporary group available", "#1a73e8", axis_y + 12),
    ):
        if start in at_of and end in at_of:
            x1, x2 = x(at_of[start]), x(at_of[end])
            parts.append(
                f'<line x1="{x1:.1f}" y1="{y}" x2="{x2:.1f}" y2="{y}" stroke="{colour}" stroke-width="6" '
                'stroke-linecap="round"/>'
            )
            parts.append(
                f'<text x="{(x1 + x2) / 2:.1f}" y="{y + (-8 if y < axis_y else 16)}" font-size="11" '
                f'text-anchor="middle" fill="{colour}" font-weight="bold">{name} '
                f"{escape(duration((at_of[end] - at_of[start]).total_seconds()))}</text>"
            )
    if broken and drill_start is not None:
        bx = x(drill_start) - 14
        parts.append(
            f'<text x="{bx:.1f}" y="{axis_y + 4}" font-size="14" text-anchor="middle" fill="#5f6368">//</text>'
        )
    for index, (label, at) in enumerate(points):
        px = x(at)
        above = index % 2 == 0
        ty = 18 if above else height - 22
        parts.append(f'<circle cx="{px:.1f}" cy="{axis_y}" r="4" fill="#202124"/>')
        parts.append(
            f'<line x1="{px:.1f}" y1="{axis_y}" x2="{px:.1f}" y2="{ty + (4 if above else -12)}" '
            'stroke="#dadce0" stroke-width="1"/>'
        )
        anchor = "start" if px < left + 60 else "end" if px > right - 60 else "middle"
        parts.append(
            f'<text x="{px:.1f}" y="{ty}" font-size="11" text-anchor="{anchor}" fill="#202124">{escape(label)}</text>'
        )
        parts.append(
            f'<text x="{px:.1f}" y="{ty + 13}" font-size="10" text-anchor="{anchor}" fill="#5f6368">'
            f"{at:%a %H:%M:%S}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def drill_report(
    view: ExecutionView,
    *,
    execution_arn: str,
    output: dict[str, Any] | None,
    fired_by: dict[str, Any] | None = None,
    backup: dict[str, Any] | None = None,
    notes: dict[str, str] | None = None,
) -> str:
    output = output or {}
    record = output.get("record") or {}
    drill = output.get("drill") or {}
    snapshot = output.get("snapshot") or {}
    restore = output.get("restore") or {}
    verification = record.get("verification") or {}
    sampled = (output.get("verify") or {}).get("sample_size")
    fill, stroke = {
        "SUCCEEDED": COLOURS["succeeded"],
        "RUNNING": COLOURS["running"],
    }.get(view.status, COLOURS["failed"])
    name = execution_arn.rsplit(":", 1)[-1]
    total = (view.stopped - view.started).total_seconds() if view.started and view.stopped else None
    head = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>DR drill {escape(name)}</title><style>{_CSS}{_EXTRA_CSS}</style></head><body>",
        f"<h1>DR drill {escape(name)} "
        f'<span class="badge" style="background:{fill};color:{stroke};border:1px solid {stroke}">'
        f"{escape(view.status)}</span></h1>",
        f'<div class="meta">{escape(execution_arn)}<br>started {view.started:%Y-%m-%d %H:%M:%S} UTC · '
        f"duration {escape(duration(total))} (sandbox clock) · {len(view.path)} states entered · "
        f"{len(view.events)} history events</div>"
        if view.started
        else "",
    ]
    if view.error or view.cause:
        head.append(f"<p><b>{escape(view.error or '')}</b> {escape(view.cause or '')}</p>")
    figures = [
        ("RTO", duration(record.get("rto_seconds")), "restore requested → temporary group available"),
        ("RPO", duration(record.get("rpo_seconds")), "snapshot taken → drill started"),
        (
            "keys restored",
            f"{verification.get('restored_keys', '–')} / {verification.get('expected_keys', '–')}",
            "restored / in the manifest",
        ),
        (
            "sample match",
            f"{100 * verification['sample_match_rate']:.0f}%"
            if sampled and "sample_match_rate" in verification
            else "–",
            f"{sampled or 0} sampled values equal to the manifest's digests",
        ),
        ("outcome", str(record.get("outcome", view.status)), "verified, group deleted, lock released"),
    ]
    body = ['<div class="figures">']
    for key, value, hint in figures:
        body.append(
            f'<div class="figure"><div class="k">{escape(key)}</div><div class="v">{escape(value)}</div>'
            f'<div class="k">{escape(hint)}</div></div>'
        )
    body.append("</div>")
    marks = [
        ("snapshot taken", _parse(snapshot.get("taken_at"))),
        ("drill started", _parse(drill.get("started_at"))),
        ("restore requested", _parse(restore.get("requested_at"))),
        ("temporary group available", _parse(restore.get("available_at"))),
        ("drill finished", _parse(record.get("finished_at"))),
    ]
    svg = timeline_svg(marks)
    if svg:
        body += ["<h2>Timeline (sandbox clock, UTC)</h2>", f'<div class="graph">{svg}</div>']
    rows: list[tuple[str, str]] = []
    if fired_by:
        rows += [
            ("fired by", f"schedule {fired_by.get('schedule', '')} ({fired_by.get('expression', '')})"),
            (
                "scheduled for / fired at",
                f"{fired_by.get('scheduled_for', '')} / {fired_by.get('fired_at', '')}",
            ),
        ]
    rows += [
        ("snapshot", f"{snapshot.get('name', '–')} (taken {snapshot.get('taken_at', '–')})"),
        (
            "temporary group",
            f"{record.get('temporary_group', '–')}, deleted: {record.get('temporary_group_deleted')}",
        ),
        ("failover tested", str(record.get("failover_tested"))),
        ("restore checks", f"{restore.get('attempts', '–')} (status {restore.get('status', '–')})"),
    ]
    if backup:
        rows += [(f"backup: {k}", str(v)) for k, v in backup.items()]
    rows += list((notes or {}).items())
    body.append('<h2>Details</h2><table class="kv">')
    body += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows]
    body.append("</table>")
    body += [
        "<h2>State graph (path taken highlighted)</h2>",
        f'<div class="graph">{to_svg(view.graph, view, title=name)}</div>',
        "<h2>States</h2>",
        _state_table(view),
        "</body></html>",
    ]
    return "".join(head + body)
