"""The malformed-request corpus, end to end: each bad request is refused (a) by the model, naming
the field, (b) by `orchestrator release start` with exit 2 and one line, where the CLI can express
it, before any AWS call, and (c) by the state machine's first state when started directly with
StartExecution, with zero AWS mutations: no alias, version, function configuration, table item,
notification, alarm, metric, object or cache key changes. A rejected request writes no audit
record and sends no notice (it never held the lock, so there is nothing to tell).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from contracts.release import MAX_REQUEST_BYTES, InvalidRequest, parse_release_request
from orchestrator.cli import EXIT_USAGE, main
from orchestrator.sandbox.redis_server import RedisServer
from tests.support.release_rig import Rig, release_rig
from tests.support.release_world import BUCKET, FUNCTIONS, REGION, TABLE

SHA = "a" * 64
STEPS = [
    {"percent": 10, "bake_seconds": 60},
    {"percent": 50, "bake_seconds": 60},
    {"percent": 100, "bake_seconds": 60},
]


def valid() -> dict[str, Any]:
    return {
        "version": "1.2.0",
        "artifact": {"bucket": BUCKET, "key": "service/green.zip", "sha256": SHA},
        "requested_by": "alice",
        "strategy": {"steps": [dict(step) for step in STEPS]},
    }


def without(field: str) -> Callable[[dict[str, Any]], Any]:
    def change(request: dict[str, Any]) -> Any:
        request.pop(field)
        return request

    return change


def with_(**fields: Any) -> Callable[[dict[str, Any]], Any]:
    def change(request: dict[str, Any]) -> Any:
        request.update(fields)
        return request

    return change


def with_artifact(**fields: Any) -> Callable[[dict[str, Any]], Any]:
    def change(request: dict[str, Any]) -> Any:
        request["artifact"] = {**request["artifact"], **fields}
        return request

    return change


def with_steps(*steps: Any) -> Callable[[dict[str, Any]], Any]:
    return with_(
        strategy={"steps": [s if isinstance(s, dict) else {"percent": s, "bake_seconds": 60} for s in steps]}
    )


def replaced_by(value: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda request: value


@dataclass(frozen=True)
class Case:
    id: str
    change: Callable[[dict[str, Any]], Any]
    expected: str  # in the model's message and the state machine's cause
    # CLI arguments after the common ones, or a request file's JSON ("@file" first), and what
    # its one line says; None where the CLI cannot express the mistake (it builds that part).
    cli: tuple[Any, ...] | None = None
    cli_expected: str | None = None


HUGE = "x" * (MAX_REQUEST_BYTES + 1024)
CORPUS = [
    # missing fields
    Case(
        "missing-version",
        without("version"),
        "version: Field required",
        ("--no-version",),
        "version: missing; give --version",
    ),
    Case(
        "missing-artifact",
        without("artifact"),
        "artifact: Field required",
        ("--no-artifact",),
        "artifact: missing; give --artifact",
    ),
    Case("missing-requested-by", without("requested_by"), "requested_by: Field required"),
    Case(
        "missing-sha256",
        lambda r: {**r, "artifact": {k: v for k, v in r["artifact"].items() if k != "sha256"}},
        "artifact.sha256: Field required",
    ),
    # wrong types
    Case("version-number", with_(version=18), "version: Input should be a valid string"),
    Case("dry-run-text", with_(dry_run="yes"), "dry_run: Input should be a valid boolean"),
    Case(
        "percent-text",
        with_steps({"percent": "10", "bake_seconds": 60}, 100),
        "strategy.steps.0.percent",
        (
            "@file",
            {
                "strategy": {
                    "steps": [{"percent": "10", "bake_seconds": 60}, {"percent": 100, "bake_seconds": 60}]
                }
            },
        ),
    ),
    Case(
        "clients-text",
        with_(checks={"clients": "ten"}),
        "checks.clients",
        ("@file", {"checks": {"clients": "ten"}}),
    ),
    Case(
        "steps-not-a-list",
        with_(strategy={"steps": "10,50,100"}),
        "strategy.steps",
        ("@file", {"strategy": {"steps": "10,50,100"}}),
    ),
    Case(
        "not-an-object",
        replaced_by([1, 2]),
        "request: must be a JSON object, got list",
        ("@file", [1, 2]),
        "--request-file: must hold a JSON object",
    ),
    # percent outside 1..100, bakes outside their bounds
    Case("percent-zero", with_steps(0, 100), "strategy.steps.0.percent", ("--steps", "0,100")),
    Case("percent-101", with_steps(101), "strategy.steps.0.percent", ("--steps", "101")),
    Case(
        "percent-negative",
        with_steps(-5, 100),
        "strategy.steps.0.percent",
        (
            "@file",
            {
                "strategy": {
                    "steps": [{"percent": -5, "bake_seconds": 1}, {"percent": 100, "bake_seconds": 1}]
                }
            },
        ),
    ),
    Case(
        "bake-over-a-day",
        with_steps({"percent": 100, "bake_seconds": 86_401}),
        "strategy.steps.0.bake_seconds",
        ("--steps", "100", "--bake", "86401"),
    ),
    # steps not ending at 100, not increasing, none
    Case(
        "steps-end-below-100",
        with_steps(10, 50),
        "strategy.steps: the last step must be 100 percent",
        ("--steps", "10,50"),
    ),
    Case(
        "steps-decrease", with_steps(50, 20, 100), "percent must increase strictly", ("--steps", "50,20,100")
    ),
    Case("steps-repeat", with_steps(50, 50, 100), "percent must increase strictly", ("--steps", "50,50,100")),
    Case(
        "steps-empty", with_(strategy={"steps": []}), "strategy.steps", ("@file", {"strategy": {"steps": []}})
    ),
    Case(
        "steps-too-many",
        with_steps(*range(1, 22), 100),
        "strategy.steps",
        ("--steps", ",".join(str(p) for p in (*range(1, 22), 100))),
    ),
    # bad sha256
    Case("sha256-short", with_artifact(sha256="a" * 63), "artifact.sha256", ("--sha256", "a" * 63)),
    Case("sha256-not-hex", with_artifact(sha256="g" * 64), "artifact.sha256", ("--sha256", "g" * 64)),
    Case("sha256-number", with_artifact(sha256=12345), "artifact.sha256: Input should be a valid string"),
    Case(
        "artifact-not-zip",
        with_artifact(key="service/green.tar.gz"),
        "artifact.key",
        ("--artifact", f"s3://{BUCKET}/service/green.tar.gz"),
    ),
    # huge payloads
    Case("huge-field", with_(notes=HUGE), f"the limit is {MAX_REQUEST_BYTES}", ("@file", {"notes": HUGE})),
    Case(
        "huge-configuration",
        with_(configuration={f"SETTING_{i}": "v" * 200 for i in range(12)}),
        "configuration: configuration is",
        tuple(item for i in range(12) for item in ("--config", f"SETTING_{i}={'v' * 200}")),
    ),
    # unknown fields
    Case(
        "unknown-field",
        with_(unexpected=1),
        "unexpected: Extra inputs are not permitted",
        ("@file", {"unexpected": 1}),
    ),
    Case(
        "unknown-step-field",
        with_steps({"percent": 100, "bake_seconds": 1, "weight": 1}),
        "strategy.steps.0.weight: Extra inputs are not permitted",
        ("@file", {"strategy": {"steps": [{"percent": 100, "bake_seconds": 1, "weight": 1}]}}),
    ),
    Case(
        "unknown-artifact-field",
        with_artifact(region="eu-west-1"),
        "artifact.region: Extra inputs are not permitted",
    ),
    # reserved or invalid configuration names and values
    Case(
        "reserved-aws-prefix",
        with_(configuration={"AWS_REGION": "us-east-1"}),
        "'AWS_REGION' is reserved",
        ("--config", "AWS_REGION=us-east-1"),
    ),
    Case(
        "reserved-runtime",
        with_(configuration={"LAMBDA_TASK_ROOT": "/tmp"}),
        "'LAMBDA_TASK_ROOT' is reserved",
        ("--config", "LAMBDA_TASK_ROOT=/tmp"),
    ),
    Case(
        "reserved-service-version",
        with_(configuration={"SERVICE_VERSION": "9.9.9"}),
        "'SERVICE_VERSION' is reserved",
        ("--config", "SERVICE_VERSION=9.9.9"),
    ),
    Case("reserved-tz", with_(configuration={"TZ": "UTC"}), "'TZ' is reserved", ("--config", "TZ=UTC")),
    Case(
        "runtime-underscore-name",
        with_(configuration={"_HANDLER": "x.y"}),
        "'_HANDLER' is not a valid environment variable name",
        ("--config", "_HANDLER=x.y"),
    ),
    Case(
        "config-bad-name",
        with_(configuration={"1BAD": "x"}),
        "not a valid environment variable name",
        ("--config", "1BAD=x"),
    ),
    Case(
        "config-bad-drop-rate",
        with_(configuration={"FAULT_DROP_RATE": "2"}),
        "FAULT_DROP_RATE must be a number between 0 and 1",
        ("--config", "FAULT_DROP_RATE=2"),
    ),
    Case(
        "config-not-text",
        with_(configuration={"LOG_LEVEL": 3}),
        "configuration.LOG_LEVEL: Input should be a valid string",
        ("@file", {"configuration": {"LOG_LEVEL": 3}}),
    ),
    # other fields out of range
    Case("release-id-spaces", with_(release_id="has space"), "release_id", ("--release-id", "has space")),
    Case("approval-unknown", with_(approval="maybe"), "approval", ("@file", {"approval": "maybe"})),
    Case(
        "approval-timeout-short",
        with_(approval_timeout_seconds=10),
        "approval_timeout_seconds",
        ("@file", {"approval_timeout_seconds": 10}),
    ),
    Case(
        "success-rate-above-1",
        with_(checks={"min_success_rate": 2}),
        "checks.min_success_rate",
        ("@file", {"checks": {"min_success_rate": 2}}),
    ),
    Case(
        "min-invocations-negative",
        with_(min_green_invocations=-1),
        "min_green_invocations",
        ("--min-green-invocations", "-1"),
    ),
]
CLI_CASES = [case for case in CORPUS if case.cli is not None]


def malformed(case: Case) -> Any:
    return case.change(valid())


# -- (a) the model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_the_model_rejects_naming_the_field(case: Case) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_release_request(malformed(case))
    assert case.expected in str(caught.value)
    # The JSON text a caller would send is refused the same way.
    with pytest.raises(InvalidRequest) as again:
        parse_release_request(json.dumps(malformed(case)))
    assert case.expected in str(again.value)


# -- (b) the CLI -----------------------------------------------------------------------------------
def cli_argv(case: Case, tmp_path: Path) -> list[str]:
    assert case.cli is not None
    options: dict[str, str | None] = {
        "--env": "staging",
        "--version": "1.2.0",
        "--artifact": f"s3://{BUCKET}/service/green.zip",
        "--sha256": SHA,
        "--requested-by": "alice",
    }
    extra: list[str] = []
    args = list(case.cli)
    if args[0] == "@file":
        path = tmp_path / "request.json"
        path.write_text(json.dumps(args[1]))
        extra += ["--request-file", str(path)]
    elif args[0] in ("--no-version", "--no-artifact"):
        options[args[0].replace("--no-", "--")] = None
    else:
        while args:
            name, value = args.pop(0), args.pop(0)
            if name in options:
                options[name] = value
            else:
                extra += [name, value]
    argv = [item for name, value in options.items() if value is not None for item in (name, value)]
    # An unreachable endpoint: any AWS call would end in exit 3, so exit 2 proves none was made.
    return ["--endpoint-url", "http://127.0.0.1:9", "release", "start", *argv, *extra]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_the_cli_exits_2_with_one_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(cli_argv(case, tmp_path))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == EXIT_USAGE, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert (case.cli_expected or case.expected) in lines[0], lines[0]
    assert captured.out == ""


# -- (c) StartExecution directly -----------------------------------------------------------------
@pytest.fixture(scope="module")
def rig(release_template: dict[str, Any], redis_server: RedisServer) -> Iterator[Rig]:
    with release_rig(release_template, redis_server.url) as built:
        built.world.artifact("green")
        yield built


def aws_state(rig: Rig, redis_url: str) -> dict[str, Any]:
    """Everything a release could change, as comparable values."""
    lam = boto3.client("lambda", region_name=REGION)
    state: dict[str, Any] = {}
    for fn in FUNCTIONS:
        versions = [
            (
                v["Version"],
                v["CodeSha256"],
                v.get("Description", ""),
                json.dumps(v.get("Environment"), sort_keys=True),
            )
            for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=fn)
            for v in page["Versions"]
        ]
        aliases = sorted(
            (a["Name"], a["FunctionVersion"], json.dumps(a.get("RoutingConfig") or {}, sort_keys=True))
            for a in lam.list_aliases(FunctionName=fn)["Aliases"]
        )
        state[f"lambda:{fn}"] = {"versions": versions, "aliases": aliases}
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE, ConsistentRead=True)["Items"]
    state["table"] = sorted(json.dumps(item, sort_keys=True) for item in items)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    state["alarms"] = sorted(
        (a["AlarmName"], a["StateValue"]) for a in cloudwatch.describe_alarms()["MetricAlarms"]
    )
    state["metrics"] = sorted(json.dumps(m, sort_keys=True) for m in cloudwatch.list_metrics()["Metrics"])
    s3 = boto3.client("s3", region_name=REGION)
    state["objects"] = sorted(
        (o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    )
    cache = redis.Redis.from_url(redis_url)
    state["cache"] = sorted(cache.scan_iter(count=1000))
    cache.close()
    return state


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_start_execution_is_rejected_in_the_first_state_with_zero_mutations(
    rig: Rig, redis_server: RedisServer, case: Case
) -> None:
    rig.reset()
    rig.world.notifications()  # drain what earlier tests sent
    before = aws_state(rig, redis_server.url)
    name = rig.next_id(f"bad-{case.id}")[:80]
    request = malformed(case)
    if isinstance(request, dict) and "release_id" not in request and case.id != "release-id-spaces":
        request["release_id"] = name
    result = rig.engine.run(rig.state_machine_arn, json.dumps(request), name=name, timeout=60)
    (failed,) = result.events("LambdaFunctionFailed")
    assert failed["lambdaFunctionFailedEventDetails"]["error"] == "InvalidRelease"
    assert case.expected in failed["lambdaFunctionFailedEventDetails"]["cause"]
    # Whatever the input's JSON type, the Catch (ResultPath "$") routes it to RequestRejected.
    assert result.status == "FAILED" and result.error == "InvalidRelease", (result.error, result.cause)
    assert case.expected in (result.cause or ""), result.cause
    assert result.states_entered() == ["ValidateRequest", "RequestRejected"]
    # Validated once, no retry: a rejection is not transient.
    assert len(result.events("LambdaFunctionScheduled", "TaskScheduled")) == 1
    assert aws_state(rig, redis_server.url) == before
    assert rig.world.notifications() == []
    assert rig.world.lock() is None
