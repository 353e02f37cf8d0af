"""`make demo` end to end: `orchestrator demo` exits 0 only when 1.1.0 finalized and 1.2.0 rolled back."""

from __future__ import annotations

import pytest

from orchestrator.cli import main
from tests.e2e.iam_checks import assert_no_denials

pytestmark = pytest.mark.slow


def test_demo_end_to_end(tmp_path, monkeypatch, capsys, synthesized) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SANDBOX_DIR", str(tmp_path / "sandbox"))
    code = main(["demo", "--reports", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    reports = sorted((tmp_path / "reports").glob("*.html"))
    assert len(reports) == 2
    assert "detect-to-rollback" in out and "finalized" in out
    assert not (tmp_path / "sandbox" / "demo" / "state.json").exists()  # the sandbox is down again
    # Every function ran from its asset with its own role, and nothing it called was denied.
    assert "worker processes" in out
    assert_no_denials(tmp_path / "sandbox" / "demo")
