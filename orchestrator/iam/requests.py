"""What IAM judges for an API request: action(s), resource ARN(s) and request context.

`checks_for(call)` maps one API operation with its parameters (botocore's shape names, as
moto parses them) to the authorization checks AWS makes, using the IAM action names of the
Service Authorization Reference (Lambda `Invoke` is `lambda:InvokeFunction`, SQS
`SendMessageBatch` is `sqs:SendMessage`, Budgets `DescribeBudgets` is `budgets:ViewBudget` ...).

It also adds the checks AWS makes with the caller's credentials on its behalf: the customer
managed KMS key of an encrypted queue, topic, table, secret or bucket (`kms:GenerateDataKey` to
write, `kms:Decrypt` to read, with `kms:ViaService`). An operation with no mapping yields an
`Unmapped` marker, never an empty list: the enforcer denies it by default so gaps show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from orchestrator.iam.policies import PolicySet


@dataclass(frozen=True)
class Check:
    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)
    on_behalf_of: str = ""  # the service that makes this check with the caller's credentials (KMS)


@dataclass(frozen=True)
class Unmapped:
    service: str
    operation: str

    @property
    def action(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass(frozen=True)
class Call:
    """One API request: boto3 service name, operation name, parameters, where it goes."""

    service: str  # boto3 name: lambda, dynamodb, stepfunctions, cloudwatch, ...
    operation: str  # API name: Invoke, PutItem, DescribeAlarms, ...
    params: Mapping[str, Any]
    region: str
    account_id: str
    partition: str = "aws"

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account_id if account else ''}:{resource}"
        )


# The IAM service prefix of each boto3 service name.
PREFIX: dict[str, str] = {
    "lambda": "lambda",
    "dynamodb": "dynamodb",
    "sqs": "sqs",
    "sns": "sns",
    "s3": "s3",
    "secretsmanager": "secretsmanager",
    "cloudwatch": "cloudwatch",
    "logs": "logs",
    "elasticache": "elasticache",
    "stepfunctions": "states",
    "events": "events",
    "scheduler": "scheduler",
    "ce": "ce",
    "budgets": "budgets",
    "kms": "kms",
    "sts": "sts",
    "xray": "xray",
    "apigatewaymanagementapi": "execute-api",
    "cloudfront-keyvaluestore": "cloudfront-keyvaluestore",
}

Mapper = Callable[[Call, PolicySet | None], list[Check]]


def _secure(context: Mapping[str, str] | None = None) -> dict[str, str]:
    # Every SDK call goes over HTTPS (the sandbox's plain HTTP endpoint stands in for it).
    return {"aws:SecureTransport": "true", **(context or {})}


def _p(call: Call, name: str, default: Any = None) -> Any:
    value = call.params.get(name, default)
    return default if value is None else value


def _star(action: str) -> Mapper:
    return lambda call, _ps: [Check(action, "*", _secure())]


def _kms_on_behalf(
    call: Call, policies: PolicySet | None, resource_arn: str, actions: Sequence[str], service: str
) -> list[Check]:
    if policies is None:
        return []
    key = policies.encryption_key(resource_arn)
    if key is None:
        return []
    context = _secure(
        {"kms:ViaService": f"{service}.{call.region}.amazonaws.com", "kms:CallerAccount": call.account_id}
    )
    return [Check(action, key, context, on_behalf_of=service) for action in actions]


# --------------------------------------------------------------------------------------------
# Lambda
# --------------------------------------------------------------------------------------------


def function_arn(call: Call, name: str, qualifier: str | None = None) -> str:
    """A function name, partial ARN or ARN (any may carry `:qualifier`) as the (qualified) ARN."""
    name = unquote(name)
    if name.startswith("arn:"):
        parts = name.split(":")
        base, qual = ":".join(parts[:7]), (parts[7] if len(parts) > 7 else None)
    else:
        parts = name.split(":")
        if len(parts) >= 3 and parts[1] == "function":  # 123456789012:function:name[:qualifier]
            account, fname = parts[0], parts[2]
            qual = parts[3] if len(parts) > 3 else None
            base = f"arn:{call.partition}:lambda:{call.region}:{account}:function:{fname}"
        else:
            qual = parts[1] if len(parts) > 1 else None
            base = call.arn("lambda", f"function:{parts[0]}")
    qualifier = qualifier or qual
    return f"{base}:{qualifier}" if qualifier and qualifier != "$LATEST" else base


# Operations whose resource is the function ARN with the request's qualifier (alias/version).
_LAMBDA_QUALIFIED = {
    "Invoke": "InvokeFunction",
    "InvokeWithResponseStream": "InvokeFunction",
    "GetFunction": "GetFunction",
    "GetFunctionConfiguration": "GetFunctionConfiguration",
    "GetPolicy": "GetPolicy",
    "AddPermission": "AddPermission",
    "RemovePermission": "RemovePermission",
    "DeleteFunction": "DeleteFunction",
    "GetProvisionedConcurrencyConfig": "GetProvisionedConcurrencyConfig",
    "GetFunctionUrlConfig": "GetFunctionUrlConfig",
}
# Operations on the function itself (alias and version management included).
_LAMBDA_FUNCTION = {
    "InvokeAsync": "InvokeAsync",
    "UpdateFunctionCode": "UpdateFunctionCode",
    "UpdateFunctionConfiguration": "UpdateFunctionConfiguration",
    "PublishVersion": "PublishVersion",
    "ListVersionsByFunction": "ListVersionsByFunction",
    "ListAliases": "ListAliases",
    "CreateAlias": "CreateAlias",
    "GetAlias": "GetAlias",
    "UpdateAlias": "UpdateAlias",
    "DeleteAlias": "DeleteAlias",
    "GetFunctionConcurrency": "GetFunctionConcurrency",
    "PutFunctionConcurrency": "PutFunctionConcurrency",
    "DeleteFunctionConcurrency": "DeleteFunctionConcurrency",
    "GetFunctionCodeSigningConfig": "GetFunctionCodeSigningConfig",
    "GetFunctionEventInvokeConfig": "GetFunctionEventInvokeConfig",
}
_LAMBDA_STAR = {
    "ListFunctions": "ListFunctions",
    "ListEventSourceMappings": "ListEventSourceMappings",
    "GetAccountSettings": "GetAccountSettings",
}


# Operations on one event source mapping (resource `event-source-mapping:<UUID>`).
_LAMBDA_MAPPING = {
    "GetEventSourceMapping": "GetEventSourceMapping",
    "UpdateEventSourceMapping": "UpdateEventSourceMapping",
    "DeleteEventSourceMapping": "DeleteEventSourceMapping",
}


def _lambda(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in _LAMBDA_STAR:
        return [Check(f"lambda:{_LAMBDA_STAR[op]}", "*", _secure())]
    if op in _LAMBDA_MAPPING:
        uuid = _p(call, "UUID")
        if uuid is None:
            return None
        return [
            Check(
                f"lambda:{_LAMBDA_MAPPING[op]}", call.arn("lambda", f"event-source-mapping:{uuid}"), _secure()
            )
        ]
    name = _p(call, "FunctionName")
    if name is None:
        if op in ("ListTags", "TagResource", "UntagResource") and _p(call, "Resource"):
            return [Check(f"lambda:{op}", function_arn(call, str(_p(call, "Resource"))), _secure())]
        return None
    if op in _LAMBDA_QUALIFIED:
        resource = function_arn(call, str(name), _p(call, "Qualifier"))
        return [Check(f"lambda:{_LAMBDA_QUALIFIED[op]}", resource, _secure())]
    if op in _LAMBDA_FUNCTION:
        base = function_arn(call, str(name).split(":")[0] if not str(name).startswith("arn:") else str(name))
        base = ":".join(base.split(":")[:7])
        return [Check(f"lambda:{_LAMBDA_FUNCTION[op]}", base, _secure())]
    return None


# --------------------------------------------------------------------------------------------
# DynamoDB
# --------------------------------------------------------------------------------------------

_DYNAMODB_READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
_DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def table_arn(call: Call, name: str) -> str:
    return name if name.startswith("arn:") else call.arn("dynamodb", f"table/{name}")


def _dynamodb(call: Call, ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    pairs: list[tuple[str, str]] = []  # (action, table ARN or index ARN)
    if op in ("ListTables", "DescribeLimits", "DescribeEndpoints"):
        return [Check(f"dynamodb:{op}", "*", _secure())]
    if op in ("BatchGetItem", "BatchWriteItem"):
        pairs = [(op, table_arn(call, name)) for name in (_p(call, "RequestItems") or {})]
    elif op in ("TransactWriteItems", "TransactGetItems"):
        for item in _p(call, "TransactItems", []):
            for kind, body in item.items():
                pairs.append((_TRANSACT_ACTIONS.get(kind, kind), table_arn(call, str(body.get("TableName")))))
    elif _p(call, "TableName") is not None:
        arn = table_arn(call, str(_p(call, "TableName")))
        index = _p(call, "IndexName")
        pairs = [(op, f"{arn}/index/{index}" if index and op in ("Query", "Scan") else arn)]
    elif _p(call, "ResourceArn") is not None:
        pairs = [(op, str(_p(call, "ResourceArn")))]
    else:
        return None
    checks = [Check(f"dynamodb:{action}", arn, _secure()) for action, arn in pairs]
    if op in _DYNAMODB_READS | _DYNAMODB_WRITES:
        for _action, arn in pairs:
            table = arn.split("/index/")[0]
            checks += _kms_on_behalf(call, ps, table, ["kms:Decrypt"], "dynamodb")
    return _dedupe(checks)


# --------------------------------------------------------------------------------------------
# SQS, SNS
# --------------------------------------------------------------------------------------------

_SQS_BATCH = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def queue_arn(call: Call, url_or_name: str) -> str:
    if url_or_name.startswith("arn:"):
        return url_or_name
    if "://" in url_or_name:
        path = urlparse(url_or_name).path.strip("/").split("/")
        account, name = (path[-2], path[-1]) if len(path) >= 2 else (call.account_id, path[-1])
        return f"arn:{call.partition}:sqs:{call.region}:{account}:{name}"
    return call.arn("sqs", url_or_name)


def _sqs(call: Call, ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op == "ListQueues":
        return [Check("sqs:ListQueues", "*", _secure())]
    if op == "GetQueueUrl":
        owner = _p(call, "QueueOwnerAWSAccountId") or call.account_id
        name = str(_p(call, "QueueName"))
        return [Check("sqs:GetQueueUrl", f"arn:{call.partition}:sqs:{call.region}:{owner}:{name}", _secure())]
    if op == "CreateQueue":
        return [Check("sqs:CreateQueue", call.arn("sqs", str(_p(call, "QueueName"))), _secure())]
    if op == "StartMessageMoveTask":
        # The SQS guide's required permissions for a redrive: these four on the source (the DLQ),
        # SendMessage on the destination; SQS uses the queues' keys on the caller's behalf.
        source = str(_p(call, "SourceArn"))
        checks = [
            Check(f"sqs:{action}", source, _secure())
            for action in ("StartMessageMoveTask", "ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
        ]
        checks += _kms_on_behalf(call, ps, source, ["kms:Decrypt"], "sqs")
        destination = _p(call, "DestinationArn")
        if destination:
            checks.append(Check("sqs:SendMessage", str(destination), _secure()))
            checks += _kms_on_behalf(call, ps, str(destination), ["kms:GenerateDataKey"], "sqs")
        return checks
    if op == "ListMessageMoveTasks":
        return [Check("sqs:ListMessageMoveTasks", str(_p(call, "SourceArn")), _secure())]
    if op == "CancelMessageMoveTask":
        # The task handle names the source queue only in AWS's opaque encoding.
        return [Check("sqs:CancelMessageMoveTask", "*", _secure())]
    url = _p(call, "QueueUrl")
    if url is None:
        return None
    arn = queue_arn(call, str(url))
    checks = [Check(f"sqs:{_SQS_BATCH.get(op, op)}", arn, _secure())]
    if op in ("SendMessage", "SendMessageBatch"):
        checks += _kms_on_behalf(call, ps, arn, ["kms:GenerateDataKey"], "sqs")
    elif op == "ReceiveMessage":
        checks += _kms_on_behalf(call, ps, arn, ["kms:Decrypt"], "sqs")
    return checks


def _sns(call: Call, ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in ("ListTopics", "ListSubscriptions"):
        return [Check(f"sns:{op}", "*", _secure())]
    if op == "CreateTopic":
        return [Check("sns:CreateTopic", call.arn("sns", str(_p(call, "Name"))), _secure())]
    if op in ("Unsubscribe", "GetSubscriptionAttributes", "SetSubscriptionAttributes"):
        subscription = str(_p(call, "SubscriptionArn", ""))
        return [Check(f"sns:{op}", subscription.rsplit(":", 1)[0] or "*", _secure())]
    topic = _p(call, "TopicArn") or _p(call, "TargetArn") or _p(call, "ResourceArn")
    if topic is None:
        return None
    action = "Publish" if op in ("Publish", "PublishBatch") else op
    checks = [Check(f"sns:{action}", str(topic), _secure())]
    if action == "Publish":
        checks += _kms_on_behalf(call, ps, str(topic), ["kms:GenerateDataKey", "kms:Decrypt"], "sns")
    return checks


# --------------------------------------------------------------------------------------------
# S3 (operations named as botocore names them)
# --------------------------------------------------------------------------------------------

_S3_OBJECT = {
    "GetObject": "GetObject",
    "HeadObject": "GetObject",
    "PutObject": "PutObject",
    "DeleteObject": "DeleteObject",
    "GetObjectTagging": "GetObjectTagging",
    "PutObjectTagging": "PutObjectTagging",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "AbortMultipartUpload": "AbortMultipartUpload",
}
_S3_BUCKET = {
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "GetBucketLocation": "GetBucketLocation",
    "GetBucketPolicy": "GetBucketPolicy",
    "DeleteObjects": "DeleteObject",
    "CreateBucket": "CreateBucket",
    "DeleteBucket": "DeleteBucket",
    "GetBucketVersioning": "GetBucketVersioning",
    "GetBucketEncryption": "GetEncryptionConfiguration",
}


def _s3(call: Call, ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op == "ListBuckets":
        return [Check("s3:ListAllMyBuckets", "*", _secure())]
    bucket = _p(call, "Bucket")
    if bucket is None:
        return None
    bucket_arn = f"arn:{call.partition}:s3:::{bucket}"
    if op in _S3_BUCKET:
        return [Check(f"s3:{_S3_BUCKET[op]}", bucket_arn, _secure())]
    if op == "CopyObject":
        source = unquote(str(_p(call, "CopySource", ""))).lstrip("/").split("?")[0]
        object_arn = f"{bucket_arn}/{_p(call, 'Key')}"
        checks = [
            Check("s3:GetObject", f"arn:{call.partition}:s3:::{source}", _secure()),
            Check("s3:PutObject", object_arn, _secure()),
        ]
        checks += _kms_on_behalf(call, ps, f"arn:{call.partition}:s3:::{source}", ["kms:Decrypt"], "s3")
        checks += _kms_on_behalf(call, ps, object_arn, ["kms:GenerateDataKey"], "s3")
        return checks
    if op in _S3_OBJECT and _p(call, "Key") is not None:
        object_arn = f"{bucket_arn}/{_p(call, 'Key')}"
        action = _S3_OBJECT[op]
        checks = [Check(f"s3:{action}", object_arn, _secure())]
        if action == "PutObject":
            checks += _kms_on_behalf(call, ps, object_arn, ["kms:GenerateDataKey"], "s3")
        elif action == "GetObject" and op == "GetObject":
            checks += _kms_on_behalf(call, ps, object_arn, ["kms:Decrypt"], "s3")
        return checks
    return None


# --------------------------------------------------------------------------------------------
# Secrets Manager, KMS, STS
# --------------------------------------------------------------------------------------------


def secret_arn(call: Call, ps: PolicySet | None, secret_id: str) -> str:
    """The template's ARN of a secret named by name or by (moto's) ARN."""
    if secret_id.startswith("arn:"):
        name = secret_id.split(":secret:", 1)[-1]
        base = name.rsplit("-", 1)[0] if len(name.rsplit("-", 1)[-1]) == 6 else name
        if ps is not None and base in ps.secrets:
            return ps.secrets[base]
        return secret_id
    if ps is not None and secret_id in ps.secrets:
        return ps.secrets[secret_id]
    return call.arn("secretsmanager", f"secret:{secret_id}")


_SECRETS_DECRYPT = {"GetSecretValue", "BatchGetSecretValue"}
_SECRETS_ENCRYPT = {"PutSecretValue", "UpdateSecret", "RotateSecret"}


def _secretsmanager(call: Call, ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in ("ListSecrets", "GetRandomPassword"):
        return [Check(f"secretsmanager:{op}", "*", _secure())]
    if op == "CreateSecret":
        return [Check("secretsmanager:CreateSecret", secret_arn(call, ps, str(_p(call, "Name"))), _secure())]
    secret_id = _p(call, "SecretId")
    if secret_id is None:
        return None
    arn = secret_arn(call, ps, str(secret_id))
    checks = [Check(f"secretsmanager:{op}", arn, _secure())]
    if op in _SECRETS_DECRYPT:
        checks += _kms_on_behalf(call, ps, arn, ["kms:Decrypt"], "secretsmanager")
    elif op in _SECRETS_ENCRYPT:
        checks += _kms_on_behalf(call, ps, arn, ["kms:GenerateDataKey"], "secretsmanager")
    return checks


def key_arn(call: Call, ps: PolicySet | None, key_id: str) -> str:
    if key_id.startswith("arn:") and ":alias/" not in key_id:
        return key_id
    if key_id.startswith("alias/") or ":alias/" in key_id:
        alias_arn = key_id if key_id.startswith("arn:") else call.arn("kms", key_id)
        return ps.key_aliases.get(alias_arn, alias_arn) if ps is not None else alias_arn
    return call.arn("kms", f"key/{key_id}")


def _kms(call: Call, ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in ("ListKeys", "ListAliases", "CreateKey", "GenerateRandom"):
        return [Check(f"kms:{op}", "*", _secure())]
    key_id = _p(call, "KeyId") or _p(call, "TargetKeyId")
    if key_id is None:
        # Decrypt without KeyId: the key comes from the ciphertext, which the sandbox does not parse.
        return [Check(f"kms:{op}", "*", _secure())] if op == "Decrypt" else None
    return [Check(f"kms:{op}", key_arn(call, ps, str(key_id)), _secure())]


def _sts(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    if call.operation == "GetCallerIdentity":
        return []  # AWS allows it whatever the policies say
    if call.operation == "AssumeRole":
        return [Check("sts:AssumeRole", str(_p(call, "RoleArn")), _secure())]
    return None


# --------------------------------------------------------------------------------------------
# CloudWatch, Logs, X-Ray, Cost Explorer, Budgets
# --------------------------------------------------------------------------------------------


def alarm_arn(call: Call, name: str) -> str:
    return call.arn("cloudwatch", f"alarm:{name}")


_CW_STAR = {
    "GetMetricStatistics",
    "GetMetricData",
    "ListMetrics",
    "DescribeAlarmsForMetric",
    "ListDashboards",
    "DescribeAnomalyDetectors",
}
_CW_ALARMS = {"DeleteAlarms", "EnableAlarmActions", "DisableAlarmActions", "DescribeAlarmHistory"}


def _cloudwatch(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in _CW_STAR:
        return [Check(f"cloudwatch:{op}", "*", _secure())]
    if op == "PutMetricData":
        return [
            Check(
                "cloudwatch:PutMetricData", "*", _secure({"cloudwatch:namespace": str(_p(call, "Namespace"))})
            )
        ]
    if op == "DescribeAlarms":
        names = _p(call, "AlarmNames") or []
        if names:
            return [Check("cloudwatch:DescribeAlarms", alarm_arn(call, str(n)), _secure()) for n in names]
        prefix = _p(call, "AlarmNamePrefix")
        resource = alarm_arn(call, f"{prefix}*") if prefix else "*"
        return [Check("cloudwatch:DescribeAlarms", resource, _secure())]
    if op in ("PutMetricAlarm", "PutCompositeAlarm", "SetAlarmState"):
        return [Check(f"cloudwatch:{op}", alarm_arn(call, str(_p(call, "AlarmName"))), _secure())]
    if op in _CW_ALARMS:
        names = _p(call, "AlarmNames") or ([_p(call, "AlarmName")] if _p(call, "AlarmName") else [])
        if not names:
            return [Check(f"cloudwatch:{op}", "*", _secure())]
        return [Check(f"cloudwatch:{op}", alarm_arn(call, str(n)), _secure()) for n in names]
    if op in ("GetDashboard", "PutDashboard"):
        name = str(_p(call, "DashboardName"))
        return [
            Check(f"cloudwatch:{op}", call.arn("cloudwatch", f"dashboard/{name}", region=False), _secure())
        ]
    if op == "DeleteDashboards":
        return [
            Check(
                "cloudwatch:DeleteDashboards",
                call.arn("cloudwatch", f"dashboard/{n}", region=False),
                _secure(),
            )
            for n in _p(call, "DashboardNames", [])
        ]
    return None


def log_group_arn(call: Call, group: str, stream: str | None = None) -> str:
    if stream is None:
        return call.arn("logs", f"log-group:{group}")
    return call.arn("logs", f"log-group:{group}:log-stream:{stream}")


def _logs(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in ("DescribeLogGroups", "DescribeQueries", "DescribeDestinations"):
        return [Check(f"logs:{op}", "*", _secure())]
    group = _p(call, "logGroupName")
    if group is None:
        identifier = _p(call, "logGroupIdentifier")
        if identifier is None:
            return None
        group = str(identifier).split(":log-group:")[-1].removesuffix(":*")
    if op in ("PutLogEvents", "GetLogEvents"):
        return [
            Check(f"logs:{op}", log_group_arn(call, str(group), str(_p(call, "logStreamName"))), _secure())
        ]
    if op == "CreateLogStream":
        return [
            Check(
                "logs:CreateLogStream",
                log_group_arn(call, str(group), str(_p(call, "logStreamName"))),
                _secure(),
            )
        ]
    return [Check(f"logs:{op}", log_group_arn(call, str(group)), _secure())]


def _budgets(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    account = str(_p(call, "AccountId", call.account_id))
    name = _p(call, "BudgetName")
    resource = f"arn:{call.partition}:budgets::{account}:budget/{name if name else '*'}"
    if op in (
        "DescribeBudget",
        "DescribeBudgets",
        "DescribeBudgetPerformanceHistory",
        "DescribeNotificationsForBudget",
    ):
        return [Check("budgets:ViewBudget", resource, _secure())]
    if op in ("CreateBudget", "UpdateBudget", "DeleteBudget", "CreateNotification", "DeleteNotification"):
        if op == "CreateBudget":
            budget = _p(call, "Budget") or {}
            resource = f"arn:{call.partition}:budgets::{account}:budget/{budget.get('BudgetName', '*')}"
        return [Check("budgets:ModifyBudget", resource, _secure())]
    return None


# --------------------------------------------------------------------------------------------
# ElastiCache
# --------------------------------------------------------------------------------------------


def _elasticache(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation

    def arn(kind: str, name: Any) -> str:
        return call.arn("elasticache", f"{kind}:{name}")

    group, snapshot = _p(call, "ReplicationGroupId"), _p(call, "SnapshotName")
    checks: list[Check] = []
    if op == "DescribeReplicationGroups":
        checks.append(Check(f"elasticache:{op}", arn("replicationgroup", group) if group else "*", _secure()))
    elif op == "DescribeSnapshots":
        resource = arn("snapshot", snapshot) if snapshot else "*"
        checks.append(Check(f"elasticache:{op}", resource, _secure()))
    elif op in (
        "DescribeCacheClusters",
        "DescribeCacheParameterGroups",
        "DescribeCacheSubnetGroups",
        "DescribeEvents",
    ):
        checks.append(Check(f"elasticache:{op}", "*", _secure()))
    elif op == "CreateSnapshot":
        checks.append(Check(f"elasticache:{op}", arn("snapshot", snapshot), _secure()))
        if group:
            checks.append(Check(f"elasticache:{op}", arn("replicationgroup", group), _secure()))
        if _p(call, "CacheClusterId"):
            checks.append(Check(f"elasticache:{op}", arn("cluster", _p(call, "CacheClusterId")), _secure()))
    elif op == "CopySnapshot":
        checks.append(Check(f"elasticache:{op}", arn("snapshot", _p(call, "SourceSnapshotName")), _secure()))
        checks.append(Check(f"elasticache:{op}", arn("snapshot", _p(call, "TargetSnapshotName")), _secure()))
    elif op == "DeleteSnapshot":
        checks.append(Check(f"elasticache:{op}", arn("snapshot", snapshot), _secure()))
    elif op in ("CreateReplicationGroup", "ModifyReplicationGroup", "DeleteReplicationGroup", "TestFailover"):
        checks.append(Check(f"elasticache:{op}", arn("replicationgroup", group), _secure()))
        for param, kind in (
            ("SnapshotName", "snapshot"),
            ("FinalSnapshotIdentifier", "snapshot"),
            ("CacheParameterGroupName", "parametergroup"),
            ("CacheSubnetGroupName", "subnetgroup"),
        ):
            if _p(call, param):
                checks.append(Check(f"elasticache:{op}", arn(kind, _p(call, param)), _secure()))
    elif op in ("ListTagsForResource", "AddTagsToResource", "RemoveTagsFromResource"):
        checks.append(Check(f"elasticache:{op}", str(_p(call, "ResourceName")), _secure()))
    else:
        return None
    return checks


# --------------------------------------------------------------------------------------------
# Step Functions, EventBridge, Scheduler, API Gateway management
# --------------------------------------------------------------------------------------------

_SFN_MACHINE = {
    "StartExecution",
    "StartSyncExecution",
    "DescribeStateMachine",
    "ListExecutions",
    "UpdateStateMachine",
    "DeleteStateMachine",
}
_SFN_EXECUTION = {"DescribeExecution", "StopExecution", "GetExecutionHistory", "RedriveExecution"}
_SFN_STAR = {"ListStateMachines", "SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat", "ListActivities"}


def _stepfunctions(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in _SFN_STAR:
        return [Check(f"states:{op}", "*", _secure())]
    if op == "CreateStateMachine":
        name = str(_p(call, "name"))
        checks = [Check("states:CreateStateMachine", call.arn("states", f"stateMachine:{name}"), _secure())]
        if _p(call, "roleArn"):
            checks.append(
                Check(
                    "iam:PassRole",
                    str(_p(call, "roleArn")),
                    _secure({"iam:PassedToService": "states.amazonaws.com"}),
                )
            )
        return checks
    if op in _SFN_MACHINE and _p(call, "stateMachineArn"):
        return [Check(f"states:{op}", str(_p(call, "stateMachineArn")), _secure())]
    if op in _SFN_EXECUTION and _p(call, "executionArn"):
        return [Check(f"states:{op}", str(_p(call, "executionArn")), _secure())]
    if op == "DescribeStateMachineForExecution" and _p(call, "executionArn"):
        return [Check(f"states:{op}", str(_p(call, "executionArn")), _secure())]
    return None


def _events(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op == "PutEvents":
        buses = {str(e.get("EventBusName") or "default") for e in _p(call, "Entries", [])} or {"default"}
        return [
            Check(
                "events:PutEvents",
                b if b.startswith("arn:") else call.arn("events", f"event-bus/{b}"),
                _secure(),
            )
            for b in sorted(buses)
        ]
    if op in ("ListRules", "ListEventBuses"):
        return [Check(f"events:{op}", "*", _secure())]
    rule = _p(call, "Name") or _p(call, "Rule")
    if rule is None:
        return None
    bus = _p(call, "EventBusName")
    path = f"rule/{bus}/{rule}" if bus and bus != "default" else f"rule/{rule}"
    return [
        Check(
            f"events:{op}", str(rule) if str(rule).startswith("arn:") else call.arn("events", path), _secure()
        )
    ]


def _scheduler(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    op = call.operation
    if op in ("ListSchedules", "ListScheduleGroups"):
        return [Check(f"scheduler:{op}", "*", _secure())]
    name = _p(call, "Name")
    if name is None:
        return None
    if op in ("GetScheduleGroup", "CreateScheduleGroup", "DeleteScheduleGroup"):
        return [Check(f"scheduler:{op}", call.arn("scheduler", f"schedule-group/{name}"), _secure())]
    group = _p(call, "GroupName") or "default"
    checks = [Check(f"scheduler:{op}", call.arn("scheduler", f"schedule/{group}/{name}"), _secure())]
    role = (_p(call, "Target") or {}).get("RoleArn")
    if op in ("CreateSchedule", "UpdateSchedule") and role:
        checks.append(
            Check("iam:PassRole", str(role), _secure({"iam:PassedToService": "scheduler.amazonaws.com"}))
        )
    return checks


# CloudFront KeyValueStore: every action on the store (resource type `key-value-store`,
# arn:aws:cloudfront::<account>:key-value-store/<id>, no region), named like the operation.
_KEYVALUESTORE = {"DescribeKeyValueStore", "GetKey", "ListKeys", "PutKey", "DeleteKey", "UpdateKeys"}


def _keyvaluestore(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    arn = _p(call, "KvsARN")
    if call.operation not in _KEYVALUESTORE or not arn:
        return None
    return [Check(f"cloudfront-keyvaluestore:{call.operation}", unquote(str(arn)), _secure())]


# The `@connections` operations and the HTTP method each is (the method is in the route's ARN).
CONNECTION_OPERATIONS = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}


def manage_connections_check(call: Call, api_id: str, stage: str, connection_id: str) -> Check:
    """`@connections` requests: execute-api:ManageConnections on the connection's route ARN."""
    method = CONNECTION_OPERATIONS.get(call.operation, "POST")
    resource = call.arn("execute-api", f"{api_id}/{stage}/{method}/@connections/{connection_id}")
    return Check("execute-api:ManageConnections", resource, _secure())


