"""State graph renderers: SVG (inline, no scripts) and Mermaid text, with an execution's path
highlighted and each state coloured by what it did (the console's graph view, locally)."""

from __future__ import annotations

import re
from html import escape

from orchestrator.render.graph import (
    ABORTED,
    CAUGHT,
    END,
    FAILED,
    PENDING,
    RUNNING,
    START,
    SUCCEEDED,
    ExecutionView,
    Graph,
)
from orchestrator.render.layout import Layout, layout

# Fill and stroke per status (colour-blind safe pairs: blue/orange contrast, plus dashes).
COLOURS: dict[str, tuple[str, str]] = {
    PENDING: ("#f4f5f7", "#9aa0a6"),
    RUNNING: ("#d6e8ff", "#1a73e8"),
    SUCCEEDED: ("#dff3e4", "#1e8e3e"),
    CAUGHT: ("#fff1d6", "#e37400"),
    FAILED: ("#fde2e1", "#d93025"),
    ABORTED: ("#e8e8e8", "#5f6368"),
}


def status_of(view: ExecutionView | None, name: str) -> str:
    if view is None or name not in view.runs:
        return PENDING
    return view.runs[name].status


def to_svg(graph: Graph, view: ExecutionView | None = None, title: str | None = None) -> str:
    lay = layout(graph)
    taken = view.taken_edges() if view else set()
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" '
        f'width="{lay.width:.0f}" height="{lay.height:.0f}" role="img" font-family="Helvetica, Arial, sans-serif">',
        f"<title>{escape(title or 'state machine')}</title>",
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#9aa0a6"/></marker>'
        '<marker id="arrow-on" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#1a73e8"/></marker>'
        "</defs>",
    ]
    parts.extend(_edges(graph, lay, taken))
    for name, box in lay.boxes.items():
        status = status_of(view, name)
        fill, stroke = COLOURS.get(status, COLOURS[PENDING])
        kind = "" if name in {START, END} else str(graph.states[name].get("Type", ""))
        rx = box.height / 2 if name in {START, END} else 6
        dash = ' stroke-dasharray="5 3"' if status == CAUGHT else ""
        width = 2.5 if status in {RUNNING, FAILED} else 1.5
        label = "Start" if name == START else "End" if name == END else name
        visits = view.runs[name].visits if view and name in view.runs else 0
        tip = f"{label} ({kind}) {status}" + (f", {visits} visits" if visits > 1 else "")
        parts.append(
            f'<g class="state {status}" data-state="{escape(name)}"><title>{escape(tip)}</title>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.0f}" height="{box.height:.0f}" '
            f'rx="{rx:.0f}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
            f'<text x="{box.cx:.1f}" y="{box.y + 16:.1f}" text-anchor="middle" font-size="12" '
            f'fill="#202124">{escape(_clip(label, 26))}</text>'
        )
        if kind:
            note = kind + (f" ×{visits}" if visits > 1 else "")
            parts.append(
                f'<text x="{box.cx:.1f}" y="{box.y + 30:.1f}" text-anchor="middle" font-size="9" '
                f'fill="#5f6368">{escape(note)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _edges(graph: Graph, lay: Layout, taken: set[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    labels = {(e.source, e.target): e.label for e in graph.edges}
    arc = 0
    for source, target in sorted(lay.forward | lay.back):
        a, b = lay.boxes.get(source), lay.boxes.get(target)
        if a is None or b is None:
            continue
        on = (source, target) in taken
        colour, marker, width = ("#1a73e8", "arrow-on", 2.4) if on else ("#bdc1c6", "arrow", 1.2)
        label = labels.get((source, target), "")
        dash = ' stroke-dasharray="4 3"' if label.startswith("catch") else ""
        if (source, target) in lay.back or b.y <= a.y:
            arc += 1
            right = lay.width - 24 - (arc % 4) * 7
            d = (
                f"M{a.x + a.width:.1f},{a.y + a.height / 2:.1f} C{right:.1f},{a.y + a.height / 2:.1f} "
                f"{right:.1f},{b.y + b.height / 2:.1f} {b.x + b.width:.1f},{b.y + b.height / 2:.1f}"
            )
        else:
            d = f"M{a.cx:.1f},{a.y + a.height:.1f} L{b.cx:.1f},{b.y:.1f}"
        tip = f"{source} → {target}" + (f" ({label})" if label else "")
        out.append(
            f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} '
            f'marker-end="url(#{marker})"><title>{escape(tip)}</title></path>'
        )
    return out


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def _mermaid_id(name: str, ids: dict[str, str]) -> str:
    if name not in ids:
        base = re.sub(r"[^A-Za-z0-9_]", "_", name) or "state"
        ids[name] = f"s{len(ids)}_{base}"
    return ids[name]


def to_mermaid(graph: Graph, view: ExecutionView | None = None) -> str:
    """A `flowchart TD` with one class per status; taken edges drawn thick (`==>`)."""
    ids: dict[str, str] = {}
    lines = ["flowchart TD"]
    for name in [START, *graph.order(), END]:
        node = _mermaid_id(name, ids)
        if name == START:
            lines.append(f"    {node}((Start))")
        elif name == END:
            lines.append(f"    {node}((End))")
        else:
            kind = graph.states[name].get("Type", "")
            text = f"{name}<br/><small>{kind}</small>".replace('"', "#quot;")
            shape = ('{"', '"}') if kind == "Choice" else ('["', '"]')
            lines.append(f"    {node}{shape[0]}{text}{shape[1]}")
    taken = view.taken_edges() if view else set()
    for edge in graph.edges:
        arrow = (
            "==>"
            if (edge.source, edge.target) in taken
            else ("-.->" if edge.label.startswith("catch") else "-->")
        )
        label = f"|{edge.label.replace('|', '/')}|" if edge.label else ""
        lines.append(f"    {_mermaid_id(edge.source, ids)} {arrow}{label} {_mermaid_id(edge.target, ids)}")
    for status, (fill, stroke) in COLOURS.items():
        lines.append(f"    classDef {status} fill:{fill},stroke:{stroke},stroke-width:2px")
    if view:
        for name in graph.states:
            lines.append(f"    class {_mermaid_id(name, ids)} {status_of(view, name)}")
    return "\n".join(lines) + "\n"
