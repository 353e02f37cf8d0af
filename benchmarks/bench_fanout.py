"""Fan-out through the local gateway: N WebSocket clients on one channel, M events on the queue.

Prints one JSON line: delivered messages per second and queue-to-client latency (p50/p99),
measured from the producer timestamp in each event (taken just before SendMessageBatch) to its
arrival at a client. Everything runs in this process on loopback: moto, a real Redis server,
the gateway with its SQS poller and the fan-out handler, and the clients (asyncio).

    python benchmarks/bench_fanout.py [--clients 1000] [--events 100]
"""

from __future__ import annotations

import os
import sys

# Quiet handlers (no per-invocation log or EMF lines) before Powertools is imported.
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",  # noqa: S105 - moto's fake credentials
    AWS_DEFAULT_REGION="eu-west-1",
    AWS_REGION="eu-west-1",
    POWERTOOLS_LOG_LEVEL="ERROR",
    POWERTOOLS_METRICS_DISABLED="true",
    POWERTOOLS_TRACE_DISABLED="true",
)
os.environ.pop("AWS_ENDPOINT_URL", None)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from orchestrator.gateway import Gateway, LambdaRuntime, MetricRecorder, QueueBinding  # noqa: E402
from orchestrator.testing.redis_server import RedisServer  # noqa: E402
from tests.unit.service.moto_service import API_KEY, create_functions, provision  # noqa: E402

CHANNEL = "price:bench"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def run_clients(url: str, clients: int, events: int, publish: callable) -> dict[str, float]:
    latencies: list[float] = []
    done = asyncio.Event()
    expected = clients * events
    sockets = []
    sem = asyncio.Semaphore(50)  # API Gateway admits 500 new connections/s; stay gentle

    async def open_one() -> None:
        async with sem:
            ws = await connect(url, additional_headers={"x-api-key": API_KEY}, open_timeout=60, max_size=2**20)
            await ws.send(json.dumps({"action": "subscribe", "channel": CHANNEL}))
            frame = json.loads(await ws.recv())
            assert frame["type"] == "subscribed", frame
            sockets.append(ws)

    started = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(clients)))
    connect_seconds = time.perf_counter() - started

    async def listen(ws) -> None:
        received = 0
        while received < events:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "event":
                latencies.append(time.time() * 1000 - frame["ts"])
                received += 1
        if len(latencies) >= expected:
            done.set()

    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
    first_send = time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(None, publish)
    await asyncio.wait_for(done.wait(), timeout=600)
    elapsed = time.perf_counter() - first_send
    await asyncio.gather(*listeners)
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "connect_subscribe_seconds": round(connect_seconds, 2),
        "delivered": len(latencies),
        "delivery_seconds": round(elapsed, 2),
        "messages_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms_p50": round(percentile(latencies, 50), 1),
        "latency_ms_p99": round(percentile(latencies, 99), 1),
        "latency_ms_mean": round(statistics.fmean(latencies), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with RedisServer() as redis_server, mock_aws(), contextlib.redirect_stdout(sys.stderr):
        account = provision()
        env = {**account.base_env(redis_server.url), "FANOUT_CONCURRENCY": "64"}
        names = create_functions(account, [env])
        recorder = MetricRecorder(boto3.client("cloudwatch"), flush_seconds=5)
        runtime = LambdaRuntime(boto3.client("lambda"), names, recorder=recorder)
        sqs = boto3.client("sqs")
        gateway = Gateway(runtime, sqs=sqs, queue_bindings=[QueueBinding(account.events_url, "live")], recorder=recorder)
        urls = gateway.start()

        def publish() -> None:
            for start in range(0, args.events, 10):
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": json.dumps(
                            {"channel": CHANNEL, "type": "price", "payload": {"price": 100 + i}, "ts": time.time() * 1000}
                        ),
                    }
                    for i in range(start, min(args.events, start + 10))
                ]
                sqs.send_message_batch(QueueUrl=account.events_url, Entries=entries)

        try:
            figures = asyncio.run(run_clients(urls.websocket["live"], args.clients, args.events, publish))
        finally:
            gateway.stop()
    figures = {"clients": args.clients, "events": args.events, **figures, "cpus": os.cpu_count()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
