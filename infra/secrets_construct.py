"""Client API keys in Secrets Manager, rotated automatically by the service's rotation function.

The secret's value is JSON `{"api_key": "..."}`. Rotation follows Secrets Manager's four steps
(createSecret/setSecret/testSecret/finishSecret) in `service.handlers.rotate_api_key`; the
authorizer accepts the AWSCURRENT and AWSPREVIOUS versions, so clients holding the previous key
keep connecting until the next rotation (the grace period is one rotation interval).
"""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.function_construct import HardenedFunction
from infra.network_construct import NetworkConstruct
from service.catalog import ROTATION_FUNCTION


class SecretsConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: NetworkConstruct,
        code: lambda_.Code,
        secrets_key: kms.IKey,
        logs_key: kms.IKey,
        base_environment: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        env = config.environment
        self.api_keys = secretsmanager.Secret(
            self,
            "ApiKeys",
            secret_name=names.secret_name(env, "api-keys"),
            description=f"{env} WebSocket client API key (JSON field '{names.API_KEY_SECRET_FIELD}')",
            encryption_key=secrets_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({}),
                generate_string_key=names.API_KEY_SECRET_FIELD,
                exclude_punctuation=True,
                password_length=48,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        settings = config.lambdas.functions.get(ROTATION_FUNCTION.key)
        self.rotation = HardenedFunction(
            self,
            "Rotation",
            config=config,
            function_name=names.rotation_function_name(env),
            handler=ROTATION_FUNCTION.handler,
            description=ROTATION_FUNCTION.description,
            code=code,
            memory_mb=settings.memory_mb if settings else ROTATION_FUNCTION.memory_mb,
            timeout_seconds=settings.timeout_seconds if settings else ROTATION_FUNCTION.timeout_seconds,
            # Rotation runs a few times a month; one at a time is plenty and bounds a loop.
            reserved_concurrency=1,
            environment={**base_environment, "POWERTOOLS_SERVICE_NAME": f"{names.SERVICE_NAME}-rotation"},
            vpc=network.vpc,
            subnets=network.private_subnets,
            security_group=network.lambda_sg,
            logs_key=logs_key,
        )
        # Grants DescribeSecret/GetSecretValue/PutSecretValue/UpdateSecretVersionStage on this
        # secret, the KMS key use, GetRandomPassword, and Secrets Manager's invoke permission.
        self.api_keys.add_rotation_schedule(
            "Rotation",
            rotation_lambda=self.rotation.function,
            automatically_after=Duration.days(config.secrets.api_key_rotation_days),
            rotate_immediately_on_update=False,
        )
        # The invoke permission CDK adds for Secrets Manager names no source; pin it to this
        # account so no other account's secret can drive the function (CT.LAMBDA.PR.2).
        for child in self.rotation.function.node.children:
            if isinstance(child, lambda_.CfnPermission):
                child.add_property_override("SourceAccount", config.account)
