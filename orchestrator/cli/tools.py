"""Top-level commands that need no group: `synth`, `render` and `demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.context import options, out, usage_error
from orchestrator.demo import run_demo
from orchestrator.paths import REPO_ROOT, sandbox_dir
from orchestrator.render.cli_support import RenderError, render_command


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
    app.command("render")(render)
    app.command("demo")(demo)


def synth() -> None:
    """Synthesize both stages to cdk.out/ with the security gates (python -m infra.synth)."""
    code = subprocess.call([sys.executable, "-m", "infra.synth"], cwd=REPO_ROOT)  # noqa: S603
    raise typer.Exit(code)


def render(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Argument(
            help="ASL JSON file, a synthesized CloudFormation template, or omit with --execution."
        ),
    ] = None,
    state_machine: Annotated[
        str | None, typer.Option(help="Which state machine of a template (logical id or part of it).")
    ] = None,
    execution: Annotated[
        str | None, typer.Option(help="Execution ARN whose path to highlight (read from AWS or the sandbox).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="svg, html or mermaid (default: from --out, else mermaid).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Draw a state machine graph (SVG/HTML/Mermaid), with an execution's path when given one."""
    opts = options(ctx)
    if fmt is None:
        fmt = {".svg": "svg", ".html": "html", ".htm": "html", ".mmd": "mermaid"}.get(
            output.suffix.lower() if output else "", "mermaid"
        )
    if fmt not in {"svg", "html", "mermaid"}:
        usage_error(f"--format: {fmt!r} is not svg, html or mermaid")
    if source is None and execution is None:
        usage_error("render: give a definition file or --execution")
    aws = opts.aws() if execution else None
    try:
        text = render_command(source, state_machine, execution, fmt, aws)
    except RenderError as exc:
        usage_error(f"render: {exc}")
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


def demo(
    reports: Annotated[Path, typer.Option(help="Where the HTML reports go.")] = Path("reports"),
    keep: Annotated[bool, typer.Option("--keep", help="Leave the sandbox running afterwards.")] = False,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process",
            help="Run the Lambda handlers inside the sandbox process (for comparison; "
            "default: each function in worker processes from its cdk.out asset).",
        ),
    ] = False,
) -> None:
    """A healthy release and a faulty one that rolls itself back, in the local sandbox."""
    raise typer.Exit(run_demo(sandbox_dir(), reports, keep=keep, console=out, in_process=in_process))
