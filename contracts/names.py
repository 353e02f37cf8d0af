"""Every physical name the infrastructure, the tasks, the CLI and the sandbox share.

Names are deterministic (no CloudFormation-generated suffixes) for the resources that code
addresses by name: the release state machine updates functions by name, the CLI finds queues,
topics and state machines by name, CheckAlarms expects the guard alarms by name, the sandbox
creates the same names in moto.
"""

from __future__ import annotations

from collections.abc import Iterable

PROJECT = "realtime-analytics"
SERVICE_NAME = "realtime-analytics"
METRICS_NAMESPACE = "RealtimeAnalytics"
MAIN_STACK_NAME = "realtime-analytics-stack"
MAIN_STACK_ID = "RealtimeAnalytics"
ENVIRONMENTS = ("staging", "production")

# Lambda aliases: `live` takes client traffic, `green` is the release candidate (preview stage).
LIVE_ALIAS = "live"
GREEN_ALIAS = "green"

# Redis AUTH secret field read by service/redis_client.py (`token`).
REDIS_AUTH_SECRET_FIELD = "token"  # noqa: S105 - a JSON field name, not a secret
# API key secret field read by the authorizer and written by the rotation Lambda.
API_KEY_SECRET_FIELD = "api_key"  # noqa: S105 - a JSON field name, not a secret

# Code asset layout: the service's own package plus its third-party dependencies.
SERVICE_PACKAGES = ("service",)
ROTATION_HANDLER = "service.handlers.rotate_api_key.handler"


# -- the service ------------------------------------------------------------------------------
def prefix(env: str) -> str:
    return f"{env}-realtime"


def function_name(env: str, key: str) -> str:
    """`<env>-realtime-<key>` for every service function (catalog key)."""
    return f"{prefix(env)}-{key}"


def queue_name(env: str, queue: str) -> str:
    """`<env>-realtime-events`, `<env>-realtime-preview-events`, and their `-dlq` twins."""
    return f"{prefix(env)}-{queue}"


def dlq_name(env: str, queue: str) -> str:
    return f"{prefix(env)}-{queue}-dlq"


def topic_name(env: str, topic: str) -> str:
    """`<env>-realtime-alerts`, `<env>-realtime-operations`."""
    return f"{prefix(env)}-{topic}"


def secret_name(env: str, secret: str) -> str:
    """Secrets Manager names: `<env>/realtime/<secret>` (api-keys, redis-auth)."""
    return f"{env}/realtime/{secret}"


def log_group_name(env: str, key: str) -> str:
    return f"/aws/lambda/{function_name(env, key)}"


def cache_replication_group_id(env: str) -> str:
    # ElastiCache ids: lowercase, at most 40 characters.
    return f"{prefix(env)}-cache"


def kms_alias(env: str, purpose: str) -> str:
    return f"alias/{prefix(env)}-{purpose}"


def rotation_function_name(env: str) -> str:
    return f"{prefix(env)}-rotate-api-key"


def canary_store_name(env: str) -> str:
    """The CloudFront KeyValueStore holding the connection canary's share (contracts/canary.py)."""
    return f"{prefix(env)}-canary"


def canary_router_function_name(env: str) -> str:
    """The CloudFront Function that sends that share of new `live` handshakes to the `canary` stage."""
    return f"{prefix(env)}-canary-router"


def stage_id(env: str) -> str:
    """CDK Stage construct id (also the cloud assembly directory `assembly-<Stage>`)."""
    return env.capitalize()


def stack_name(env: str) -> str:
    """CloudFormation stack name per environment."""
    return f"{env}-{MAIN_STACK_NAME}"


def state_machine_log_group_name(state_machine_name: str) -> str:
    # The /aws/vendedlogs/ prefix keeps the resource policy Step Functions writes under its size limit.
    return f"/aws/vendedlogs/states/{state_machine_name}"


# -- the release orchestration ----------------------------------------------------------------
def release_table_name(env: str) -> str:
    """Locks of the environment (releases and DR drills) and the release history: `<env>-release`."""
    return f"{env}-release"


def release_state_machine_name(env: str) -> str:
    return f"{env}-release"


def release_state_machine_log_group_name(env: str) -> str:
    return state_machine_log_group_name(release_state_machine_name(env))


