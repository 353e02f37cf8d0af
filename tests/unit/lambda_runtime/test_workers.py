"""Real worker processes from a tmp asset: what a function sees, and failures as Lambda reports them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.iam.identity import credentials_for
from orchestrator.lambda_runtime import CodeLayout, FunctionConfig, LambdaWorkers, host_site_packages

ROLE = "arn:aws:iam::123456789012:role/probe-role"
HANDLERS = """
import os, sys, time

class GreenUnhealthy(Exception):
    pass

def ok(event, context):
    print("probe log line")
    return {
        "event": event, "env": dict(os.environ), "path": sys.path, "pid": os.getpid(),
        "context": {"function_name": context.function_name, "memory": context.memory_limit_in_mb,
                    "request_id": context.aws_request_id, "arn": context.invoked_function_arn,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                    "log_group": context.log_group_name, "version": context.function_version},
    }

def fail(event, context):
    raise GreenUnhealthy("success rate 0.50 below 0.95")

def sleep(event, context):
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}

def crash(event, context):
    os._exit(3)
"""


@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("asset")
    (root / "probe").mkdir()
    (root / "probe" / "__init__.py").write_text("")
    (root / "probe" / "handlers.py").write_text(HANDLERS)
    # `orchestrator` exists in the repository (and the test process) but not in this asset.
    (root / "probe" / "uses_repo.py").write_text(
        "import orchestrator.paths\n\ndef handler(event, context):\n    return 1\n"
    )
    return root


@pytest.fixture
def workers() -> Iterator[LambdaWorkers]:
    with LambdaWorkers() as pool:
        yield pool


def config(asset: Path, handler: str, tmp_path: Path, **overrides: object) -> FunctionConfig:
    name = overrides.pop("name", handler.replace(".", "-"))
    settings: dict = {
        "name": name,
        "arn": f"arn:aws:lambda:eu-west-1:123456789012:function:{name}",
        "handler": handler,
        "layout": CodeLayout(asset, host_site_packages()),
        "environment": {"TABLE": "releases"},
        "timeout_seconds": 5,
        "memory_mb": 512,
        "role_arn": ROLE,
        "endpoint_url": "http://127.0.0.1:5999",
        "log_dir": tmp_path / "logs",
    }
    settings.update(overrides)
    return FunctionConfig(**settings)


def test_success_sees_lambda_environment_credentials_and_logs_to_its_file(
    workers: LambdaWorkers, asset: Path, tmp_path: Path
) -> None:
    fn = config(asset, "probe.handlers.ok", tmp_path, name="probe-ok")
    outcome = workers.invoke(fn, {"hello": 1})
    assert not outcome.error, outcome.payload
    body = outcome.payload
    assert body["event"] == {"hello": 1}
    env = body["env"]
    creds = credentials_for(ROLE)
    assert env["AWS_ACCESS_KEY_ID"] == creds.access_key_id.strip() and env["AWS_ACCESS_KEY_ID"].startswith(
        "ASIA"
    )
    assert env["AWS_SESSION_TOKEN"] == creds.session_token
    assert env["TABLE"] == "releases"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5999"
    assert env["_HANDLER"] == "probe.handlers.ok" and env["LAMBDA_TASK_ROOT"] == str(asset)
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "probe-ok" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python")
    assert env["AWS_XRAY_DAEMON_ADDRESS"].startswith("127.0.0.1:")
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    # The path: asset, runtime, then the standard library only.
    assert body["path"][:2] == [str(asset), str(host_site_packages())]
    assert all("site-packages" not in p for p in body["path"][2:]), body["path"]
    ctx = body["context"]
    assert (
        ctx["function_name"] == "probe-ok"
        and ctx["memory"] == 512
        and ctx["log_group"] == "/aws/lambda/probe-ok"
    )
    assert 4000 < ctx["remaining_ms"] <= 5000
    assert outcome.cold_start_ms is not None
    log = (tmp_path / "logs" / "probe-ok.log").read_text()
    assert "probe log line" in log and f"REPORT RequestId: {outcome.request_id}" in log


def test_second_invocation_is_warm(workers: LambdaWorkers, asset: Path, tmp_path: Path) -> None:
    fn = config(asset, "probe.handlers.ok", tmp_path)
    first = workers.invoke(fn, {})
    second = workers.invoke(fn, {})
    assert first.cold_start_ms is not None and second.cold_start_ms is None
    assert first.payload["pid"] == second.payload["pid"]
    stats = workers.stats()[fn.name]
    assert stats["cold_starts"] == 1 and stats["invocations"] == 2 and stats["cold_start_ms_p50"] > 0


def test_handler_exception_reads_as_its_class(workers: LambdaWorkers, asset: Path, tmp_path: Path) -> None:
    outcome = workers.invoke(config(asset, "probe.handlers.fail", tmp_path), {})
    assert outcome.error
    assert outcome.payload["errorType"] == "GreenUnhealthy"
    assert outcome.payload["errorMessage"] == "success rate 0.50 below 0.95"
    assert any("raise GreenUnhealthy" in line for line in outcome.payload["stackTrace"])


def test_module_outside_the_asset_is_an_import_module_error(
    workers: LambdaWorkers, asset: Path, tmp_path: Path
) -> None:
    import orchestrator.paths  # noqa: F401 - importable here, in the repository's interpreter

    outcome = workers.invoke(config(asset, "probe.uses_repo.handler", tmp_path), {})
    assert outcome.error
    assert outcome.payload == {
        "errorType": "Runtime.ImportModuleError",
        "errorMessage": "Unable to import module 'probe.uses_repo': No module named 'orchestrator'",
        "stackTrace": [],
    }


def test_missing_handler_attribute(workers: LambdaWorkers, asset: Path, tmp_path: Path) -> None:
    outcome = workers.invoke(config(asset, "probe.handlers.nothing", tmp_path), {})
    assert outcome.payload["errorType"] == "Runtime.HandlerNotFound"
    assert "nothing" in outcome.payload["errorMessage"]


def test_timeout_kills_the_worker_and_a_new_one_takes_over(
    workers: LambdaWorkers, asset: Path, tmp_path: Path
) -> None:
    fn = config(asset, "probe.handlers.sleep", tmp_path, timeout_seconds=1)
    started = time.monotonic()
    outcome = workers.invoke(fn, {"seconds": 30})
    # Not a speed check: the handler sleeps 30 s, so returning well before that proves the worker
    # was killed at its 1 s timeout (a loaded machine may take seconds to fork a new worker).
    assert time.monotonic() - started < 20
    assert outcome.error and outcome.payload["errorType"] == "Sandbox.Timedout"
    assert outcome.payload["errorMessage"] == (
        f"RequestId: {outcome.request_id} Error: Task timed out after 1.00 seconds"
    )
    again = workers.invoke(fn, {"seconds": 0})
    assert not again.error and again.cold_start_ms is not None
    assert workers.stats()[fn.name]["timeouts"] == 1


def test_concurrent_invocations_get_a_second_worker(
    workers: LambdaWorkers, asset: Path, tmp_path: Path
) -> None:
    fn = config(asset, "probe.handlers.sleep", tmp_path, name="probe-concurrent")
    workers.invoke(fn, {"seconds": 0})  # one warm worker
    pids: list[int] = []
    threads = [
        threading.Thread(target=lambda: pids.append(workers.invoke(fn, {"seconds": 0.5}).payload["pid"]))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(pids)) == 2
    assert workers.stats()[fn.name]["cold_starts"] == 2
    assert workers.pool(fn).workers == 2


def test_reserved_concurrency_caps_the_workers(workers: LambdaWorkers, asset: Path, tmp_path: Path) -> None:
    fn = config(asset, "probe.handlers.sleep", tmp_path, name="probe-reserved", reserved_concurrency=1)
    threads = [threading.Thread(target=workers.invoke, args=(fn, {"seconds": 0.2})) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert workers.stats()[fn.name]["cold_starts"] == 1


@pytest.mark.parametrize("fork", [True, False], ids=["zygote", "fresh-interpreter"])
def test_a_crashing_worker_is_an_exit_error_and_is_replaced(asset: Path, tmp_path: Path, fork: bool) -> None:
    with LambdaWorkers(fork=fork) as workers:
        crash = config(asset, "probe.handlers.crash", tmp_path, name="probe-crash")
        outcome = workers.invoke(crash, {})
        assert outcome.error and outcome.payload["errorType"] == "Runtime.ExitError"
        assert outcome.payload["errorMessage"].startswith(
            f"RequestId: {outcome.request_id} Error: Runtime exited"
        )
        if not fork:
            assert outcome.payload["errorMessage"].endswith("exit status 3")
        assert workers.pool(crash).workers == 0
        fine = workers.invoke(config(asset, "probe.handlers.ok", tmp_path, name="probe-crash"), {})
        assert not fine.error and fine.cold_start_ms is not None


def test_peak_memory_above_the_memory_size_is_out_of_memory(
    workers: LambdaWorkers, asset: Path, tmp_path: Path
) -> None:
    outcome = workers.invoke(config(asset, "probe.handlers.ok", tmp_path, memory_mb=1), {})
    assert outcome.error and outcome.payload["errorType"] == "Runtime.OutOfMemory"


def test_a_fresh_worker_measures_its_own_peak_not_its_launchers(asset: Path, tmp_path: Path) -> None:
    # ru_maxrss survives execve on Linux: a worker started by a large process (a test runner after a
    # synth, the sandbox daemon) would report the launcher's peak as its own and read as out of memory.
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    with LambdaWorkers(fork=False) as workers:
        outcome = workers.invoke(
            config(asset, "probe.handlers.ok", tmp_path, name="probe-peak", memory_mb=256), {}
        )
    del ballast
    assert not outcome.error, outcome.payload
    assert outcome.max_rss_mb is not None and outcome.max_rss_mb < 256


def test_a_zygote_leaves_botocore_to_an_asset_that_ships_awscrt() -> None:
    from orchestrator.lambda_runtime.pool import preload_skip

    # botocore decides on CRT signing (SigV4A, which the KeyValueStore API needs) when imported:
    # with awscrt in the asset, botocore must be imported after the fork, with the asset on the path.
    assert {"boto3", "botocore", "aws_lambda_powertools", "awscrt"} <= set(preload_skip(["awscrt", "tasks"]))
    assert "botocore" not in preload_skip(["service", "redis"])
    assert "redis" in preload_skip(["service", "redis"])
