"""The gateway's SQS poller follows its event source mapping's state, as Lambda's poller does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from moto import mock_aws

from orchestrator.gateway.sqs_poller import QueueBinding, SqsPoller


@dataclass
class _Invocation:
    result: Any = None
    failed: bool = False
    function_name: str = "fanout"
    version: str = "1"
    error: Any = None


@dataclass
class _Runtime:
    bodies: list[str] = field(default_factory=list)

    def invoke(self, key: str, alias: str, event: dict[str, Any]) -> _Invocation:
        self.bodies += [record["body"] for record in event["Records"]]
        return _Invocation(result={"batchItemFailures": []})


@mock_aws
def test_poller_consumes_only_while_the_mapping_is_enabled() -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    url = sqs.create_queue(QueueName="preview-events")["QueueUrl"]
    state = {"value": "Disabled"}
    runtime = _Runtime()
    binding = QueueBinding(url, "green", mapping_state=lambda: state["value"])
    poller = SqsPoller(sqs, runtime, [binding], region="eu-west-1", wait_seconds=0)  # type: ignore[arg-type]
    sqs.send_message(QueueUrl=url, MessageBody="e1")

    assert poller.poll_once(binding) == 0
    assert runtime.bodies == []
    message = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["ApproximateReceiveCount"])[
        "Messages"
    ][0]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # the poller never received it
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)

    state["value"] = "Enabled"
    assert poller.poll_once(binding) == 1
    assert runtime.bodies == ["e1"]
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # processed and deleted


@mock_aws
def test_a_batch_received_while_disabling_goes_back_untouched() -> None:
    sqs = boto3.client("sqs", region_name="eu-west-1")
    url = sqs.create_queue(QueueName="preview-events")["QueueUrl"]
    answers = iter(["Enabled", "Disabled"])  # enabled before the receive, disabled when it returns
    runtime = _Runtime()
    binding = QueueBinding(url, "green", mapping_state=lambda: next(answers))
    poller = SqsPoller(sqs, runtime, [binding], region="eu-west-1", wait_seconds=0)  # type: ignore[arg-type]
    sqs.send_message(QueueUrl=url, MessageBody="e2")

    assert poller.poll_once(binding) == 0
    assert runtime.bodies == []
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "e2"  # visible again at once
