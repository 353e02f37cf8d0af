"""Template assertions for the fan-out's delivery shards: its settings from the configuration and
the least-privilege grant to queue shards back onto its own queues."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template

from contracts import names
from infra.config import EnvironmentConfig


def _fanout(template: Template, env: str) -> tuple[str, dict[str, Any]]:
    for logical, fn in template.find_resources("AWS::Lambda::Function").items():
        if fn["Properties"].get("FunctionName") == names.function_name(env, "fanout"):
            return logical, fn["Properties"]
    raise AssertionError("no fanout function")


def _statements(template: Template, sid: str) -> list[dict[str, Any]]:
    found = []
    for logical, policy in template.find_resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Sid") == sid:
                found.append({**statement, "_policy": logical})
    return found


def _queue_logical(template: Template, env: str, name: str) -> str:
    for logical, queue in template.find_resources("AWS::SQS::Queue").items():
        if queue["Properties"].get("QueueName") == names.queue_name(env, name):
            return logical
    raise AssertionError(f"no queue {name}")


def test_shard_settings_come_from_the_configuration(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    messaging = configs[env].messaging
    _, props = _fanout(template, env)
    variables = props["Environment"]["Variables"]
    assert variables["FANOUT_SHARD_SIZE"] == str(messaging.fanout_shard_size)
    batches = messaging.batch_size if messaging.max_batching_window_seconds else 1
    assert variables["FANOUT_SPLIT_ABOVE"] == str(messaging.fanout_shard_size * batches)
    window = messaging.visibility_timeout_seconds * messaging.dlq_max_receive_count
    assert variables["FANOUT_REDELIVERY_WINDOW_SECONDS"] == str(window)


def test_only_the_fanout_may_send_to_its_own_queues(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    (statement,) = _statements(template, "QueueDeliveryShards")
    assert statement["_policy"].startswith("ServiceFanoutRole")
    assert statement["Action"] == "sqs:SendMessage"
    queues = {resource["Fn::GetAtt"][0] for resource in statement["Resource"]}
    assert queues == {
        _queue_logical(template, env, "events"),
        _queue_logical(template, env, "preview-events"),
    }


def test_the_shard_queues_key_is_granted_for_sending_only(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    (statement,) = _statements(template, "EncryptDeliveryShards")
    assert statement["_policy"].startswith("ServiceFanoutRole")
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    queue = template.find_resources("AWS::SQS::Queue")[_queue_logical(template, env, "events")]
    key = queue["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    assert [r["Fn::GetAtt"][0] for r in resources] == [key]
