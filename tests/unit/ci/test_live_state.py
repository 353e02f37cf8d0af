"""Release-needed and post-release verification against Lambda aliases and alarms (moto)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from contracts import names
from scripts import build_bundle, live_state
from service.catalog import RELEASED_FUNCTIONS

REGION = "eu-west-1"
ENV = "staging"


def _zip(body: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("service/__init__.py", body)
    return buffer.getvalue()


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    source = tmp_path / "src" / "service"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("VERSION = 2\n")
    build_bundle.build(tmp_path / "src", tmp_path / "dist", "0.1.0")
    return tmp_path / "dist" / "bundle.json"


@pytest.fixture
def aws():
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        for spec in RELEASED_FUNCTIONS:
            lam.create_function(
                FunctionName=names.function_name(ENV, spec.key),
                Runtime="python3.12",
                Role=role,
                Handler=spec.handler,
                Code={"ZipFile": _zip("VERSION = 1\n")},
            )
            version = lam.publish_version(FunctionName=names.function_name(ENV, spec.key))["Version"]
            lam.create_alias(
                FunctionName=names.function_name(ENV, spec.key), Name="live", FunctionVersion=version
            )
        yield boto3.session.Session(region_name=REGION)


def _release(session: boto3.session.Session, bundle_path: Path, *, split: float | None = None) -> None:
    """Publish the bundle's code on every function; point live at it (or only a share of traffic)."""
    lam = session.client("lambda")
    code = bundle_path.parent / build_bundle.Manifest.load(bundle_path).zip_file
    for spec in RELEASED_FUNCTIONS:
        name = names.function_name(ENV, spec.key)
        lam.update_function_code(FunctionName=name, ZipFile=code.read_bytes())
        new = lam.publish_version(FunctionName=name)["Version"]
        if split is None:
            lam.update_alias(FunctionName=name, Name="live", FunctionVersion=new)
        else:
            lam.update_alias(
                FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {new: split}}
            )


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_release_needed_when_live_serves_other_code(aws, bundle: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    assert live_state.main(["needed", "--env", ENV, "--manifest", str(bundle)], session=aws) == 0
    assert _outputs(tmp_path / "out")["needed"] == "true"


def test_release_not_needed_when_live_already_serves_the_bundle(
    aws, bundle: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    _release(aws, bundle)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    assert live_state.main(["needed", "--env", ENV, "--manifest", str(bundle)], session=aws) == 0
    assert _outputs(tmp_path / "out")["needed"] == "false"
    assert "already serves 0.1.0+" in capsys.readouterr().out


def test_verify_passes_when_live_serves_the_bundle_at_100_percent(aws, bundle: Path, capsys) -> None:
    _release(aws, bundle)
    assert live_state.main(["verify", "--env", ENV, "--manifest", str(bundle)], session=aws) == 0
    assert "every live alias serves" in capsys.readouterr().out


def test_verify_fails_on_a_split_alias_and_names_each_function(aws, bundle: Path, capsys) -> None:
    _release(aws, bundle, split=0.1)
    assert live_state.main(["verify", "--env", ENV, "--manifest", str(bundle)], session=aws) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(RELEASED_FUNCTIONS)
    assert all("live still routes" in line for line in err)


def test_verify_fails_when_live_runs_other_code(aws, bundle: Path, capsys) -> None:
    assert live_state.main(["verify", "--env", ENV, "--manifest", str(bundle)], session=aws) == 1
    assert "has CodeSha256" in capsys.readouterr().err


def test_verify_fails_on_a_release_guard_alarm(aws, bundle: Path, capsys) -> None:
    _release(aws, bundle)
    cloudwatch = aws.client("cloudwatch")
    for name in (f"{ENV}-release-health", "production-release-health"):
        cloudwatch.put_metric_alarm(
            AlarmName=name, MetricName="Errors", Namespace="AWS/Lambda", Statistic="Sum", Period=60,
            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
        )  # fmt: skip
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    assert live_state.main(["verify", "--env", ENV, "--manifest", str(bundle)], session=aws) == 1
    # Only this environment's release-guard alarms count.
    assert capsys.readouterr().err.strip() == f"live_state: alarm {ENV}-release-health is in ALARM"


def test_missing_functions_mean_a_release_is_needed_and_verify_fails(bundle: Path, capsys) -> None:
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        assert live_state.main(["needed", "--env", ENV, "--manifest", str(bundle)], session=session) == 0
        assert "no live alias yet" in capsys.readouterr().out
        assert live_state.main(["verify", "--env", ENV, "--manifest", str(bundle)], session=session) == 1
        assert "has no live alias" in capsys.readouterr().err
