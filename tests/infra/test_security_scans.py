"""cfn-lint and checkov over every synthesized template (the gates' second opinion)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aws_cdk import cx_api

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

# cfn-lint rules ignored on purpose, with the reason.
CFN_LINT_IGNORED = {
    "W3010": "AZ names come from the typed configuration so synthesis is offline and deterministic (no lookups).",
    "W3005": "CDK's generated custom-resource providers add an explicit DependsOn next to a GetAtt; harmless.",
}


def _templates(assembly: cx_api.CloudAssembly) -> list[Path]:
    found = sorted(Path(assembly.directory).glob("assembly-*/*.template.json"))
    assert len(found) >= 2
    return found


def test_cfn_lint_clean(synth_assembly: cx_api.CloudAssembly) -> None:
    from cfnlint.api import ManualArgs, lint_file

    problems = []
    for template in _templates(synth_assembly):
        found = lint_file(template, config=ManualArgs(ignore_checks=sorted(CFN_LINT_IGNORED)))
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
