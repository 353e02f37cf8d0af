"""The daemon's own arguments: bad values are refused with one line before anything starts."""

from __future__ import annotations

import pytest

from orchestrator.sandbox import daemon


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--traffic-clients", "-1"], "--traffic-clients: must be 0 or more, got -1"),
        (["--traffic-clients", "many"], "argument --traffic-clients: invalid int value: 'many'"),
        (["--clock-start", "2026-06-03T10:00"], "has no time zone"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    argv: list[str], message: str, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(daemon, "serve", lambda *a, **k: pytest.fail("the sandbox started"))
    with pytest.raises(SystemExit) as exited:
        daemon.main(["--dir", str(tmp_path), *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_traffic_clients_reach_the_sandbox_and_its_state_describes_them(tmp_path, monkeypatch) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(daemon, "serve", lambda *a, **k: seen.update(k) or 0)
    assert daemon.main(["--dir", str(tmp_path), "--traffic-clients", "4"]) == 0
    assert seen["traffic_clients"] == 4
    assert daemon._traffic_note(0) == ""
    assert daemon._traffic_note(4).startswith("4 WebSocket clients on live, a ping each every 0.1 s")
