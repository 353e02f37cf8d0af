"""`orchestrator`: start, watch, approve and roll back releases, against AWS or the sandbox.

The root command holds the global options; each command group lives in its own module of this
package and is registered below with one line (its module's `register`). Exit codes and the
shared helpers are in `orchestrator.cli.context`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from orchestrator.aws import AwsError, Target
from orchestrator.cli import checks, ops, release, sandbox, schedule, tools
from orchestrator.cli.context import EXIT_AWS, EXIT_USAGE, CliError, Options, err
from orchestrator.paths import sandbox_dir
from orchestrator.sandbox.state import SandboxNotRunning, read_state

app = typer.Typer(
    name="orchestrator",
    help="Release orchestrator of the realtime analytics service (AWS or the local sandbox).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# One line per command module: each adds its group(s) or commands to the root.
COMMAND_MODULES = (release, sandbox, tools, checks, ops, schedule)
for module in COMMAND_MODULES:
    module.register(app)


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option(help="AWS named profile (default credential chain otherwise).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: the profile's or AWS_REGION).")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="Send every AWS call to this endpoint.")
    ] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Talk to the running local sandbox.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    target = Target(profile=profile, region=region, endpoint_url=endpoint_url)
    if sandbox:
        try:
            state = read_state(sandbox_dir())
        except SandboxNotRunning as exc:
            raise CliError(str(exc), EXIT_AWS) from exc
        target = Target(region=state.region, endpoint_url=state.moto_url, sandbox=True)
    ctx.obj = Options(target=target, debug=debug, sandbox_dir=sandbox_dir())


# ---- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr (tracebacks only with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="orchestrator", standalone_mode=False)
        return int(code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        err.print("aborted", markup=False)
        return 130
    except typer.TyperException as exc:  # typer's (vendored click) usage and parameter errors
        if debug:
            raise
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: show its help, as --help would
            err.print(exc.format_message(), markup=False)
            return EXIT_USAGE
        where = f"{context.command_path}: " if context is not None else ""
        message = " ".join(exc.format_message().split())
        err.print(f"error: {where}{message}", markup=False)
        return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
    except CliError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False)
        return exc.code
    except AwsError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", markup=False)
        return EXIT_AWS
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            raise
        err.print(
            f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", markup=False
        )
        return EXIT_AWS


if __name__ == "__main__":
    sys.exit(main())
