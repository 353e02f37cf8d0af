"""The only place an IAM statement may use `"Resource": "*"`, each entry with AWS's reason.

`tests/infra/test_iam_scoping.py` fails when a synthesized identity policy grants any action
on `*` that is not listed here. Key policies are resource policies on the key itself (`*`
means "this key") and are checked by their conditions instead.
"""

from __future__ import annotations

from types import MappingProxyType

WILDCARD_RESOURCE_ACTIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "xray:PutTraceSegments": "X-Ray trace ingestion has no resource-level permissions (AWS X-Ray IAM reference).",
        "xray:PutTelemetryRecords": "X-Ray telemetry has no resource-level permissions (AWS X-Ray IAM reference).",
        "ec2:CreateNetworkInterface": (
            "Lambda creates the VPC function's Hyperplane ENIs in subnets chosen at deploy time; "
            "AWS's own AWSLambdaVPCAccessExecutionRole grants it on *."
        ),
        "ec2:DescribeNetworkInterfaces": "EC2 Describe* actions support no resource-level permissions.",
        "ec2:DescribeSubnets": "EC2 Describe* actions support no resource-level permissions.",
        "ec2:DeleteNetworkInterface": (
            "Lambda deletes the ENIs it created, whose ids are not known at deploy time "
            "(AWSLambdaVPCAccessExecutionRole grants it on *)."
        ),
        "ec2:AssignPrivateIpAddresses": "Lambda manages the addresses of ENIs whose ids are not known at deploy time.",
        "ec2:UnassignPrivateIpAddresses": "Lambda manages the addresses of ENIs whose ids are not known at deploy time.",
        "cloudwatch:PutMetricData": (
            "PutMetricData supports no resource-level permissions; the statement is narrowed with the "
            "cloudwatch:namespace condition instead."
        ),
        "states:ListStateMachines": (
            "ListStateMachines supports no resource-level permissions; the deploy role uses it to find "
            "this environment's state machines by name."
        ),
        "cloudwatch:GetMetricStatistics": (
            "GetMetricStatistics supports no resource-level permissions; CheckAlarms reads green's "
            "invocation count (AWS/Lambda Invocations) with it."
        ),
        "cloudwatch:GetMetricData": (
            "GetMetricData supports no resource-level permissions; JudgeCanary reads green's and blue's "
            "invocations, errors and p99 duration per executed version (AWS/Lambda) with it."
        ),
        "cloudwatch:DescribeAlarms": (
            "Read-only alarm metadata. Scoped to alarm ARNs, DescribeAlarms silently omits composite alarms "
            "(CloudWatch API reference, DescribeAlarms: composites are returned only when the permission is "
            "scoped to *), so CheckAlarms and the CLI would never see the <env>-release-health composite."
        ),
        "xray:GetSamplingRules": "X-Ray sampling rules have no resource-level permissions (tracing of the state machine).",
        "xray:GetSamplingTargets": "X-Ray sampling targets have no resource-level permissions (tracing of the state machine).",
        **{
            action: (
                "Step Functions delivers execution logs through CloudWatch Logs vended log delivery, whose "
                "actions support no resource-level permissions (Step Functions logging IAM reference)."
            )
            for action in (
                "logs:CreateLogDelivery",
                "logs:GetLogDelivery",
                "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries",
                "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups",
            )
        },
        "ce:GetCostAndUsage": (
            "Cost Explorer supports no resource-level permissions for GetCostAndUsage (AWS Billing and Cost "
            "Management IAM reference); the daily cost check queries the project's tagged costs with it."
        ),
        "secretsmanager:GetRandomPassword": (
            "GetRandomPassword acts on no resource (AWS Secrets Manager IAM reference); the rotation "
            "function uses it to generate the new API key."
        ),
    }
)


def is_allowed(action: str) -> bool:
    return action in WILDCARD_RESOURCE_ACTIONS


def reason(action: str) -> str:
    return WILDCARD_RESOURCE_ACTIONS[action]
