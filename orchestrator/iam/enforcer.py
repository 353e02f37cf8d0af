"""The IAM enforcer: judges each call a role makes and records what it saw.

`IamEnforcer(policy_set)` holds the template's permissions and one policy evaluator. Installed
(`enforcer.install()` or `with enforcer:`), moto's request handling asks it about every request
signed with a role's sandbox credentials (`orchestrator.iam.identity`), and the state machines'
service integrations run as their execution role; see `orchestrator.engine.moto_hooks`
(`install_iam`). Requests signed with any other key are the operator's and pass unjudged.

Every judged check becomes an `Observation` (principal, action, resource, verdict, reason,
caller); `dump(path)` writes them as JSON lines for `orchestrator.iam.report`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.iam.evaluator import ALLOWED, IMPLICITLY_DENIED, Evaluator, NamedPolicy, Verdict
from orchestrator.iam.identity import role_of
from orchestrator.iam.policies import PolicySet, Role
from orchestrator.iam.requests import (
    CONNECTION_OPERATIONS,
    Call,
    Check,
    Unmapped,
    checks_for,
    manage_connections_check,
)

DEFAULT_OBSERVATIONS = Path("reports/iam-observations.jsonl")
UNMAPPED = "Unmapped"


@dataclass(frozen=True)
class Observation:
    principal: str  # the role ARN
    action: str
    resource: str
    verdict: str  # Allowed | ImplicitlyDenied | ExplicitlyDenied | Error | Unmapped (when allowed through)
    reason: str
    caller: str  # function / state machine / schedule name(s) using the role
    operation: str  # the API call that led to this check, e.g. sqs:SendMessageBatch
    via: str = "sdk"  # sdk | integration (a state machine's service integration)
    on_behalf_of: str = ""  # the service making the check with the caller's credentials (KMS)
    unmapped: bool = False


@dataclass(frozen=True)
class Decision:
    allowed: bool
    principal: str = ""  # arn:aws:sts::<account>:assumed-role/<role>/<session>
    action: str = ""
    resource: str = ""
    reason: str = ""

    @property
    def message(self) -> str:
        """AWS's access-denied message."""
        return (
            f"User: {self.principal} is not authorized to perform: {self.action} "
            f"on resource: {self.resource} {self.reason}"
        )


_ALLOW = Decision(True)


