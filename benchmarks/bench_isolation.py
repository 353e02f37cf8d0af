"""`make demo` wall time with the Lambda functions isolated (worker processes from their assets)
against in-process, in one run, plus the cold start p50 per function.

The demo runs `--runs` times per mode, alternating (isolated, in-process, isolated, ...) so that
the machine's load drifts over both alike; each run has its own sandbox directory and reports
directory. Wall time is the whole `orchestrator demo` command (sandbox start and stop included).
Cold starts come from the isolated runs' worker report (`lambda-runtime.json`, the figures the
sandbox writes to reports/lambda-runtime.json at shutdown, read from the run's own sandbox
directory so that another sandbox on the machine cannot overwrite them).

    .venv/bin/python benchmarks/bench_isolation.py [--runs 3] [--first in-process] [--keep-output]

Prints medians, the ratio isolated / in-process, and one JSON line last (benchmarks/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ORCHESTRATOR = ROOT / ".venv" / "bin" / "orchestrator"
MODES = ("isolated", "in-process")
GOAL_RATIO = 1.5


def run_demo(mode: str, workdir: Path, index: int, keep_output: bool) -> dict[str, Any]:
    sandbox = workdir / f"sandbox-{index}-{mode}"
    reports = workdir / f"reports-{index}-{mode}"
    env = {**os.environ, "ORCHESTRATOR_SANDBOX_DIR": str(sandbox), "COLUMNS": "120"}
    env.pop("ORCHESTRATOR_LAMBDA_MODE", None)  # the flag decides
    command = [
        str(ORCHESTRATOR),
        "demo",
        "--reports",
        str(reports),
        *(["--in-process"] if mode == "in-process" else []),
    ]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)  # noqa: S603
    wall = time.perf_counter() - started
    if keep_output:
        (workdir / f"demo-{index}-{mode}.txt").write_text(proc.stdout + proc.stderr)
    result: dict[str, Any] = {"mode": mode, "wall_seconds": round(wall, 2), "passed": proc.returncode == 0}
    report = sandbox / "demo" / "lambda-runtime.json"
    if mode == "isolated" and report.exists():
        result["workers"] = json.loads(report.read_text())
    if proc.returncode != 0:
        result["tail"] = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
    return result


def cold_start_p50(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per function: the median of its cold starts' p50 over the isolated runs (ms)."""
    per_function: dict[str, list[float]] = {}
    for run in runs:
        for name, figures in (run.get("workers") or {}).get("functions", {}).items():
            if figures.get("cold_start_ms_p50") is not None:
                per_function.setdefault(name, []).append(float(figures["cold_start_ms_p50"]))
    return {name: round(statistics.median(values), 1) for name, values in sorted(per_function.items())}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="demo runs per mode (default 3)")
    parser.add_argument("--first", choices=MODES, default="isolated", help="mode of the first run")
    parser.add_argument(
        "--keep-output", action="store_true", help="keep each demo's output under the work dir"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where sandboxes and reports go (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    order = (args.first, *(m for m in MODES if m != args.first))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-isolation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for index in range(args.runs):
        for mode in order:
            load = os.getloadavg()[0]
            run = run_demo(mode, workdir, index, args.keep_output)
            run["load_before"] = round(load, 2)
            runs.append(run)
            print(
                f"run {index + 1} {mode:<10} {run['wall_seconds']:6.1f} s  {'passed' if run['passed'] else 'FAILED'}"
                f"  (load average before {load:.1f})",
                flush=True,
            )
            for line in run.get("tail", []):
                print(f"    {line}", flush=True)
    medians = {
        mode: round(statistics.median(r["wall_seconds"] for r in runs if r["mode"] == mode), 2)
        for mode in MODES
    }
    ratio = round(medians["isolated"] / medians["in-process"], 2) if medians["in-process"] else None
    cold = cold_start_p50([r for r in runs if r["mode"] == "isolated"])
    print(
        f"median demo wall time: isolated {medians['isolated']:.1f} s, in-process {medians['in-process']:.1f} s; "
        f"ratio {ratio} (goal <= {GOAL_RATIO}) over {args.runs} runs each, alternating, on {os.cpu_count()} cores"
    )
    print("cold start p50 per function (ms, median over the isolated runs):")
    for name, ms in cold.items():
        print(f"  {name:<36} {ms:8.1f}")
    passed = {mode: sum(r["passed"] for r in runs if r["mode"] == mode) for mode in MODES}
    print(
        json.dumps(
            {
                "runs_per_mode": args.runs,
                "cores": os.cpu_count(),
                "median_wall_seconds": medians,
                "ratio": ratio,
                "goal_ratio": GOAL_RATIO,
                "demo_passed": passed,
                "cold_start_ms_p50": cold,
                "runs": [{k: v for k, v in r.items() if k != "workers"} for r in runs],
            }
        )
    )
    return 0 if all(r["passed"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
