"""Fan-out through the local gateway: N WebSocket clients on one channel, events published one at
a time, delivery split into shards of FANOUT_SHARD_SIZE.

For each subscriber count, prints delivery latency from publish (the producer timestamp in each
event, taken just before SendMessage) to every subscriber (p50/p99 over all deliveries) and to
the last subscriber of each event (p50/p99 over events). The next event is published once the
previous one reached everyone, so an event's figures do not include waiting behind another.

The service side runs in this process on loopback: moto (SQS, Lambda versions/aliases), a real
Redis server, the gateway with `--pollers` SQS pollers on the events queue (each one stands for
one concurrent fan-out invocation, as Lambda's poller scales out on a backlog of shards), the
fan-out handler and the @connections API. The WebSocket clients run in `--client-processes`
separate processes (asyncio), so 10,000 clients fit the descriptor limit; the soft
RLIMIT_NOFILE is raised to the hard limit in every process.

    python benchmarks/bench_fanout.py [--clients 1000 10000] [--events 10] [--shard-size 500]
                                      [--pollers 4] [--model-subscribers 100000]

The last JSON line also carries the model of `--model-subscribers` subscribers on AWS (see
`model()`): shard count, Lambda concurrency and time to the last subscriber from the measured
CPU per post (benchmarks/bench_fanout_post.py, `--cpu-ms-per-post`) and stated assumptions.
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
import math  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

CHANNEL = "price:bench"
CONNECT_CONCURRENCY = 50  # per client process; API Gateway admits 500 new connections/s


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# -- client processes ---------------------------------------------------------------------------


def client_process(url: str, api_key: str, clients: int, events: int, pipe: Any) -> None:
    """Open `clients` subscribed WebSockets, report ready, then per event report when all of
    them have it; finally send every delivery latency."""
    raise_fd_limit()
    from websockets.asyncio.client import connect

    async def run() -> None:
        sockets = []
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def open_one() -> None:
            async with sem:
                ws = await connect(
                    url,
                    additional_headers={"x-api-key": api_key},
                    open_timeout=120,
                    max_size=2**20,
                    ping_interval=None,
                )
                await ws.send(json.dumps({"action": "subscribe", "channel": CHANNEL}))
                frame = json.loads(await ws.recv())
                if frame.get("type") != "subscribed":
                    raise RuntimeError(f"subscribe answered {frame}")
                sockets.append(ws)

        await asyncio.gather(*(open_one() for _ in range(clients)))
        latencies: list[float] = []
        arrivals: dict[str, list[float]] = {}

        async def listen(ws: Any) -> None:
            received = 0
            while received < events:
                frame = json.loads(await ws.recv())
                if frame.get("type") != "event":
                    continue
                now = time.time()
                latencies.append(now * 1000 - frame["ts"])
                seen = arrivals.setdefault(frame["id"], [])
                seen.append(now)
                received += 1
                if len(seen) == clients:
                    pipe.send(("done", frame["id"], max(seen)))

        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
        pipe.send(("ready", len(sockets)))
        await asyncio.gather(*listeners)
        pipe.send(("latencies", latencies))
        await asyncio.gather(*(ws.close() for ws in sockets))

    asyncio.run(run())


# -- one measurement ----------------------------------------------------------------------------


def measure(args: argparse.Namespace, clients: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from orchestrator.gateway import Gateway, LambdaRuntime, MetricRecorder, QueueBinding
    from orchestrator.sandbox.redis_server import RedisServer
    from service.clients import aws as aws_clients
    from service.clients import connections as posting
    from tests.support.moto_service import API_KEY, create_functions, provision

    processes = args.client_processes or max(1, math.ceil(clients / 2500))
    with RedisServer() as redis_server, mock_aws(), contextlib.redirect_stdout(sys.stderr):
        aws_clients.reset()
        posting.reset()
        account = provision(visibility_timeout=60)
        env = {
            **account.base_env(redis_server.url),
            "FANOUT_CONCURRENCY": str(args.concurrency),
            "FANOUT_SHARD_SIZE": str(args.shard_size),
        }
        names = create_functions(account, [env])
        recorder = MetricRecorder(boto3.client("cloudwatch"), flush_seconds=5)
        runtime = LambdaRuntime(boto3.client("lambda"), names, recorder=recorder)
        sqs = boto3.client("sqs")
        bindings = [QueueBinding(account.events_url, "live") for _ in range(args.pollers)]
        gateway = Gateway(runtime, sqs=sqs, queue_bindings=bindings, recorder=recorder)
        urls = gateway.start()
        context = multiprocessing.get_context("spawn")
        pipes, workers = [], []
        try:
            started = time.perf_counter()
            for index in range(processes):
                share = clients // processes + (1 if index < clients % processes else 0)
                receiver, sender = context.Pipe(duplex=False)
                worker = context.Process(
                    target=client_process,
                    args=(urls.websocket["live"], API_KEY, share, args.events, sender),
                    daemon=True,
                )
                worker.start()
                pipes.append(receiver)
                workers.append(worker)
            connected = sum(expect(pipe, "ready", 900)[1] for pipe in pipes)
            connect_seconds = time.perf_counter() - started
            to_last: list[float] = []
            for n in range(args.events):
                event_id = uuid.uuid4().hex
                ts = time.time() * 1000
                body = {
                    "id": event_id,
                    "channel": CHANNEL,
                    "type": "price",
                    "payload": {"price": 100 + n},
                    "ts": ts,
                }
                sqs.send_message(QueueUrl=account.events_url, MessageBody=json.dumps(body))
                last = 0.0
                for pipe in pipes:
                    _, got_id, arrived = expect(pipe, "done", 900)
                    if got_id != event_id:
                        raise RuntimeError(f"expected event {event_id}, a client process finished {got_id}")
                    last = max(last, arrived)
                to_last.append(last * 1000 - ts)
                time.sleep(0.2)  # let the pollers go idle between events
            latencies = [value for pipe in pipes for value in expect(pipe, "latencies", 120)[1]]
            for worker in workers:
                worker.join(30)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
            try:
                gateway.stop()
            except TimeoutError:  # thousands of $disconnect invocations still queued: the figures stand
                print(f"gateway stop timed out with {clients} connections closing", file=sys.stderr)
    shards = max(1, math.ceil(clients / args.shard_size)) if clients > args.shard_size else 0
    return {
        "clients": clients,
        "connected": connected,
        "events": args.events,
        "shards_per_event": shards,
        "connect_subscribe_seconds": round(connect_seconds, 1),
        "delivered": len(latencies),
        "delivery_ms_p50": round(percentile(latencies, 50), 1),
        "delivery_ms_p99": round(percentile(latencies, 99), 1),
        "to_last_subscriber_ms_p50": round(percentile(to_last, 50), 1),
        "to_last_subscriber_ms_p99": round(percentile(to_last, 99), 1),
        "deliveries_per_second": round(clients / (percentile(to_last, 50) / 1000), 1),
    }


def expect(pipe: Any, kind: str, timeout: float) -> tuple[Any, ...]:
    if not pipe.poll(timeout):
        raise TimeoutError(f"no {kind!r} from a client process within {timeout} s")
    message = pipe.recv()
    if message[0] != kind:
        raise RuntimeError(f"expected {kind!r}, got {message[0]!r}")
    return tuple(message)


# -- the model for AWS --------------------------------------------------------------------------

# Lambda's SQS event source in standard mode: five concurrent batches when messages appear, then
# up to 300 more concurrent invocations per minute, at most 1,000 (AWS Lambda developer guide,
# "Configuring scaling behavior for SQS event source mappings").
ESM_START_CONCURRENCY = 5
ESM_RAMP_PER_SECOND = 300 / 60
ESM_MAX_CONCURRENCY = 1000


def measure_split(redis_url: str, subscribers: int, shard_size: int) -> float:
    """Milliseconds the splitting invocation spends on `subscribers` ids: SMEMBERS, sort, plan,
    serialise every shard (median of 3; the SendMessageBatch calls are modelled, not measured)."""
    import redis

    from service import models
    from service.logic import connections, fanout

    r = redis.Redis.from_url(redis_url)
    r.delete("chan:price:split")
    ids = [f"L0SM9cOF{i:07d}=" for i in range(subscribers)]  # API Gateway ids are 16 characters
    for start in range(0, subscribers, 10_000):
        r.sadd("chan:price:split", *ids[start : start + 10_000])
    event = models.Event(channel="price:split", type="price", payload={"price": 3150.25})
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        members = connections.members(r, "price:split")
        shards = fanout.plan_shards(event, members, shard_size, uuid.uuid4().hex)
        bodies = [shard.model_dump_json() for shard in shards]
        samples.append((time.perf_counter() - started) * 1000)
        assert sum(len(b) for b in bodies) > 0
    r.delete("chan:price:split")
    return sorted(samples)[1]


def model(
    subscribers: int,
    *,
    shard_size: int,
    batch_size: int,
    reserved_concurrency: int,
    vcpus: float,
    threads: int,
    cpu_ms_per_post: float,
    post_latency_ms: float,
    split_ms: float,
    send_batch_ms: float,
    queue_hop_ms: float,
    batching_window_ms: float = 0.0,
    split_above: int = 0,
) -> dict[str, Any]:
    """Time from publish to the last of `subscribers` on AWS when the fan-out splits into shards.

    - A channel of at most max(shard_size, split_above) subscribers is posted by one invocation.
    - One invocation posts at rate = min(threads / post latency, vCPUs / CPU per post): as many
      posts in flight as threads, unless the CPU runs out first.
    - The splitting invocation reads and slices the ids (split_ms, measured), queues shards
      1..n-1 in ceil((n-1) / 10) SendMessageBatch calls, `threads` in flight (send_batch_ms
      each), then posts shard 0 itself.
    - Lambda's poller hands up to batch_size shards to one invocation, which posts them one after
      another: ceil((n-1) / batch_size) batches of up to batch_size x shard_size posts, each
      starting queue_hop_ms after the shards are queued, as concurrency allows:
      warm: the event source mapping is already scaled out (a hot channel stays hot);
      cold: it starts at five concurrent batches and adds five a second (standard mode).
      Both are capped by the function's reserved concurrency (less the splitting invocation).
      A batch with fewer than batch_size shards also waits out the mapping's batching window.
    """
    rate = min(threads / (post_latency_ms / 1000), vcpus / (cpu_ms_per_post / 1000))
    shards = math.ceil(subscribers / shard_size) if subscribers > max(shard_size, split_above) else 1
    queued = shards - 1
    batches = math.ceil(queued / batch_size)
    cap = max(1, min(reserved_concurrency - 1, ESM_MAX_CONCURRENCY))
    sizes = [min(batch_size, queued - i * batch_size) * shard_size for i in range(batches)]
    # A partial batch is invoked only when the batching window closes; the poller's wait is
    # modelled as part of that batch's run time.
    durations = [
        size / rate + (0 if size == batch_size * shard_size else batching_window_ms / 1000) for size in sizes
    ]
    queueing_ms = math.ceil(math.ceil(queued / 10) / threads) * send_batch_ms if queued else 0.0
    first_ms = (shard_size if shards > 1 else subscribers) / rate * 1000

    def finish(ramp: bool) -> float:
        """When the last queued batch is done (s after the shards are queued), started in order."""
        running: list[float] = []  # end times of the batches started
        now, last = 0.0, 0.0
        for duration in durations:
            while True:
                running = [end for end in running if end > now]
                limit = (
                    min(cap, ESM_START_CONCURRENCY + int(now * ESM_RAMP_PER_SECOND + 1e-9)) if ramp else cap
                )
                if len(running) < limit:
                    break
                wake = [min(running)]  # a batch ends ...
                if ramp and limit < cap:  # ... or the mapping adds a concurrent batch
                    wake.append((math.floor(now * ESM_RAMP_PER_SECOND + 1e-9) + 1) / ESM_RAMP_PER_SECOND)
                now = min(wake)
            running.append(now + duration)
            last = max(last, now + duration)
        return last

    def to_last(ramp: bool) -> int:
        splitter = split_ms + queueing_ms + first_ms
        if not batches:
            return round(first_ms if shards == 1 else splitter)
        return round(max(splitter, split_ms + queueing_ms + queue_hop_ms + finish(ramp) * 1000))

    return {
        "subscribers": subscribers,
        "shard_size": shard_size,
        "shards": shards,
        "sqs_batch_size": batch_size,
        "lambda_concurrency_needed": 1 + min(batches, cap),
        "reserved_concurrency": reserved_concurrency,
        "posts_per_second_per_invocation": round(rate),
        "split_above": max(shard_size, split_above),
        "posts_per_invocation_max": max([shard_size if shards > 1 else subscribers, *sizes]),
        "split_ms": round(split_ms),
        "queue_shards_ms": queueing_ms,
        "queue_hop_ms": queue_hop_ms,
        "batching_window_ms": batching_window_ms,
        "to_last_subscriber_ms_warm": to_last(False),
        "to_last_subscriber_ms_cold": to_last(True),
        "one_invocation_without_shards_ms": round(subscribers / rate * 1000),
    }


def main() -> None:
    from infra.config import load_config

    production = load_config("production")
    fanout_fn = production.lambdas.settings_for("fanout")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=500, help="FANOUT_SHARD_SIZE in the sandbox")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="FANOUT_CONCURRENCY (threads per invocation)"
    )
    parser.add_argument(
        "--pollers", type=int, default=4, help="concurrent fan-out invocations in the sandbox"
    )
    parser.add_argument("--client-processes", type=int, default=0, help="0: one per 2,500 clients")
    parser.add_argument("--model-subscribers", type=int, default=100_000)
    parser.add_argument(
        "--cpu-ms-per-post",
        type=float,
        default=0.22,
        help="measured by bench_fanout_post.py (signed_keepalive, pool of 32)",
    )
    parser.add_argument(
        "--post-latency-ms",
        type=float,
        default=20.0,
        help="assumed @connections round trip from the function, same region",
    )
    parser.add_argument(
        "--model-threads", type=int, default=32, help="FANOUT_CONCURRENCY on AWS (the default)"
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    hard = raise_fd_limit()
    runs = [measure(args, clients) for clients in args.clients]

    from orchestrator.sandbox.redis_server import RedisServer

    with RedisServer() as redis_server:
        split_ms = measure_split(
            redis_server.url, args.model_subscribers, production.messaging.fanout_shard_size
        )
    aws_model = model(
        args.model_subscribers,
        shard_size=production.messaging.fanout_shard_size,
        batch_size=production.messaging.batch_size,
        reserved_concurrency=fanout_fn.reserved_concurrency or ESM_MAX_CONCURRENCY,
        vcpus=round(min(6.0, fanout_fn.memory_mb / 1769), 2),  # Lambda: 1,769 MB = 1 vCPU
        threads=args.model_threads,
        cpu_ms_per_post=args.cpu_ms_per_post,
        post_latency_ms=args.post_latency_ms,
        split_ms=split_ms,
        send_batch_ms=20.0,  # one SendMessageBatch round trip (assumed)
        queue_hop_ms=50.0,  # shards queued -> a poller's invocation starts (assumed, mapping scaled out)
        batching_window_ms=production.messaging.max_batching_window_seconds * 1000.0,
        # As infra/service_construct.py sets FANOUT_SPLIT_ABOVE.
        split_above=production.messaging.fanout_shard_size
        * (production.messaging.batch_size if production.messaging.max_batching_window_seconds else 1),
    )
    print(
        json.dumps(
            {
                "shard_size": args.shard_size,
                "pollers": args.pollers,
                "fanout_concurrency": args.concurrency,
                "runs": runs,
                "model_production": aws_model,
                "nofile_limit": hard,
                "cpus": os.cpu_count(),
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
