"""The Control Tower guard gate, evaluated in parallel and remembered per template.

The rules, the cfn-guard binary and the code that turns guard's output into findings are the
@cdklabs/cdk-validator-cfnguard package's own (the copy its Python bindings ship); this module
changes only how they are driven:

- **In parallel.** The rule files are split into slices, and each slice runs as its own
  `node infra/guard_runner.js` process (the package's plugin over those rules and every
  template to check), as many at a time as there are CPUs. Every rule still runs against every
  template; the findings of the slices are concatenated, as one guard run over all rules
  would report them.
- **Remembered.** A template's findings are stored under `.build/guard-verdicts/`, keyed by
  the SHA-256 of the template's bytes and of the rule set (every rule file, the guard binary,
  the package version, the disabled rules and this module's runner). A verdict is reused only
  for a byte-identical template under a byte-identical rule set; anything else is evaluated.
  Acknowledgments are not part of the key because they are not part of a verdict: the stored
  findings are the raw ones, and CDK applies the acknowledgments to them after every run.

Why it is slow at all: the Linux guard binary is statically linked against musl, whose
allocator maps and unmaps every large block; guard clones query results out of the template,
so each rule costs tens of thousands of mmap/munmap pairs on a 450 KB template (measured with
`strace -c`, see benchmarks/bench_synth.py --profile-rules). The cost is per rule and per
template byte, so it divides across processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
)

PLUGIN_NAME = "cdk-validator-cfnguard"  # acknowledgments name findings `cdk-validator-cfnguard::<rule>`
ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).with_name("guard_runner.js")
BUILD_DIR = Path(os.environ.get("GUARD_BUILD_DIR") or ROOT / ".build" / "guard")
VERDICT_FORMAT = 1  # bump when the stored shape changes
# Slices per worker: more slices even out the rules' unequal costs, each costs one template parse.
SLICES_PER_WORKER = 6


class GuardGateError(RuntimeError):
    """The guard run itself failed (not a finding): synthesis stops with guard's message."""


@dataclass
class GateRun:
    """What the last validate() did, for `make synth`'s summary and the benchmark."""

    templates: int = 0
    reused: int = 0
    evaluated: int = 0
    slices: int = 0
    workers: int = 0
    seconds: float = 0.0
    slice_seconds: list[float] = field(default_factory=list)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plugin_tarball() -> Path:
    folder = resources.files("cdklabs.cdk_validator_cfnguard") / "_jsii"
    found = [Path(str(entry)) for entry in folder.iterdir() if str(entry).endswith(".tgz")]
    if len(found) != 1:
        raise GuardGateError(f"expected one jsii tarball in {folder}, found {len(found)}")
    return found[0]


def unpack_plugin(build_dir: Path = BUILD_DIR) -> Path:
    """The validator package unpacked under .build/guard/ (once per tarball), its root returned."""
    tarball = _plugin_tarball()
    target = build_dir / f"package-{_sha256_file(tarball)[:16]}"
    if (target / "package" / "lib" / "plugin.js").exists():
        return target / "package"
    build_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="unpack-", dir=build_dir))
    try:
        with tarfile.open(tarball) as archive:
            archive.extractall(scratch, filter="tar")
        try:
            scratch.rename(target)
        except OSError:  # another process unpacked it first
            if not (target / "package" / "lib" / "plugin.js").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target / "package"


def verdict_dir() -> Path:
    return Path(os.environ.get("GUARD_VERDICT_DIR") or ROOT / ".build" / "guard-verdicts")


def last_run(cache_dir: Path | None = None) -> GateRun | None:
    """What the most recent validate() against this verdict directory did."""
    try:
        return GateRun(
            **json.loads(((cache_dir or verdict_dir()) / "last-run.json").read_text(encoding="utf-8"))
        )
    except (OSError, ValueError, TypeError):
        return None


