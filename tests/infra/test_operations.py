"""Operations infrastructure in the synthesized templates: backup bucket, task roles, schedules,
budgets and the DR drill state machine (infra/operations/)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template

from contracts import names
from infra.config import EnvironmentConfig

FUNCTIONS = ("backup", "cost-check", "dr-drill", "dr-verify", "event-path-drill")


def _one(template: Template, kind: str, **properties: Any) -> dict[str, Any]:
    found = template.find_resources(kind, {"Properties": properties} if properties else None)
    assert len(found) == 1, (kind, properties, list(found))
    return next(iter(found.values()))


def _statements_of_role(template: Template, role_name: str) -> list[dict[str, Any]]:
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"RoleName": role_name}})
    [logical] = roles
    statements: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": logical} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements if "Sid" in s}


def test_backup_bucket_encrypted_versioned_tls_only_with_lifecycle(env_template, configs) -> None:
    env, template = env_template
    config: EnvironmentConfig = configs[env]
    bucket = _one(template, "AWS::S3::Bucket", BucketName=names.backup_bucket_name(env, config.account))
    props = bucket["Properties"]
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"] and rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    [lifecycle] = props["LifecycleConfiguration"]["Rules"]
    assert [t["StorageClass"] for t in lifecycle["Transitions"]] == ["STANDARD_IA", "GLACIER_IR"]
    assert lifecycle["ExpirationInDays"] == config.backup.expire_after_days
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert bucket["DeletionPolicy"] == "Retain"
    [policy] = [
        json.dumps(p["Properties"]["PolicyDocument"])
        for logical, p in template.find_resources("AWS::S3::BucketPolicy").items()
        if logical.startswith("OperationsBackupsBucketPolicy")
    ]
    assert '"aws:SecureTransport": "false"' in policy
    # ElastiCache's exporter (canonical user in eu-west-1) may write this group's exports only.
    assert "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353" in policy
    assert f"/{env}-realtime-cache-*" in policy


def test_object_lock_only_where_configured(staging_template, production_template, configs) -> None:
    production = _one(production_template, "AWS::S3::Bucket", BucketName=Match.string_like_regexp("backups"))
    lock = production["Properties"]["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert production["Properties"]["ObjectLockEnabled"] is True
    assert lock == {
        "Mode": configs["production"].backup.object_lock_mode,
        "Days": configs["production"].backup.object_lock_days,
    }
    staging = _one(staging_template, "AWS::S3::Bucket", BucketName=Match.string_like_regexp("backups"))
    assert "ObjectLockConfiguration" not in staging["Properties"]


def test_schedules_from_config_with_dlq_retries_and_no_flexible_window(env_template, configs) -> None:
    env, template = env_template
    config = configs[env]
    schedules = template.find_resources("AWS::Scheduler::Schedule")
    by_name = {s["Properties"]["Name"]: s["Properties"] for s in schedules.values()}
    expected = {
        "backup": config.schedules.backup,
        "cost-check": config.schedules.cost_check,
        "dr-drill": config.schedules.dr_drill,
    }
    assert set(by_name) == {names.schedule_name(env, key) for key in expected}
    for key, expression in expected.items():
        props = by_name[names.schedule_name(env, key)]
        assert props["ScheduleExpression"] == expression
        assert props["ScheduleExpressionTimezone"] == "Etc/UTC"
        assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert props["GroupName"] == names.schedule_group_name(env)
        target = props["Target"]
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
        assert "DeadLetterConfig" in target
    drill = by_name[names.schedule_name(env, "dr-drill")]["Target"]
    assert drill["Arn"]["Ref"].startswith("OperationsDrDrillStateMachine")
    assert json.loads(drill["Input"]) == {"type": "snapshot-restore", "requested_by": "schedule"}
    backup = by_name[names.schedule_name(env, "backup")]["Target"]
    assert backup["Arn"]["Fn::GetAtt"][0].startswith("OperationsTasksBackupFunction")


def test_weekly_drill_in_staging_monthly_in_production(configs) -> None:
    # cron(min hour dom month dow year): a weekday every week vs the first of its kind each month.
    assert configs["staging"].schedules.dr_drill.split()[4] in ("MON", "TUE", "WED", "THU", "FRI")
    assert "#1" in configs["production"].schedules.dr_drill


def test_scheduler_role_invokes_only_its_targets(env_template) -> None:
    env, template = env_template
    role = _one(template, "AWS::IAM::Role", RoleName=f"{names.schedule_group_name(env)}-scheduler")
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"]
    statements = _statements_of_role(template, f"{names.schedule_group_name(env)}-scheduler")
    actions = sorted(
        {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    )
    assert actions == [
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "lambda:InvokeFunction",
        "sqs:SendMessage",
        "states:StartExecution",
    ]
    for statement in statements:
        assert statement["Resource"] != "*"


def test_budgets_daily_and_monthly_notify_operations_topic(env_template, configs) -> None:
    env, template = env_template
    config = configs[env]
    budgets = {
        b["Properties"]["Budget"]["TimeUnit"]: b["Properties"]
        for b in template.find_resources("AWS::Budgets::Budget").values()
    }
    assert set(budgets) == {"DAILY", "MONTHLY"}
    assert budgets["DAILY"]["Budget"]["BudgetLimit"] == {
        "Amount": config.budget.daily_limit_usd,
        "Unit": "USD",
    }
    assert budgets["MONTHLY"]["Budget"]["BudgetLimit"]["Amount"] == config.budget.monthly_usd
    kinds = {
        unit: {n["Notification"]["NotificationType"] for n in b["NotificationsWithSubscribers"]}
        for unit, b in budgets.items()
    }
    # AWS Budgets offers forecast alerts for monthly (not daily) budgets.
    assert kinds == {"DAILY": {"ACTUAL"}, "MONTHLY": {"ACTUAL", "FORECASTED"}}
    for budget in budgets.values():
        for notification in budget["NotificationsWithSubscribers"]:
            [subscriber] = notification["Subscribers"]
            assert subscriber["SubscriptionType"] == "SNS"
            assert subscriber["Address"]["Ref"].startswith("MessagingOperationsTopic")
        assert budget["Budget"]["CostFilters"]["TagKeyValue"] == [
            "user:Project$realtime-analytics",
            f"user:Environment${env}",
        ]
    topic_policies = json.dumps(
        [p["Properties"] for p in template.find_resources("AWS::SNS::TopicPolicy").values()]
    )
    assert '"Service": "budgets.amazonaws.com"' in topic_policies


def test_ops_roles_are_scoped(env_template, configs) -> None:
    env, template = env_template
    config = configs[env]
    account = config.account
    backup = _by_sid(_statements_of_role(template, f"{names.ops_function_name(env, 'backup')}-role"))
    snapshot_resources = json.dumps(backup["SnapshotTheCache"]["Resource"])
    assert f"{account}:snapshot:{env}-realtime-cache-*" in snapshot_resources
    assert f"replicationgroup:{env}-realtime-cache" in snapshot_resources
    assert backup["EncryptBackups"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    }
    drill = _by_sid(_statements_of_role(template, f"{names.ops_function_name(env, 'dr-drill')}-role"))
    created = json.dumps(drill["RestoreIntoTemporaryGroups"]["Resource"])
    assert f"replicationgroup:{names.temporary_group_prefix(env)}*" in created
    # Delete and failover only ever reach temporary groups, never the live one.
    deletable = json.dumps(drill["DrillTemporaryGroups"]["Resource"])
    assert f"{env}-realtime-cache" not in deletable
    assert drill["RecordDrills"]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["drill#*"]}
    }
    cost = _by_sid(_statements_of_role(template, f"{names.ops_function_name(env, 'cost-check')}-role"))
    assert cost["ReadCosts"]["Action"] == "ce:GetCostAndUsage"


def test_ops_functions_environment(env_template, configs) -> None:
    env, template = env_template
    config = configs[env]
    for key in FUNCTIONS:
        fn = _one(template, "AWS::Lambda::Function", FunctionName=names.ops_function_name(env, key))
        variables = fn["Properties"]["Environment"]["Variables"]
        assert variables["ENVIRONMENT"] == env
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}
    backup = _one(template, "AWS::Lambda::Function", FunctionName=names.ops_function_name(env, "backup"))
    variables = backup["Properties"]["Environment"]["Variables"]
    assert variables["BACKUP_RETENTION_DAYS"] == str(config.backup.snapshot_retention_days)
    assert variables["REPLICATION_GROUP_ID"] == f"{env}-realtime-cache"
    assert {"REDIS_HOST", "REDIS_PORT", "REDIS_TLS", "REDIS_AUTH_SECRET_ARN", "OPERATIONS_TOPIC_ARN"} <= set(
        variables
    )
    drill = _one(template, "AWS::Lambda::Function", FunctionName=names.ops_function_name(env, "dr-drill"))
    assert {
        "CACHE_SUBNET_GROUP",
        "CACHE_SECURITY_GROUP_IDS",
        "RELEASE_TABLE_NAME",
        "CACHE_KMS_KEY_ID",
        "BACKUP_BUCKET",
    } <= set(drill["Properties"]["Environment"]["Variables"])


def test_dr_drill_state_machine_standard_traced_logged_and_shares_the_release_lock(env_template) -> None:
    env, template = env_template
    machine = _one(
        template, "AWS::StepFunctions::StateMachine", StateMachineName=names.dr_drill_state_machine_name(env)
    )
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    definition = json.dumps(props["DefinitionString"])
    assert "AcquireDrillLock" in definition and "DeleteTemporaryGroup" in definition
    # The lock item lives in the release table (the same one the release state machine writes).
    assert "OrchestrationReleaseTable" in definition
    log_group = _one(
        template,
        "AWS::Logs::LogGroup",
        LogGroupName=names.state_machine_log_group_name(names.dr_drill_state_machine_name(env)),
    )
    assert "KmsKeyId" in log_group["Properties"]
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert any("dr-drill" in json.dumps(a["Properties"].get("AlarmName", "")) for a in alarms.values())


def test_event_path_drill_state_machine_function_and_scoped_role(env_template) -> None:
    env, template = env_template
    machine = _one(
        template,
        "AWS::StepFunctions::StateMachine",
        StateMachineName=names.event_path_drill_state_machine_name(env),
    )
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD" and props["TracingConfiguration"] == {"Enabled": True}
    definition = json.dumps(props["DefinitionString"])
    assert "AcquireEventPathLock" in definition and "RestoreEventPath" in definition
    assert "OrchestrationReleaseTable" in definition
    fn = _one(
        template, "AWS::Lambda::Function", FunctionName=names.ops_function_name(env, "event-path-drill")
    )
    variables = fn["Properties"]["Environment"]["Variables"]
    assert {
        "PREVIEW_EVENTS_QUEUE_URL",
        "PREVIEW_EVENTS_DLQ_URL",
        "PREVIEW_MAPPING_UUID",
        "FANOUT_FUNCTION_NAME",
        "RELEASE_TABLE_NAME",
        "REDIS_HOST",
        "OPERATIONS_TOPIC_ARN",
    } <= set(variables)
    # The mapping named is the one that feeds fanout:green from preview-events.
    [(mapping_id, mapping)] = template.find_resources(
        "AWS::Lambda::EventSourceMapping",
        {
            "Properties": {
                "EventSourceArn": Match.object_like(
                    {"Fn::GetAtt": Match.array_with([Match.string_like_regexp("PreviewEvents")])}
                ),
            }
        },
    ).items()
    assert variables["PREVIEW_MAPPING_UUID"] == {"Ref": mapping_id}
    assert "Green" in json.dumps(mapping["Properties"]["FunctionName"])
    role = _by_sid(_statements_of_role(template, f"{names.ops_function_name(env, 'event-path-drill')}-role"))
    assert "event-source-mapping:" in json.dumps(role["PauseAndResumePreviewMapping"]["Resource"])
    assert mapping_id in json.dumps(role["PauseAndResumePreviewMapping"]["Resource"])
    assert "sqs:StartMessageMoveTask" in role["DrillPreviewDeadLetterQueue"]["Action"]
    # Only the preview path: the live `events` queue is never named.
    queues = json.dumps(
        [role["DrillPreviewQueue"]["Resource"], role["DrillPreviewDeadLetterQueue"]["Resource"]]
    )
    assert "PreviewEvents" in queues and "MessagingEventsQueue" not in queues
    assert role["ReadGreenSchema"]["Resource"]["Fn::Join"][1][-1] == ":green"
    assert role["RecordDrills"]["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["drill#*"]}
    }
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    assert any(
        "event-path-drill" in json.dumps(a["Properties"].get("AlarmName", "")) for a in alarms.values()
    )
