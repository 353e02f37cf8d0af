"""The synth-time gates really gate: a non-compliant resource makes synthesis raise."""

from __future__ import annotations

import re

import pytest
from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_sqs as sqs

from infra.nag import attach_security_gates
from infra.nag_acknowledgments import ACKNOWLEDGMENTS, StaleAcknowledgment, acknowledge


def _app_with_plain_queue(tmp_path, acknowledged: bool = False) -> App:  # type: ignore[no-untyped-def]
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "GateProbe")
    # Deliberately non-compliant: no encryption, no DLQ, no TLS-only policy.
    queue = sqs.Queue(stack, "PlainQueue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    if acknowledged:
        Validations.of(queue).acknowledge(
            *[
                Acknowledgment(id=rule, reason="probe")
                for rule in (
                    "AwsSolutions::AwsSolutions-SQS2",
                    "AwsSolutions::AwsSolutions-SQS3",
                    "AwsSolutions::AwsSolutions-SQS4",
                    "cdk-validator-cfnguard::sqs_dlq_check",
                    "cdk-validator-cfnguard::sqs_queue_encrypted_check",
                )
            ]
        )
    attach_security_gates(app)
    return app


def test_noncompliant_resource_fails_synthesis(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = _app_with_plain_queue(tmp_path)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS" in report  # cdk-nag
    assert "sqs_dlq_check" in report  # Control Tower guard rules


def test_acknowledged_findings_pass(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = _app_with_plain_queue(tmp_path, acknowledged=True)
    try:
        app.synth()
    except RuntimeError:
        report = (tmp_path / "validation-report.json").read_text()
        pytest.fail(
            "acknowledged probe still failed:\n" + "\n".join(re.findall(r'"ruleName": "([^"]+)"', report))
        )


def test_every_acknowledgment_has_a_specific_reason() -> None:
    seen = set()
    for ack in ACKNOWLEDGMENTS:
        assert len(ack.reason) >= 60, f"{ack.rule} on {ack.path}: reason too short"
        assert "::" in ack.rule, ack.rule
        assert (ack.path, ack.rule) not in seen, f"duplicate acknowledgment {ack.rule} on {ack.path}"
        seen.add((ack.path, ack.rule))


def test_stale_acknowledgment_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_cdk import Stage

    from infra import nag_acknowledgments

    app = App()
    stage = Stage(app, "Probe")
    monkeypatch.setattr(
        nag_acknowledgments,
        "ACKNOWLEDGMENTS",
        [nag_acknowledgments.Ack("RealtimeAnalytics/Missing", "AwsSolutions::AwsSolutions-SQS3", "x" * 60)],
    )
    with pytest.raises(StaleAcknowledgment, match="Probe/RealtimeAnalytics/Missing"):
        acknowledge(stage, "valkey")


def test_gates_report_in_real_synthesis(synth_assembly) -> None:  # type: ignore[no-untyped-def]
    """The session's synthesis ran both plugins and every finding is acknowledged, none open."""
    from pathlib import Path

    from infra.synth import gate_results

    results = {gate["plugin"]: gate for gate in gate_results(Path(synth_assembly.directory))}
    assert {"AwsSolutions", "cdk-validator-cfnguard"} <= set(results)
    for gate in results.values():
        assert gate["conclusion"] == "success" and not gate["violations"], gate
