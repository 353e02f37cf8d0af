"""Stress mode for the test suite: run tiers repeatedly under CPU load and name every test that failed.

    python scripts/stress_tests.py [--runs 10] [--workers 3] [--load 2] [--tiers integration e2e]
                                   [--hypothesis-profile dev]

Each run runs the tiers as `make test` does: the tiers but e2e in one `pytest -n WORKERS --dist load`
process, then the e2e tier in a process of its own, while LOAD busy-loop processes keep the CPUs
occupied, started by this command and stopped when it ends (and after `--max-minutes` at the latest). A test that fails in
any run is listed with how often it failed and its first error line; the command exits 1 if any
test failed, 0 otherwise. Results also go to reports/stress.json. Use it before changing clocks,
pollers or fixtures.

STRESS_LOAD=1 tells the tests they run under this load: the property test's workers then keep
their priority (under `make test` they lower it so latency-judged tests keep the CPU; behind the
busy loops a lowered worker would get a tenth of a core). The release property test runs its
`dev` hypothesis profile here (40 examples, not `make test`'s
300): its examples are derandomized, so repeating the same 300 pure-CPU releases ten times adds
time, not coverage of races; the rounds' budget goes to repeating everything else.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET  # noqa: S405 - pytest's own junit report
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS = {"unit": "tests/unit", "infra": "tests/infra", "integration": "tests/integration", "e2e": "tests/e2e"}


def _burn(deadline: float) -> None:
    value = 0
    while time.monotonic() < deadline:
        for step in range(100_000):
            value ^= step


def _failures(report: Path) -> dict[str, str]:
    """Test id -> first line of its failure or error, from one junit report."""
    failed: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):  # noqa: S314 - written by our own pytest run
        for outcome in ("failure", "error"):
            element = case.find(outcome)
            if element is not None:
                test = f"{case.get('classname')}::{case.get('name')}"
                message = (element.get("message") or outcome).strip() or outcome
                failed[test] = message.splitlines()[0][:200]
    return failed


def _passes(tiers: list[str], workers: int, prefix: Path) -> list[tuple[str, Path, list[str]]]:
    """The pytest commands of one run, as `make test` runs them: the tiers but e2e on parallel workers
    (longest first, --dist load), then the e2e tier alone, one test after another."""
    passes = []
    parallel = [TIERS[tier] for tier in tiers if tier != "e2e"]
    if parallel:
        report = prefix.with_name(prefix.name + "-parallel.xml")
        passes.append(
            (
                "parallel",
                report,
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-n",
                    str(workers),
                    "--dist",
                    "load",
                    f"--junitxml={report}",
                    *parallel,
                ],
            )
        )
    if "e2e" in tiers:
        report = prefix.with_name(prefix.name + "-e2e.xml")
        passes.append(
            ("e2e", report, [sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", TIERS["e2e"]])
        )
    return passes


def _write_summary(
    args: argparse.Namespace, counts: Counter[str], first_error: dict[str, str], runs: list
) -> None:
    """reports/stress.json, rewritten after every run so an interrupted stress still leaves its record."""
    summary = {
        "runs": args.runs,
        "completed_runs": len(runs),
        "workers": args.workers,
        "load_processes": args.load,
        "tiers": args.tiers,
        "hypothesis_profile": args.hypothesis_profile,
        "failed_tests": {
            test: {"failures": counts[test], "first_error": first_error[test]} for test in sorted(counts)
        },
        "per_run": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stress_tests.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=3, help="pytest-xdist workers per run")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy-loop processes")
    parser.add_argument("--tiers", nargs="+", choices=sorted(TIERS), default=["integration", "e2e"])
    parser.add_argument("--max-minutes", type=float, default=240.0, help="the load stops by then in any case")
    parser.add_argument(
        "--hypothesis-profile", choices=("dev", "ci"), default="dev", help="the release property test's"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "stress.json")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.workers < 1 or args.load < 0:
        parser.error("--runs and --workers must be at least 1, --load at least 0")

    deadline = time.monotonic() + args.max_minutes * 60
    burners = [multiprocessing.Process(target=_burn, args=(deadline,), daemon=True) for _ in range(args.load)]
    for burner in burners:
        burner.start()
    counts: Counter[str] = Counter()
    first_error: dict[str, str] = {}
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="stress-") as scratch:
            for run in range(1, args.runs + 1):
                started = time.monotonic()
                failed: dict[str, str] = {}
                for name, report, command in _passes(args.tiers, args.workers, Path(scratch) / f"run-{run}"):
                    result = subprocess.run(  # noqa: S603
                        command,
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        check=False,
                        env={**os.environ, "HYPOTHESIS_PROFILE": args.hypothesis_profile, "STRESS_LOAD": "1"},
                    )
                    found = _failures(report) if report.exists() else {}
                    if result.returncode not in (0, 1) and not found:
                        tail = (result.stdout[-300:] or result.stderr[-300:]).strip()
                        found = {f"<{name} session>": f"pytest exited {result.returncode}: {tail}"}
                    failed.update(found)
                seconds = round(time.monotonic() - started, 1)
                for test, message in failed.items():
                    counts[test] += 1
                    first_error.setdefault(test, message)
                runs.append({"run": run, "seconds": seconds, "failed": sorted(failed)})
                _write_summary(args, counts, first_error, runs)
                print(f"run {run}/{args.runs}: {len(failed)} failed in {seconds:.0f} s", flush=True)
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.join()
    if counts:
        print(f"{len(counts)} test(s) failed at least once in {args.runs} runs:")
        for test, failures in counts.most_common():
            print(f"  {failures}x {test}: {first_error[test]}")
        return 1
    print(f"no test failed in {args.runs} runs of {', '.join(args.tiers)} under {args.load} busy loop(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
