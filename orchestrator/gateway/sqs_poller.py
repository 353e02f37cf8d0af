"""The event source mappings of the sandbox: SQS queue -> fan-out through one alias.

Like Lambda's SQS poller: long-poll up to `batch_size` messages, invoke the function with an
SQS event, delete the records that succeeded and leave the failed ones (the function reports
them in `batchItemFailures`; a failed invocation leaves the whole batch), so they come back
after the visibility timeout and reach the DLQ through the queue's redrive policy.

A binding may follow its event source mapping's state (`mapping_state`, e.g. GetEventSourceMapping
in moto): while the mapping is not `Enabled` nothing is received, and a batch received as it
was being disabled is given back untouched (visibility 0), as a stopped poller leaves the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.gateway.runtime import LambdaRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueBinding:
    queue_url: str
    alias: str
    function_key: str = "fanout"
    batch_size: int = 10
    # The mapping's current state ("Enabled", "Disabled", ...); None: always enabled.
    mapping_state: Callable[[], str] | None = None

    def enabled(self) -> bool:
        return self.mapping_state is None or self.mapping_state() == "Enabled"


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    records = []
    for message in messages:
        attributes = {
            name.replace("MessageAttribute", ""): {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": attributes,
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


class SqsPoller:
    """One thread per binding; `poll_once` is the unit the threads repeat (tests call it)."""

    def __init__(
        self,
        sqs: Any,
        runtime: LambdaRuntime,
        bindings: list[QueueBinding],
        *,
        region: str,
        wait_seconds: int = 1,
    ) -> None:
        self._sqs = sqs
        self._runtime = runtime
        self._bindings = bindings
        self._region = region
        self._wait = wait_seconds
        self._arns: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.invocations = 0
        self.failed_invocations = 0

    def _arn(self, queue_url: str) -> str:
        if queue_url not in self._arns:
            attrs = self._sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
            self._arns[queue_url] = attrs["Attributes"]["QueueArn"]
        return self._arns[queue_url]

    def poll_once(self, binding: QueueBinding, wait_seconds: int | None = None) -> int:
        """Receive one batch and process it; returns how many messages were processed."""
        if not binding.enabled():
            return 0
        answer = self._sqs.receive_message(
            QueueUrl=binding.queue_url,
            MaxNumberOfMessages=binding.batch_size,
            WaitTimeSeconds=self._wait if wait_seconds is None else wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages") or []
        if not messages:
            return 0
        if not binding.enabled():  # disabled while receiving: the batch goes back as it came
            self._sqs.change_message_visibility_batch(
                QueueUrl=binding.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(messages)
                ],
            )
            return 0
        event = sqs_event(messages, self._arn(binding.queue_url), self._region)
        invocation = self._runtime.invoke(binding.function_key, binding.alias, event)
        self.invocations += 1
        if invocation.failed:
            self.failed_invocations += 1
            log.warning(
                "%s:%s (version %s) failed a batch of %d: %s",
                invocation.function_name,
                binding.alias,
                invocation.version,
                len(messages),
                invocation.error,
            )
            return len(messages)
        failed = {
            item.get("itemIdentifier")
            for item in (invocation.result or {}).get("batchItemFailures", [])
            if isinstance(item, dict)
        }
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if done:
            self._sqs.delete_message_batch(QueueUrl=binding.queue_url, Entries=done)
        return len(messages)

    def _run(self, binding: QueueBinding) -> None:
        while not self._stop.is_set():
            try:
                if not binding.enabled():
                    self._stop.wait(0.2)
                    continue
                self.poll_once(binding)
            except Exception:  # noqa: BLE001 - keep polling, as Lambda's poller does
                log.exception("polling %s failed", binding.queue_url)
                self._stop.wait(1.0)

    def start(self) -> None:
        for binding in self._bindings:
            thread = threading.Thread(
                target=self._run, args=(binding,), name=f"sqs-{binding.alias}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._wait + 5)
        self._threads.clear()
