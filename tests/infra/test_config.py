"""Configuration: both environments validate; a wrong value fails with one line naming file and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.config import CONFIG_DIR, ConfigError, load_config, load_config_file

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, mutate: Any, env: str = "staging") -> Path:
    data = json.loads((CONFIG_DIR / f"{env}.json").read_text())
    mutate(data)
    path = tmp_path / f"{env}.json"
    path.write_text(json.dumps(data))
    return path


def test_both_environments_load() -> None:
    staging, production = load_config("staging"), load_config("production")
    assert staging.environment == "staging" and production.environment == "production"
    assert staging.network.nat_gateways == 1
    assert production.network.nat_gateways == len(production.network.availability_zones) >= 2
    assert production.lambdas.provisioned_concurrency is not None
    assert staging.lambdas.provisioned_concurrency is None
    for config in (staging, production):
        assert config.release.steps[-1].percent == 100
        assert config.cache.engine == "valkey"


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda d: d["cache"].update(port=6379), "cache.port", "non-default port"),
        (lambda d: d["cache"].update(replicas=0), "cache.replicas", "greater than or equal to 1"),
        (lambda d: d["cache"].update(engine="memcached"), "cache.engine", "'valkey' or 'redis'"),
        (lambda d: d["cache"].update(engine="redis"), "cache", "not supported for redis"),
        (
            lambda d: d["cache"].update(maintenance_window="sunday 5am"),
            "cache.maintenance_window",
            "ddd:hh:mm",
        ),
        (lambda d: d.update(account="1234"), "account", "String should match pattern"),
        (lambda d: d.update(region="Ireland"), "region", "not an AWS region"),
        (lambda d: d.update(log_retention_days=31), "log_retention_days", "not a CloudWatch Logs retention"),
        (
            lambda d: d["network"].update(availability_zones=["eu-west-1a"]),
            "network.availability_zones",
            "at least 2",
        ),
        (
            lambda d: d["network"].update(availability_zones=["us-east-1a", "us-east-1b"]),
            "network.availability_zones",
            "not in region",
        ),
        (
            lambda d: d["release"].update(steps=[{"percent": 50, "bake_seconds": 1}]),
            "release.steps",
            "last step",
        ),
        (
            lambda d: d["release"].update(
                steps=[
                    {"percent": 50, "bake_seconds": 1},
                    {"percent": 10, "bake_seconds": 1},
                    {"percent": 100, "bake_seconds": 0},
                ]
            ),
            "release.steps",
            "strictly increase",
        ),
        (lambda d: d["schedules"].update(backup="every day"), "schedules.backup", "cron expression"),
        (
            lambda d: d["messaging"].update(dlq_max_receive_count=0),
            "messaging.dlq_max_receive_count",
            "greater than or equal to 1",
        ),
        (
            lambda d: d["messaging"].update(visibility_timeout_seconds=60),
            "messaging.visibility_timeout_seconds",
            "6x",
        ),
        (
            lambda d: d["domain"].update(cloudfront_certificate_arn=d["domain"]["regional_certificate_arn"]),
            "domain.cloudfront_certificate_arn",
            "pattern",
        ),
        (lambda d: d.update(unknown_field=1), "unknown_field", "Extra inputs are not permitted"),
        (
            lambda d: d["lambdas"]["defaults"].update(memory_mb=64),
            "lambdas.defaults.memory_mb",
            "greater than or equal to 128",
        ),
    ],
)
def test_invalid_value_names_file_and_field(tmp_path: Path, mutate: Any, field: str, fragment: str) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path, expected_environment="staging")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}")
    assert fragment.lower() in message.lower()


def test_redis_engine_is_selectable(tmp_path: Path) -> None:
    path = _write(
        tmp_path, lambda d: d["cache"].update(engine="redis", engine_version="7.1", parameter_family="redis7")
    )
    assert load_config_file(path).cache.engine == "redis"


def test_environment_must_match_file(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: None, env="production")
    with pytest.raises(ConfigError, match="environment: is 'production', expected 'staging'"):
        load_config_file(path, expected_environment="staging")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config("staging", tmp_path)
    (tmp_path / "staging.json").write_text("{ nope")
    with pytest.raises(ConfigError, match=r"invalid JSON at line 1"):
        load_config("staging", tmp_path)


def test_synth_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    _write(tmp_path, lambda d: d["cache"].update(port=6379))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.synth",
            "--env",
            "staging",
            "--config-dir",
            str(tmp_path),
            "--outdir",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "staging.json: cache.port:" in lines[0]
    assert "Traceback" not in result.stderr
