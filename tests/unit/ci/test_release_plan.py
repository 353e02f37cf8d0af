"""release_plan.py: region and approval gate from config; the role's account must match it."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import load_config
from scripts import release_plan


@pytest.mark.parametrize("env", ["staging", "production"])
def test_plan_comes_from_the_typed_configuration(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(env)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    role = f"arn:aws:iam::{config.account}:role/{env}-realtime-github-deploy"

    assert release_plan.main(["--env", env, "--role-arn", role]) == 0

    outputs = dict(line.split("=", 1) for line in (tmp_path / "out").read_text().splitlines())
    assert outputs["region"] == config.region
    assert outputs["account"] == config.account
    assert outputs["approval"] == ("true" if config.release.require_approval else "false")
    assert outputs["steps"] == ",".join(str(s.percent) for s in config.release.steps)
    assert int(outputs["bake_seconds"]) == sum(s.bake_seconds for s in config.release.steps)


def test_production_has_the_approval_gate_and_a_smaller_first_step() -> None:
    staging, production = load_config("staging"), load_config("production")
    role = f"arn:aws:iam::{production.account}:role/x"
    assert release_plan.plan("production", role)["approval"] == "true"
    assert production.release.steps[0].percent <= staging.release.steps[0].percent


def test_role_in_another_account_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    staging = load_config("staging")
    production = load_config("production")
    assert staging.account != production.account
    role = f"arn:aws:iam::{production.account}:role/production-realtime-github-deploy"
    assert release_plan.main(["--env", "staging", "--role-arn", role]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"release_plan: --role-arn: account {production.account} is not staging's account "
        f"{staging.account} (config/staging.json)"
    )


def test_empty_or_malformed_role_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert release_plan.main(["--env", "staging", "--role-arn", ""]) == 2
    assert "set AWS_DEPLOY_ROLE_ARN on the staging GitHub environment" in capsys.readouterr().err
