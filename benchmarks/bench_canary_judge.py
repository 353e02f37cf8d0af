"""How often JudgeCanary passes a healthy green and fails a slower one, over repeated sandbox releases.

One sandbox (the synthesized staging stage, compressed clock) with the demo's live traffic; then
`--trials` releases of each kind, alternating so that the machine's load drifts over both alike:

- healthy: green is blue's code with no fault;
- faulty: green's `messages` handler is `--delay-ms` slower (FAULT_DELAY_MS), and never fails, so
  no alarm fires and only the judge can stop it.

Each release shifts 50% for one bake of `--bake` seconds (compressed 60x), then 100%, with
`--routing invocations` (alias weights) or `connections` (the edge's share of new connections,
which the demo's clients open every 2 s). A healthy
release judged `fail` is a false positive; a faulty release not judged `fail` is a false negative.
A release that ended otherwise (for instance its synthetic checks failed on a starved machine) is
counted apart and left out of both rates. The judge's verdict and numbers come from the release
record (`canary_verdicts`), the outcome from the execution.

    .venv/bin/python benchmarks/bench_canary_judge.py [--trials 10] [--delay-ms 150] [--bake 240]
        [--routing invocations|connections]

Prints one line per release and one JSON line last (benchmarks/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from contracts import names
from orchestrator.aws import Aws, Names, Target
from orchestrator.demo import CONNECTION_LIFETIME_SECONDS, ENV, TIME_SCALE, demo_request
from orchestrator.sandbox.daemon import start_background, stop_background
from orchestrator.traffic import TrafficGenerator


def release(
    aws: Aws, version: str, configuration: dict[str, str], bake: int, routing: str = "invocations"
) -> dict[str, Any]:
    request = demo_request(
        aws,
        version,
        configuration,
        min_success_rate=0.9,
        steps="50,100",
        bake=bake,
        requested_by="bench",
        routing=routing,
    )
    machine = aws.state_machine_arn(Names(ENV).release_state_machine)
    started = time.monotonic()
    arn = aws.start_execution(machine, request["release_id"], request)["executionArn"]
    while (described := aws.describe_execution(arn))["status"] == "RUNNING":
        time.sleep(0.5)
    # An alarm rollback stops the execution first and releases the lock after (in `connections`
    # routing after draining the canary stage): the next release waits for it, and for the gate's
    # alarms to settle, as an operator would.
    wait_for_lock(aws)
    wait_for_quiet_alarms(aws)
    record = aws.call(
        "dynamodb",
        "get_item",
        TableName=names.release_table_name(ENV),
        Key={"pk": {"S": f"release#{request['release_id']}"}, "sk": {"S": "record"}},
    ).get("Item", {})
    verdicts = [
        {key: value.get("S") or value.get("N") for key, value in item["M"].items()}
        for item in record.get("canary_verdicts", {}).get("L", [])
    ]
    return {
        "version": version,
        "status": described["status"],
        "error": described.get("error"),
        "cause": (described.get("cause") or "")[:400],
        "wall_seconds": round(time.monotonic() - started, 1),
        "verdicts": verdicts,
    }


def wait_for_lock(aws: Aws, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = aws.call(
            "dynamodb",
            "get_item",
            TableName=names.release_table_name(ENV),
            Key={"pk": {"S": f"lock#{ENV}"}, "sk": {"S": "lock"}},
        ).get("Item")
        if not held:
            return
        time.sleep(0.5)


def wait_for_quiet_alarms(aws: Aws, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(a.state != "ALARM" for a in aws.alarm_states(Names(ENV).alarm_prefix)):
            return
        time.sleep(0.5)


def latency_compared(result: dict[str, Any]) -> bool:
    summary = str(result["verdicts"][0].get("summary", "")) if result["verdicts"] else result["cause"]
    return "realtime-messages: p99 green" in summary


def classify(kind: str, result: dict[str, Any]) -> str:
    """`pass`/`fail` of the 50% step's judgment, or `other` when the release ended for another reason."""
    judged_fail = "CanaryFailed" in (result["cause"] or "")
    if judged_fail:
        return "fail"
    if result["status"] == "SUCCEEDED":
        first = result["verdicts"][0] if result["verdicts"] else {}
        return "skipped" if str(first.get("summary", "")).startswith("pass (not judged)") else "pass"
    return "other"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="releases of each kind")
    parser.add_argument("--delay-ms", type=int, default=150)
    parser.add_argument("--bake", type=int, default=240, help="seconds of the 50%% bake (compressed 60x)")
    parser.add_argument("--routing", choices=("invocations", "connections"), default="invocations")
    args = parser.parse_args(argv)
    faulty = {"FAULT_DELAY_MS": str(args.delay_ms), "FAULT_FUNCTIONS": "messages"}
    results: dict[str, list[dict[str, Any]]] = {"healthy": [], "faulty": []}
    with tempfile.TemporaryDirectory(prefix="bench-judge-") as scratch:
        directory = Path(scratch) / "sandbox"
        # Schedules off: over the benchmark's sandbox days the weekly DR drill would take the lock.
        state = start_background(directory, time_scale=TIME_SCALE, schedules=False)
        aws = Aws(Target(region=state.region, endpoint_url=state.moto_url, sandbox=True))
        queue = aws.call("sqs", "get_queue_url", QueueName=names.queue_name(ENV, "events"))["QueueUrl"]
        traffic = TrafficGenerator(
            state.gateway["websocket live"],
            state.gateway["api key"],
            aws.client("sqs"),
            queue,
            connection_lifetime=CONNECTION_LIFETIME_SECONDS,
        )
        traffic.start()
        try:
            for trial in range(args.trials):
                for kind in ("healthy", "faulty"):
                    version = f"3.{trial}.{0 if kind == 'healthy' else 1}"
                    result = release(
                        aws, version, faulty if kind == "faulty" else {}, args.bake, args.routing
                    )
                    result["outcome"] = classify(kind, result)
                    results[kind].append(result)
                    first = result["verdicts"][0]["summary"] if result["verdicts"] else result["cause"]
                    # The deciding part: `messages`' latency when it was compared, else the first reason.
                    shown = next((p for p in first.split("; ") if "realtime-messages" in p), first)
                    print(
                        f"{kind:7} {version:7} {result['outcome']:7} {result['wall_seconds']:5.1f} s  {shown[:200]}"
                    )
        finally:
            traffic.stop()
            stop_background(directory)

    def rate(kind: str, wrong: str) -> tuple[float | None, int]:
        judged = [r for r in results[kind] if r["outcome"] in ("pass", "fail", "skipped")]
        if not judged:
            return None, 0
        return sum(r["outcome"] == wrong for r in judged) / len(judged), len(judged)

    false_positive, healthy_judged = rate("healthy", "fail")
    faulty_judged = [r for r in results["faulty"] if r["outcome"] in ("pass", "fail", "skipped")]
    false_negative = (
        sum(r["outcome"] != "fail" for r in faulty_judged) / len(faulty_judged) if faulty_judged else None
    )
    figures = {
        "routing": args.routing,
        "trials_per_kind": args.trials,
        "delay_ms": args.delay_ms,
        "bake_seconds": args.bake,
        "false_positive_rate": false_positive,
        "false_negative_rate": false_negative,
        "healthy_judged": healthy_judged,
        "faulty_judged": len(faulty_judged),
        "healthy_skipped": sum(r["outcome"] == "skipped" for r in results["healthy"]),
        # Releases whose `messages` latency was compared (both versions at the minimum sample).
        "healthy_latency_compared": sum(latency_compared(r) for r in results["healthy"]),
        "faulty_latency_compared": sum(latency_compared(r) for r in results["faulty"]),
        "other_outcomes": sum(r["outcome"] == "other" for kind in results for r in results[kind]),
        "release_wall_seconds_median": statistics.median(
            r["wall_seconds"] for kind in results for r in results[kind]
        ),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
