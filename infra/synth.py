"""`python -m infra.synth` (`make synth`): validate configuration, synthesize both stages, summarize.

Exit codes: 0 synthesized with every gate passing; 1 a security gate or synthesis failed
(the validation report is summarized); 2 a configuration file is invalid (one line naming the
file and the field, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from contracts import names
from infra.config import ConfigError, EnvironmentConfig, load_config

DEFAULT_OUTDIR = Path("cdk.out")


def _load(environments: list[str], config_dir: Path | None) -> list[EnvironmentConfig]:
    return [load_config(env, config_dir) for env in environments]


def gate_results(outdir: Path) -> list[dict[str, Any]]:
    """Per validation plugin: conclusion, open findings and acknowledged findings."""
    report = outdir / "validation-report.json"
    if not report.exists():
        return []
    data = json.loads(report.read_text(encoding="utf-8"))
    results = []
    for plugin in data.get("pluginReports", []):
        results.append(
            {
                "plugin": plugin["pluginName"],
                "conclusion": plugin["conclusion"],
                "violations": [
                    {"rule": v["ruleName"], "paths": [c["constructPath"] for c in v["violatingConstructs"]]}
                    for v in plugin.get("violations", [])
                ],
                "acknowledged": sorted(
                    {v.get("acknowledgedId", v["ruleName"]) for v in plugin.get("suppressedViolations", [])}
                ),
            }
        )
    return results


def template_summary(outdir: Path) -> list[dict[str, Any]]:
    """Stacks per stage assembly with their resource counts."""
    stacks = []
    for assembly in sorted(outdir.glob("assembly-*")):
        manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
        names = {
            artifact_id: artifact.get("properties", {}).get("stackName", artifact_id)
            for artifact_id, artifact in manifest.get("artifacts", {}).items()
        }
        for template in sorted(assembly.glob("*.template.json")):
            artifact_id = template.name.removesuffix(".template.json")
            resources = json.loads(template.read_text(encoding="utf-8")).get("Resources", {})
            types = Counter(resource["Type"] for resource in resources.values())
            stacks.append(
                {
                    "stage": assembly.name.removeprefix("assembly-"),
                    "stack": names.get(artifact_id, artifact_id),
                    "resources": len(resources),
                    "top_types": types.most_common(5),
                }
            )
    return stacks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.synth", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env", action="append", choices=names.ENVIRONMENTS, help="default: every environment"
    )
    parser.add_argument("--config-dir", type=Path, default=None)
    parser.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
    args = parser.parse_args(argv)
    environments = args.env or list(names.ENVIRONMENTS)
    try:
        configs = _load(environments, args.config_dir)
    except ConfigError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return 2

    from infra.bundling import BundlingError
    from infra.stage import build_app

    started = time.monotonic()
    outdir: Path = args.outdir
    try:
        build_app(configs, outdir=outdir).synth()
    except BundlingError as exc:
        print(f"synthesis failed: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # jsii surfaces JavaScript errors (gates included) as RuntimeError
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"synthesis failed: {message}", file=sys.stderr)
        for gate in gate_results(outdir):
            for violation in gate["violations"]:
                print(
                    f"  {gate['plugin']}: {violation['rule']}: {', '.join(violation['paths'][:5])}",
                    file=sys.stderr,
                )
        return 1
    elapsed = time.monotonic() - started

    print(f"synthesized {', '.join(environments)} into {outdir}/ in {elapsed:.1f} s")
    for stack in template_summary(outdir):
        top = ", ".join(f"{kind.removeprefix('AWS::')} {count}" for kind, count in stack["top_types"])
        print(f"  {stack['stage']:<11} {stack['stack']:<40} {stack['resources']:>4} resources ({top}, ...)")
    for gate in gate_results(outdir):
        print(
            f"  gate {gate['plugin']}: {gate['conclusion']}, {len(gate['violations'])} open, "
            f"{len(gate['acknowledged'])} acknowledged rule(s)"
        )
    from infra.guard_gate import last_run

    run = last_run()
    if run is not None:
        print(
            f"  guard rules: {run.evaluated} template(s) checked in {run.slices} processes ({run.workers} at a time), "
            f"{run.reused} unchanged template(s) kept their verdict, {run.seconds:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
