"""Building a release request from options and a request file (orchestrator/requests.py), and the
one validation it shares with the state machine's ValidateRequest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.release import InvalidRequest, ReleaseDefaults, loads_request, parse_release_request
from orchestrator.requests import RequestError, build_request, bundle_manifest_version, local_bundle
from tasks.common import Settings
from tasks.errors import InvalidRelease
from tasks.validate_request import ValidateInput, validate

SHA = "c" * 64
ARTIFACT = {"bucket": "artifacts-bucket", "key": "service/svc.zip", "sha256": SHA}


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "req.json"
    path.write_text(text)
    return path


def _never(bucket: str, key: str) -> str:
    raise AssertionError(f"S3 was asked for s3://{bucket}/{key}")


def test_a_request_file_alone_is_a_complete_request(tmp_path: Path) -> None:
    path = _file(tmp_path, json.dumps({"version": "1.4.0", "artifact": ARTIFACT, "dry_run": True}))
    request = build_request(env="staging", request_file=path, default_requester="ops", resolve_sha256=_never)
    assert request["version"] == "1.4.0"
    assert request["artifact"] == ARTIFACT
    assert request["dry_run"] is True
    assert request["requested_by"] == "ops"
    # The environment's steps (config/staging.json) fill the strategy the file leaves out.
    assert [s["percent"] for s in request["strategy"]["steps"]] == [10, 50, 100]
    assert request["release_id"].startswith("1-4-0-")  # generated, execution-name safe


def test_options_override_the_files_fields(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        json.dumps(
            {
                "version": "1.4.0",
                "artifact": ARTIFACT,
                "dry_run": True,
                "approval": "required",
                "configuration": {"A": "1", "B": "2"},
                "strategy": {"steps": [{"percent": 100, "bake_seconds": 5}]},
                "requested_by": "file",
            }
        ),
    )
    request = build_request(
        env="staging",
        request_file=path,
        version="1.5.0",
        sha256="d" * 64,
        dry_run=False,
        approval=False,
        config=["B=3"],
        steps="20,100",
        bake=7,
        requested_by="cli",
        release_id="r-override",
    )
    assert request["version"] == "1.5.0"
    assert request["artifact"] == {**ARTIFACT, "sha256": "d" * 64}  # only the digest replaced
    assert request["dry_run"] is False and request["approval"] == "none"
    assert request["configuration"] == {"A": "1", "B": "3"}
    assert request["strategy"]["steps"] == [
        {"percent": 20, "bake_seconds": 7},
        {"percent": 100, "bake_seconds": 7},
    ]
    assert request["requested_by"] == "cli" and request["release_id"] == "r-override"


def test_unset_flags_keep_the_files_values(tmp_path: Path) -> None:
    path = _file(tmp_path, json.dumps({"version": "1.4.0", "artifact": ARTIFACT, "approval": "required"}))
    request = build_request(env="staging", request_file=path, artifact="s3://other-bucket/x.zip", sha256=SHA)
    assert request["approval"] == "required"
    assert request["artifact"] == {"bucket": "other-bucket", "key": "x.zip", "sha256": SHA}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"version": "1.0.0", "version": "2.0.0"}', "version: duplicate key"),
        (
            '{"version": "1.0.0", "artifact": {"bucket": "b-one", "bucket": "b-two", "key": "k.zip"}}',
            "bucket: duplicate key",
        ),
        ("[1, 2]", "must hold a JSON object, got list"),
        ("{not json", "not valid JSON"),
    ],
)
def test_unusable_request_files_are_refused_naming_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(RequestError) as caught:
        build_request(env="staging", request_file=_file(tmp_path, text), resolve_sha256=_never)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dry_run", "yes"),
        ("dry_run", 1),
        ("dry_run", "true"),
        ("approval", True),
        ("min_green_invocations", "5"),
        ("checks", {"clients": "5"}),
    ],
)
def test_a_non_boolean_flag_or_a_quoted_number_is_refused_naming_the_field(
    tmp_path: Path, field: str, value: Any
) -> None:
    path = _file(tmp_path, json.dumps({"version": "1.4.0", "artifact": ARTIFACT, field: value}))
    with pytest.raises(RequestError) as caught:
        build_request(env="staging", request_file=path, resolve_sha256=_never)
    assert f"{field}" in str(caught.value)


def test_missing_version_or_artifact_names_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match=r"^version: missing; give --version or a --request-file"):
        build_request(env="staging", artifact="s3://b-one/k.zip", sha256=SHA)
    path = _file(tmp_path, json.dumps({"version": "1.4.0"}))
    with pytest.raises(RequestError, match=r"^artifact: missing; give --artifact or in the request file"):
        build_request(env="staging", request_file=path)


def test_empty_steps_are_refused() -> None:
    for steps in ("", " ", ","):
        with pytest.raises(RequestError, match="--steps"):
            build_request(
                env="staging", version="1.0.0", artifact="s3://b-one/k.zip", sha256=SHA, steps=steps
            )


def test_the_digest_is_asked_for_only_once_everything_else_is_valid() -> None:
    asked: list[tuple[str, str]] = []

    def resolve(bucket: str, key: str) -> str:
        asked.append((bucket, key))
        return SHA

    with pytest.raises(RequestError, match="version"):
        build_request(
            env="staging", version="bad version", artifact="s3://b-one/k.zip", resolve_sha256=resolve
        )
    assert asked == []
    request = build_request(
        env="staging", version="1.0.0", artifact="s3://b-one/k.zip", resolve_sha256=resolve
    )
    assert asked == [("b-one", "k.zip")] and request["artifact"]["sha256"] == SHA


def test_duplicate_keys_are_refused_in_request_text_everywhere() -> None:
    with pytest.raises(InvalidRequest, match="version: duplicate key"):
        loads_request('{"version": "1", "version": "2"}')
    with pytest.raises(InvalidRequest, match="version: duplicate key"):
        parse_release_request('{"version": "1", "version": "2"}')


# ---- one validation: the CLI and ValidateRequest refuse the same requests, naming the same field ----

BAD_REQUESTS = [
    ({"dry_run": "yes"}, "dry_run"),
    ({"approval": "maybe"}, "approval"),
    ({"checks": {"clients": "5"}}, "checks.clients"),
    ({"min_green_invocations": 1.5}, "min_green_invocations"),
    ({"strategy": {"steps": [{"percent": "100", "bake_seconds": 0}]}}, "strategy.steps.0.percent"),
    ({"configuration": {"AWS_REGION": "x"}}, "configuration"),
    ({"unknown": 1}, "unknown"),
]


@pytest.mark.parametrize(("change", "field"), BAD_REQUESTS, ids=[f for _, f in BAD_REQUESTS])
def test_the_cli_and_validate_request_refuse_alike(
    tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    raw = {"version": "1.4.0", "artifact": ARTIFACT, "requested_by": "ops", **change}
    with pytest.raises(RequestError) as by_cli:
        build_request(env="staging", request_file=_file(tmp_path, json.dumps(raw)), resolve_sha256=_never)
    settings = Settings.from_env(
        {
            "ENVIRONMENT": "staging",
            "SERVICE_FUNCTION_NAMES": "staging-realtime-connect",
            "RELEASE_TABLE_NAME": "staging-release",
            "AWS_REGION": "eu-west-1",
        }
    )
    event = {
        "request": json.loads(json.dumps(raw)),  # as StartExecution hands it over
        "execution_name": "r1",
        "execution_arn": "arn:aws:states:eu-west-1:111111111111:execution:staging-release:r1",
        "started_at": "2026-01-01T00:00:00Z",
    }
    with pytest.raises(InvalidRelease) as by_task:
        validate(ValidateInput.model_validate(event), settings, ReleaseDefaults())
    cli_problems = str(by_cli.value).split("invalid release request: ", 1)[1]
    task_problems = str(by_task.value).split("invalid release request: ", 1)[1]
    assert cli_problems.startswith(f"{field}:"), cli_problems
    assert cli_problems == task_problems


# ---- local bundles --------------------------------------------------------------------------


def test_local_bundle_digest_and_manifest_version(tmp_path: Path) -> None:
    from scripts.build_bundle import build

    source = tmp_path / "src"
    (source / "service").mkdir(parents=True)
    (source / "service" / "app.py").write_text("VERSION = 1\n")
    manifest = build(source, tmp_path / "dist", "0.9.0")
    zip_path = tmp_path / "dist" / manifest.zip_file
    assert zip_path.name == f"service-{manifest.sha256[:12]}.zip"
    body, digest = local_bundle(zip_path)
    assert digest == manifest.sha256 and body == zip_path.read_bytes()
    assert bundle_manifest_version(zip_path) == manifest.version
    other = tmp_path / "dist" / "other.zip"
    other.write_bytes(body)
    assert bundle_manifest_version(other) is None  # the manifest names another zip


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bundle.tar", b"PK", "neither an S3 URI nor a local .zip bundle"),
        ("absent.zip", None, "cannot read"),
        ("text.zip", b"hello", "is not a zip archive"),
    ],
)
def test_unusable_local_bundles_are_refused(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RequestError, match=expected):
        local_bundle(path)


def test_fields_not_given_take_the_environments_defaults_in_validate_request(tmp_path: Path) -> None:
    """`release start --env production` without --approval waits at production's approval gate:
    the CLI sends only what was given, and ValidateRequest fills the rest from RELEASE_DEFAULTS."""
    from infra.config import load_config
    from infra.orchestration.construct import release_defaults

    request = build_request(
        env="production",
        version="1.4.0",
        artifact=f"s3://{ARTIFACT['bucket']}/{ARTIFACT['key']}",
        sha256=SHA,
        default_requester="ops",
    )
    assert {"approval", "checks", "min_green_invocations"}.isdisjoint(request)
    production = load_config("production")
    defaults = ReleaseDefaults.model_validate_json(release_defaults(production))
    filled = parse_release_request(request, defaults)
    assert production.release.require_approval and filled.approval == "required"
    assert filled.min_green_invocations == production.release.min_green_invocations
    assert filled.checks.model_dump() == production.release.synthetic_checks.model_dump()
    # An explicit --no-approval is sent, and wins over the default.
    explicit = build_request(
        env="production",
        version="1.4.0",
        artifact=f"s3://{ARTIFACT['bucket']}/{ARTIFACT['key']}",
        sha256=SHA,
        approval=False,
        default_requester="ops",
    )
    assert parse_release_request(explicit, defaults).approval == "none"
