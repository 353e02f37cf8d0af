"""The guard gate finds what the package's CfnGuardValidator finds, and remembers only exact matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdklabs.cdk_validator_cfnguard import CfnGuardValidator

from infra.guard_gate import GuardGate, GuardGateError


def _probe_app(outdir: Path, plugin: Any, queues: int = 1) -> App:
    app = App(outdir=str(outdir))
    stack = Stack(app, "GateProbe")
    # Deliberately non-compliant in several rules: no encryption, no DLQ, public-access defaults.
    for index in range(queues):
        sqs.Queue(stack, f"PlainQueue{index}", encryption=sqs.QueueEncryption.UNENCRYPTED)
    s3.CfnBucket(stack, "PlainBucket")
    Validations.of(app).add_plugins(plugin)
    return app


def _findings(outdir: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    report = json.loads((outdir / "validation-report.json").read_text(encoding="utf-8"))
    (guard,) = [
        plugin for plugin in report["pluginReports"] if plugin["pluginName"] == "cdk-validator-cfnguard"
    ]
    assert guard["conclusion"] == "failure"
    return sorted(
        (v["ruleName"], v["description"], tuple(sorted(c["constructPath"] for c in v["violatingConstructs"])))
        for v in guard["violations"]
    )


def _synth_failing(app: App) -> None:
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_same_findings_as_the_packages_validator(tmp_path: Path) -> None:
    _synth_failing(_probe_app(tmp_path / "package", CfnGuardValidator(control_tower_rules_enabled=True)))
    gate = GuardGate(cache_dir=tmp_path / "verdicts", workers=2)
    _synth_failing(_probe_app(tmp_path / "gate", gate))
    expected = _findings(tmp_path / "package")
    assert {rule for rule, _, _ in expected} >= {"sqs_dlq_check", "sqs_queue_encrypted_check"}
    assert _findings(tmp_path / "gate") == expected
    assert gate.last_run.evaluated == 1 and gate.last_run.slices > 1  # evaluated in slices, not remembered


def test_a_remembered_verdict_still_fails_synthesis(tmp_path: Path) -> None:
    cache = tmp_path / "verdicts"
    first = GuardGate(cache_dir=cache, workers=2)
    _synth_failing(_probe_app(tmp_path / "one", first))
    second = GuardGate(cache_dir=cache, workers=2)
    _synth_failing(_probe_app(tmp_path / "two", second))
    assert (second.last_run.reused, second.last_run.evaluated) == (1, 0)
    assert _findings(tmp_path / "two") == _findings(tmp_path / "one")
    # The findings name the template of this synthesis, not the one they were first found in.
    report = (tmp_path / "two" / "validation-report.json").read_text(encoding="utf-8")
    assert str(tmp_path / "one") not in report


def test_any_change_to_the_template_is_evaluated(tmp_path: Path) -> None:
    cache = tmp_path / "verdicts"
    _synth_failing(_probe_app(tmp_path / "one", GuardGate(cache_dir=cache, workers=2)))
    gate = GuardGate(cache_dir=cache, workers=2)
    _synth_failing(_probe_app(tmp_path / "two", gate, queues=2))
    assert (gate.last_run.reused, gate.last_run.evaluated) == (0, 1)
    assert any("PlainQueue1" in path for _, _, paths in _findings(tmp_path / "two") for path in paths)


def test_the_rule_set_is_part_of_the_key(tmp_path: Path) -> None:
    template = tmp_path / "t.template.json"
    template.write_text('{"Resources": {}}', encoding="utf-8")
    every_rule = GuardGate(cache_dir=tmp_path / "v", workers=1)
    fewer_rules = GuardGate(cache_dir=tmp_path / "v", workers=1, disabled_rules=["ct-sqs-pr-1"])
    assert len(fewer_rules.rule_ids) == len(every_rule.rule_ids) - 1
    assert every_rule.verdict_key(template) != fewer_rules.verdict_key(template)
    before = every_rule.verdict_key(template)
    template.write_text('{"Resources": {} }', encoding="utf-8")  # one byte more, same meaning
    assert every_rule.verdict_key(template) != before


def test_a_damaged_verdict_is_evaluated_again(tmp_path: Path) -> None:
    cache = tmp_path / "verdicts"
    _synth_failing(_probe_app(tmp_path / "one", GuardGate(cache_dir=cache, workers=2)))
    for entry in cache.rglob("*.json"):
        if entry.name != "last-run.json":
            entry.write_text('{"key": "someone else", "violations": []}', encoding="utf-8")
    gate = GuardGate(cache_dir=cache, workers=2)
    _synth_failing(_probe_app(tmp_path / "two", gate))
    assert gate.last_run.evaluated == 1


def test_every_rule_runs_in_exactly_one_slice(tmp_path: Path) -> None:
    gate = GuardGate(cache_dir=tmp_path, workers=2)
    dealt = [rule.stem for part in gate.slices() for rule in part]
    assert sorted(dealt) == sorted(set(dealt))
    assert len(dealt) == len(gate.rule_ids) > 200


def test_a_failing_guard_run_is_an_error_not_a_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = GuardGate(cache_dir=tmp_path / "verdicts", workers=1)
    monkeypatch.setattr(gate, "_max_buffer", 16)  # guard's output cannot fit: the run fails
    app = _probe_app(tmp_path / "out", gate)
    with pytest.raises(RuntimeError, match="guard failed"):
        app.synth()
    assert not [entry for entry in (tmp_path / "verdicts").rglob("*.json") if entry.name != "last-run.json"]


def test_unknown_node_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import guard_gate

    monkeypatch.delenv("JSII_NODE", raising=False)
    monkeypatch.setattr(guard_gate.shutil, "which", lambda _: None)
    with pytest.raises(GuardGateError, match="Node.js not found"):
        guard_gate._node()
