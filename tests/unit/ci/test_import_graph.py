"""The project's modules import one another without a cycle, and what runs in Lambda imports no tooling."""

from __future__ import annotations

import ast

from tests.support.import_graph import cycles, import_graph, imports

# Deployed in the Lambda bundles: may import each other, never the CLI, the CDK app or the tests.
RUNTIME = ("contracts", "service", "tasks")
TOOLING = ("orchestrator", "infra", "scripts", "tests", "benchmarks")


def test_the_cycle_finder_finds_a_cycle_and_nothing_else() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_lazy_imports_are_edges() -> None:
    tree = ast.parse("from . import x\nfrom ..y import z\ndef f():\n    import q.r\n")
    assert set(imports(tree, "p.s.m", False)) == {"p.s.x|p.s", "p.y.z|p.y", "q.r"}
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hidden\n")
    assert "hidden" not in set(imports(guarded, "m", False))


def test_no_import_cycle_among_the_projects_modules() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(cycle) for cycle in found)


def test_lambda_code_imports_no_tooling() -> None:
    graph = import_graph()
    offending = {}
    for name in sorted(graph):
        if not name.startswith(RUNTIME):
            continue
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            for target in graph[current]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        tooling = sorted(target for target in seen if target.split(".")[0] in TOOLING)
        if tooling:
            offending[name] = tooling
    assert offending == {}
