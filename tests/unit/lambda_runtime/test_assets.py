"""Layouts from what deploys: each function of the synthesized staging stage maps to the host
build of its own cdk.out asset, with the Lambda runtime and Powertools layer directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from orchestrator.lambda_runtime.assets import AssemblyLayouts, stand_in_layout
from orchestrator.lambda_runtime.config import FunctionConfig, host_site_packages, host_worker_limit
from orchestrator.paths import REPO_ROOT


@pytest.fixture
def staging_templates(synthesized: Path) -> list[Path]:
    templates = sorted((synthesized / "assembly-Staging").glob("StagingRealtimeAnalytics*.template.json"))
    assert templates, f"no staging stage in {synthesized}"
    return templates


def test_every_python_function_runs_from_the_host_build_of_its_own_asset(
    staging_templates: list[Path],
) -> None:
    templates = staging_templates
    layouts = AssemblyLayouts(templates)
    template = json.loads(templates[0].read_text())
    names = [
        r["Properties"]["FunctionName"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and str(r["Properties"].get("Runtime", "")).startswith("python")
    ]
    assert names
    for name in names:
        function = layouts.function(name)
        assert function is not None, name
        layout = layouts.layout(name)
        # The host build carries the asset's own packages, never the repository's.
        for package in json.loads((function.asset_dir / "lambda-bundle.json").read_text())["packages"]:
            assert (layout.asset_dir / package).is_dir(), (name, package)
        assert layout.asset_dir.resolve().is_relative_to((REPO_ROOT / ".build").resolve())
        assert layout.runtime_dir != host_site_packages()
        assert (layout.runtime_dir / "boto3").is_dir() and (layout.runtime_dir / "botocore").is_dir()
        assert any((d / "aws_lambda_powertools").is_dir() for d in layout.layer_dirs)
    # Functions of one asset share one build (one zygote).
    assert len({layouts.layout(n).asset_dir for n in names}) == len(layouts.asset_dirs())


def test_a_template_without_assets_is_refused_with_the_way_out(tmp_path: Path) -> None:
    inline = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.12",
                    "Handler": "tasks.x.handler",
                    "Code": {"ZipFile": "pass"},
                },
            }
        }
    }
    path = tmp_path / "Inline.template.json"
    path.write_text(json.dumps(inline))
    with pytest.raises(ValueError, match="cdk.out asset"):
        AssemblyLayouts([path])


def test_a_pool_never_outgrows_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    config = FunctionConfig(
        name="f", arn="arn", handler="m.h", layout=stand_in_layout(), reserved_concurrency=50
    )
    monkeypatch.delenv("ORCHESTRATOR_LAMBDA_WORKERS", raising=False)
    assert config.concurrency == host_worker_limit() == max(2, os.cpu_count() or 2)
    monkeypatch.setenv("ORCHESTRATOR_LAMBDA_WORKERS", "3")
    assert config.concurrency == 3
    small = FunctionConfig(
        name="g", arn="arn", handler="m.h", layout=stand_in_layout(), reserved_concurrency=1
    )
    assert small.concurrency == 1
