"""The connection-level canary in the sandbox: per-connection version consistency, and the drain
time of a rollback.

One sandbox (the synthesized staging stage, compressed 60x, the edge function's template code run
in Node). Two releases in `connections` routing:

1. steps 10,100 with a long bake. During the 10% bake, `--connections` short-lived clients connect
   to the live URL (as every client of the service does), ping `--pings` times and close. Each
   pong names the service version that answered it. Reported: how many connections were answered
   by one version alone (green's count, against a 99.9% two-sided binomial bound around 10%) and
   how many by more than one (which `connections` routing must never produce). Then a rollback.
2. steps 90,100 with a long bake. `--held` clients connect and stay; about 90% of them land on
   the canary stage. Then `orchestrator release rollback` (the alarm-rollback path). Reported:
   DrainCanary's own drain time (`$.drain`, on the record), and what the clients saw: from the
   rollback request to the last canary connection closed by the server, and to every client
   connected again and answered by blue.

    .venv/bin/python benchmarks/bench_connection_canary.py [--connections 400] [--held 100]

Prints lines of progress and one JSON line last (benchmarks/run_all.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from contracts import names
from orchestrator.aws import Aws, Names, Target
from orchestrator.demo import ENV, TIME_SCALE, demo_request
from orchestrator.sandbox.daemon import start_background, stop_background

Z_999 = 3.2905  # two-sided 99.9%


async def ping_once(url: str, key: str, pings: int) -> list[str]:
    """One short-lived client: the versions that answered its pings, in order."""
    versions: list[str] = []
    async with connect(url, additional_headers={"x-api-key": key}, open_timeout=10, close_timeout=2) as ws:
        for index in range(pings):
            await ws.send(json.dumps({"action": "ping", "request_id": f"p{index}"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                if frame.get("type") == "pong" and frame.get("request_id") == f"p{index}":
                    versions.append(str(frame.get("version")))
                    break
    return versions


async def many_clients(url: str, key: str, count: int, pings: int, concurrency: int = 16) -> list[list[str]]:
    gate = asyncio.Semaphore(concurrency)
    results: list[list[str]] = []

    async def one() -> None:
        async with gate:
            try:
                results.append(await ping_once(url, key, pings))
            except (OSError, TimeoutError, ConnectionClosed):
                results.append([])

    await asyncio.gather(*(one() for _ in range(count)))
    return results


class HeldClient:
    """A client that stays connected, reconnects when the server closes it, and notes when."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.versions: list[tuple[float, str]] = []  # (time, version) per pong
        self.server_closed_at: float | None = None
        self.reconnected_version: str | None = None
        self.reconnected_at: float | None = None
        self.stop = False

    async def run(self) -> None:
        first = True
        while not self.stop:
            try:
                async with connect(
                    self.url, additional_headers={"x-api-key": self.key}, open_timeout=10, close_timeout=1
                ) as ws:
                    index = 0
                    while not self.stop:
                        await ws.send(json.dumps({"action": "ping", "request_id": f"h{index}"}))
                        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                        if frame.get("type") == "pong":
                            version = str(frame.get("version"))
                            self.versions.append((time.time(), version))
                            if not first and self.reconnected_version is None:
                                self.reconnected_version, self.reconnected_at = version, time.time()
                        index += 1
                        await asyncio.sleep(0.2)
            except ConnectionClosed:
                if first:
                    self.server_closed_at = time.time()
                first = False
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2)


def start_release(aws: Aws, version: str, steps: str) -> tuple[str, str]:
    request = demo_request(
        aws,
        version,
        {},
        min_success_rate=0.9,
        steps=steps,
        bake=3600,
        requested_by="bench",
        routing="connections",
    )
    machine = aws.state_machine_arn(Names(ENV).release_state_machine)
    arn = aws.start_execution(machine, request["release_id"], request)["executionArn"]
    return request["release_id"], arn


