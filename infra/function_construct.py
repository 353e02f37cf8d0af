"""One hardened Lambda function: the defaults every function of the project shares.

arm64, the configured Python runtime, the Powertools layer for the region and architecture,
X-Ray active tracing, JSON logs into its own encrypted log group with retention, private
subnets behind the Lambda security group, and its own role that starts with nothing but
logging, tracing and ENI management; callers add resource-scoped statements.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from contracts import names
from infra.config import EnvironmentConfig
from infra.retention import retention

POWERTOOLS_ACCOUNT = "017000801446"
_ENI_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]


def powertools_layer_arn(region: str, runtime: str, version: int, architecture: str = "arm64") -> str:
    """AWS's public Powertools for AWS Lambda (Python) v3 layer for the region/runtime/arch."""
    flavour = runtime.replace(".", "")  # python3.12 -> python312
    return (
        f"arn:aws:lambda:{region}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-{flavour}-{architecture}:{version}"
    )


class HardenedFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        function_name: str,
        handler: str,
        description: str,
        code: lambda_.Code,
        memory_mb: int,
        timeout_seconds: int,
        reserved_concurrency: int | None,
        environment: Mapping[str, str],
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=retention(config.log_retention_days),
            encryption_key=logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            role_name=f"{function_name}-role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {function_name}",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(sid="ManageVpcNetworkInterfaces", actions=_ENI_ACTIONS, resources=["*"])
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PublishMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": names.METRICS_NAMESPACE}},
            )
        )
        layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            powertools_layer_arn(
                stack.region, config.lambdas.python_runtime, config.lambdas.powertools_layer_version
            ),
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=lambda_.Runtime(config.lambdas.python_runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=code,
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_seconds),
            reserved_concurrent_executions=reserved_concurrency,
            environment=dict(environment),
            layers=[layer],
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=_lambda_level(config.log_level),
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=self.log_group,
            role=self.role,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
        )


def _lambda_level(level: str) -> lambda_.ApplicationLogLevel:
    return {
        "DEBUG": lambda_.ApplicationLogLevel.DEBUG,
        "INFO": lambda_.ApplicationLogLevel.INFO,
        "WARNING": lambda_.ApplicationLogLevel.WARN,
        "ERROR": lambda_.ApplicationLogLevel.ERROR,
    }[level]
