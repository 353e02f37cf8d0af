"""The pipeline's way into one environment's account: GitHub's OIDC provider and a deploy role.

GitHub Actions exchanges its short-lived OIDC token for this role's credentials, so the
repository holds no AWS keys. The trust policy accepts only tokens minted for this
repository's GitHub environment of the same name (`repo:<owner>/<repo>:environment:<env>`,
audience `sts.amazonaws.com`): a workflow job gets production credentials only after the
`production` environment's protection rules (required reviewers) have passed.

The role itself deploys nothing: infrastructure changes go through the CDK bootstrap roles
(which CloudFormation uses), releases go through the release state machine. So its policy is
assume the bootstrap roles, drive the release and DR-drill executions, read their state,
trigger the operator rollback, and put service bundles into the artifact bucket. It cannot
approve a release (SendTaskSuccess): a person does, with their own credentials.

Deployed once per account by an administrator (`cdk deploy` with admin credentials), before
the pipeline can run; an account holding two environments creates the provider once and the
second stack imports it (`oidc_provider_arn`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Tags, Token, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from contracts import names

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
STS_AUDIENCE = "sts.amazonaws.com"
# The CDK's default bootstrap qualifier (`cdk bootstrap` without --qualifier).
DEFAULT_CDK_QUALIFIER = "hnb659fds"
_REPOSITORY = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_QUALIFIER = re.compile(r"^[a-z0-9]{1,10}$")


def deploy_role_name(env: str) -> str:
    return f"{names.prefix(env)}-github-deploy"


def oidc_subject(repository: str, env: str) -> str:
    """The `sub` claim GitHub puts in a job's token when the job targets environment `env`."""
    return f"repo:{repository}:environment:{env}"


