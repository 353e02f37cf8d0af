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
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in graph.edges:
        if edge.source in succ and edge.target in succ and edge.target not in succ[edge.source]:
            succ[edge.source].append(edge.target)

    # Depth-first from the start: an edge into a node still on the stack closes a loop.
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    finish: list[str] = []

    def visit(root: str) -> None:
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, index = stack.pop()
            if index < len(succ[node]):
                stack.append((node, index + 1))
                nxt = succ[node][index]
                if state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                finish.append(node)

    for node in nodes:
        if node not in state:
            visit(node)
    forward = {(a, b) for a in nodes for b in succ[a] if (a, b) not in back}

    # Longest path rows over the forward (acyclic) edges, in topological order.
    row: dict[str, int] = dict.fromkeys(nodes, 0)
    for node in reversed(finish):
        for nxt in succ[node]:
            if (node, nxt) in forward:
                row[nxt] = max(row[nxt], row[node] + 1)
    row[END] = max(row[n] for n in nodes if n != END) + 1  # the end sits below everything

    rows: dict[int, list[str]] = {}
    for node in nodes:  # breadth-first order keeps siblings in reading order
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
