"""What every command group shares: exit codes, the one-line error, the global options, the
consoles and the common option types.

Exit codes (scripts rely on them):
  0  success (the release succeeded, or the command did what it was asked)
  1  the release failed, was rolled back or aborted (or a check or drill failed)
  2  bad arguments or an invalid release request (the message names the field)
  3  AWS or the sandbox refused or could not be reached (the message names the call)
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from contracts import names
from orchestrator.aws import Aws, Target

EXIT_OK, EXIT_RELEASE_FAILED, EXIT_USAGE, EXIT_AWS = 0, 1, 2, 3

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
    """A one-line failure with its exit code."""

    def __init__(self, message: str, code: int = EXIT_AWS) -> None:
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> NoReturn:
    raise CliError(message, EXIT_USAGE)


@dataclass
class Options:
    """The global options (given before the command), resolved to one AWS target."""

    target: Target
    debug: bool
    sandbox_dir: Path

    def aws(self) -> Aws:
        return Aws(self.target)


def options(ctx: typer.Context) -> Options:
    """The global options of this invocation (set by the root callback)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Options)
    return obj


def whoami() -> str:
    """The local user, recorded as the requester of releases, approvals and drills."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def check_env(env: str) -> str:
    if env not in names.ENVIRONMENTS:
        usage_error(f"--env: {env!r} is not one of {', '.join(names.ENVIRONMENTS)}")
    return env


def group(help_text: str) -> typer.Typer:
    """A command group as every group of this CLI is built (no arguments: its help)."""
    return typer.Typer(help=help_text, no_args_is_help=True)


EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment: staging or production.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
