"""The permissions a synthesized template deploys, resolved to sandbox ARNs.

From a template (one stack, or the stacks of a stage merged) this builds the `PolicySet`:

* every `AWS::IAM::Role`: its ARN, trust policy and identity policies (inline `Policies`, every
  `AWS::IAM::Policy` / `AWS::IAM::ManagedPolicy` attached through `Roles` or
  `ManagedPolicyArns`, and the AWS managed policies it names; those whose document the sandbox
  does not carry are listed in `unknown_managed`, never guessed);
* every resource policy, keyed by the ARN it protects: KMS key policies, SQS queue policies,
  SNS topic policies, S3 bucket policies, Lambda permissions, Secrets Manager resource policies;
* the customer managed KMS key of each encrypted queue, topic, table, secret and bucket (AWS
  uses it on the caller's behalf, so the caller needs the key too);
* who uses each role: every Lambda function (Role), state machine (RoleArn) and scheduler
  schedule (Target.RoleArn).

Intrinsics resolve with the engine's `ResourceMap`, the same deterministic ARNs the sandbox
deploys. A reference the sandbox cannot resolve becomes an ARN that matches nothing (so it
grants nothing) and is listed in `unresolved`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.engine.intrinsics import ResourceMap, Sandbox, UnresolvableIntrinsic, resolve
from orchestrator.iam.evaluator import NamedPolicy

# AWS managed policies whose documents the sandbox carries (as published by AWS). Any other
# managed policy ARN is reported as unknown.
_AWS_MANAGED: dict[str, list[dict[str, Any]]] = {
    "service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "service-role/AWSLambdaVPCAccessExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        }
    ],
    "AWSXRayDaemonWriteAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}

_UNRESOLVED = "arn:aws:sandbox-unresolved:::"


@dataclass
class Role:
    arn: str
    name: str
    logical_id: str
    trust_policy: dict[str, Any]
    policies: list[NamedPolicy] = field(default_factory=list)
    unknown_managed: list[str] = field(default_factory=list)

    @functools.cached_property
    def version(self) -> str:
        """Digest of the identity policies: part of every cached verdict's key."""
        text = json.dumps([[p.name, p.document] for p in self.policies], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Caller:
    """Something that runs with a role: a Lambda function, a state machine or a schedule."""

    kind: str  # function | state-machine | schedule
    name: str
    arn: str
    role_arn: str
    logical_id: str


@dataclass(frozen=True)
class Grant:
    """One (action pattern, resource pattern) an Allow statement of a role grants."""

    role_arn: str
    policy: str
    action: str
    resource: str
    has_condition: bool


@dataclass
class PolicySet:
    account_id: str
    region: str
    partition: str = "aws"
    roles: dict[str, Role] = field(default_factory=dict)  # role ARN -> Role
    resource_policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # resource ARN -> document
    resource_policy_sources: dict[str, list[str]] = field(default_factory=dict)  # ARN -> logical ids
    encryption_keys: dict[str, str] = field(default_factory=dict)  # resource ARN -> KMS key ARN
    key_aliases: dict[str, str] = field(default_factory=dict)  # alias ARN -> key ARN
    secrets: dict[str, str] = field(default_factory=dict)  # secret name -> ARN
    callers: list[Caller] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    def role(self, role_arn: str) -> Role | None:
        return self.roles.get(role_arn)

    def callers_of(self, role_arn: str) -> list[Caller]:
        return [c for c in self.callers if c.role_arn == role_arn]

    def caller_label(self, role_arn: str) -> str:
        users = self.callers_of(role_arn)
        if users:
            return ",".join(sorted({c.name for c in users}))
        return role_arn.rsplit("/", 1)[-1]

    def session_name(self, role_arn: str) -> str:
        """The session name AWS gives the role's session (Lambda: the function's name)."""
        users = self.callers_of(role_arn)
        return users[0].name if users else "sandbox"

    def resource_policy(self, resource_arn: str) -> dict[str, Any] | None:
        """The policy protecting `resource_arn` (a Lambda alias or version: its own, else the function's;
        an S3 object: its bucket's)."""
        policy = self.resource_policies.get(resource_arn)
        if policy is not None:
            return policy
        if resource_arn.startswith(f"arn:{self.partition}:lambda:") and resource_arn.count(":") == 7:
            return self.resource_policies.get(resource_arn.rsplit(":", 1)[0])
        if resource_arn.startswith(f"arn:{self.partition}:s3:::") and "/" in resource_arn:
            return self.resource_policies.get(resource_arn.split("/", 1)[0])
        return None

    def encryption_key(self, resource_arn: str) -> str | None:
        key = self.encryption_keys.get(resource_arn)
        if key is None and resource_arn.startswith(f"arn:{self.partition}:s3:::"):
            key = self.encryption_keys.get(resource_arn.split("/", 1)[0])
        return key

    def grants(self, role_arn: str) -> list[Grant]:
        """Every (action, resource) an Allow statement of the role names (patterns as written)."""
        role = self.roles.get(role_arn)
        found: list[Grant] = []
        if role is None:
            return found
        for policy in role.policies:
            for statement in _statements(policy.document):
                if statement.get("Effect") != "Allow":
                    continue
                for action in _as_list(statement.get("Action")):
                    for resource in _as_list(statement.get("Resource")):
                        found.append(
                            Grant(role_arn, policy.name, str(action), str(resource), "Condition" in statement)
                        )
        return found

    def rewrite(self, replacements: Mapping[str, str]) -> None:
        """Replace resolved values the emulation names otherwise (a secret's ARN suffix, a queue
        URL, a generated bucket name) in every document and key, so policies name what is called."""
        if not replacements:
            return

        def fix(value: Any) -> Any:
            if isinstance(value, str):
                for old, new in replacements.items():
                    value = value.replace(old, new)
                return value
            if isinstance(value, list):
                return [fix(v) for v in value]
            if isinstance(value, dict):
                return {fix(k): fix(v) for k, v in value.items()}
            return value

        for role in self.roles.values():
            role.policies = [NamedPolicy(p.name, fix(p.document)) for p in role.policies]
            role.__dict__.pop("version", None)  # the cached digest follows the documents
        self.resource_policies = fix(self.resource_policies)
        self.resource_policy_sources = {fix(k): v for k, v in self.resource_policy_sources.items()}
        self.encryption_keys = fix(self.encryption_keys)
        self.secrets = fix(self.secrets)
        self.callers = [Caller(c.kind, c.name, fix(c.arn), c.role_arn, c.logical_id) for c in self.callers]

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "region": self.region,
            "roles": {
                arn: {
                    "name": r.name,
                    "logical_id": r.logical_id,
                    "policies": [{"name": p.name, "document": p.document} for p in r.policies],
                    "unknown_managed": r.unknown_managed,
                }
                for arn, r in self.roles.items()
            },
            "resource_policies": self.resource_policies,
            "encryption_keys": self.encryption_keys,
            "callers": [c.__dict__ for c in self.callers],
            "unresolved": self.unresolved,
        }


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, dict)]


