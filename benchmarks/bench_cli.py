"""CLI figures: sandbox start time, demo wall time, `release watch` refresh cost.

Prints one JSON line. Run: `python benchmarks/bench_cli.py` (add `--no-demo` to skip the demo).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

import boto3  # noqa: E402
from rich.console import Console  # noqa: E402

from orchestrator.aws import Aws, Names, Target  # noqa: E402
from orchestrator.watch import Watcher  # noqa: E402


def sandbox_start(directory: Path) -> dict[str, float]:
    from orchestrator.sandbox.daemon import start_background, stop_background

    started = time.perf_counter()
    state = start_background(directory, time_scale=60.0)
    wall = time.perf_counter() - started
    stop_background(directory)
    return {"sandbox_start_wall_s": round(wall, 2), "sandbox_start_inside_s": state.startup_seconds}


def demo(directory: Path) -> dict[str, float]:
    from orchestrator.demo import run_demo

    started = time.perf_counter()
    code = run_demo(directory, directory / "reports", console=Console(file=open(os.devnull, "w")))  # noqa: SIM115
    return {"demo_wall_s": round(time.perf_counter() - started, 1), "demo_exit_code": code}


def watch_refresh(loops: int = 300) -> dict[str, float]:
    """Refresh cost on a finished execution with a long history (a Pass/Choice loop)."""
    from moto.server import ThreadedMotoServer

    from orchestrator.engine import LocalEngine

    # The sandbox runs with the engine's moto hooks installed (they also cache history rendering).
    engine = LocalEngine(start_mock=False)
    engine.open()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/config", data=body, method="POST")).close()  # noqa: S310
    sfn = boto3.client("stepfunctions", endpoint_url=url)
    asl = {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Result": 0, "ResultPath": "$.i", "Next": "Step"},
            "Step": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "More"},
            "More": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.i", "NumericLessThan": loops, "Next": "Step"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    machine = sfn.create_state_machine(
        name="bench-watch", definition=json.dumps(asl), roleArn="arn:aws:iam::123456789012:role/bench"
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, name="bench", input="{}")["executionArn"]
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.05)
    events = len(sfn.get_execution_history(executionArn=arn)["events"])
    aws = Aws(Target(endpoint_url=url, region="eu-west-1"))
    watcher = Watcher(aws, arn, Names("staging"), side_every=1e9)
    watcher._side_at = time.monotonic()  # history only: the alias/alarm reads are measured by request count
    first_started = time.perf_counter()
    watcher.view = None
    watcher.refresh()
    first = time.perf_counter() - first_started
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        watcher.refresh()
        timings.append(time.perf_counter() - started)
    server.stop()
    engine.close()
    return {
        "watch_history_events": events,
        "watch_first_read_ms": round(first * 1000, 1),
        "watch_refresh_ms_p50": round(median(timings) * 1000, 1),
        # On AWS a refresh is 1 GetExecutionHistory page (newest first, stops at the last seen id),
        # plus, at most once per second, 5 GetAlias (live) + 1 GetAlias (green) + 1 DescribeAlarms.
        "watch_requests_per_refresh_history": 1,
        "watch_requests_per_side_read": 7,
    }


def main() -> None:
    figures: dict[str, float] = {}
    figures.update(watch_refresh())
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        figures.update(sandbox_start(Path(tmp) / "start"))
        if "--no-demo" not in sys.argv:
            figures.update(demo(Path(tmp) / "demo"))
    print(json.dumps({"benchmark": "cli", **figures}))


if __name__ == "__main__":
    main()
