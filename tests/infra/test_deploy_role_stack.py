"""The GitHub OIDC deploy role: who may assume it, and what it may do."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Environment, Validations
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from infra.deploy_role_stack import DeployRoleStack, deploy_role_name, oidc_subject

ACCOUNT = "111111111111"
REGION = "eu-west-1"
REPOSITORY = "acme/realtime-analytics"
BUCKET = f"staging-realtime-artifacts-{ACCOUNT}"


def _template(**overrides: Any) -> Template:
    app = App()
    # The security gate runs on this stack too: every wildcard must carry an acknowledgment.
    Validations.of(app).add_plugins(AwsSolutionsChecks())
    params: dict[str, Any] = {
        "environment": "staging",
        "repository": REPOSITORY,
        "artifact_bucket_name": BUCKET,
        "env": Environment(account=ACCOUNT, region=REGION),
    }
    params.update(overrides)
    stack = DeployRoleStack(app, "GitHubDeploy", **params)
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def template() -> Template:
    return _template()


def _statements(template: Template) -> dict[str, dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    assert len(policies) == 1
    (policy,) = policies.values()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def _flat(resource: Any) -> str:
    """`Fn::Join` of literal parts and the partition reference, as one readable ARN."""
    if isinstance(resource, str):
        return resource
    parts = resource["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "${" + p["Ref"] + "}" for p in parts)


def _resources(statement: dict[str, Any]) -> list[str]:
    value = statement["Resource"]
    return [_flat(r) for r in (value if isinstance(value, list) else [value])]


def _actions(statement: dict[str, Any]) -> set[str]:
    value = statement["Action"]
    return set(value if isinstance(value, list) else [value])


def test_github_oidc_provider_trusts_sts_audience_and_is_retained(template: Template) -> None:
    template.resource_count_is("AWS::IAM::OIDCProvider", 1)
    template.has_resource(
        "AWS::IAM::OIDCProvider",
        {
            "Properties": {
                "Url": "https://token.actions.githubusercontent.com",
                "ClientIdList": ["sts.amazonaws.com"],
            },
            "DeletionPolicy": "Retain",
        },
    )


def test_trust_policy_is_web_identity_for_this_repository_and_environment_only(template: Template) -> None:
    roles = template.find_resources("AWS::IAM::Role")
    assert len(roles) == 1
    (role,) = roles.values()
    props = role["Properties"]
    assert props["RoleName"] == deploy_role_name("staging") == "staging-realtime-github-deploy"
    assert props["MaxSessionDuration"] == 4 * 3600
    (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    provider_id = next(iter(template.find_resources("AWS::IAM::OIDCProvider")))
    assert statement["Principal"] == {"Federated": {"Ref": provider_id}}
    # StringEquals only: no StringLike, so no wildcard subject (branch, tag or pull request) qualifies.
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:acme/realtime-analytics:environment:staging",
        }
    }


def test_production_role_trusts_only_the_production_environment() -> None:
    template = _template(environment="production", artifact_bucket_name="production-realtime-artifacts")
    (role,) = template.find_resources("AWS::IAM::Role").values()
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == oidc_subject(
        REPOSITORY, "production"
    )
    assert role["Properties"]["RoleName"] == "production-realtime-github-deploy"


def test_existing_provider_is_imported_not_created() -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    template = _template(oidc_provider_arn=arn)
    template.resource_count_is("AWS::IAM::OIDCProvider", 0)
    template.has_resource_properties(
        "AWS::IAM::Role",
        {"AssumeRolePolicyDocument": {"Statement": [Match.object_like({"Principal": {"Federated": arn}})]}},
    )


def test_permissions_are_bootstrap_roles_releases_and_bundles_only(template: Template) -> None:
    statements = _statements(template)
    assert all(s["Effect"] == "Allow" for s in statements.values())

    assert _resources(statements["AssumeCdkBootstrapRoles"]) == [
        f"arn:${{AWS::Partition}}:iam::{ACCOUNT}:role/cdk-hnb659fds-*-{ACCOUNT}-{REGION}"
    ]
    assert _actions(statements["AssumeCdkBootstrapRoles"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert _resources(statements["DriveReleasesAndDrills"]) == [
        f"arn:${{AWS::Partition}}:states:{REGION}:{ACCOUNT}:stateMachine:staging-realtime-*"
    ]
    assert "states:StartExecution" in _actions(statements["DriveReleasesAndDrills"])
    assert _resources(statements["PutServiceBundles"]) == [f"arn:${{AWS::Partition}}:s3:::{BUCKET}/service/*"]
    assert statements["ListServiceBundles"]["Condition"] == {"StringLike": {"s3:prefix": ["service/*"]}}
    assert statements["EncryptServiceBundles"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    }

    every_action = set().union(*(_actions(s) for s in statements.values()))
    # The pipeline can neither approve its own release nor change anything outside these paths.
    forbidden = {"states:SendTaskSuccess", "states:SendTaskFailure", "iam:PassRole", "s3:DeleteObject"}
    assert not every_action & forbidden
    assert not [a for a in every_action if a.endswith(":*") or a == "*"]
    # Resource-wide grants: the one API without resource-level permissions, and DescribeAlarms, whose
    # answer leaves composite alarms out unless it is allowed on `*` (read-only alarm metadata).
    wide = [sid for sid, s in statements.items() if "*" in _resources(s)]
    assert sorted(wide) == ["FindStateMachines", "ReadAlarms"]
    assert _actions(statements["FindStateMachines"]) == {"states:ListStateMachines"}
    assert _actions(statements["ReadAlarms"]) == {"cloudwatch:DescribeAlarms"}


def test_every_resource_is_scoped_to_this_environment(template: Template) -> None:
    for sid, statement in _statements(template).items():
        for resource in _resources(statement):
            if resource == "*" or ":iam::" in resource or ":kms:" in resource or ":s3:::" in resource:
                continue
            # Names start with `staging-`; Secrets Manager's are `staging/realtime/...`.
            assert ":staging-" in resource or "/staging-" in resource or ":secret:staging/" in resource, (
                f"{sid}: {resource}"
            )
            assert "production" not in resource, f"{sid}: {resource}"


def test_given_kms_keys_replace_the_account_wide_pattern() -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    statements = _statements(_template(artifact_kms_key_arns=[key]))
    assert _resources(statements["EncryptServiceBundles"]) == [key]


def test_outputs_name_the_role_arn_for_the_github_environment(template: Template) -> None:
    outputs = template.find_outputs("*")
    assert set(outputs) >= {"DeployRoleArn", "OidcProviderArn", "OidcSubject"}
    assert outputs["OidcSubject"]["Value"] == "repo:acme/realtime-analytics:environment:staging"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"environment": "qa"}, "environment: 'qa' is not one of"),
        ({"repository": "not a slug"}, "repository: 'not a slug' is not a GitHub"),
        ({"repository": "acme/*"}, "is not a GitHub <owner>/<repo> slug"),
        ({"cdk_qualifier": "Bad-Qualifier"}, "cdk_qualifier"),
    ],
)
def test_bad_parameters_fail_with_the_field_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _template(**overrides)


def test_passes_the_projects_security_gates() -> None:
    from infra.nag import attach_security_gates

    app = App()
    attach_security_gates(app)  # cdk-nag AwsSolutions and the Control Tower guard rules
    stack = DeployRoleStack(
        app, "GitHubDeploy", environment="production", repository=REPOSITORY,
        artifact_bucket_name="production-realtime-artifacts", env=Environment(account=ACCOUNT, region=REGION),
    )  # fmt: skip
    Template.from_stack(stack).resource_count_is("AWS::IAM::Role", 1)


def test_the_post_release_checks_read_the_api_key_and_send_to_the_events_queues_only(
    template: Template,
) -> None:
    statements = _statements(template)
    assert _actions(statements["ReadApiKeyForChecks"]) == {"secretsmanager:GetSecretValue"}
    assert _resources(statements["ReadApiKeyForChecks"]) == [
        f"arn:${{AWS::Partition}}:secretsmanager:{REGION}:{ACCOUNT}:secret:staging/realtime/api-keys-??????"
    ]
    assert _actions(statements["SendSyntheticEvents"]) == {"sqs:GetQueueUrl", "sqs:SendMessage"}
    assert _resources(statements["SendSyntheticEvents"]) == [
        f"arn:${{AWS::Partition}}:sqs:{REGION}:{ACCOUNT}:staging-realtime-events",
        f"arn:${{AWS::Partition}}:sqs:{REGION}:{ACCOUNT}:staging-realtime-preview-events",
    ]
    # Keys only through the two services, and only the environment's secrets and messaging keys.
    assert statements["UseKeysForChecks"]["Condition"] == {
        "StringEquals": {
            "kms:ViaService": [f"secretsmanager.{REGION}.amazonaws.com", f"sqs.{REGION}.amazonaws.com"]
        },
        "ForAnyValue:StringEquals": {
            "kms:ResourceAliases": ["alias/staging-realtime-secrets", "alias/staging-realtime-messaging"]
        },
    }
