"""Every physical and logical name the infrastructure, the orchestrator and the sandbox share.

Names are deterministic (no CloudFormation-generated suffixes) for the resources that code
addresses by name: the release state machine updates functions by name, the CLI finds queues
and topics by name, the sandbox creates the same names in moto.
"""

from __future__ import annotations

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


def stage_id(env: str) -> str:
    """CDK Stage construct id (also the cloud assembly directory `assembly-<Stage>`)."""
    return env.capitalize()


def stack_name(env: str) -> str:
    """CloudFormation stack name per environment."""
    return f"{env}-{MAIN_STACK_NAME}"
