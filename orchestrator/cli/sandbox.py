"""`orchestrator sandbox`: the local sandbox (moto, Redis, the WebSocket gateway, the stage)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.context import EXIT_AWS, CliError, JsonOpt, err, group, options, out, usage_error
from orchestrator.sandbox.daemon import (
    SANDBOX_TRAFFIC_CLIENTS,
    SandboxError,
    parse_instant,
    start_background,
    stop_background,
)
from orchestrator.sandbox.state import SandboxNotRunning, SandboxState, read_lambda_report, read_state

sandbox_app = group("The local sandbox: moto, Redis, the WebSocket gateway, the stage.")


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("up")
def sandbox_up(
    ctx: typer.Context,
    time_scale: Annotated[
        float, typer.Option(min=1.0, help="Virtual seconds per wall second for Wait states and bakes.")
    ] = 60.0,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run the Lambda handlers inside the sandbox process (for comparison; "
            "default: each function in worker processes from its cdk.out asset).",
        ),
    ] = False,
    clock_start: Annotated[
        str | None,
        typer.Option(
            "--clock-start",
            help="The sandbox clock's first instant, ISO 8601 with a time zone, e.g. "
            "2026-06-03T10:00:00+00:00 (default: now). Schedules fire from there.",
        ),
    ] = None,
    traffic: Annotated[
        bool,
        typer.Option(
            "--traffic/--no-traffic",
            help="Keep WebSocket clients on `live` (pings, a subscribed channel's events), as users "
            "would: a release's steps need green to serve some of them.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Start the sandbox in the background and print its endpoints."""
    try:
        state = start_background(
            options(ctx).sandbox_dir,
            time_scale=time_scale,
            progress=None if as_json else err,
            in_process=in_process,
            clock_start=_instant(clock_start) if clock_start else None,
            traffic_clients=SANDBOX_TRAFFIC_CLIENTS if traffic else 0,
        )
    except SandboxError as exc:
        raise CliError(str(exc)) from exc
    if as_json:
        print(json.dumps(state.to_dict()))
    else:
        _print_sandbox(state)


def _instant(text: str) -> datetime:
    try:
        return parse_instant(text)
    except ValueError as exc:
        usage_error(f"--clock-start: {exc}")


@sandbox_app.command("down")
def sandbox_down(ctx: typer.Context) -> None:
    """Stop the background sandbox."""
    stopped = stop_background(options(ctx).sandbox_dir)
    out.print("sandbox stopped" if stopped else "sandbox was not running")


@sandbox_app.command("status")
def sandbox_status(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Is the sandbox running, and where."""
    try:
        state = read_state(options(ctx).sandbox_dir)
    except SandboxNotRunning as exc:
        if as_json:
            print(json.dumps({"running": False}))
        else:
            out.print(str(exc))
        raise typer.Exit(EXIT_AWS) from exc
    if as_json:
        print(json.dumps({"running": True, **state.to_dict()}))
    else:
        _print_sandbox(state)
        report = read_lambda_report(options(ctx).sandbox_dir)
        if report:
            cold = ", ".join(
                f"{name.removeprefix(f'{state.environment}-')} {figures['cold_start_ms_p50']:.0f}"
                for name, figures in report.get("functions", {}).items()
                if figures.get("cold_start_ms_p50") is not None
            )
            out.print(
                f"  cold start p50   {cold or 'none yet'} (ms; `orchestrator sandbox lambdas` for more)"
            )


@sandbox_app.command("lambdas")
def sandbox_lambdas(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Lambda workers of the running sandbox: cold starts (p50, max) and invocations per function."""
    try:
        state = read_state(options(ctx).sandbox_dir)
    except SandboxNotRunning as exc:
        out.print(str(exc))
        raise typer.Exit(EXIT_AWS) from exc
    report = read_lambda_report(options(ctx).sandbox_dir)
    if as_json:
        print(json.dumps({"lambda_mode": state.lambda_mode, **(report or {})}))
        return
    if state.lambda_mode != "isolated":
        out.print("the sandbox runs its Lambda handlers in-process (started with --in-process): no workers")
        return
    if not report:
        out.print("no worker has started yet")
        return
    table = Table(
        title="Lambda workers (each function from its cdk.out asset, in its own processes)",
        title_justify="left",
    )
    for column in (
        "function",
        "invocations",
        "errors",
        "timeouts",
        "cold starts",
        "p50 ms",
        "max ms",
        "max RSS MB",
    ):
        table.add_column(column, justify="left" if column == "function" else "right")
    for name, f in report.get("functions", {}).items():
        p50, top = f.get("cold_start_ms_p50"), f.get("cold_start_ms_max")
        table.add_row(
            name,
            str(f["invocations"]),
            str(f["errors"]),
            str(f["timeouts"]),
            str(f["cold_starts"]),
            "–" if p50 is None else f"{p50:.0f}",
            "–" if top is None else f"{top:.0f}",
            f"{f['max_rss_mb']:.0f}",
        )
    out.print(table)
    out.print(
        f"spawn: {report.get('spawn')}, python {report.get('python')}; "
        f"cold start p50 over all: {report.get('cold_start_ms_p50_all')} ms"
    )


def _mode_note(mode: str) -> str:
    if mode == "isolated":
        return "isolated: each in worker processes from its own cdk.out asset (host build), template settings"
    return "in-process: handlers run inside the sandbox process (--in-process)"


def _print_sandbox(state: SandboxState) -> None:
    out.print(f"sandbox running (pid {state.pid}), environment {state.environment}, region {state.region}")
    for name, value in state.endpoints().items():
        out.print(f"  {name:<16} {value}")
    if state.artifact_bucket:
        out.print(f"  artifact bucket  s3://{state.artifact_bucket}")
    out.print(f"  time             {state.time_note}")
    out.print(f"  traffic          {state.traffic or 'none (started with --no-traffic)'}")
    out.print(f"  Lambda functions {_mode_note(state.lambda_mode)}")
    out.print(
        "use: orchestrator --sandbox release start --env staging ...  (or AWS_ENDPOINT_URL="
        + state.moto_url
        + ")"
    )
