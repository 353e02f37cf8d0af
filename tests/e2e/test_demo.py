"""`make demo` end to end: `orchestrator demo` exits 0 only when 1.1.0 finalized and 1.2.0 rolled back."""

from __future__ import annotations

import pytest

from orchestrator.cli import main

pytestmark = pytest.mark.slow


def test_demo_end_to_end(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ORCHESTRATOR_SANDBOX_DIR", str(tmp_path / "sandbox"))
    code = main(["demo", "--reports", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    reports = sorted((tmp_path / "reports").glob("*.html"))
    assert len(reports) == 2
    assert "detect-to-rollback" in out and "finalized" in out
    assert not (tmp_path / "sandbox" / "demo" / "state.json").exists()  # the sandbox is down again
