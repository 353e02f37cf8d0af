"""Every acknowledged cdk-nag / Control Tower finding of the project, each with its reason.

An entry names a construct path relative to the Stage (the acknowledgment covers that
construct and everything under it), the rule id as the validation report prints it
(`<plugin>::<rule>`), and why the finding is accepted. A path that no longer exists fails
synthesis, so stale acknowledgments cannot linger. Other parts of the infrastructure append
their own entries here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, Stage, Validations
from constructs import IConstruct

from contracts.canary import CANARY_STAGE
from infra.api_construct import STAGE_ALIASES
from infra.iam_allowlist import WILDCARD_RESOURCE_ACTIONS
from infra.orchestration.grants import CANARY_DRAIN_METHODS
from service.catalog import released_keys

NAG = "AwsSolutions::AwsSolutions"
GUARD = "cdk-validator-cfnguard"
STACK = "RealtimeAnalytics"


@dataclass(frozen=True)
class Ack:
    path: str
    rule: str
    reason: str
    # Findings that exist only for one cache engine (the guard's ElastiCache rules key on redis).
    only_for_engine: str | None = None


def _label(key: str) -> str:
    return "".join(part.capitalize() for part in key.replace("-", "_").split("_"))


_FUNCTIONS = [f"{STACK}/Service/{_label(key)}" for key in released_keys()] + [f"{STACK}/Secrets/Rotation"]
_WILDCARD_REASON = (
    "Resource * only for actions that support no resource-level permissions, each listed with AWS's "
    "reason in infra/iam_allowlist.py (" + ", ".join(sorted(WILDCARD_RESOURCE_ACTIONS)) + "); "
    "tests/infra/test_iam_scoping.py fails on any other wildcard resource."
)

ACKNOWLEDGMENTS: list[Ack] = [
    Ack(
        f"{STACK}/Network/CacheNacl",
        f"{NAG}-VPC3",
        "Deliberate second fence around the isolated cache subnets: only the cache port from the "
        "Lambda subnets and replication between cache subnets pass, whatever the security groups say.",
    ),
    Ack(
        f"{STACK}/Cache/AuthToken",
        f"{NAG}-SMG4",
        "Not rotated automatically: changing the cache AUTH token takes ModifyReplicationGroup with "
        "AuthTokenUpdateStrategy ROTATE, then SET once every function uses the new token, a coordinated "
        "operation outside Secrets Manager's rotation steps. The cache is reachable only from the Lambda "
        "security group, behind a NACL, over TLS.",
    ),
    Ack(
        f"{STACK}/Service/Fanout/Role",
        f"{NAG}-IAM5[Action::kms:GenerateDataKey*]",
        "Publishing to the KMS-encrypted alerts topic needs kms:GenerateDataKey* (CDK's "
        "Topic.grantPublish); the statement is scoped to the messaging key only.",
    ),
    Ack(
        f"{STACK}/Custom::VpcRestrictDefaultSGCustomResourceProvider",
        f"{GUARD}::lambda_inside_vpc_check",
        "CDK's provider that strips the default security group's rules runs once at deploy time, "
        "calls only the EC2 API and stores no data; it is not attached to the VPC it is configuring.",
    ),
    *[
        Ack(
            f"{STACK}/Messaging/{queue}Dlq",
            f"{GUARD}::sqs_dlq_check",
            "This queue is itself the dead-letter queue of its event queue; a DLQ of a DLQ would only "
            "move the messages the DLQ alarms already report.",
        )
        for queue in ("Events", "PreviewEvents")
    ],
    *[Ack(f"{path}/Role", f"{NAG}-IAM5[Resource::*]", _WILDCARD_REASON) for path in _FUNCTIONS],
    *[
        Ack(
            f"{path}/Function",
            f"{NAG}-L1",
            "Runtime pinned in configuration (lambdas.python_runtime, python3.12) to the version the "
            "service is tested with and for which AWS publishes the Powertools v3 arm64 layer; "
            "upgrading is a configuration change.",
        )
        for path in _FUNCTIONS
    ],
    Ack(
        f"{STACK}/Cache/ReplicationGroup",
        f"{GUARD}::elasticache_repl_grp_rbac_auth_enabled_check",
        "Redis AUTH chosen over RBAC: one service identity with one set of command needs, AUTH works the "
        "same on Valkey and Redis, and ElastiCache's ROTATE strategy changes tokens without downtime "
        "(infra/cache_construct.py). cdk-nag AwsSolutions-AEC6 requires AUTH; this rule requires RBAC.",
        only_for_engine="redis",
    ),
    # -- WebSocket API, edge (infra/api_construct.py, infra/edge_construct.py) --------------------
    *[
        Ack(
            f"{STACK}/Api/{route}Route",
            rule,
            "WebSocket APIs authorize once, on $connect (Lambda REQUEST authorizer: API key plus the "
            "CloudFront origin header); API Gateway accepts no authorizer on other routes, which only "
            "run on a connection that $connect admitted.",
        )
        for route in ("Default", "Disconnect", "Ping", "Subscribe", "Unsubscribe")
        for rule in (f"{NAG}-APIG4", f"{GUARD}::api_gw_v2_authorization_type_configured_check")
    ],
    Ack(
        f"{STACK}/Api/ApiGatewayCloudWatchRole",
        f"{NAG}-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
        "The account-wide API Gateway logging role (AWS::ApiGateway::Account) must write the execution log "
        "groups API Gateway names itself for every API of the region; AWS's service-role policy is the "
        "documented grant for that role and is assumable only by apigateway.amazonaws.com.",
    ),
    *[
        Ack(
            f"{STACK}/Service/{function}/Role",
            f"{NAG}-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<ApiF1A3B7F9>"
            f"/{stage}/*/@connections/*]",
            "Posting to a client needs execute-api:ManageConnections on `@connections/<connection-id>`, an id "
            "known only at run time; the grant is limited to this API, one stage and the @connections path.",
        )
        for function in ("Fanout", "Messages")
        for stage in STAGE_ALIASES
    ],
    Ack(
        f"{STACK}/Edge/OriginSecret",
        f"{NAG}-SMG4",
        "The origin header value lives in CloudFront's distribution configuration, which CloudFormation "
        "updates only on a stack update; a Secrets Manager rotation alone would make the authorizer refuse "
        "every edge request. Rotation is a runbook step: put a new value, then deploy (the authorizer "
        "re-reads the secret on a mismatch).",
    ),
    *[
        Ack(
            f"{STACK}/Edge/AccessLogs",
            rule,
            "This bucket receives CloudFront's access logs; logging its own accesses would log into itself "
            "or need a bucket per bucket. It is private, TLS-only, KMS-encrypted, versioned and object-locked.",
        )
        for rule in (f"{NAG}-S1", f"{GUARD}::s3_bucket_logging_enabled_check")
    ],
    Ack(
        f"{STACK}/Edge/AccessLogs",
        f"{GUARD}::s3_event_notifications_enabled_check",
        "Nothing consumes log-delivery events; enabling notifications would add CDK's notification custom "
        "resource (a Lambda with a managed policy) for no reader.",
    ),
    Ack(
        f"{STACK}/Edge/Distribution",
        f"{GUARD}::cloudfront_default_root_object_configured_check",
        "The distribution serves only WebSocket upgrades on /live and /preview (the edge function sends a "
        "share of /live to /canary); a default root object would rewrite `/` to an object the WebSocket API "
        "does not have.",
    ),
    Ack(
        f"{STACK}/Edge/Distribution",
        f"{GUARD}::cloudfront_origin_failover_enabled_check",
        "The only origin is the regional WebSocket API; a failover origin would be a second regional "
        "deployment with its own Redis, which the service does not run. Origin groups also never retry a "
        "WebSocket upgrade mid-connection.",
    ),
    Ack(
        f"{STACK}/Edge/Distribution",
        f"{NAG}-CFR1",
        "The service's clients are not limited by country; access is controlled by API keys at $connect.",
    ),
    Ack(
        f"{STACK}/Edge/Distribution",
        f"{NAG}-CFR2",
        "No web ACL yet: a CloudFront web ACL must be created in us-east-1 and its ARN (with a generated id) "
        "crosses regions into this stack, which needs CDK cross-region references (custom resources in both "
        "stacks). EdgeProps.web_acl_arn attaches one when given. Until then: API keys checked at $connect, "
        "the origin header, per-stage throttling and CloudFront's Shield Standard.",
    ),
]


# -- release orchestration (infra/orchestration/) ----------------------------------------------
_ORCH = f"{STACK}/Orchestration"
_RELEASE_TASKS = (
    "ValidateRequest",
    "RecordRelease",
    "DeployGreen",
    "WarmCache",
    "CleanupCache",
    "SyntheticChecks",
    "RequestApproval",
    "SetWeights",
    "CheckAlarms",
    "JudgeCanary",
    "Finalize",
    "Rollback",
    "DrainCanary",
    "AlarmRollback",
)
# Logical ids of the functions whose versions and aliases (`<arn>:*`) roles address; they derive
# from construct paths, which these acknowledgments pin (a moved construct fails synthesis).
_SERVICE_FUNCTION_IDS = (
    "ServiceAuthorizerFunction6FA48037",
    "ServiceConnectFunctionB48E2FD8",
    "ServiceDisconnectFunction7140172B",
    "ServiceMessagesFunctionCCE5C656",
    "ServiceFanoutFunctionFFCF5335",
)
_STATE_MACHINE_TASK_IDS = (
    "OrchestrationTasksValidateRequestFunction07B1C4FF",
    "OrchestrationTasksRecordReleaseFunctionAB049C16",
    "OrchestrationTasksDeployGreenFunctionB7E65D82",
    "OrchestrationTasksWarmCacheFunctionA5C3D2B0",
    "OrchestrationTasksCleanupCacheFunction25DDF097",
    "OrchestrationTasksSyntheticChecksFunction83F9C8CC",
    "OrchestrationTasksRequestApprovalFunction3740932F",
    "OrchestrationTasksSetWeightsFunction246EECEC",
    "OrchestrationTasksCheckAlarmsFunctionA950BA51",
    "OrchestrationTasksJudgeCanaryFunctionBEBCE1E4",
    "OrchestrationTasksFinalizeFunction2498253A",
    "OrchestrationTasksRollbackFunctionF1E2ECF2",
    "OrchestrationTasksDrainCanaryFunctionC6B636BC",
)
ACKNOWLEDGMENTS += [
    *[
        Ack(f"{_ORCH}/Tasks/{task}/Role", f"{NAG}-IAM5[Resource::*]", _WILDCARD_REASON)
        for task in _RELEASE_TASKS
    ],
    *[
        Ack(
            f"{_ORCH}/Tasks/{task}/Function",
            f"{NAG}-L1",
            "Runtime pinned in configuration (lambdas.python_runtime) to the version the release tasks are "
            "tested with and for which AWS publishes the Powertools v3 arm64 layer; upgrading is a configuration "
            "change.",
        )
        for task in _RELEASE_TASKS
    ],
    *[
        Ack(
            f"{_ORCH}/Tasks",
            f"{NAG}-IAM5[Resource::<{function_id}.Arn>:*]",
            "Releases publish versions of this service function and move its `live`/`green` aliases: Lambda "
            "authorizes GetAlias/UpdateAlias/GetFunctionConfiguration(Qualifier) on `<function>:<qualifier>`, "
            "whose version numbers exist only at release time. Scoped to this one function's qualifiers.",
        )
        for function_id in _SERVICE_FUNCTION_IDS
    ],
    *[
        Ack(
            f"{_ORCH}/Release/StateMachine/Role",
            f"{NAG}-IAM5[Resource::<{function_id}.Arn>:*]",
            "CDK's LambdaInvoke grants lambda:InvokeFunction on the task function and its qualifiers (`:*`) so "
            "a versioned or aliased invocation works; limited to this one release task function.",
        )
        for function_id in _STATE_MACHINE_TASK_IDS
    ],
    Ack(f"{_ORCH}/Release/StateMachine/Role", f"{NAG}-IAM5[Resource::*]", _WILDCARD_REASON),
    Ack(
        f"{_ORCH}/Tasks/DeployGreen/Role",
        f"{NAG}-IAM5[Resource::arn:<AWS::Partition>:s3:::{{artifact_bucket}}/service/*]",
        "DeployGreen reads the release's service bundle, whose key (`service/<version>-<sha>.zip`) is chosen "
        "per release: s3:GetObject only, under the artifact bucket's service/ prefix only.",
    ),
    *[
        Ack(
            f"{_ORCH}/Tasks/DrainCanary/Role",
            f"{NAG}-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<ApiF1A3B7F9>"
            f"/{CANARY_STAGE}/{method}/@connections/*]",
            "The canary drain closes (DELETE) the connections of the canary stage, whose ids exist only at run "
            "time: execute-api:ManageConnections on this API's canary stage and that method only.",
        )
        for method in CANARY_DRAIN_METHODS
    ],
    Ack(
        f"{_ORCH}/Tasks/AlarmRollback/Role",
        f"{NAG}-IAM5[Resource::arn:<AWS::Partition>:states:{{region}}:{{account}}:execution:{{environment}}-release:*]",
        "The alarm rollback stops the release execution holding the lock, whose name is the release id "
        "chosen at start time: states:StopExecution only, on executions of the release state machine only.",
    ),
    *[
        Ack(
            f"{_ORCH}/AlarmRollback/Dlq",
            rule,
            "This queue is itself the dead-letter queue of the alarm-rollback rules' Lambda target; a DLQ of a "
            "DLQ would only move the events its depth alarm already reports.",
        )
        for rule in (f"{NAG}-SQS3", f"{GUARD}::sqs_dlq_check")
    ],
]


def _placeholders(stage: Stage) -> dict[str, str]:
    """Values of `{environment}`, `{account}`, `{region}`, `{artifact_bucket}` in environment-specific rules."""
    config = getattr(stage, "config", None)
    if config is None:
        return {}
    deploy = getattr(config, "deploy", None)
    return {
        "environment": config.environment,
        "account": config.account,
        "region": config.region,
        "artifact_bucket": deploy.artifact_bucket_name if deploy else "",
    }


class StaleAcknowledgment(LookupError):
    """An acknowledgment names a construct path that does not exist."""


def _find(stage: Stage, path: str) -> IConstruct | None:
    target: IConstruct | None = stage
    for part in path.split("/"):
        target = target.node.try_find_child(part) if target is not None else None
    return target


def acknowledge(stage: Stage, engine: str) -> None:
    placeholders = _placeholders(stage)
    for ack in ACKNOWLEDGMENTS:
        if ack.only_for_engine and ack.only_for_engine != engine:
            continue
        target = _find(stage, ack.path)
        if target is None:
            raise StaleAcknowledgment(
                f"acknowledgment of {ack.rule}: no construct at {stage.node.id}/{ack.path}"
            )
        rule = ack.rule.format(**placeholders) if "{" in ack.rule else ack.rule
        Validations.of(target).acknowledge(Acknowledgment(id=rule, reason=ack.reason))
    # Operations findings name the account and the environment's resources: built from the config.
    config = getattr(stage, "config", None)
    if config is not None:
        from infra.operations.acknowledgments import operations_acknowledgments

        for path, rule, reason in operations_acknowledgments(config):
            target = _find(stage, path)
            if target is None:
                raise StaleAcknowledgment(f"acknowledgment of {rule}: no construct at {stage.node.id}/{path}")
            Validations.of(target).acknowledge(Acknowledgment(id=rule, reason=reason))
