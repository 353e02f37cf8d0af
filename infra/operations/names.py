"""Physical names of the operations resources (the CLI, the tasks and the tests address them by name)."""

from __future__ import annotations

from infra import constants


def ops_function_name(env: str, key: str) -> str:
    """`<env>-ops-backup`, `-cost-check`, `-dr-drill`, `-dr-verify`, `-event-path-drill`."""
    return f"{env}-ops-{key}"


def backup_bucket_name(env: str, account: str) -> str:
    # Bucket names are global: the account id keeps them unique without a generated suffix.
    return f"{constants.prefix(env)}-backups-{account}"


def dr_drill_state_machine_name(env: str) -> str:
    """The CLI's `drill start` starts `<env>-dr-drill` (orchestrator/commands_ops.py)."""
    return f"{env}-dr-drill"


def event_path_drill_state_machine_name(env: str) -> str:
    return f"{env}-event-path-drill"


def schedule_group_name(env: str) -> str:
    return f"{constants.prefix(env)}-operations"


def schedule_name(env: str, key: str) -> str:
    return f"{constants.prefix(env)}-{key}"


def schedule_dlq_name(env: str) -> str:
    return constants.dlq_name(env, "operations-schedules")


def temporary_group_prefix(env: str) -> str:
    """Temporary replication groups of DR drills: `<env[:4]>-drill-*` (tasks/dr_drill.py:prepare)."""
    return f"{env[:4]}-drill-"


def state_machine_log_group_name(state_machine_name: str) -> str:
    # The /aws/vendedlogs/ prefix keeps the resource policy Step Functions writes under its size limit.
    return f"/aws/vendedlogs/states/{state_machine_name}"


def budget_name(env: str, period: str) -> str:
    return f"{constants.prefix(env)}-{period}"
