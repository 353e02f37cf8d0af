"""Reading the workflows: their jobs, steps, and the commands their `run:` scripts invoke."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / ".github" / "workflows"

# Tokens that end one simple command and start the next.
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", "{", "}", ";;", "\n"}
_REDIRECTS = {">", ">>", "<", "2>", "2>&1"}
_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "time", "exec"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_ARRAY = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\+?=\(([^)]*)\)")
_ARRAY_USE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\}$")


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


@dataclass(frozen=True)
class Step:
    workflow: str
    job: str
    index: int
    step: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.workflow}:{self.job}:{self.step.get('name') or self.step.get('uses') or self.index}"


def steps() -> Iterator[Step]:
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            for index, step in enumerate(job.get("steps", [])):
                yield Step(path.name, job_id, index, step)


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]


def commands(script: str, where: str) -> list[Command]:
    """Every simple command of a bash script, with array expansions resolved to their elements."""
    script = script.replace("\\\n", " ")
    arrays: dict[str, list[str]] = {}
    for name, body in _ARRAY.findall(script):
        arrays.setdefault(name, []).extend(shlex.split(body))
    found: list[Command] = []
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|(){}<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in [*lexer, ";"]:
            if token in _SEPARATORS:
                if current:
                    found.append(Command(where, tuple(current)))
                current = []
                continue
            if token in _REDIRECTS or (current and current[-1] in _REDIRECTS):
                current.append(token)
                continue
            if not current and (token in _KEYWORDS or _ASSIGNMENT.match(token)):
                continue
            array = _ARRAY_USE.match(token)
            current.extend(arrays.get(array.group(1), []) if array else [token])
    # Drop redirect targets: they are files, not arguments.
    cleaned = []
    for command in found:
        argv: list[str] = []
        skip = False
        for token in command.argv:
            if skip:
                skip = False
                continue
            if token in _REDIRECTS:
                skip = True
                continue
            argv.append(token)
        if argv:
            cleaned.append(Command(command.where, tuple(argv)))
    return cleaned


def run_commands() -> list[Command]:
    result: list[Command] = []
    for step in steps():
        script = step.step.get("run")
        if script:
            result += commands(script, step.where)
    return result


def program(command: Command) -> str:
    """`make`, `orchestrator`, `python`, ... whatever path the executable is called by."""
    return command.argv[0].rsplit("/", 1)[-1]


def makefile_targets(makefile: Path = ROOT / "Makefile") -> set[str]:
    targets: set[str] = set()
    for line in makefile.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", line)
        if match and not match.group(1).startswith("."):
            targets.add(match.group(1))
    return targets
