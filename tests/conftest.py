"""Fixtures shared by every test package: fake AWS credentials, a real Redis server, and the
cloud assembly (both stages, every gate) synthesized once per test session.

Under pytest-xdist every worker is its own process: session fixtures run once per worker, so
what must exist once per session (the synthesis) is started by the controller and read by the
workers from the directory they share; without xdist the first test that needs it makes it,
under a file lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

# Never reach real AWS from tests: fake credentials and a fixed region before boto3 is used.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",  # noqa: S105 - moto's fake credentials
    AWS_SECURITY_TOKEN="testing",  # noqa: S105
    AWS_SESSION_TOKEN="testing",  # noqa: S105
    AWS_DEFAULT_REGION="eu-west-1",
    AWS_REGION="eu-west-1",
    POWERTOOLS_METRICS_NAMESPACE="RealtimeAnalytics",
    POWERTOOLS_SERVICE_NAME="test",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_DEV="false",
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

from orchestrator.sandbox.redis_server import RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real Redis/Valkey server for the session; tests isolate themselves by key prefix or flushdb."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def service_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A client of the emptied server, which the code under test reaches through REDIS_URL
    (service.redis_client's cached clients are dropped before and after)."""
    import redis

    from service.redis_client import reset_clients

    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_clients()
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
    reset_clients()


REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's temporary directory that every xdist worker sees (the base dir without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _synth_command(outdir: Path) -> list[str]:
    return [sys.executable, "-m", "infra.synth", "--outdir", str(outdir)]


def _record_synthesis(root: Path) -> None:
    outdir = root / "cdk.out"
    result = subprocess.run(
        _synth_command(outdir), cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )  # noqa: S603
    (root / "cdk.out.done").write_text(
        json.dumps({"returncode": result.returncode, "output": f"{result.stdout}\n{result.stderr}"[-20000:]}),
        encoding="utf-8",
    )


_SYNTH_PATHS = ("tests/e2e", "tests/infra", "tests/unit/lambda_runtime")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist, the controller starts the session's synthesis at once, in the background,
    so workers run tests that need no templates meanwhile (see the ordering below)."""
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    args = [
        str(Path(arg.split("::")[0]).resolve().relative_to(REPO_ROOT))
        for arg in config.args
        if Path(arg.split("::")[0]).resolve().is_relative_to(REPO_ROOT)
    ]
    if args and not any(
        a == "tests" or a.startswith(_SYNTH_PATHS) or any(p.startswith(a + "/") for p in _SYNTH_PATHS)
        for a in args
    ):
        return
    root = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    (root / "cdk.out.started").touch()
    threading.Thread(target=_record_synthesis, args=(root,), name="session-synthesis", daemon=True).start()


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m infra.synth` into the session's cdk.out, once per session whatever the workers.

    The guard gate's verdicts are reused across sessions only for byte-identical templates and
    rules (infra/guard_gate.py); everything else is synthesized and checked afresh. The sandbox
    started by the e2e tests runs this assembly (ORCHESTRATOR_CDK_OUT).
    """
    root = shared_tmp(tmp_path_factory)
    outdir, done = root / "cdk.out", root / "cdk.out.done"
    if (root / "cdk.out.started").exists():  # the controller synthesizes: wait for it
        deadline = time.monotonic() + 1800
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
    else:
        with FileLock(str(root / "cdk.out.lock")):
            if not done.exists():
                _record_synthesis(root)
    outcome = json.loads(done.read_text(encoding="utf-8"))
    if outcome["returncode"] != 0:
        pytest.fail(f"synthesis failed ({outcome['returncode']}):\n{outcome['output']}", pytrace=False)
    os.environ["ORCHESTRATOR_CDK_OUT"] = str(outdir)
    return outdir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first, so no parallel worker is left with a long test at the end: the property
    shards, then tests that need no templates (while the session's synthesis runs), then the rest."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("property_shard") is not None:
            return 0
        return 2 if "synthesized" in getattr(item, "fixturenames", ()) else 1

    items.sort(key=rank)  # stable: each file's own order is kept
