"""CPU per @connections post of the fan-out's post code: boto3's client (the code this replaced)
against the signed keep-alive path (service.clients.connections), in one run.

The sink is the local gateway's own @connections server (orchestrator.gateway.management) with
a hub that accepts every frame, in a separate process, so its CPU is not counted. The posting
process's CPU (user + system, getrusage) is measured around each round of posts; the rounds of
the variants are interleaved so that a busy machine affects them alike, and the median round
is reported. Two modes: one thread (the bare cost of a post) and the function's way of posting
one event to many connections with FANOUT_CONCURRENCY threads (before: ThreadPoolExecutor.map,
a future per post; now: service.logic.fanout.post_frames, workers that take the next target).
For the record it also measures urllib3's pool carrying the same signed request (what the new
path does not use, and why).

    python benchmarks/bench_fanout_post.py [--posts 2000] [--rounds 5] [--concurrency 32]

Prints one JSON line: per variant and mode, CPU ms per post, posts per CPU-second (= posts/s
per vCPU) and wall posts/s.
"""

from __future__ import annotations

import os
import sys

os.environ.update(
    AWS_ACCESS_KEY_ID="ASIABENCHMARKKEY0001",
    AWS_SECRET_ACCESS_KEY="bench-secret-access-key-0123456789abcdefg",  # noqa: S105 - fake
    # A Lambda role's credentials always carry a session token (about 1 KB); sign with one.
    AWS_SESSION_TOKEN="IQoJb3JpZ2luX2VjE" + "x" * 1000,  # noqa: S105 - fake
    AWS_DEFAULT_REGION="eu-west-1",
    AWS_REGION="eu-west-1",
)
for name in ("AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any, Literal  # noqa: E402

FRAME = json.dumps(
    {
        "type": "event",
        "id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "channel": "price:bench",
        "event_type": "price",
        "payload": {"price": 3150.25, "volume": 12.5},
        "ts": 1_760_000_000_000.0,
    }
).encode()


class _AcceptAll:
    def post(self, connection_id: str, data: bytes) -> Literal["ok"]:
        return "ok"

    def describe(self, connection_id: str) -> dict[str, Any] | None:
        return {}

    def disconnect(self, connection_id: str) -> bool:
        return True


def _serve_sink(port_pipe: Any) -> None:
    from orchestrator.gateway.management import ManagementApi

    api = ManagementApi(_AcceptAll(), ["live"]).start()
    port_pipe.send(api.port)
    while True:
        time.sleep(3600)


# -- the variants -------------------------------------------------------------------------------
#
# Each variant is a post function with the signature of service.clients.connections.post
# (endpoint, connection id, data, pool size) -> (outcome, reason).

Post = Callable[[str, str, bytes, int], tuple[str, str]]


def boto3_post() -> Post:
    """service/clients/connections.py before this change: boto3's client, our retry loop."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    clients: dict[str, Any] = {}

    def post(endpoint_url: str, connection_id: str, data: bytes, pool_size: int = 32) -> tuple[str, str]:
        client = clients.get(endpoint_url)
        if client is None:
            client = clients[endpoint_url] = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint_url,
                config=Config(
                    connect_timeout=2,
                    read_timeout=5,
                    retries={"mode": "standard", "max_attempts": 1},
                    max_pool_connections=pool_size,
                ),
            )
        reason = ""
        for attempt in range(1, 6):
            try:
                client.post_to_connection(ConnectionId=connection_id, Data=data)
                return "sent", ""
            except client.exceptions.GoneException:
                return "gone", "GoneException"
            except ClientError as exc:
                reason = exc.response.get("Error", {}).get("Code", "ClientError")
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) < 500:
                    return "failed", reason
            except BotoCoreError as exc:
                reason = type(exc).__name__
            if attempt < 5:
                time.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))  # noqa: S311
        return "failed", reason

    return post


def signed_post() -> Post:
    """The fan-out's post path now."""
    from service.clients import connections

    return connections.post


def urllib3_post() -> Post:
    """The same signed request through urllib3's keep-alive pool (measured, not used)."""
    import urllib3

    from service.clients import connections

    signer = connections.Signer.from_session()
    endpoints: dict[str, tuple[Any, Any]] = {}

    def post(endpoint_url: str, connection_id: str, data: bytes, pool_size: int = 32) -> tuple[str, str]:
        if endpoint_url not in endpoints:
            endpoint = connections.Endpoint(endpoint_url, signer, pool_size)
            pool = urllib3.HTTPConnectionPool(
                endpoint.hostname,
                endpoint.port,
                maxsize=pool_size,
                retries=False,
                timeout=urllib3.Timeout(connect=2, read=5),
            )
            endpoints[endpoint_url] = endpoint, pool
        endpoint, pool = endpoints[endpoint_url]
        path = endpoint.path_for(connection_id)
        headers = {"Host": endpoint.host, **dict(signer.headers(endpoint.host, path, data))}
        response = pool.urlopen("POST", path, body=data, headers=headers, retries=False, redirect=False)
        return ("sent", "") if response.status == 200 else ("failed", str(response.status))

    return post


# name -> (post function, how one event's posts are dispatched in the function)
VARIANTS: dict[str, tuple[Callable[[], Post], str]] = {
    "boto3_before": (boto3_post, "map"),  # the old deliver(): ThreadPoolExecutor.map, a future per post
    "urllib3_signed": (urllib3_post, "workers"),
    "signed_keepalive_now": (signed_post, "workers"),  # deliver() now: fanout.post_frames
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_round(
    post: Post, dispatch: str, url: str, ids: list[str], concurrency: int, pool: ThreadPoolExecutor | None
) -> tuple[float, float]:
    from service.logic import fanout

    failed: list[Any]
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    if pool is None:
        outcomes = [post(url, i, FRAME, concurrency) for i in ids]
        failed = [o for o in outcomes if o[0] != "sent"]
    elif dispatch == "map":
        outcomes = list(pool.map(lambda i: post(url, i, FRAME, concurrency), ids))
        failed = [o for o in outcomes if o[0] != "sent"]
    else:
        report, _ = fanout.post_frames({i: url for i in ids}, FRAME, concurrency, post=post)  # type: ignore[arg-type]
        failed = [] if report.sent == len(ids) else [dict(report.failures)]
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    if failed:
        raise RuntimeError(f"posts failed: {failed[:3]}")
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000, help="posts per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--concurrency", type=int, default=32, help="threads of the pooled mode (FANOUT_CONCURRENCY)"
    )
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    sink = context.Process(target=_serve_sink, args=(sender,), daemon=True)
    sink.start()
    try:
        endpoint_url = f"http://127.0.0.1:{receiver.recv()}/live"
        ids = [f"L0SM9cOFvHcC{i:04d}=" for i in range(args.posts)]
        posters = {name: (make(), dispatch) for name, (make, dispatch) in VARIANTS.items()}
        results: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for mode, executor in (("one_thread", None), (f"concurrency_{args.concurrency}", pool)):
                samples: dict[str, list[tuple[float, float]]] = {name: [] for name in posters}
                for post, dispatch in posters.values():  # warm: connections, imports, first-call caches
                    one_round(post, dispatch, endpoint_url, ids[:200], args.concurrency, executor)
                for _ in range(args.rounds):
                    for name, (post, dispatch) in posters.items():
                        samples[name].append(
                            one_round(post, dispatch, endpoint_url, ids, args.concurrency, executor)
                        )
                for name, rounds in samples.items():
                    cpu = statistics.median(c for c, _ in rounds)
                    wall = statistics.median(w for _, w in rounds)
                    results.setdefault(name, {})[mode] = {
                        "cpu_ms_per_post": round(cpu / args.posts * 1000, 4),
                        "posts_per_cpu_second": round(args.posts / cpu),
                        "wall_posts_per_second": round(args.posts / wall),
                    }
        for mode in results["boto3_before"]:
            results.setdefault("cpu_ratio_before_over_now", {})[mode] = round(
                results["boto3_before"][mode]["cpu_ms_per_post"]
                / results["signed_keepalive_now"][mode]["cpu_ms_per_post"],
                1,
            )
    finally:
        sink.terminate()
        sink.join(5)
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "posts_per_round": args.posts,
                "rounds": args.rounds,
                "frame_bytes": len(FRAME),
                **results,
                "cpus": os.cpu_count(),
                "loadavg_1m": round(load[0], 2),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
