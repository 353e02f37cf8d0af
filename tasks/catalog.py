"""Every Lambda task of the release orchestration: the one list infra and the sandbox read.

`key` names the function (`contracts.names.task_function_name`: `<env>-release-<key>` in AWS) and the state machine's reference to
it; `handler` is the dotted path inside the task bundle. `needs_vpc` marks tasks that reach
Redis or the WebSocket API from inside the VPC; `permissions` names the grants infra gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Permission = Literal[
    "table_read",
    "table_write",
    "topic_publish",
    "service_read",
    "service_deploy",
    "service_aliases",
    "artifact_read",
    "alarms_read",
    "metrics_read",
    "metrics_judge",
    "execution_stop",
    "redis",
    "synthetic",
    "canary_store",
    "canary_drain",
    "drain_invoke",
]


@dataclass(frozen=True)
class TaskFunction:
    key: str
    handler: str
    description: str
    timeout_seconds: int
    memory_mb: int
    needs_vpc: bool
    permissions: tuple[Permission, ...]


TASKS: tuple[TaskFunction, ...] = (
    TaskFunction(
        "validate_request",
        "tasks.validate_request.handler",
        "ValidateRequest: validates the release request again (StartExecution can bypass the CLI)",
        30,
        256,
        False,
        (),
    ),
    TaskFunction(
        "record_release",
        "tasks.release_record.handler",
        "RecordReleaseStarted / RecordReleaseAborted: writes the release record, its audit events and an abort outcome",
        30,
        256,
        False,
        ("table_read", "table_write", "topic_publish"),
    ),
    TaskFunction(
        "deploy_green",
        "tasks.deploy_green.handler",
        "DeployGreen: publishes the artifact as a version of every service function, points green",
        600,
        512,
        False,
        (
            "service_read",
            "service_deploy",
            "service_aliases",
            "artifact_read",
            "table_write",
            "topic_publish",
        ),
    ),
    TaskFunction(
        "warm_cache",
        "tasks.warm_cache.handler",
        "WarmCache: copies blue's cache namespace into green's, one cursor batch per call",
        300,
        512,
        True,
        ("redis",),
    ),
    TaskFunction(
        "cleanup_cache",
        "tasks.warm_cache.cleanup_handler",
        "CleanUpGreenCache: deletes green's (or a dry run's scratch) cache namespace",
        300,
        256,
        True,
        ("redis",),
    ),
    TaskFunction(
        "synthetic_checks",
        "tasks.synthetic_checks.handler",
        "SyntheticChecks: real WebSocket clients against the preview stage (green)",
        300,
        512,
        True,
        ("synthetic",),
    ),
    TaskFunction(
        "request_approval",
        "tasks.approval.handler",
        "ApprovalGate: stores the task token and notifies the approve/reject commands",
        30,
        256,
        False,
        ("table_write", "topic_publish"),
    ),
    TaskFunction(
        "set_weights",
        "tasks.set_weights.handler",
        "SetWeights: routes the step's share of every live alias to green, in lockstep",
        120,
        256,
        False,
        ("service_aliases", "canary_store", "table_read", "table_write", "topic_publish"),
    ),
    TaskFunction(
        "check_alarms",
        "tasks.check_alarms.handler",
        "CheckAlarms: release-guard alarms, the composite, and green's invocation count",
        60,
        256,
        False,
        ("alarms_read", "metrics_read"),
    ),
    TaskFunction(
        "judge_canary",
        "tasks.judge_canary.handler",
        "JudgeCanary: green against blue over the bake (error-rate test, p99 ratio), verdict recorded",
        60,
        256,
        False,
        ("metrics_judge", "table_write", "topic_publish"),
    ),
    TaskFunction(
        "finalize",
        "tasks.finalize.handler",
        "Finalize: every live alias on green alone, the canary share 0, outcome recorded and notified",
        120,
        256,
        False,
        ("service_aliases", "canary_store", "table_read", "table_write", "topic_publish"),
    ),
    TaskFunction(
        "rollback",
        "tasks.rollback.handler",
        "Rollback: every live and green alias back on blue, the canary share 0, outcome recorded and notified",
        120,
        256,
        False,
        ("service_read", "service_aliases", "canary_store", "table_read", "table_write", "topic_publish"),
    ),
    TaskFunction(
        "drain_canary",
        "tasks.drain_canary.handler",
        "DrainCanary: closes every connection on the canary stage so its clients reconnect to blue",
        300,
        256,
        True,
        ("redis", "canary_drain", "table_write"),
    ),
    TaskFunction(
        "alarm_rollback",
        "tasks.alarm_rollback.handler",
        "Alarm rollback: on a release-guard ALARM, blue takes all traffic back and the release stops",
        # Room for the canary drain it awaits in `connections` routing (DrainCanary: 300 s at most).
        330,
        256,
        False,
        (
            "service_read",
            "service_aliases",
            "canary_store",
            "drain_invoke",
            "table_read",
            "table_write",
            "topic_publish",
            "execution_stop",
        ),
    ),
)


def by_key(key: str) -> TaskFunction:
    for task in TASKS:
        if task.key == key:
            return task
    raise KeyError(f"no release task {key!r}; known: {', '.join(t.key for t in TASKS)}")
