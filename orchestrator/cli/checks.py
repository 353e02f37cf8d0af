"""`orchestrator check`: the release's synthetic WebSocket checks against a stage, now."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import ValidationError

from contracts.release import describe_errors
from orchestrator.cli.context import (
    EXIT_OK,
    EXIT_RELEASE_FAILED,
    CliError,
    EnvOpt,
    JsonOpt,
    check_env,
    options,
    out,
    usage_error,
)
from orchestrator.sandbox.state import read_state
from orchestrator.stage_checks import (
    STAGES,
    CheckSetupError,
    environment_checks,
    report,
    run_checks,
    stage_endpoint,
)


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(
    ctx: typer.Context,
    env: EnvOpt,
    stage: Annotated[str, typer.Option(help="Stage to check: live (released) or preview (green).")],
    clients: Annotated[
        int | None, typer.Option(help="WebSocket clients (default: the environment's release checks).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the synthetic WebSocket checks against a stage, with the release's thresholds and report.

    Exit 0 when every threshold is met, 1 when one is not (the summary says which)."""
    opts = options(ctx)
    check_env(env)
    if stage not in STAGES:
        usage_error(f"--stage: {stage!r} is not one of {', '.join(STAGES)}")
    try:
        checks = environment_checks(env, clients)
    except ValidationError as exc:
        usage_error("; ".join(f"--{line}" for line in describe_errors(exc)))
    except CheckSetupError as exc:
        usage_error(str(exc))
    aws = opts.aws()
    sandbox = read_state(opts.sandbox_dir, check_endpoint=False) if opts.target.sandbox else None
    if sandbox is not None and sandbox.environment != env:
        usage_error(f"--env: the sandbox runs {sandbox.environment}, not {env}")
    try:
        endpoint = stage_endpoint(aws, env, stage, sandbox)
    except CheckSetupError as exc:
        raise CliError(str(exc)) from exc
    if not as_json:
        out.print(
            f"checking {env} {stage} at {endpoint.url}: {checks.clients} clients x {checks.messages} events, "
            f"p99 <= {checks.p99_latency_ms} ms, success rate >= {checks.min_success_rate:g}",
            markup=False,
        )
    result, thresholds = run_checks(aws, endpoint, checks)
    figures = report(result, thresholds, endpoint)
    if as_json:
        print(json.dumps(figures))
    else:
        out.print(figures["summary"], markup=False)
        out.print(
            "PASSED" if figures["passed"] else "FAILED",
            style="bold green" if figures["passed"] else "bold red",
        )
    raise typer.Exit(EXIT_OK if figures["passed"] else EXIT_RELEASE_FAILED)