class IamEnforcer:
    """Judges calls against a PolicySet; switchable (install/uninstall); records observations.

    `unmapped="deny"` (the default) denies operations the sandbox cannot map to IAM checks, with
    a reason that says so; `unmapped="allow"` lets them through but still records them."""

    def __init__(
        self,
        policies: PolicySet,
        evaluator: Evaluator | None = None,
        *,
        unmapped: str = "deny",
    ) -> None:
        if unmapped not in ("deny", "allow"):
            raise ValueError("unmapped must be 'deny' or 'allow'")
        self.policies = policies
        self.evaluator = evaluator or Evaluator()
        self._owns_evaluator = evaluator is None
        self.unmapped = unmapped
        self._lock = threading.Lock()
        self._observations: dict[Observation, int] = {}
        self._star_scope: dict[str, bool] = {}
        self._connection_ids_named: dict[str, bool] = {}
        self._connection_decisions: dict[tuple[str, str, str, str], tuple[Decision, Observation]] = {}

    # ----------------------------------------------------------------------------------------
    # Judging
    # ----------------------------------------------------------------------------------------

    def knows(self, role_arn: str) -> bool:
        return role_arn in self.policies.roles

    def principal_arn(self, role_arn: str) -> str:
        name = role_arn.rsplit("/", 1)[-1]
        return f"arn:{self.policies.partition}:sts::{self.policies.account_id}:assumed-role/{name}/{self.policies.session_name(role_arn)}"

    def judge(self, role_arn: str, call: Call, *, caller: str | None = None, via: str = "sdk") -> Decision:
        """Judge every check of `call` made with `role_arn`; the first denial decides."""
        caller = caller or self.policies.caller_label(role_arn)
        operation = f"{call.service}:{call.operation}"
        mapped = checks_for(call, self.policies)
        if isinstance(mapped, Unmapped):
            reason = f"because the sandbox has no IAM mapping for the {mapped.action} operation (unmapped)"
            allowed = self.unmapped == "allow"
            self._record(
                Observation(
                    role_arn,
                    mapped.action,
                    "*",
                    UNMAPPED if allowed else IMPLICITLY_DENIED,
                    reason,
                    caller,
                    operation,
                    via,
                    unmapped=True,
                )
            )
            if allowed:
                return _ALLOW
            return Decision(False, self.principal_arn(role_arn), mapped.action, "*", reason)
        denial: Decision | None = None
        for check in mapped:
            _, decision = self._judge_check(role_arn, check, caller, operation, via)
            if not decision.allowed and denial is None:
                denial = decision
        return denial or _ALLOW

    def _judge_check(
        self, role_arn: str, check: Check, caller: str, operation: str, via: str = "sdk"
    ) -> tuple[Observation, Decision]:
        """One check: its verdict, recorded as an observation, and the decision it makes."""
        verdict = self.verdict(role_arn, check)
        observation = Observation(
            role_arn,
            check.action,
            check.resource,
            verdict.result,
            verdict.reason,
            caller,
            operation,
            via,
            check.on_behalf_of,
        )
        self._record(observation)
        if verdict.allowed:
            return observation, _ALLOW
        return observation, Decision(
            False, self.principal_arn(role_arn), check.action, check.resource, verdict.reason
        )

    def judge_connection(
        self, role_arn: str, api_id: str, stage: str, method: str, connection_id: str
    ) -> Decision:
        """Judge an `@connections` request (`POST`/`GET`/`DELETE` on one connection of a stage).

        Connection ids are made when clients connect, so a template's grants name them by
        wildcard (`.../POST/@connections/*`). For a role whose policies name no connection, the
        verdict for one connection of a stage and method is the verdict for all of them: it is
        asked once, and later requests count on the first one's observation (a fan-out would
        otherwise ask the evaluator once per subscriber). A role whose policies name connections
        is judged request by request."""
        operation = next(op for op, verb in CONNECTION_OPERATIONS.items() if verb == method)
        key = (role_arn, api_id, stage, method)
        with self._lock:
            cached = self._connection_decisions.get(key)
        if cached is not None:
            self._record(cached[1])
            return cached[0]
        call = Call(
            "apigatewaymanagementapi",
            operation,
            {"ApiId": api_id, "Stage": stage, "ConnectionId": connection_id},
            self.policies.region,
            self.policies.account_id,
            self.policies.partition,
        )
        check = manage_connections_check(call, api_id, stage, connection_id)
        observation, decision = self._judge_check(
            role_arn, check, self.policies.caller_label(role_arn), f"apigatewaymanagementapi:{operation}"
        )
        if not self._names_connections(role_arn):
            with self._lock:
                self._connection_decisions[key] = (decision, observation)
        return decision

    def _names_connections(self, role_arn: str) -> bool:
        """Whether any of the role's statements names a resource under `@connections/` other
        than the `@connections/*` wildcard."""
        with self._lock:
            cached = self._connection_ids_named.get(role_arn)
        if cached is not None:
            return cached
        role = self.policies.role(role_arn)
        named = False
        for policy in role.policies if role is not None else []:
            statements = policy.document.get("Statement") if isinstance(policy.document, dict) else None
            for statement in _as_list(statements):
                if not isinstance(statement, dict):
                    continue
                for key in ("Resource", "NotResource"):
                    for resource in _as_list(statement.get(key)):
                        text = str(resource)
                        if "@connections/" in text and not text.endswith("@connections/*"):
                            named = True
        with self._lock:
            self._connection_ids_named[role_arn] = named
        return named

    def verdict(self, role_arn: str, check: Check) -> Verdict:
        role = self.policies.role(role_arn)
        if role is None:
            return Verdict(IMPLICITLY_DENIED, f"because the role {role_arn} is not in the template")
        resource_policy = self.policies.resource_policy(check.resource)
        context = {
            "aws:PrincipalArn": role_arn,
            "aws:PrincipalAccount": self.policies.account_id,
            "aws:PrincipalType": "AssumedRole",
            "aws:RequestedRegion": self.policies.region,
            **check.context,
        }
        return self.evaluator.evaluate(
            principal=self.principal_arn(role_arn),
            action=check.action,
            resource=check.resource,
            account_id=self.policies.account_id,
            identity_policies=role.policies,
            resource_policy=resource_policy,
            context=context,
            policies_version=role.version,
        )

    def grants_on_all_resources(self, role_arn: str, action: str) -> bool:
        """Whether the role is allowed `action` by a statement scoped to Resource "*".

        CloudWatch returns composite alarms from DescribeAlarms only to callers whose
        cloudwatch:DescribeAlarms permission is scoped to `*`; a narrower grant silently omits them."""
        key = f"{role_arn}|{action}"
        with self._lock:
            cached = self._star_scope.get(key)
        if cached is not None:
            return cached
        role = self.policies.role(role_arn)
        covers = False
        star_only: list[NamedPolicy] = []
        if role is not None:
            star_only = [NamedPolicy(p.name, _star_statements_only(p.document)) for p in role.policies]
            star_only = [p for p in star_only if p.document["Statement"]]
        if role is not None and star_only:
            service = action.split(":", 1)[0]
            probe = f"arn:{self.policies.partition}:{service}:{self.policies.region}:{self.policies.account_id}:alarm:sandbox-scope-probe"
            verdict = self.evaluator.evaluate(
                principal=self.principal_arn(role_arn),
                action=action,
                resource=probe,
                account_id=self.policies.account_id,
                identity_policies=star_only,
                context={"aws:SecureTransport": "true"},
                policies_version=f"{role.version}/star",
            )
            covers = verdict.result == ALLOWED
        with self._lock:
            self._star_scope[key] = covers
        return covers

    # ----------------------------------------------------------------------------------------
    # Observations
    # ----------------------------------------------------------------------------------------

    def _record(self, observation: Observation) -> None:
        with self._lock:
            self._observations[observation] = self._observations.get(observation, 0) + 1

    @property
    def observations(self) -> list[tuple[Observation, int]]:
        """Every distinct observation with how often it was made."""
        with self._lock:
            return list(self._observations.items())

    def denials(self) -> list[Observation]:
        return [o for o, _ in self.observations if o.verdict not in (ALLOWED, UNMAPPED)]

    def clear(self) -> None:
        with self._lock:
            self._observations.clear()

    def dump(self, path: Path | str = DEFAULT_OBSERVATIONS, *, append: bool = False) -> Path:
        """Write the observations as JSON lines (one per distinct observation, with `count`)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a" if append else "w", encoding="utf-8") as out:
            for observation, count in self.observations:
                out.write(json.dumps({**asdict(observation), "count": count}, sort_keys=True) + "\n")
        return target

    # ----------------------------------------------------------------------------------------
    # Switching on and off
    # ----------------------------------------------------------------------------------------

    def install(self) -> IamEnforcer:
        from orchestrator.engine import moto_hooks

        self.evaluator.start()
        moto_hooks.install_iam(self)
        return self

    def uninstall(self) -> None:
        from orchestrator.engine import moto_hooks

        moto_hooks.uninstall_iam(self)

    def close(self) -> None:
        self.uninstall()
        if self._owns_evaluator:
            self.evaluator.stop()

    def __enter__(self) -> IamEnforcer:
        return self.install()

    def __exit__(self, *_: object) -> None:
        self.close()


class ConnectionsAuthorizer:
    """What the local gateway's `@connections` API asks (`management.Authorize`): the role whose
    sandbox session signed the request is judged as API Gateway would judge it; keys that are no
    known role's (the operator's, a test's) pass, as they do at moto."""

    def __init__(self, enforcer: IamEnforcer, api_id: str) -> None:
        self.enforcer = enforcer
        self.api_id = api_id

    def __call__(self, access_key: str, method: str, stage: str, connection_id: str) -> str | None:
        role = role_of(access_key)
        if role is None or not self.enforcer.knows(role):
            return None
        decision = self.enforcer.judge_connection(role, self.api_id, stage, method, connection_id)
        return None if decision.allowed else decision.message


def _star_statements_only(document: Any) -> dict[str, Any]:
    """The document with every Allow statement not scoped to Resource "*" left out."""
    statements: list[dict[str, Any]] = []
    for statement in _as_list(document.get("Statement") if isinstance(document, dict) else None):
        if not isinstance(statement, dict):
            continue
        if statement.get("Effect") == "Allow":
            if "*" not in _as_list(statement.get("Resource")):
                continue
            statement = {**statement, "Resource": "*"}
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def load_observations(paths: Iterable[Path | str]) -> list[dict[str, Any]]:
    """Observation records from JSON-lines files (as `IamEnforcer.dump` writes them)."""
    records: list[dict[str, Any]] = []
    for path in paths:
        with Path(path).open(encoding="utf-8") as lines:
            records.extend(json.loads(line) for line in lines if line.strip())
    return records


__all__ = [
    "DEFAULT_OBSERVATIONS",
    "ConnectionsAuthorizer",
    "Decision",
    "IamEnforcer",
    "Observation",
    "Role",
    "load_observations",
]
