"""Synthesis cost: cold (no dependency cache) and warm `python -m infra.synth`, resources per stack.

Each run is a fresh process, as `make synth` is. "Cold" empties the Lambda dependency cache
(.build/lambda, so pip fetches the aarch64 wheels once); "warm" reuses it. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.synth import gate_results, template_summary  # noqa: E402


def _synth(outdir: Path, build_dir: Path | None = None) -> float:
    env = dict(os.environ)
    if build_dir is not None:
        env["LAMBDA_BUILD_DIR"] = str(build_dir)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "infra.synth", "--outdir", str(outdir)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"synthesis failed: {result.stderr.strip()[-2000:]}")
    return round(time.perf_counter() - started, 2)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as scratch:
        # Cold: an empty dependency cache of its own (the shared .build/ stays untouched).
        cold = _synth(Path(scratch) / "cold", build_dir=Path(scratch) / "lambda-cache")
        outdir = Path(scratch) / "warm"
        _synth(outdir)  # fill the shared cache if this checkout never synthesized
        warm = _synth(outdir)
        stacks = {s["stack"]: s["resources"] for s in template_summary(outdir)}
        gates = {g["plugin"]: {"open": len(g["violations"]), "acknowledged": len(g["acknowledged"])} for g in gate_results(outdir)}
    print(json.dumps({"cold_synth_seconds": cold, "warm_synth_seconds": warm, "resources": stacks, "gates": gates, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
