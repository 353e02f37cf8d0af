"""The sandbox's state file (`.sandbox/state.json`): where the background sandbox listens.

Written by the daemon once everything answers, removed when it stops. Readers check that the
recorded process is alive and the moto endpoint answers, so a stale file after a crash or a
reboot reads as "not running" rather than as a hang.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LOG_FILE = "sandbox.log"
LAMBDA_REPORT = "lambda-runtime.json"  # the workers' cold starts and invocations, kept current


class SandboxNotRunning(RuntimeError):
    """No live sandbox answers at the recorded endpoints."""


@dataclass
class SandboxState:
    pid: int
    moto_url: str
    redis_url: str
    region: str
    environment: str
    account: str
    time_scale: float
    started_at: float
    startup_seconds: float
    gateway: dict[str, str] = field(default_factory=dict)  # name -> URL (live/preview/@connections)
    state_machines: dict[str, str] = field(default_factory=dict)  # name -> ARN
    lambda_mode: str = "in-process"  # or "isolated": worker processes from the functions' assets
    artifact_bucket: str = ""  # release bundles (config `deploy.artifact_bucket_name`), made at start
    control_url: str = ""  # the sandbox's clock and scheduler (orchestrator/sandbox/control.py)
    traffic: str = ""  # the background clients on `live`, described ("" when there are none)

    @property
    def time_note(self) -> str:
        return (
            f"compressed: Wait states and bakes run {self.time_scale:g}x faster than wall time; "
            "history timestamps are on that clock"
        )

    def endpoints(self) -> dict[str, str]:
        return {"AWS (moto)": self.moto_url, "Redis": self.redis_url, **self.gateway}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def write_state(directory: Path, state: SandboxState) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = state_path(directory).with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=2))
    tmp.replace(state_path(directory))  # atomic: readers never see half a file


def remove_state(directory: Path) -> None:
    state_path(directory).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def endpoint_answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/config", timeout=timeout):  # noqa: S310 - loopback URL we wrote
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def read_state(directory: Path, check_endpoint: bool = True) -> SandboxState:
    path = state_path(directory)
    hint = "start it with `orchestrator sandbox up`"
    try:
        data = json.loads(path.read_text())
        state = SandboxState(**data)
    except FileNotFoundError:
        raise SandboxNotRunning(f"the sandbox is not running ({path} absent); {hint}") from None
    except (ValueError, TypeError) as exc:
        raise SandboxNotRunning(f"unreadable sandbox state {path} ({exc}); {hint}") from None
    if not pid_alive(state.pid):
        raise SandboxNotRunning(f"the sandbox (pid {state.pid}) is no longer running; {hint}")
    if check_endpoint and not endpoint_answers(state.moto_url):
        raise SandboxNotRunning(f"the sandbox (pid {state.pid}) does not answer at {state.moto_url}; {hint}")
    return state


def read_lambda_report(directory: Path) -> dict[str, Any] | None:
    """The workers' report a running (or stopped) sandbox keeps in its directory, if any."""
    try:
        report = json.loads((directory / LAMBDA_REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None
