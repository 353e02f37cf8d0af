"""Every runbook has the required sections, and every `orchestrator ...` command in a runbook's
code blocks parses against the real CLI (Click's parser, nothing executed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from orchestrator.cli import app

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
REQUIRED = ("## Trigger", "## Commands", "## Success looks like", "## Back out")
EXPECTED = {
    "release",
    "rollback",
    "approve",
    "dr-drill",
    "restore-from-backup",
    "rotate-api-keys",
    "cache-failover",
    "dlq-redrive",
    "cost-anomaly",
    "incident-triage",
}
_BLOCK = re.compile(r"```(?:bash|sh)?\n(.*?)```", re.S)


def pages() -> list[Path]:
    return sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")


def commands() -> list[tuple[str, str]]:
    found = []
    for page in pages():
        for block in _BLOCK.findall(page.read_text()):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.strip()
                if line.startswith("orchestrator "):
                    found.append((page.name, line))
    return found


def test_every_procedure_has_a_page() -> None:
    assert {p.stem for p in pages()} == EXPECTED


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_page_has_required_sections(page: Path) -> None:
    text = page.read_text()
    missing = [section for section in REQUIRED if section not in text]
    assert not missing, f"{page.name} lacks {missing}"
    assert text.index("## Trigger") < text.index("## Commands") < text.index("## Success looks like")


def test_pages_carry_cli_commands() -> None:
    assert {name for name, _ in commands()} == {f"{name}.md" for name in EXPECTED}


@pytest.mark.parametrize(
    ("page", "line"), commands(), ids=lambda v: v if isinstance(v, str) and v.endswith(".md") else None
)
def test_command_parses_against_the_cli(page: str, line: str) -> None:
    args = shlex.split(line)[1:]
    group = typer.main.get_command(app)
    parent = group.context_class(group, info_name="orchestrator")
    # Root options (--sandbox, --region, ...) come before the first sub-command.
    while args and args[0].startswith("--"):
        args.pop(0)
    # Typer ships its own Click: a group is a command that resolves sub-commands.
    while hasattr(group, "get_command") and hasattr(group, "list_commands"):
        assert args, f"{page}: `{line}` names no sub-command"
        name = args.pop(0)
        sub = group.get_command(parent, name)
        assert sub is not None, f"{page}: `{line}`: {name!r} is not a command"
        group = sub
        parent = group.context_class(group, info_name=name, parent=parent)
    # Parses every option and argument (types, choices, required) without running the command.
    group.make_context(parent.info_name, args, parent=parent.parent)