def wait_for_bake(aws: Aws, arn: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = aws.call("stepfunctions", "get_execution_history", executionArn=arn, maxResults=1000)[
            "events"
        ]
        if any(e.get("stateEnteredEventDetails", {}).get("name") == "Bake" for e in events):
            return
        if aws.describe_execution(arn)["status"] != "RUNNING":
            raise RuntimeError(f"{arn} ended before its bake: {aws.describe_execution(arn).get('cause')}")
        time.sleep(0.2)
    raise RuntimeError(f"{arn} did not reach its bake in {timeout:.0f} s")


def rollback(directory: Path, arn: str, aws: Aws) -> float:
    from orchestrator.cli import main as cli

    os.environ["ORCHESTRATOR_SANDBOX_DIR"] = str(directory)
    requested = time.time()
    if cli(["--sandbox", "release", "rollback", "--env", ENV, "--reason", "bench", "--wait"]) != 0:
        raise RuntimeError("the rollback request failed")
    return requested


def drained(aws: Aws, release_id: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    items = aws.call(
        "dynamodb",
        "query",
        TableName=names.release_table_name(ENV),
        KeyConditionExpression="pk = :pk AND begins_with(sk, :events)",
        ExpressionAttributeValues={":pk": {"S": f"release#{release_id}"}, ":events": {"S": "event#"}},
    )["Items"]
    deserialize = TypeDeserializer().deserialize
    for item in items:
        row = {k: deserialize(v) for k, v in item.items()}
        detail = row.get("detail") or {}
        # The alarm rollback records the drain with its outcome; the state machine's DrainCanary on its own.
        found = detail.get("drain") if row.get("transition") == "ROLLED_BACK" else None
        if row.get("transition") == "CANARY_DRAINED":
            found = detail
        if isinstance(found, dict) and found:
            return {k: float(v) if not isinstance(v, str) else v for k, v in found.items()}
    return {}


def wait_health_ok(aws: Aws, timeout: float = 120) -> None:
    """The next release must not meet the rollback's alarm still in ALARM."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {a.name: a.state for a in aws.alarm_states(Names(ENV).alarm_prefix)}
        if "ALARM" not in states.values():
            return
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connections", type=int, default=400, help="short-lived clients during the 10%% step"
    )
    parser.add_argument("--pings", type=int, default=3, help="pings per short-lived client")
    parser.add_argument("--held", type=int, default=100, help="clients held open during the 90%% step")
    parser.add_argument("--keep", type=Path, help="run the sandbox in this directory and keep its logs")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"connections": args.connections, "pings": args.pings, "held": args.held}
    with tempfile.TemporaryDirectory(prefix="bench-conn-") as scratch:
        directory = args.keep or Path(scratch) / "sandbox"
        # Schedules off: a weekly DR drill the 60x clock crosses would take the lock.
        state = start_background(directory, time_scale=TIME_SCALE, schedules=False)
        aws = Aws(Target(region=state.region, endpoint_url=state.moto_url, sandbox=True))
        url, key = state.gateway["websocket live"], state.gateway["api key"]
        try:
            # 1. consistency at 10%
            _, arn = start_release(aws, "4.0.0", "10,100")
            wait_for_bake(aws, arn)
            started = time.perf_counter()
            seen = asyncio.run(many_clients(url, key, args.connections, args.pings))
            answered = [v for v in seen if v]
            mixed = sum(len(set(v)) > 1 for v in answered)
            green = sum(set(v) == {"4.0.0"} for v in answered)
            n = len(answered)
            bound = Z_999 * math.sqrt(n * 0.1 * 0.9)
            figures.update(
                consistency_seconds=round(time.perf_counter() - started, 1),
                answered=n,
                unanswered=len(seen) - n,
                mixed=mixed,
                on_green=green,
                green_share=round(green / n, 4) if n else None,
                green_bound=[round(n * 0.1 - bound, 1), round(n * 0.1 + bound, 1)],
                within_bound=abs(green - n * 0.1) <= bound,
            )
            print(f"10% step: {n} connections, {green} on green, {mixed} answered by both", flush=True)
            rollback(directory, arn, aws)
            wait_health_ok(aws)

            # 2. drain at 90%
            release_id, arn = start_release(aws, "4.1.0", "90,100")
            wait_for_bake(aws, arn)
            clients = [HeldClient(url, key) for _ in range(args.held)]

            async def hold() -> float:
                tasks = [asyncio.create_task(c.run()) for c in clients]
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not all(c.versions for c in clients):
                    await asyncio.sleep(0.2)
                requested = await asyncio.to_thread(rollback, directory, arn, aws)
                deadline = time.monotonic() + 120
                on_canary = [c for c in clients if any(v == "4.1.0" for _, v in c.versions)]
                while time.monotonic() < deadline and not all(c.reconnected_version for c in on_canary):
                    await asyncio.sleep(0.2)
                for c in clients:
                    c.stop = True
                await asyncio.wait(tasks, timeout=10)
                return requested

            requested = asyncio.run(hold())
            on_canary = [c for c in clients if any(v == "4.1.0" for _, v in c.versions)]
            closes = [c.server_closed_at - requested for c in on_canary if c.server_closed_at]
            back = [c.reconnected_at - requested for c in on_canary if c.reconnected_at]
            drain = drained(aws, release_id)
            described = aws.describe_execution(arn)
            figures.update(
                rolled_back_by="alarm rollback" if described["status"] == "ABORTED" else "state machine",
                held_on_canary=len(on_canary),
                closed_by_server=len(closes),
                reconnected_to=sorted({c.reconnected_version for c in on_canary if c.reconnected_version}),
                drain_task_seconds=drain.get("drain_seconds"),
                drain_closed=drain.get("closed"),
                drain_remaining=drain.get("remaining"),
                last_close_after_request_seconds=round(max(closes), 2) if closes else None,
                median_close_after_request_seconds=round(statistics.median(closes), 2) if closes else None,
                all_back_on_blue_after_request_seconds=round(max(back), 2) if back else None,
            )
            print(
                f"90% step: {len(on_canary)} of {args.held} held clients on the canary; drain {drain}; "
                f"last close {figures['last_close_after_request_seconds']} s after the rollback request",
                flush=True,
            )
        finally:
            stop_background(directory)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
