"""IAM: no `*` resource outside infra/iam_allowlist.py, and each function holds only its own grants."""

from __future__ import annotations

from typing import Any

from aws_cdk import cx_api
from aws_cdk.assertions import Template

from contracts import names
from infra.iam_allowlist import WILDCARD_RESOURCE_ACTIONS
from tests.infra.conftest import stage_templates

IDENTITY_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _identity_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found += [(logical, s) for s in props["PolicyDocument"]["Statement"]]
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                found += [(logical, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


def test_no_wildcard_resource_outside_allowlist(synth_assembly: cx_api.CloudAssembly) -> None:
    offenders = []
    checked = 0
    for env in names.ENVIRONMENTS:
        for stack, template in stage_templates(synth_assembly, env).items():
            for logical, statement in _identity_statements(template):
                checked += 1
                if statement["Effect"] != "Allow" or "*" not in _as_list(statement.get("Resource", [])):
                    continue
                for action in _as_list(statement["Action"]):
                    if action not in WILDCARD_RESOURCE_ACTIONS:
                        offenders.append(f"{stack}/{logical}: {action} on *")
    assert checked > 20
    assert not offenders, "wildcard resources outside infra/iam_allowlist.py:\n" + "\n".join(offenders)


def test_allowlist_entries_give_reasons() -> None:
    for action, why in WILDCARD_RESOURCE_ACTIONS.items():
        assert ":" in action and len(why) > 30, action


def test_no_aws_managed_policies_on_service_roles(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    for logical, role in template.find_resources("AWS::IAM::Role").items():
        if logical.startswith(("Service", "Secrets")):
            assert "ManagedPolicyArns" not in role["Properties"], logical


def _role_policy(template: Template, prefix: str) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    matches = [p for logical, p in policies.items() if logical.startswith(prefix)]
    assert len(matches) == 1, f"{prefix}: {sorted(policies)}"
    return matches[0]["Properties"]["PolicyDocument"]["Statement"]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in _as_list(s["Action"])}


def _resource_refs(statements: list[dict[str, Any]], action: str) -> list[str]:
    refs = []
    for s in statements:
        if action in _as_list(s["Action"]):
            for resource in _as_list(s["Resource"]):
                refs.append(resource.get("Ref") if isinstance(resource, dict) else resource)
    return refs


def test_each_function_holds_only_its_grants(staging_template: Template) -> None:
    secrets = staging_template.find_resources("AWS::SecretsManager::Secret")
    by_name = {s["Properties"]["Name"]: logical for logical, s in secrets.items()}
    api_keys = by_name[names.secret_name("staging", "api-keys")]
    cache_auth = by_name[names.secret_name("staging", "cache-auth")]

    authorizer = _role_policy(staging_template, "ServiceAuthorizerRoleDefaultPolicy")
    readable = _resource_refs(authorizer, "secretsmanager:GetSecretValue")
    assert api_keys in readable and cache_auth not in readable
    assert not any(a.startswith(("sns:", "sqs:")) for a in _actions(authorizer))

    for key in ("Connect", "Disconnect", "Messages"):
        statements = _role_policy(staging_template, f"Service{key}RoleDefaultPolicy")
        assert _resource_refs(statements, "secretsmanager:GetSecretValue") == [cache_auth], key
        assert not any(a.startswith(("sns:", "sqs:")) for a in _actions(statements)), key

    fanout = _role_policy(staging_template, "ServiceFanoutRoleDefaultPolicy")
    assert _resource_refs(fanout, "secretsmanager:GetSecretValue") == [cache_auth]
    assert "sns:Publish" in _actions(fanout)
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= _actions(fanout)

    for prefix in ("ServiceAuthorizer", "ServiceConnect", "ServiceFanout", "SecretsRotation"):
        statements = _role_policy(staging_template, f"{prefix}RoleDefaultPolicy")
        logs = [s for s in statements if "logs:PutLogEvents" in _as_list(s["Action"])]
        assert len(logs) == 1 and logs[0]["Resource"] != "*"
        metrics = [s for s in statements if "cloudwatch:PutMetricData" in _as_list(s["Action"])]
        assert metrics[0]["Condition"] == {"StringEquals": {"cloudwatch:namespace": names.METRICS_NAMESPACE}}
