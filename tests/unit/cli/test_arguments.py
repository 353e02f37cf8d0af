"""Bad arguments and invalid release requests: exit 2 and exactly one line naming the problem."""

from __future__ import annotations

import pytest

from orchestrator.cli import EXIT_USAGE, main

SHA = "a" * 64
START = [
    "release",
    "start",
    "--env",
    "staging",
    "--version",
    "1.2.0",
    "--artifact",
    "s3://artifacts-bucket/svc.zip",
]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["release", "bogus"], "No such command 'bogus'"),
        (["release", "start", "--env", "staging"], "version: missing; give --version or a --request-file"),
        ([*START[:4], "--artifact", START[-1], "--sha256", SHA], "version: missing"),
        ([*START[:6], "--sha256", SHA], "artifact: missing; give --artifact"),
        ([*START, "--sha256", SHA, "--steps", ""], "--steps: empty"),
        ([*START, "--sha256", SHA, "--steps", " , "], "--steps: empty"),
        (
            [*START[:-1], "./dist/service-0123456789ab.zip"],
            "a local bundle is uploaded for you only with --sandbox",
        ),
        (["check", "--env", "staging", "--stage", "blue"], "--stage: 'blue' is not one of live, preview"),
        (
            ["check", "--env", "staging", "--stage", "live", "--clients", "0"],
            "--clients: Input should be greater",
        ),
        (
            ["check", "--env", "staging", "--stage", "live", "--clients", "501"],
            "--clients: Input should be less",
        ),
        (["check", "--env", "prod", "--stage", "live"], "--env: 'prod' is not one of"),
        (
            [*START[:3], "prod", *START[4:], "--sha256", SHA],
            "--env: 'prod' is not one of staging, production",
        ),
        (
            [*START[:-1], "https://example.com/svc.zip", "--sha256", SHA],
            "--artifact: 'https://example.com/svc.zip' is not an S3 URI",
        ),
        ([*START, "--sha256", SHA, "--steps", "10,x,100"], "--steps: 'x' is not a whole percent"),
        ([*START, "--sha256", SHA, "--steps", "50,10,100"], "strategy.steps: percent must increase strictly"),
        ([*START, "--sha256", SHA, "--steps", "10,50"], "strategy.steps: the last step must be 100 percent"),
        ([*START, "--sha256", SHA, "--steps", "10,50,101"], "strategy.steps.2.percent"),
        ([*START, "--sha256", "xyz"], "artifact.sha256"),
        ([*START, "--sha256", SHA, "--config", "NOVALUE"], "--config: 'NOVALUE' is not NAME=VALUE"),
        ([*START, "--sha256", SHA, "--config", "AWS_REGION=x"], "configuration: 'AWS_REGION' is reserved"),
        (
            [*START, "--sha256", SHA, "--config", "FAULT_ERROR_RATE=2"],
            "FAULT_ERROR_RATE must be a number between 0 and 1",
        ),
        ([*START, "--sha256", SHA, "--bake", "-1"], "--bake: must be 0 or more seconds"),
        ([*START, "--sha256", SHA, "--release-id", "bad id!"], "release_id"),
        (
            [*START[:-2], "--version", "no spaces allowed", "--artifact", START[-1], "--sha256", SHA],
            "version",
        ),
        (["release", "watch", "--interval", "0"], "--interval"),
        (["release", "history", "--limit", "0"], "--limit"),
        (["release", "approve", "not an id!"], "neither an execution ARN nor a release id"),
        (["render", "--format", "png", "x.json"], "--format: 'png' is not svg, html or mermaid"),
        (["render"], "give a definition file or --execution"),
        (["render", "/nonexistent/definition.json"], "cannot read /nonexistent/definition.json"),
        (["sandbox", "up", "--clock-start", "Wednesday"], "--clock-start: not an ISO 8601 instant"),
        (["sandbox", "up", "--clock-start", "2026-06-03T10:00"], "has no time zone"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--endpoint-url", "http://127.0.0.1:9", *argv])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in captured.err


def test_debug_shows_the_traceback() -> None:
    from orchestrator.cli import CliError

    with pytest.raises(CliError):
        main(["--debug", "release", "start", "--env", "prod", "--version", "1", "--artifact", "s3://b/k.zip"])


def test_render_of_a_file_that_is_not_asl(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    assert main(["render", str(path)]) == EXIT_USAGE
    assert "neither an ASL definition nor a CloudFormation template" in capsys.readouterr().err


def test_unreachable_endpoint_is_exit_3_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--endpoint-url", "http://127.0.0.1:9", "release", "status", "--env", "staging"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1 and err[0].startswith("error: stepfunctions.list_state_machines: ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"version": "1.0.0", "version": "2.0.0"}', "version: duplicate key"),
        (
            '{"version": "1.0.0", "artifact": {"bucket": "artifacts-bucket", "key": "k.zip", "sha256": "'
            + SHA
            + '"}, "dry_run": "yes"}',
            "dry_run: Input should be a valid boolean",
        ),
        (
            '{"version": "1.0.0", "artifact": {"bucket": "artifacts-bucket", "key": "k.zip", "sha256": "'
            + SHA
            + '"}, "approval": true}',
            "approval:",
        ),
        ("[]", "must hold a JSON object"),
    ],
)
def test_bad_request_files_exit_2_with_one_line_and_no_aws_call(
    tmp_path, content: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "req.json"
    path.write_text(content)
    # Port 9 answers nothing: any AWS call would be exit 3 naming the call, not exit 2.
    code = main(
        [
            "--endpoint-url",
            "http://127.0.0.1:9",
            "release",
            "start",
            "--env",
            "staging",
            "--request-file",
            str(path),
        ]
    )
    captured = capsys.readouterr()
    assert code == EXIT_USAGE, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], captured.err