def _guard_binary(package: Path) -> Path:
    system = os.uname().sysname
    platform = {"Linux": "ubuntu", "Darwin": "macos"}.get(system)
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}.get(
        os.uname().machine
    )
    if platform is None or machine is None:
        raise GuardGateError(f"cfn-guard ships no binary for {system}/{os.uname().machine}")
    return package / "bin" / platform / machine / "cfn-guard"


def _rule_id(rule: Path) -> str:
    # As the package computes it: 'ct-' dropped once, then every '-'.
    return rule.stem.replace("ct-", "", 1).replace("-", "")


def _node() -> str:
    node = os.environ.get("JSII_NODE") or shutil.which("node")
    if not node:
        raise GuardGateError("Node.js not found: set JSII_NODE (make setup links it into the venv)")
    return node


@jsii.implements(IPolicyValidationPlugin)
class GuardGate:
    """Drop-in for CfnGuardValidator(control_tower_rules_enabled=True, disabled_rules=...)."""

    def __init__(
        self,
        *,
        disabled_rules: list[str] | None = None,
        max_buffer: int = 64 * 1024 * 1024,
        cache_dir: Path | None = None,
        workers: int | None = None,
    ) -> None:
        self._disabled = sorted(disabled_rules or [])
        self._max_buffer = max_buffer
        self._package = unpack_plugin()
        self._cache_dir = cache_dir or verdict_dir()
        self._workers = workers or int(os.environ.get("GUARD_WORKERS") or 0) or (os.cpu_count() or 1)
        rules_root = self._package / "rules" / "control-tower" / "cfn-guard"
        self._rules = sorted(
            (rule for rule in rules_root.rglob("*.guard") if rule.stem not in self._disabled),
            key=lambda rule: rule.relative_to(rules_root).as_posix(),
        )
        if not self._rules:
            raise GuardGateError(f"no guard rules under {rules_root}")
        self._version = json.loads((self._package / "package.json").read_text(encoding="utf-8"))["version"]
        self._ruleset_digest = self._digest_ruleset(rules_root)
        self.last_run = GateRun()

    # -- IPolicyValidationPlugin -------------------------------------------------------

    @property
    def name(self) -> str:
        return PLUGIN_NAME

    @property
    def version(self) -> str:
        return self._version

    @property
    def rule_ids(self) -> list[str]:
        return [_rule_id(rule) for rule in self._rules]

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        started = time.perf_counter()
        templates = [Path(path) for path in context.template_paths]
        verdicts: dict[Path, list[dict[str, Any]]] = {}
        missing: list[Path] = []
        keys = {template: self.verdict_key(template) for template in templates}
        for template in templates:
            stored = self._load(keys[template], template)
            if stored is None:
                missing.append(template)
            else:
                verdicts[template] = stored
        run = GateRun(templates=len(templates), reused=len(templates) - len(missing), evaluated=len(missing))
        if missing:
            found = self._evaluate(missing, run)
            for template in missing:
                verdicts[template] = found.get(str(template), [])
                self._store(keys[template], template, verdicts[template])
        run.seconds = round(time.perf_counter() - started, 2)
        self.last_run = run
        self._record(run)
        violations = [violation for template in templates for violation in verdicts[template]]
        return PolicyValidationPluginReport(
            success=not violations,
            violations=[_to_violation(violation) for violation in violations],
            plugin_version=self._version,
        )

    # -- the key -----------------------------------------------------------------------------

    def _digest_ruleset(self, rules_root: Path) -> str:
        digest = hashlib.sha256()
        digest.update(f"format {VERDICT_FORMAT}\nplugin {self._version}\n".encode())
        digest.update(("disabled " + ",".join(self._disabled) + "\n").encode())
        for name, path in (
            ("runner", RUNNER),
            ("plugin", self._package / "lib" / "plugin.js"),
            ("check", self._package / "lib" / "check.js"),
            ("guard", _guard_binary(self._package)),
        ):
            digest.update(f"{name} {_sha256_file(path)}\n".encode())
        for rule in self._rules:
            digest.update(f"rule {rule.relative_to(rules_root).as_posix()} {_sha256_file(rule)}\n".encode())
        return digest.hexdigest()

    @property
    def ruleset_digest(self) -> str:
        return self._ruleset_digest

    def verdict_key(self, template: Path) -> str:
        return hashlib.sha256(f"{self._ruleset_digest}\n{_sha256_file(template)}".encode()).hexdigest()

    # -- the store ---------------------------------------------------------------------------

    def _entry(self, key: str) -> Path:
        return self._cache_dir / key[:2] / f"{key}.json"

    def _load(self, key: str, template: Path) -> list[dict[str, Any]] | None:
        entry = self._entry(key)
        try:
            stored = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(stored, dict)
            or stored.get("key") != key
            or not isinstance(stored.get("violations"), list)
        ):
            return None  # foreign or damaged entry: evaluate again
        return _with_template(stored["violations"], str(template))

    def _store(self, key: str, template: Path, violations: list[dict[str, Any]]) -> None:
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        body = {"key": key, "template": template.name, "violations": _with_template(violations, "")}
        with tempfile.NamedTemporaryFile(
            "w", dir=entry.parent, suffix=".tmp", delete=False, encoding="utf-8"
        ) as out:
            json.dump(body, out)
        os.replace(out.name, entry)

    def _record(self, run: GateRun) -> None:
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        (self._cache_dir / "last-run.json").write_text(json.dumps(run.__dict__), encoding="utf-8")

    # -- evaluation --------------------------------------------------------------------------

    def slices(self) -> list[list[Path]]:
        count = max(1, min(len(self._rules), self._workers * SLICES_PER_WORKER))
        # Larger rule files first, dealt round-robin, so every slice gets a share of the heavy ones.
        ordered = sorted(self._rules, key=lambda rule: rule.stat().st_size, reverse=True)
        return [ordered[index::count] for index in range(count)]

    def _evaluate(self, templates: list[Path], run: GateRun) -> dict[str, list[dict[str, Any]]]:
        slices = self.slices()
        run.slices, run.workers = len(slices), min(self._workers, len(slices))
        node = _node()

        def one(rules: list[Path]) -> tuple[float, dict[str, Any]]:
            request = {
                "package": str(self._package),
                "rules": [str(rule) for rule in rules],
                "templates": [str(template) for template in templates],
                "maxBuffer": self._max_buffer,
            }
            started = time.perf_counter()
            result = subprocess.run(  # noqa: S603 - Node.js and our own runner, request on stdin
                [node, str(RUNNER)], input=json.dumps(request), capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise GuardGateError(f"guard failed on {len(rules)} rule(s): {result.stderr.strip()[-2000:]}")
            return time.perf_counter() - started, json.loads(result.stdout)

        found: dict[str, list[dict[str, Any]]] = {}
        with ThreadPoolExecutor(max_workers=run.workers) as pool:
            for seconds, report in pool.map(one, slices):
                run.slice_seconds.append(round(seconds, 2))
                for violation in report.get("violations", []):
                    for path in {resource["templatePath"] for resource in violation["violatingResources"]}:
                        found.setdefault(path, []).append(violation)
        return found


def _with_template(violations: list[dict[str, Any]], template: str) -> list[dict[str, Any]]:
    return [
        {
            **violation,
            "violatingResources": [
                {**resource, "templatePath": template} for resource in violation["violatingResources"]
            ],
        }
        for violation in violations
    ]


def _to_violation(violation: dict[str, Any]) -> PolicyViolation:
    return PolicyViolation(
        rule_name=violation["ruleName"],
        description=violation.get("description") or "",
        fix=violation.get("fix"),
        rule_metadata=violation.get("ruleMetadata"),
        severity=violation.get("severity"),
        violating_resources=[
            PolicyViolatingResource(
                resource_logical_id=resource["resourceLogicalId"],
                template_path=resource["templatePath"],
                locations=list(resource["locations"]),
            )
            for resource in violation["violatingResources"]
        ],
    )
