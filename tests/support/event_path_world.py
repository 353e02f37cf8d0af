"""A moto world for the event-path drill: preview-events and its DLQ, the fan-out function with
a `green` alias and the preview mapping, a fan-out consumer, and the DLQ redrive.

moto invokes a mapped function on every message added to an enabled mapping's queue (through
`LambdaBackend.send_sqs_batch`, which would need Docker); the world answers that call with the
service's own fan-out logic against the real Redis server, so the queue is consumed for real
while the mapping is enabled and not at all while it is disabled.

moto 5.2.5 has no StartMessageMoveTask/ListMessageMoveTasks: `MoveTaskFake` answers them through
botocore's `before-call` event (as tests/support/ops_world.py's ExportFake does for CopySnapshot) and
moves the messages with real SQS calls, so they re-enter the source queue as SQS would put them.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3
import redis

from tests.support.ops_world import REGION, _HttpResponse

QUEUE = "staging-realtime-preview-events"
DLQ = "staging-realtime-preview-events-dlq"
FANOUT = "staging-realtime-fanout"
SCHEMA = "3"
MAX_RECEIVE = 3


@dataclass
class MoveTaskFake:
    """StartMessageMoveTask / ListMessageMoveTasks, moving DLQ messages back to their source."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    fail_with: str | None = None

    def start(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        # SQS speaks the JSON protocol: the serialized body is the request's JSON document.
        source_arn = json.loads(params["body"])["SourceArn"]
        handle = uuid.uuid4().hex
        task = {
            "TaskHandle": handle,
            "SourceArn": source_arn,
            "Status": "COMPLETED",
            "ApproximateNumberOfMessagesMoved": 0,
            "StartedTimestamp": 0,
        }
        if self.fail_with:
            task.update(Status="FAILED", FailureReason=self.fail_with)
        else:
            task["ApproximateNumberOfMessagesMoved"] = self._move(source_arn)
        self.tasks.insert(0, task)
        return _HttpResponse(), {"TaskHandle": handle, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def list(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        source = json.loads(params["body"])["SourceArn"]
        results = [t for t in self.tasks if t["SourceArn"] == source]
        return _HttpResponse(), {"Results": results, "ResponseMetadata": {"HTTPStatusCode": 200}}

    @staticmethod
    def _move(dlq_arn: str) -> int:
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[-1])["QueueUrl"]
        sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url)["queueUrls"]
        moved = 0
        while True:
            batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return moved
            for message in batch:
                sqs.send_message(QueueUrl=sources[0], MessageBody=message["Body"])
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1

    def install(self) -> None:
        # A new default session: clients made from it (the tasks reuse theirs per session) carry the hooks.
        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-call.sqs.StartMessageMoveTask", self.start)
        boto3.DEFAULT_SESSION.events.register("before-call.sqs.ListMessageMoveTasks", self.list)


@dataclass
class FanoutConsumer:
    """The fan-out's logic behind moto's mapped invocation; `failing` makes every record fail."""

    redis_url: str
    delivered: list[str] = field(default_factory=list)
    failing: bool = False

    def __call__(self, function_arn: str, messages: Any, queue_arn: str) -> bool:
        # Set on the class, an instance is not bound: moto's `self` is not passed.
        from service.logic import fanout

        if self.failing:
            return False
        client = redis.Redis.from_url(self.redis_url)
        for message in messages:
            result = fanout.process(
                message.body,
                client,
                schema=int(SCHEMA),
                snapshot_ttl=3600,
                rules=(),
                sns=None,
                topic_arn=None,
                concurrency=1,
            )
            self.delivered.append(result.event.id)
        return True


@dataclass
class EventPathWorld:
    queue_url: str
    dlq_url: str
    mapping_uuid: str
    moves: MoveTaskFake
    consumer: FanoutConsumer

    def env(self) -> dict[str, str]:
        return {
            "PREVIEW_EVENTS_QUEUE_URL": self.queue_url,
            "PREVIEW_EVENTS_DLQ_URL": self.dlq_url,
            "PREVIEW_MAPPING_UUID": self.mapping_uuid,
            "FANOUT_FUNCTION_NAME": FANOUT,
        }

    def mapping_state(self) -> str:
        return str(
            boto3.client("lambda", region_name=REGION).get_event_source_mapping(UUID=self.mapping_uuid)[
                "State"
            ]
        )

    def depth(self, url: str) -> int:
        attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        return sum(int(v) for v in attributes["Attributes"].values())


def build_event_path_world(redis_url: str, monkeypatch: Any) -> EventPathWorld:
    from moto.awslambda.models import LambdaBackend

    sqs = boto3.client("sqs", region_name=REGION)
    dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="fanout", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("service/handlers/fanout.py", "def handler(event, context):\n    return {}\n")
    lam = boto3.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName=FANOUT,
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="service.handlers.fanout.handler",
        Code={"ZipFile": archive.getvalue()},
        Environment={"Variables": {"CACHE_SCHEMA_VERSION": SCHEMA}},
    )
    version = lam.publish_version(FunctionName=FANOUT)["Version"]
    lam.create_alias(FunctionName=FANOUT, Name="green", FunctionVersion=version)
    consumer = FanoutConsumer(redis_url)
    monkeypatch.setattr(LambdaBackend, "send_sqs_batch", consumer)
    mapping = lam.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=f"{FANOUT}:green", BatchSize=10
    )
    moves = MoveTaskFake()
    moves.install()
    return EventPathWorld(
        queue_url=queue_url, dlq_url=dlq_url, mapping_uuid=mapping["UUID"], moves=moves, consumer=consumer
    )
