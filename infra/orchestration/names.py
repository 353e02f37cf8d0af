"""Physical names of the release orchestration's resources (the CLI and tasks address them by name)."""

from __future__ import annotations

from infra import constants


def release_table_name(env: str) -> str:
    """Locks of the environment (releases and DR drills) and the release history: `<env>-release`."""
    return f"{env}-release"


def release_state_machine_name(env: str) -> str:
    return f"{env}-release"


def release_topic_name(env: str) -> str:
    """One message per release transition (tasks/notify.py)."""
    return constants.topic_name(env, "releases")


def alarm_rollback_rule_name(env: str) -> str:
    return f"{env}-release-alarm-rollback"


def execution_ended_rule_name(env: str) -> str:
    return f"{env}-release-execution-ended"


def alarm_rollback_dlq_name(env: str) -> str:
    return constants.dlq_name(env, "release-alarm-rollback")


def release_key_alias(env: str) -> str:
    return constants.kms_alias(env, "releases")


def state_machine_log_group_name(env: str) -> str:
    # The /aws/vendedlogs/ prefix keeps the resource policy Step Functions writes under its size limit.
    return f"/aws/vendedlogs/states/{release_state_machine_name(env)}"
