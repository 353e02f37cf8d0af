"""A small layered layout for state graphs: rows by longest forward path from the start,
back edges (loops such as the traffic-shift loop) drawn around the side.

State machines are small (tens of states), so a plain deterministic algorithm is enough and
keeps the output free of any external layout engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.render.graph import END, START, Graph


@dataclass(frozen=True)
class Box:
    name: str
    row: int
    col: int
    x: float
    y: float
    width: float
    height: float

    @property
    def cx(self) -> float:
        return self.x + self.width / 2


@dataclass
class Layout:
    boxes: dict[str, Box]
    forward: set[tuple[str, str]]
    back: set[tuple[str, str]]
    width: float
    height: float


NODE_W, NODE_H, ROW_GAP, COL_GAP, MARGIN = 190.0, 38.0, 34.0, 26.0, 30.0
TERMINAL_W = 90.0


def layout(graph: Graph) -> Layout:
    nodes = [START, *graph.order(), END]
    row, forward, back = graph.rows()

    rows: dict[int, list[str]] = {}
    for node in nodes:  # reading order keeps siblings left to right as the document lists them
        rows.setdefault(row[node], []).append(node)
    widest = max(len(r) for r in rows.values())
    canvas_w = MARGIN * 2 + widest * NODE_W + (widest - 1) * COL_GAP + 60  # room for loop arcs
    boxes: dict[str, Box] = {}
    for r, members in rows.items():
        total = sum(_width(m) for m in members) + COL_GAP * (len(members) - 1)
        x = (canvas_w - 60 - total) / 2
        for c, name in enumerate(members):
            w = _width(name)
            boxes[name] = Box(name, r, c, x, MARGIN + r * (NODE_H + ROW_GAP), w, NODE_H)
            x += w + COL_GAP
    height = MARGIN * 2 + (max(rows) + 1) * (NODE_H + ROW_GAP) - ROW_GAP
    return Layout(boxes, forward, back, canvas_w, height)


def _width(name: str) -> float:
    return TERMINAL_W if name in {START, END} else NODE_W