class _Resolver:
    def __init__(self, resources: ResourceMap, problems: list[str]) -> None:
        self.resources = resources
        self.problems = problems

    def value(self, value: Any, where: str) -> Any:
        try:
            return resolve(value, self.resources, where=where)
        except UnresolvableIntrinsic as exc:
            self.problems.append(str(exc))
            return f"{_UNRESOLVED}{where}"

    def document(self, document: Any, where: str) -> dict[str, Any]:
        """Resolve a policy document element by element, so one unresolvable ARN spoils only itself."""
        if not isinstance(document, dict):
            return {"Version": "2012-10-17", "Statement": []}
        statements = []
        for index, statement in enumerate(_as_list(document.get("Statement"))):
            here = f"{where}.Statement[{index}]"
            resolved: dict[str, Any] = {}
            for key, element in statement.items():
                if key in ("Resource", "NotResource") and isinstance(element, list):
                    resolved[key] = [self.value(item, f"{here}.{key}") for item in element]
                else:
                    resolved[key] = self.value(element, f"{here}.{key}")
            statements.append(resolved)
        return {"Version": document.get("Version", "2012-10-17"), "Statement": statements}


def _merge_statements(
    policies: dict[str, dict[str, Any]], arn: str, statements: Iterable[dict[str, Any]]
) -> None:
    policy = policies.setdefault(arn, {"Version": "2012-10-17", "Statement": []})
    policy["Statement"].extend(statements)