def _connections(call: Call, _ps: PolicySet | None) -> list[Check] | None:
    # The API id and the stage are in the endpoint (https://<api>.execute-api.../<stage>), not in
    # the operation's parameters: whoever judges the request passes them as ApiId and Stage.
    api_id, stage, connection_id = _p(call, "ApiId"), _p(call, "Stage"), _p(call, "ConnectionId")
    if call.operation not in CONNECTION_OPERATIONS:
        return None
    if not (api_id and stage and connection_id):
        return None
    return [manage_connections_check(call, str(api_id), str(stage), str(connection_id))]


_MAPPERS: dict[str, Callable[[Call, PolicySet | None], list[Check] | None]] = {
    "lambda": _lambda,
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "sns": _sns,
    "s3": _s3,
    "secretsmanager": _secretsmanager,
    "cloudwatch": _cloudwatch,
    "logs": _logs,
    "elasticache": _elasticache,
    "stepfunctions": _stepfunctions,
    "events": _events,
    "scheduler": _scheduler,
    "budgets": _budgets,
    "kms": _kms,
    "sts": _sts,
    "cloudfront-keyvaluestore": _keyvaluestore,
    "apigatewaymanagementapi": _connections,
}
# Services whose actions are all "*"-only (no resource-level permissions).
_STAR_ONLY = {"ce", "xray"}


def checks_for(call: Call, policies: PolicySet | None = None) -> list[Check] | Unmapped:
    """The checks AWS makes for `call`, or Unmapped when the sandbox has no mapping for it."""
    if call.service in _STAR_ONLY:
        return [Check(f"{PREFIX[call.service]}:{call.operation}", "*", _secure())]
    mapper = _MAPPERS.get(call.service)
    checks = mapper(call, policies) if mapper is not None else None
    if checks is None:
        return Unmapped(PREFIX.get(call.service, call.service), call.operation)
    return checks


def _dedupe(checks: list[Check]) -> list[Check]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for check in checks:
        if (check.action, check.resource) not in seen:
            seen.add((check.action, check.resource))
            unique.append(check)
    return unique
