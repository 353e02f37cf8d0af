"""Run every benchmark script under benchmarks/ and collect their JSON lines.

Each `bench_*.py` prints one JSON object on its last line of stdout. Results of one run are
written to benchmarks/results/latest.json so figures quoted in the README come from one run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    only = set(argv)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not only or p.stem in only)
    results: dict[str, object] = {}
    failed = []
    for script in scripts:
        started = time.perf_counter()
        print(f"== {script.name}", flush=True)
        proc = subprocess.run(  # noqa: S603 - our own scripts
            [sys.executable, str(script)], capture_output=True, text=True, cwd=HERE.parent
        )
        elapsed = time.perf_counter() - started
        lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
        if proc.returncode != 0 or not lines:
            failed.append(script.name)
            print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
            continue
        figures = json.loads(lines[-1])
        results[script.stem] = {"figures": figures, "wall_seconds": round(elapsed, 2)}
        print(json.dumps(figures, indent=2))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out / 'latest.json'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
