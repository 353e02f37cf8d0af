"""Synthesis with every gate: cold, warm with nothing changed, warm with one stage changed; and
which Control Tower guard rules cost the most, and why.

Each synthesis is a fresh `python -m infra.synth` process, as `make synth` is, with the Lambda
dependency cache warm (.build/lambda) and the guard gate's verdicts in a directory of the
benchmark's own:

- cold: no stored verdicts, every template is checked by every rule;
- warm, unchanged: the same sources again, every verdict is reused;
- warm, one stage changed: production's configuration differs by one Lambda memory size, so
  production's main template is checked again and staging's verdicts are reused.

`--profile-rules` (on by default) then runs each rule file alone against the largest template
with the package's cfn-guard binary and reports the slowest, with the system calls of the
slowest one counted by `strace -c` when strace is installed. Prints one JSON line.

    python benchmarks/bench_synth.py [--no-profile-rules] [--top 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.synth import gate_results, template_summary  # noqa: E402


def _synth(outdir: Path, verdicts: Path, config_dir: Path | None = None) -> dict[str, Any]:
    env = dict(os.environ, GUARD_VERDICT_DIR=str(verdicts))
    command = [sys.executable, "-m", "infra.synth", "--outdir", str(outdir)]
    if config_dir is not None:
        command += ["--config-dir", str(config_dir)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    seconds = round(time.perf_counter() - started, 2)
    if result.returncode != 0:
        raise SystemExit(f"synthesis failed: {result.stderr.strip()[-2000:]}")
    gate = json.loads((verdicts / "last-run.json").read_text(encoding="utf-8"))
    return {
        "seconds": seconds,
        "guard_seconds": gate["seconds"],
        "templates_reused": gate["reused"],
        "templates_evaluated": gate["evaluated"],
        "guard_processes": gate["slices"],
        "parallel": gate["workers"],
    }


def _one_stage_changed(scratch: Path) -> Path:
    config = scratch / "config"
    shutil.copytree(ROOT / "config", config)
    production = config / "production.json"
    data = json.loads(production.read_text(encoding="utf-8"))
    data["lambdas"]["functions"]["messages"]["memory_mb"] += 64
    production.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return config


def _guard_binary() -> tuple[Path, Path]:
    from infra.guard_gate import _guard_binary as binary
    from infra.guard_gate import unpack_plugin

    package = unpack_plugin()
    return binary(package), package / "rules" / "control-tower" / "cfn-guard"


def _run_rule(guard: Path, rule: Path, template: Path) -> float:
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - the package's guard binary
        [
            str(guard),
            "validate",
            "--rules",
            str(rule),
            "--data",
            str(template),
            "--output-format",
            "json",
            "--show-summary",
            "none",
            "--structured",
        ],
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - started


def profile_rules(template: Path, top: int) -> dict[str, Any]:
    guard, rules_root = _guard_binary()
    rules = sorted(rules_root.rglob("*.guard"))
    empty = Path(tempfile.mkdtemp()) / "empty.guard"
    empty.write_text("rule loads_the_template { Resources exists }\n", encoding="utf-8")
    baseline = statistics.median(_run_rule(guard, empty, template) for _ in range(5))
    timed = sorted(((_run_rule(guard, rule, template), rule) for rule in rules), reverse=True)
    total = sum(seconds for seconds, _ in timed)
    slowest = timed[0][1]
    syscalls: dict[str, int] = {}
    if shutil.which("strace"):
        traced = subprocess.run(  # noqa: S603
            [
                "strace",
                "-c",
                "-f",
                str(guard),
                "validate",
                "--rules",
                str(slowest),
                "--data",
                str(template),
                "--show-summary",
                "none",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in traced.stderr.splitlines():
            match = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if match and match.group(2) in {"mmap", "munmap", "madvise", "brk"}:
                syscalls[match.group(2)] = int(match.group(1))
    return {
        "template": template.name,
        "template_bytes": template.stat().st_size,
        "rules": len(rules),
        "one_at_a_time_seconds": round(total, 1),
        "template_load_seconds": round(baseline, 3),
        "top": [
            {"rule": rule.stem, "seconds": round(seconds, 2), "over_load": round(seconds - baseline, 2)}
            for seconds, rule in timed[:top]
        ],
        "slowest_rule_syscalls": syscalls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-profile-rules", dest="profile", action="store_false")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as raw:
        scratch = Path(raw)
        verdicts, outdir = scratch / "verdicts", scratch / "cdk.out"
        cold = _synth(outdir, verdicts)
        warm = _synth(outdir, verdicts)
        changed = _synth(scratch / "cdk.out-changed", verdicts, _one_stage_changed(scratch))
        stacks = {s["stack"]: s["resources"] for s in template_summary(outdir)}
        gates = {
            g["plugin"]: {"open": len(g["violations"]), "acknowledged": len(g["acknowledged"])}
            for g in gate_results(outdir)
        }
        largest = max(outdir.glob("assembly-*/*.template.json"), key=lambda path: path.stat().st_size)
        rules = profile_rules(largest, args.top) if args.profile else None
    print(
        json.dumps(
            {
                "cold": cold,
                "warm_unchanged": warm,
                "warm_one_stage_changed": changed,
                "resources": stacks,
                "gates": gates,
                "guard_rules": rules,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