def task_function_name(env: str, key: str) -> str:
    """`<env>-release-<key>` with dashes (Lambda names allow both; dashes match the service's)."""
    return f"{env}-release-{key.replace('_', '-')}"


def release_topic_name(env: str) -> str:
    """One message per release transition (tasks/notify.py)."""
    return topic_name(env, "releases")


def alarm_rollback_rule_name(env: str) -> str:
    return f"{env}-release-alarm-rollback"


def execution_ended_rule_name(env: str) -> str:
    return f"{env}-release-execution-ended"


def alarm_rollback_dlq_name(env: str) -> str:
    return dlq_name(env, "release-alarm-rollback")


def release_key_alias(env: str) -> str:
    return kms_alias(env, "releases")


# -- the release gate's alarms ----------------------------------------------------------------
def release_alarm_prefix(env: str) -> str:
    """Every alarm of the release gate starts with `<env>-release-` (guards and the composite)."""
    return f"{env}-release-"


def release_guard_alarm_prefix(env: str) -> str:
    return f"{release_alarm_prefix(env)}guard-"


def release_guard_alarm_name(env: str, key: str) -> str:
    """Errors on `<function>:live` of one released service function (catalog key)."""
    return f"{release_guard_alarm_prefix(env)}{key}-errors"


def release_guard_dlq_alarm_name(env: str) -> str:
    """Events dead-lettered by the live fan-out."""
    return f"{release_guard_alarm_prefix(env)}fanout-dlq"


# The canary stage's API Gateway errors (`connections` routing): green's own clients, apart from
# the preview stage's synthetic traffic on the same `green` aliases.
CANARY_GUARD_METRICS = ("IntegrationError", "ExecutionError")


def release_guard_canary_alarm_name(env: str, metric: str) -> str:
    """`<env>-release-guard-canary-integration-errors` / `-execution-errors`."""
    kind = {"IntegrationError": "integration", "ExecutionError": "execution"}[metric]
    return f"{release_guard_alarm_prefix(env)}canary-{kind}-errors"


def release_health_alarm_name(env: str) -> str:
    """The composite of every guard: what the alarm-rollback rule listens to."""
    return f"{release_alarm_prefix(env)}health"


def release_guard_alarm_names(env: str, function_keys: Iterable[str]) -> tuple[str, ...]:
    """The guard alarms a release expects: one per released function, the fan-out DLQ's, and the
    canary stage's API Gateway errors."""
    return (
        *(release_guard_alarm_name(env, key) for key in sorted(function_keys)),
        release_guard_dlq_alarm_name(env),
        *(release_guard_canary_alarm_name(env, metric) for metric in CANARY_GUARD_METRICS),
    )


def release_alarm_names(env: str, function_keys: Iterable[str]) -> tuple[str, ...]:
    """Every alarm CheckAlarms must find: the guards, then the composite."""
    return (*release_guard_alarm_names(env, function_keys), release_health_alarm_name(env))


# -- operations -------------------------------------------------------------------------------
def ops_function_name(env: str, key: str) -> str:
    """`<env>-ops-backup`, `-cost-check`, `-dr-drill`, `-dr-verify`, `-event-path-drill`."""
    return f"{env}-ops-{key}"


def backup_bucket_name(env: str, account: str) -> str:
    # Bucket names are global: the account id keeps them unique without a generated suffix.
    return f"{prefix(env)}-backups-{account}"


def dr_drill_state_machine_name(env: str) -> str:
    """The CLI's `drill start` starts `<env>-dr-drill` (orchestrator/cli/ops.py)."""
    return f"{env}-dr-drill"


def event_path_drill_state_machine_name(env: str) -> str:
    return f"{env}-event-path-drill"


def schedule_group_name(env: str) -> str:
    return f"{prefix(env)}-operations"


def schedule_name(env: str, key: str) -> str:
    return f"{prefix(env)}-{key}"


def schedule_dlq_name(env: str) -> str:
    return dlq_name(env, "operations-schedules")


def temporary_group_prefix(env: str) -> str:
    """Temporary replication groups of DR drills: `<env[:4]>-drill-*` (tasks/dr_drill.py:prepare)."""
    return f"{env[:4]}-drill-"


def budget_name(env: str, period: str) -> str:
    return f"{prefix(env)}-{period}"
