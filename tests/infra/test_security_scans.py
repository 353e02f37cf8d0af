"""cfn-lint and checkov over every synthesized template (the gates' second opinion)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aws_cdk import cx_api

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

# cfn-lint rules ignored on purpose, each with its reason in the file (also read by `make lint`).
CFN_LINT_CONFIG = ROOT / ".cfnlintrc.yaml"


def _templates(assembly: cx_api.CloudAssembly) -> list[Path]:
    found = sorted(Path(assembly.directory).glob("assembly-*/*.template.json"))
    assert len(found) >= 2
    return found


def test_cfn_lint_clean(synth_assembly: cx_api.CloudAssembly) -> None:
    import yaml
    from cfnlint.api import ManualArgs, lint_file

    ignored = yaml.safe_load(CFN_LINT_CONFIG.read_text(encoding="utf-8"))["ignore_checks"]
    assert len(ignored) <= 3, "every ignored cfn-lint rule needs a reason; keep the list short"
    problems = []
    for template in _templates(synth_assembly):
        found = lint_file(template, config=ManualArgs(ignore_checks=ignored))
        problems += [f"{template.name}: {m.rule.id} {m.message} ({m.path})" for m in found]
    assert not problems, "\n".join(problems)


def test_checkov_clean(synth_assembly: cx_api.CloudAssembly) -> None:
    command = [
        str(CHECKOV), "--skip-download", "--quiet", "--compact", "--framework", "cloudformation",
        "--config-file", str(ROOT / ".checkov.yaml"), "--output", "json",
    ]  # fmt: skip
    for template in _templates(synth_assembly):
        command += ["-f", str(template)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.stdout.strip(), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{check['check_id']} {check['resource']} ({Path(check['file_path']).name})"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    passed = sum(report.get("summary", {}).get("passed", 0) for report in reports)
    assert passed > 100
    assert not failed, "\n".join(failed)