def build_policy_set(
    template: Mapping[str, Any],
    resources: ResourceMap | None = None,
    *,
    sandbox: Sandbox | None = None,
) -> PolicySet:
    """The PolicySet of one (merged) template, with the ARNs `resources` gives."""
    resources = resources or ResourceMap(template, sandbox or Sandbox())
    sb = resources.sandbox
    result = PolicySet(account_id=sb.account_id, region=sb.region, partition=sb.partition)
    r = _Resolver(resources, result.unresolved)
    items = dict(template.get("Resources", {}))
    by_type: dict[str, dict[str, dict[str, Any]]] = {}
    for logical_id, resource in items.items():
        by_type.setdefault(str(resource.get("Type")), {})[logical_id] = resource

    def props(resource: Mapping[str, Any]) -> dict[str, Any]:
        return dict(resource.get("Properties", {}))

    # Roles, with their inline policies and managed policy ARNs.
    role_by_name: dict[str, str] = {}
    managed_docs: dict[str, NamedPolicy] = {}
    for logical_id, resource in by_type.get("AWS::IAM::ManagedPolicy", {}).items():
        p = props(resource)
        name = str(p.get("ManagedPolicyName") or f"{sb.stack_name}-{logical_id}")
        managed_docs[logical_id] = NamedPolicy(name, r.document(p.get("PolicyDocument"), logical_id))
    for logical_id, resource in by_type.get("AWS::IAM::Role", {}).items():
        p = props(resource)
        arn = resources.arn(logical_id)
        role = Role(
            arn=arn,
            name=resources.physical_name(logical_id),
            logical_id=logical_id,
            trust_policy=r.document(
                p.get("AssumeRolePolicyDocument"), f"{logical_id}.AssumeRolePolicyDocument"
            ),
        )
        for index, inline in enumerate(p.get("Policies", [])):
            name = str(
                r.value(inline.get("PolicyName", f"inline-{index}"), f"{logical_id}.Policies[{index}]")
            )
            role.policies.append(
                NamedPolicy(name, r.document(inline.get("PolicyDocument"), f"{logical_id}.{name}"))
            )
        for index, managed in enumerate(p.get("ManagedPolicyArns", [])):
            if isinstance(managed, dict) and set(managed) == {"Ref"} and managed["Ref"] in managed_docs:
                role.policies.append(managed_docs[managed["Ref"]])
                continue
            managed_arn = str(r.value(managed, f"{logical_id}.ManagedPolicyArns[{index}]"))
            prefix = f"arn:{sb.partition}:iam::aws:policy/"
            statements = (
                _AWS_MANAGED.get(managed_arn.removeprefix(prefix)) if managed_arn.startswith(prefix) else None
            )
            if statements is None:
                role.unknown_managed.append(managed_arn)
            else:
                role.policies.append(
                    NamedPolicy(managed_arn, {"Version": "2012-10-17", "Statement": statements})
                )
        result.roles[arn] = role
        role_by_name[role.name] = arn

    def attach(policy: NamedPolicy, role_refs: Any, where: str) -> None:
        for index, ref in enumerate(_as_list(role_refs)):
            name = str(r.value(ref, f"{where}.Roles[{index}]"))
            role_arn = role_by_name.get(name.rsplit("/", 1)[-1])
            if role_arn is None:
                result.unresolved.append(f"{where}: role {name!r} is not in the template")
            else:
                result.roles[role_arn].policies.append(policy)

    for logical_id, resource in by_type.get("AWS::IAM::Policy", {}).items():
        p = props(resource)
        name = str(r.value(p.get("PolicyName", logical_id), f"{logical_id}.PolicyName"))
        attach(NamedPolicy(name, r.document(p.get("PolicyDocument"), logical_id)), p.get("Roles"), logical_id)
    for logical_id, resource in by_type.get("AWS::IAM::ManagedPolicy", {}).items():
        attach(managed_docs[logical_id], props(resource).get("Roles"), logical_id)

    # Resource policies, keyed by the ARN each protects.
    def add_resource_policy(arn: str, document: dict[str, Any], source: str) -> None:
        _merge_statements(result.resource_policies, arn, document["Statement"])
        result.resource_policy_sources.setdefault(arn, []).append(source)

    for logical_id, resource in by_type.get("AWS::KMS::Key", {}).items():
        p = props(resource)
        key_arn = resources.arn(logical_id)
        add_resource_policy(key_arn, r.document(p.get("KeyPolicy"), f"{logical_id}.KeyPolicy"), logical_id)
    for logical_id, resource in by_type.get("AWS::KMS::Alias", {}).items():
        p = props(resource)
        target = str(r.value(p.get("TargetKeyId"), f"{logical_id}.TargetKeyId"))
        alias = str(p.get("AliasName", ""))
        result.key_aliases[f"arn:{sb.partition}:kms:{sb.region}:{sb.account_id}:{alias}"] = _key_arn(
            target, sb
        )
    for type_name, targets_key, to_arn in (
        ("AWS::SQS::QueuePolicy", "Queues", lambda v: _queue_arn(str(v), sb)),
        ("AWS::SNS::TopicPolicy", "Topics", str),
    ):
        for logical_id, resource in by_type.get(type_name, {}).items():
            p = props(resource)
            document = r.document(p.get("PolicyDocument"), f"{logical_id}.PolicyDocument")
            for index, target in enumerate(_as_list(p.get(targets_key))):
                arn = to_arn(r.value(target, f"{logical_id}.{targets_key}[{index}]"))
                add_resource_policy(arn, document, logical_id)
    for logical_id, resource in by_type.get("AWS::S3::BucketPolicy", {}).items():
        p = props(resource)
        bucket = str(r.value(p.get("Bucket"), f"{logical_id}.Bucket"))
        document = r.document(p.get("PolicyDocument"), f"{logical_id}.PolicyDocument")
        add_resource_policy(f"arn:{sb.partition}:s3:::{bucket}", document, logical_id)
    for logical_id, resource in by_type.get("AWS::SecretsManager::ResourcePolicy", {}).items():
        p = props(resource)
        secret = str(r.value(p.get("SecretId"), f"{logical_id}.SecretId"))
        document = r.document(p.get("ResourcePolicy"), f"{logical_id}.ResourcePolicy")
        add_resource_policy(secret, document, logical_id)
    for logical_id, resource in by_type.get("AWS::Lambda::Permission", {}).items():
        statement = _lambda_permission_statement(logical_id, props(resource), r, sb)
        if statement is not None:
            add_resource_policy(statement["Resource"], {"Statement": [statement]}, logical_id)

    # Customer managed keys that AWS uses on the caller's behalf.
    for logical_id, resource in items.items():
        key = _encryption_key_of(str(resource.get("Type")), props(resource))
        if key is None:
            continue
        key_value = str(r.value(key, f"{logical_id}.encryption key"))
        if key_value.startswith("alias/aws/") or key_value.startswith(_UNRESOLVED):
            continue  # an AWS managed key: its key policy trusts every principal of the account
        try:
            resource_arn = resources.arn(logical_id)
        except UnresolvableIntrinsic as exc:
            result.unresolved.append(str(exc))
            continue
        key_arn = _key_arn(key_value, sb)
        result.encryption_keys[resource_arn] = result.key_aliases.get(key_arn, key_arn)

    for logical_id in by_type.get("AWS::SecretsManager::Secret", {}):
        arn = resources.arn(logical_id)
        result.secrets[resources.physical_name(logical_id)] = arn

    # Who runs with which role.
    for logical_id, resource in by_type.get("AWS::Lambda::Function", {}).items():
        role_ref = props(resource).get("Role")
        if role_ref is not None:
            result.callers.append(
                Caller(
                    "function",
                    resources.physical_name(logical_id),
                    resources.arn(logical_id),
                    str(r.value(role_ref, f"{logical_id}.Role")),
                    logical_id,
                )
            )
    for logical_id, resource in by_type.get("AWS::StepFunctions::StateMachine", {}).items():
        role_ref = props(resource).get("RoleArn")
        if role_ref is not None:
            result.callers.append(
                Caller(
                    "state-machine",
                    resources.physical_name(logical_id),
                    resources.arn(logical_id),
                    str(r.value(role_ref, f"{logical_id}.RoleArn")),
                    logical_id,
                )
            )
    for logical_id, resource in by_type.get("AWS::Scheduler::Schedule", {}).items():
        p = props(resource)
        role_ref = p.get("Target", {}).get("RoleArn")
        if role_ref is not None:
            name = str(r.value(p.get("Name", logical_id), f"{logical_id}.Name"))
            group = str(r.value(p.get("GroupName", "default"), f"{logical_id}.GroupName"))
            result.callers.append(
                Caller(
                    "schedule",
                    name,
                    f"arn:{sb.partition}:scheduler:{sb.region}:{sb.account_id}:schedule/{group}/{name}",
                    str(r.value(role_ref, f"{logical_id}.Target.RoleArn")),
                    logical_id,
                )
            )
    return result