class DeployRoleStack(Stack):
    """OIDC provider (created or imported) and the GitHub deploy role of one environment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        repository: str,
        artifact_bucket_name: str,
        oidc_provider_arn: str | None = None,
        cdk_qualifier: str = DEFAULT_CDK_QUALIFIER,
        artifact_kms_key_arns: Sequence[str] = (),
        max_session_duration: Duration | None = None,
        **kwargs: object,
    ) -> None:
        if environment not in names.ENVIRONMENTS:
            raise ValueError(f"environment: {environment!r} is not one of {', '.join(names.ENVIRONMENTS)}")
        if not _REPOSITORY.match(repository):
            raise ValueError(f"repository: {repository!r} is not a GitHub <owner>/<repo> slug")
        if not _QUALIFIER.match(cdk_qualifier):
            raise ValueError(f"cdk_qualifier: {cdk_qualifier!r} is not a CDK bootstrap qualifier")
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        Tags.of(self).add("Project", names.PROJECT)
        Tags.of(self).add("Environment", environment)

        provider_arn = oidc_provider_arn or self._create_provider()
        role = iam.Role(
            self,
            "DeployRole",
            role_name=deploy_role_name(environment),
            description=f"GitHub Actions deploy role for {repository}, environment {environment}",
            # A release job watches bakes and a production approval gate: credentials must
            # outlive them (the job's timeout), and no more.
            max_session_duration=max_session_duration or Duration.hours(4),
            assumed_by=iam.FederatedPrincipal(
                provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                        # Exact match, no wildcard: branches, tags and pull requests never qualify.
                        f"{GITHUB_OIDC_HOST}:sub": oidc_subject(repository, environment),
                    }
                },
                assume_role_action="sts:AssumeRoleWithWebIdentity",
            ),
        )
        for statement in self._statements(
            environment, artifact_bucket_name, cdk_qualifier, artifact_kms_key_arns
        ):
            role.add_to_policy(statement)
        self.role = role

        # Each wildcard is acknowledged by name (not the rule as a whole), so a new one fails synth.
        evidence = deploy_grants(
            environment, artifact_bucket_name, cdk_qualifier, artifact_kms_key_arns, "<AWS::Partition>",
            _nag_form(self.account, "AccountId"), _nag_form(self.region, "Region"),
        )  # fmt: skip
        reasons = {
            "AssumeCdkBootstrapRoles": "the CDK bootstrap roles of this account and region",
            "DriveReleasesAndDrills": "this environment's state machines, by name prefix",
            "WatchExecutions": "executions of this environment's state machines",
            "FindStateMachines": "ListStateMachines has no resource-level permission",
            "ReadReleaseState": "this environment's service functions, read only",
            "OperatorRollback": "versions and aliases of the alarm-rollback function",
            "ReadReleaseHistory": "this environment's tables, read only",
            "ReadAlarms": "DescribeAlarms returns composite alarms only when allowed on *; read only",
            "ReadStackOutputs": "this environment's stack, read only",
            "PutServiceBundles": "service bundles under the artifact bucket's service/ prefix",
            "EncryptServiceBundles": "KMS keys usable only through S3 in this region",
            "ReadApiKeyForChecks": "the environment's API key secret (Secrets Manager's random name suffix)",
            "UseKeysForChecks": "the environment's secrets and messaging keys by alias, through those services",
        }
        # One acknowledgment per wildcard resource; several grants may share one (`*`).
        wildcards: dict[str, list[str]] = {}
        for grant in evidence:
            for resource in grant.resources:
                if "*" in resource:
                    wildcards.setdefault(resource, []).append(reasons[grant.sid])
        Validations.of(role).acknowledge(
            *(
                Acknowledgment(
                    id=f"AwsSolutions::AwsSolutions-IAM5[Resource::{resource}]", reason="; ".join(why)
                )
                for resource, why in wildcards.items()
            )
        )

        CfnOutput(
            self,
            "DeployRoleArn",
            value=role.role_arn,
            description="GitHub environment variable AWS_DEPLOY_ROLE_ARN",
        )
        CfnOutput(self, "OidcProviderArn", value=provider_arn)
        CfnOutput(self, "OidcSubject", value=oidc_subject(repository, environment))

    def _create_provider(self) -> str:
        provider = iam.OidcProviderNative(
            self,
            "GitHubOidcProvider",
            url=GITHUB_OIDC_URL,
            client_ids=[STS_AUDIENCE],
            # IAM validates GitHub's certificate against its trusted CAs; no thumbprint to rotate.
        )
        # Other roles in the account may trust the provider too: never delete it with this stack.
        provider.apply_removal_policy(RemovalPolicy.RETAIN)
        return provider.oidc_provider_arn

    def _statements(
        self, env: str, bucket: str, qualifier: str, kms_key_arns: Sequence[str]
    ) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(sid=grant.sid, actions=list(grant.actions), resources=list(grant.resources),
                                conditions=grant.conditions or None)
            for grant in deploy_grants(env, bucket, qualifier, kms_key_arns, self.partition, self.account, self.region)
        ]  # fmt: skip


@dataclass(frozen=True)
class Grant:
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)


def deploy_grants(
    env: str,
    bucket: str,
    qualifier: str,
    kms_key_arns: Sequence[str],
    partition: str,
    account: str,
    region: str,
) -> list[Grant]:
    """Everything the deploy role may do in `env`, as plain data (also used for the nag evidence)."""
    name_prefix = names.prefix(env)
    states = f"arn:{partition}:states:{region}:{account}"
    functions = f"arn:{partition}:lambda:{region}:{account}:function:{name_prefix}-"
    tables = f"arn:{partition}:dynamodb:{region}:{account}:table/{name_prefix}-*"
    return [
        # deploy, file-publishing, image-publishing and lookup roles of `cdk bootstrap`.
        Grant("AssumeCdkBootstrapRoles", ("sts:AssumeRole", "sts:TagSession"),
              (f"arn:{partition}:iam::{account}:role/cdk-{qualifier}-*-{account}-{region}",)),
        Grant("DriveReleasesAndDrills",
              ("states:StartExecution", "states:DescribeStateMachine", "states:ListExecutions"),
              (f"{states}:stateMachine:{name_prefix}-*",)),
        Grant("WatchExecutions",
              ("states:DescribeExecution", "states:DescribeStateMachineForExecution", "states:GetExecutionHistory",
               "states:StopExecution", "states:RedriveExecution"),
              (f"{states}:execution:{name_prefix}-*:*",)),
        # ListStateMachines has no resource-level permission; the CLI finds ARNs by name with it.
        Grant("FindStateMachines", ("states:ListStateMachines",), ("*",)),
        Grant("ReadReleaseState", ("lambda:GetAlias", "lambda:ListAliases", "lambda:GetFunctionConfiguration"),
              (f"{functions}*",)),
        # The same rollback path the release-guard alarm takes.
        Grant("OperatorRollback", ("lambda:InvokeFunction",),
              (f"{functions}alarm-rollback", f"{functions}alarm-rollback:*")),
        Grant("ReadReleaseHistory", ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"),
              (tables, f"{tables}/index/*")),
        # Read-only; scoped to alarm ARNs DescribeAlarms would silently omit the composite alarms.
        Grant("ReadAlarms", ("cloudwatch:DescribeAlarms",), ("*",)),
        Grant("ReadStackOutputs", ("cloudformation:DescribeStacks",),
              (f"arn:{partition}:cloudformation:{region}:{account}:stack/{names.stack_name(env)}/*",)),
        Grant("PutServiceBundles", ("s3:PutObject", "s3:GetObject"), (f"arn:{partition}:s3:::{bucket}/service/*",)),
        # Without it S3 answers 403 instead of 404 for a bundle that is not uploaded yet.
        Grant("ListServiceBundles", ("s3:ListBucket",), (f"arn:{partition}:s3:::{bucket}",),
              {"StringLike": {"s3:prefix": ["service/*"]}}),
        Grant("EncryptServiceBundles", ("kms:GenerateDataKey", "kms:Decrypt"),
              tuple(kms_key_arns) or (f"arn:{partition}:kms:{region}:{account}:key/*",),
              {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}),
        # The post-release synthetic checks (`orchestrator check --stage live|preview`): the current
        # API key to connect, and synthetic events into the stage's events queues.
        Grant("ReadApiKeyForChecks", ("secretsmanager:GetSecretValue",),
              (f"arn:{partition}:secretsmanager:{region}:{account}:secret:{names.secret_name(env, 'api-keys')}-??????",)),
        Grant("SendSyntheticEvents", ("sqs:GetQueueUrl", "sqs:SendMessage"),
              tuple(f"arn:{partition}:sqs:{region}:{account}:{names.queue_name(env, queue)}"
                    for queue in ("events", "preview-events"))),
        # Only the secrets and messaging keys (by alias), and only through those two services.
        Grant("UseKeysForChecks", ("kms:Decrypt", "kms:GenerateDataKey"),
              (f"arn:{partition}:kms:{region}:{account}:key/*",),
              {"StringEquals": {"kms:ViaService": [f"secretsmanager.{region}.amazonaws.com",
                                                   f"sqs.{region}.amazonaws.com"]},
               "ForAnyValue:StringEquals": {"kms:ResourceAliases": [names.kms_alias(env, "secrets"),
                                                                   names.kms_alias(env, "messaging")]}}),
    ]  # fmt: skip


def _nag_form(value: str, pseudo: str) -> str:
    """How cdk-nag prints a value: unresolved pseudo parameters become `<AWS::...>`."""
    return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value