def _queue_arn(value: str, sb: Sandbox) -> str:
    if value.startswith("arn:"):
        return value
    # A queue URL: https://sqs.<region>.<suffix>/<account>/<name>
    account, name = value.rstrip("/").split("/")[-2:]
    return f"arn:{sb.partition}:sqs:{sb.region}:{account}:{name}"


def _key_arn(value: str, sb: Sandbox) -> str:
    if value.startswith("arn:"):
        return value
    if value.startswith("alias/"):
        return f"arn:{sb.partition}:kms:{sb.region}:{sb.account_id}:{value}"
    return f"arn:{sb.partition}:kms:{sb.region}:{sb.account_id}:key/{value}"


def _encryption_key_of(resource_type: str, p: Mapping[str, Any]) -> Any:
    if resource_type in ("AWS::SQS::Queue", "AWS::SNS::Topic"):
        return p.get("KmsMasterKeyId")
    if resource_type == "AWS::DynamoDB::Table":
        sse = p.get("SSESpecification") or {}
        return sse.get("KMSMasterKeyId") if sse.get("SSEEnabled") else None
    if resource_type == "AWS::SecretsManager::Secret":
        return p.get("KmsKeyId")
    if resource_type == "AWS::S3::Bucket":
        rules = (p.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration") or []
        for rule in rules:
            default = rule.get("ServerSideEncryptionByDefault") or {}
            if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse") and default.get("KMSMasterKeyID"):
                return default["KMSMasterKeyID"]
    return None


def _lambda_permission_statement(
    logical_id: str, p: Mapping[str, Any], r: _Resolver, sb: Sandbox
) -> dict[str, Any] | None:
    function = str(r.value(p.get("FunctionName"), f"{logical_id}.FunctionName"))
    if function.startswith(_UNRESOLVED):
        return None
    if not function.startswith("arn:"):
        function = f"arn:{sb.partition}:lambda:{sb.region}:{sb.account_id}:function:{function}"
    principal = str(r.value(p.get("Principal"), f"{logical_id}.Principal"))
    if principal.endswith(".amazonaws.com"):
        principal_element: Any = {"Service": principal}
    elif principal.isdigit():
        principal_element = {"AWS": f"arn:{sb.partition}:iam::{principal}:root"}
    else:
        principal_element = {"AWS": principal}
    statement: dict[str, Any] = {
        "Sid": logical_id,
        "Effect": "Allow",
        "Principal": principal_element,
        "Action": str(r.value(p.get("Action"), f"{logical_id}.Action")),
        "Resource": function,
    }
    condition: dict[str, dict[str, str]] = {}
    if "SourceArn" in p:
        condition.setdefault("ArnLike", {})["aws:SourceArn"] = str(
            r.value(p["SourceArn"], f"{logical_id}.SourceArn")
        )
    if "SourceAccount" in p:
        condition.setdefault("StringEquals", {})["aws:SourceAccount"] = str(
            r.value(p["SourceAccount"], f"{logical_id}.SourceAccount")
        )
    if condition:
        statement["Condition"] = condition
    return statement
