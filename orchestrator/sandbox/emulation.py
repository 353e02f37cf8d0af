"""AWS APIs the sandbox's moto (5.2.5) lacks, answered inside the moto server itself.

Functions reach moto over HTTP, from this process or from worker processes, so a missing API
must be answered by the server, not by a botocore hook in the caller. moto dispatches a
request to the method of its service's response class named after the action in snake case
(`BaseResponse.call_action`); this module adds such methods and keeps their state next to
moto's backends. `install()` / `uninstall()` are explicit (the sandbox daemon calls them);
`check_emulation_points()` fails loudly when moto moves what this relies on, or starts to
implement an action itself (then this emulation must go).

Emulated, after the AWS API references:

- SQS `StartMessageMoveTask` / `ListMessageMoveTasks` / `CancelMessageMoveTask`: a task moves
  the messages a dead-letter queue holds when it starts (`ApproximateNumberOfMessagesToMove`)
  to `DestinationArn`, or back to the queue they were dead-lettered from, asynchronously
  (`RUNNING` -> `COMPLETED`, or `CANCELLING` -> `CANCELLED`, or `FAILED` with a reason); one
  active task per source queue; only DLQs of SQS queues are accepted; the list is newest first,
  `MaxResults` 1 by default, at most 10, `TaskHandle` shown only while RUNNING. moto does not
  record which queue dead-lettered a message, so without `DestinationArn` a DLQ must have one
  source queue (the stage's DLQs each have one); otherwise the task FAILS, naming why.
- ElastiCache `CopySnapshot`: with `TargetBucket` it exports the snapshot to S3: the bucket must
  exist in the snapshot's Region, one object `<TargetSnapshotName>-<NNNN>.rdb` per node group is
  written, the source snapshot reads `exporting` until the export completes; without it, a
  manual copy of the snapshot named `TargetSnapshotName`.
- ElastiCache `CreateReplicationGroup` with `NumCacheClusters` (cluster mode disabled): moto
  creates one node whatever the number; the group gets its primary and NumCacheClusters - 1
  replicas, as on AWS.
- ElastiCache data (with `cache`, orchestrator/sandbox/cache_data.py): `CreateSnapshot` of the
  stage group keeps the local server's data as an RDB file, which the export writes to S3; a
  `CreateReplicationGroup` with `SnapshotName` (SnapshotNotFoundFault if there is no such
  snapshot) reads `creating` until a second server loaded from that RDB answers, then
  `available` with that server as its primary endpoint (`create-failed` if it cannot start);
  `DeleteReplicationGroup` stops the server and the group is gone after `deleting`.
- CloudWatch `PutCompositeAlarm`: moto stores a composite alarm (an alarm with an `AlarmRule`,
  returned under `CompositeAlarms` by DescribeAlarms) but does not dispatch the action; the
  sandbox's alarm evaluator computes its state from the rule, as CloudWatch does.
- ElastiCache `TestFailover`: the replication group (available, automatic failover enabled, the
  node group existing) goes `modifying`, its primary and a replica swap roles, and it returns
  to `available`.

- Cost Explorer `GetCostAndUsage` (with `costs`, orchestrator/sandbox/cost_data.py): answered
  from the sandbox's seeded cost history instead of moto's queue of canned results.
- CloudFront KeyValueStore (the whole `cloudfront-keyvaluestore` API, orchestrator/sandbox/
  keyvaluestore.py): requests signed for it are answered before moto's server app and its
  in-process stubber look for a backend (moto has none, and reads a SigV4A scope as S3's).

And two corrections of moto's Lambda for the sandbox:

- SQS event source mappings are stored (Get/Update/List answer, `Enabled` -> `State`), but
  moto's own delivery (a synchronous, Docker-backed invoke on every SendMessage) is detached:
  the gateway's poller (orchestrator/gateway/sqs_poller.py) consumes the queues and honours
  the mapping's state.
- `Invoke` of a function the sandbox runs goes to the sandbox's runtime (`invoker`), so the
  Lambda API (the CLI, a schedule's target) reaches the same handlers as the state machines.
  moto reads Invoke's `Qualifier` query parameter under the wrong name (`qualifier`) and drops
  it; the sandbox passes it on as `name:qualifier`, which moto resolves.
"""

from __future__ import annotations

import copy
import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)

MOVE_TASK_HISTORY = 10  # ListMessageMoveTasks returns at most the 10 most recent tasks
EXPORT_SECONDS = 0.2  # how long an exported snapshot reads `exporting`
FAILOVER_SECONDS = 0.3  # how long a group reads `modifying` after TestFailover
# An empty RDB file (version 11, end-of-file opcode, checksum 0 = not computed): the sandbox's
# snapshots hold no data of their own (the local Redis server stands in for the cache).
EMPTY_RDB = b"REDIS0011\xff" + b"\x00" * 8


class EmulationPointMoved(RuntimeError):
    """moto changed where this module hooks in: the pin or the emulation must change."""


@dataclass(frozen=True)
class EmulationPoint:
    module: str
    attribute: str  # dotted inside the module
    why: str
    added: bool = False  # True: this module adds it, so moto must NOT have it
    instance: bool = False  # an attribute every instance gets in __init__ (checked on one)

    @property
    def symbol(self) -> str:
        return f"{self.module}.{self.attribute}"

    def owner_and_name(self) -> tuple[Any, str]:
        try:
            owner: Any = importlib.import_module(self.module)
        except ImportError as exc:
            raise EmulationPointMoved(
                f"moto module {self.module} is gone ({exc}); needed for: {self.why}"
            ) from exc
        *path, name = self.attribute.split(".")
        for part in path:
            if not hasattr(owner, part):
                raise EmulationPointMoved(f"{self.module}.{part} is gone; needed for: {self.why}")
            owner = getattr(owner, part)
        return owner, name

    def check(self) -> None:
        owner, name = self.owner_and_name()
        if self.instance:
            if name not in vars(owner("eu-west-1", "123456789012")):
                raise EmulationPointMoved(f"{self.symbol} is gone from moto; needed for: {self.why}")
            return
        present = name in vars(owner)
        if self.added and present and not getattr(vars(owner)[name], "_sandbox_emulation", False):
            raise EmulationPointMoved(
                f"moto now implements {self.symbol}: drop the sandbox's emulation of it ({self.why})"
            )
        if not self.added and not present:
            raise EmulationPointMoved(f"{self.symbol} is gone from moto; needed for: {self.why}")


_SQS_RESPONSES = "moto.sqs.responses"
_SQS_MODELS = "moto.sqs.models"
_EC_RESPONSES = "moto.elasticache.responses"
_EC_MODELS = "moto.elasticache.models"
_LAMBDA_MODELS = "moto.awslambda.models"
_CW_RESPONSES = "moto.cloudwatch.responses"

EMULATION_POINTS: tuple[EmulationPoint, ...] = (
    EmulationPoint(
        "moto.core.responses", "BaseResponse.call_action", "actions dispatch to snake_case methods"
    ),
    EmulationPoint("moto.core.utils", "camelcase_to_underscores", "the action -> method name rule"),
    EmulationPoint(_SQS_RESPONSES, "SQSResponse.start_message_move_task", "StartMessageMoveTask", added=True),
    EmulationPoint(_SQS_RESPONSES, "SQSResponse.list_message_move_tasks", "ListMessageMoveTasks", added=True),
    EmulationPoint(
        _SQS_RESPONSES, "SQSResponse.cancel_message_move_task", "CancelMessageMoveTask", added=True
    ),
    EmulationPoint(_SQS_RESPONSES, "SQSResponse.sqs_backend", "the request's SQS backend"),
    EmulationPoint(_SQS_MODELS, "SQSBackend.get_queue", "queues by name"),
    EmulationPoint(_SQS_MODELS, "SQSBackend.receive_message", "a move task reads the DLQ like a consumer"),
    EmulationPoint(_SQS_MODELS, "SQSBackend.send_message", "a move task sends to the destination"),
    EmulationPoint(_SQS_MODELS, "SQSBackend.delete_message", "a moved message leaves the DLQ"),
    EmulationPoint(
        _SQS_MODELS, "SQSBackend.list_dead_letter_source_queues", "where dead-lettered messages came from"
    ),
    EmulationPoint(
        _SQS_MODELS, "SQSBackend.change_message_visibility", "a cancelled move gives messages back"
    ),
    EmulationPoint(_SQS_MODELS, "Queue.approximate_number_of_messages", "messages to move"),
    EmulationPoint(_SQS_MODELS, "Queue.approximate_number_of_messages_not_visible", "messages in flight"),
    EmulationPoint(
        _EC_RESPONSES, "ElastiCacheResponse.copy_snapshot", "CopySnapshot (export to S3)", added=True
    ),
    EmulationPoint(_EC_RESPONSES, "ElastiCacheResponse.test_failover", "TestFailover", added=True),
    EmulationPoint(
        _EC_RESPONSES, "ElastiCacheResponse.elasticache_backend", "the request's ElastiCache backend"
    ),
    EmulationPoint(_EC_MODELS, "ElastiCacheBackend.describe_snapshots", "snapshots by name"),
    EmulationPoint(_EC_MODELS, "ElastiCacheBackend.create_replication_group", "NumCacheClusters honoured"),
    EmulationPoint(_EC_MODELS, "ElastiCacheBackend.describe_replication_groups", "groups by id"),
    EmulationPoint(_EC_MODELS, "ElastiCacheBackend.create_snapshot", "a snapshot keeps the group's data"),
    EmulationPoint(
        _EC_MODELS, "ElastiCacheBackend.delete_replication_group", "a restored group's server stops"
    ),
    EmulationPoint(_EC_MODELS, "ElastiCacheBackend.snapshots", "snapshots by name", instance=True),
    EmulationPoint(_EC_MODELS, "ElastiCacheBackend.replication_groups", "groups by id", instance=True),
    EmulationPoint("moto.s3.models", "S3Backend.get_bucket", "an export needs its bucket"),
    EmulationPoint("moto.s3.models", "S3Backend.put_object", "an export writes its .rdb objects"),
    EmulationPoint(_CW_RESPONSES, "CloudWatchResponse.put_composite_alarm", "PutCompositeAlarm", added=True),
    EmulationPoint(
        _CW_RESPONSES, "CloudWatchResponse.put_metric_alarm", "stores an AlarmRule as a composite"
    ),
    EmulationPoint(
        "moto.ce.models", "CostExplorerBackend.get_cost_and_usage", "costs from the seeded history"
    ),
    EmulationPoint(_LAMBDA_MODELS, "LambdaBackend.create_event_source_mapping", "detach moto's SQS delivery"),
    EmulationPoint(_LAMBDA_MODELS, "LambdaBackend.invoke", "Invoke reaches the sandbox's runtime"),
    EmulationPoint("moto.awslambda.responses", "LambdaResponse.invoke", "Invoke's Qualifier is passed on"),
    EmulationPoint(_LAMBDA_MODELS, "LambdaBackend.get_function", "Invoke resolves the function first"),
    EmulationPoint(
        _LAMBDA_MODELS, "LambdaBackend.get_event_source_mapping", "a mapping deployed under its UUID"
    ),
    EmulationPoint(_LAMBDA_MODELS, "make_event_source_mapping_arn", "a mapping's ARN follows its UUID"),
    EmulationPoint(
        "moto.moto_server.werkzeug_app",
        "DomainDispatcherApplication.__call__",
        "KeyValueStore requests answered before moto's server picks a backend",
    ),
    EmulationPoint(
        "moto.core.botocore_stubber",
        "BotocoreStubber.process_request",
        "KeyValueStore requests answered before moto's stubber picks a backend (mock_aws)",
    ),
    EmulationPoint("moto.moto_server.werkzeug_app", "BackendRequest", "the KeyValueStore's WSGI requests"),
    EmulationPoint("moto.core.request", "normalize_request", "the KeyValueStore's stubbed requests"),
    EmulationPoint("moto.core.responses", "BaseResponse.serialized", "KeyValueStore answers from its model"),
)


def check_emulation_points() -> None:
    for point in EMULATION_POINTS:
        point.check()
    from orchestrator.sandbox import keyvaluestore

    if keyvaluestore.moto_implements_it():
        raise EmulationPointMoved(
            "moto now implements cloudfront-keyvaluestore: drop the sandbox's KeyValueStore "
            "(orchestrator/sandbox/keyvaluestore.py)"
        )


# --------------------------------------------------------------------------------------------
# SQS message move tasks
# --------------------------------------------------------------------------------------------


def _sqs_error(code: str, message: str) -> Exception:
    from moto.sqs.exceptions import SQSException

    return SQSException(code, message)


@dataclass
class MoveTask:
    handle: str
    account: str
    region: str
    source_arn: str
    destination_arn: str | None
    rate: int | None
    to_move: int
    started_ms: int
    status: str = "RUNNING"
    moved: int = 0
    failure: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle
        if self.destination_arn:
            out["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            out["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure:
            out["FailureReason"] = self.failure
        return out


_tasks_lock = threading.Lock()
_tasks: list[MoveTask] = []  # newest first


def _queue_by_arn(backend: Any, arn: str) -> Any:
    name = arn.rsplit(":", 1)[-1]
    try:
        queue = backend.get_queue(name)
    except Exception:  # noqa: BLE001 - moto's QueueDoesNotExist
        queue = None
    if queue is None or queue.queue_arn != arn:
        raise _sqs_error(
            "ResourceNotFoundException", f"The resource that you specified for the queue {arn} doesn't exist."
        )
    return queue


def _start_message_move_task(self: Any) -> Any:
    from moto.core.responses import ActionResult

    backend = self.sqs_backend
    source_arn = self._get_param("SourceArn")
    destination_arn = self._get_param("DestinationArn")
    rate = self._get_param("MaxNumberOfMessagesPerSecond")
    if rate is not None and not 1 <= int(rate) <= 500:
        raise _sqs_error("InvalidParameterValue", "MaxNumberOfMessagesPerSecond must be from 1 to 500.")
    source = _queue_by_arn(backend, source_arn)
    if source.fifo_queue:
        raise _sqs_error("UnsupportedOperation", "Message move tasks support standard queues only.")
    if not backend.list_dead_letter_source_queues(source.name):
        raise _sqs_error(
            "UnsupportedOperation",
            f"Source queue {source_arn} is not configured as a dead-letter queue of an Amazon SQS queue.",
        )
    if destination_arn:
        _queue_by_arn(backend, destination_arn)
    with _tasks_lock:
        if any(t.source_arn == source_arn and t.status in ("RUNNING", "CANCELLING") for t in _tasks):
            raise _sqs_error(
                "UnsupportedOperation", f"A message move task is already running on {source_arn}."
            )
        task = MoveTask(
            handle=uuid.uuid4().hex,
            account=self.current_account,
            region=self.region,
            source_arn=source_arn,
            destination_arn=destination_arn or None,
            rate=int(rate) if rate is not None else None,
            to_move=int(source.approximate_number_of_messages)
            + int(source.approximate_number_of_messages_not_visible),
            started_ms=int(time.time() * 1000),
        )
        _tasks.insert(0, task)
    threading.Thread(target=_run_move, args=(task,), name=f"sqs-move-{task.handle[:8]}", daemon=True).start()
    return ActionResult({"TaskHandle": task.handle})


def _list_message_move_tasks(self: Any) -> Any:
    from moto.core.responses import ActionResult

    source_arn = self._get_param("SourceArn")
    limit = self._get_param("MaxResults")
    limit = 1 if limit is None else int(limit)
    if not 1 <= limit <= MOVE_TASK_HISTORY:
        raise _sqs_error("InvalidParameterValue", f"MaxResults must be from 1 to {MOVE_TASK_HISTORY}.")
    _queue_by_arn(self.sqs_backend, source_arn)
    with _tasks_lock:
        results = [t.entry() for t in _tasks if t.source_arn == source_arn][:limit]
    return ActionResult({"Results": results})


def _cancel_message_move_task(self: Any) -> Any:
    from moto.core.responses import ActionResult

    handle = self._get_param("TaskHandle")
    with _tasks_lock:
        task = next((t for t in _tasks if t.handle == handle), None)
        if task is None or task.status != "RUNNING":
            raise _sqs_error(
                "ResourceNotFoundException", f"No running message move task with handle {handle}."
            )
        task.status = "CANCELLING"
        task.cancel.set()
        moved = task.moved
    return ActionResult({"ApproximateNumberOfMessagesMoved": moved})


def _run_move(task: MoveTask) -> None:
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[task.account][task.region]
    try:
        source = _queue_by_arn(backend, task.source_arn)
        if task.destination_arn:
            destination = _queue_by_arn(backend, task.destination_arn)
        else:
            sources = backend.list_dead_letter_source_queues(source.name)
            if len(sources) != 1:
                raise RuntimeError(
                    f"{len(sources)} queues dead-letter into {task.source_arn}; "
                    "the sandbox cannot tell them apart: give DestinationArn"
                )
            destination = sources[0]
        interval = 1.0 / task.rate if task.rate else 0.0
        while task.moved < task.to_move and not task.cancel.is_set():
            batch = backend.receive_message(source.name, min(10, task.to_move - task.moved), 0, 30, ["All"])
            if not batch:
                if not source.approximate_number_of_messages_not_visible:
                    break  # fewer left than counted at the start (consumed or expired meanwhile)
                task.cancel.wait(0.05)  # in flight: moved once visible again
                continue
            for message in batch:
                receipt = str(message.receipt_handle)
                if task.cancel.is_set():
                    backend.change_message_visibility(source.name, receipt, 0)
                    continue
                backend.send_message(
                    destination.name,
                    message.body,
                    message_attributes=copy.deepcopy(message.message_attributes) or None,
                )
                backend.delete_message(source.name, receipt)
                task.moved += 1
                if interval:
                    task.cancel.wait(interval)
    except Exception as exc:  # noqa: BLE001 - a task that cannot go on FAILS, with its reason
        log.warning("message move task %s failed: %s", task.handle, exc)
        task.failure = str(exc)
        task.status = "FAILED"
        return
    task.status = "CANCELLED" if task.cancel.is_set() else "COMPLETED"


# --------------------------------------------------------------------------------------------
# ElastiCache: CopySnapshot (export to S3) and TestFailover
# --------------------------------------------------------------------------------------------


def _ec_error(code: str, message: str) -> Exception:
    from moto.elasticache.exceptions import ElastiCacheException

    return ElastiCacheException(code, message)


def _later(seconds: float, action: Callable[[], None], name: str) -> None:
    timer = threading.Timer(seconds, action)
    timer.name = name
    timer.daemon = True
    timer.start()


def _copy_snapshot(self: Any) -> Any:
    from moto.core.responses import ActionResult

    backend = self.elasticache_backend
    source_name = self._get_param("SourceSnapshotName")
    target_name = self._get_param("TargetSnapshotName")
    bucket = self._get_param("TargetBucket")
    [snapshot] = backend.describe_snapshots(snapshot_name=source_name)  # SnapshotNotFoundFault if absent
    if snapshot.snapshot_status != "available":
        raise _ec_error(
            "InvalidSnapshotState", f"Snapshot {source_name} is {snapshot.snapshot_status}, not available."
        )
    if not bucket:
        if target_name in backend.snapshots:
            raise _ec_error("SnapshotAlreadyExistsFault", f"Snapshot {target_name} already exists.")
        target = copy.copy(snapshot)
        target.snapshot_name = target_name
        target.arn = snapshot.arn.rsplit(":", 1)[0] + f":{target_name}"
        target.snapshot_source = "manual"
        target.kms_key_id = self._get_param("KmsKeyId") or snapshot.kms_key_id
        target.tags = self._get_param("Tags", []) or []
        backend.snapshots[target_name] = target
        key = (self.current_account, self.region, source_name)
        if key in _snapshot_data:
            _snapshot_data[(self.current_account, self.region, target_name)] = _snapshot_data[key]
        return ActionResult({"Snapshot": target})
    _export(self.current_account, self.region, snapshot, target_name, bucket)
    return ActionResult({"Snapshot": snapshot})


def _export(account: str, region: str, snapshot: Any, target_name: str, bucket_name: str) -> None:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    s3 = s3_backends[account][get_partition(region)]
    try:
        bucket = s3.get_bucket(bucket_name)
    except Exception as exc:  # noqa: BLE001 - moto's MissingBucket
        raise _ec_error("InvalidParameterValue", f"The S3 bucket {bucket_name} does not exist.") from exc
    if bucket.region_name != region:
        raise _ec_error(
            "InvalidParameterValue",
            f"The S3 bucket {bucket_name} is in {bucket.region_name}, not in the snapshot's Region {region}.",
        )
    groups = int(snapshot.num_node_groups or 1)
    snapshot.snapshot_status = "exporting"

    data = _snapshot_data.get((account, region, str(snapshot.snapshot_name)), EMPTY_RDB)

    def finish() -> None:
        try:
            for number in range(1, groups + 1):
                s3.put_object(bucket_name, f"{target_name}-{number:04d}.rdb", data)
        finally:
            snapshot.snapshot_status = "available"

    _later(EXPORT_SECONDS, finish, f"export-{target_name}")


def _num_cache_clusters(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_replication_group(self: Any, *args: Any, **kwargs: Any) -> Any:
        clusters = kwargs.get("num_cache_clusters")
        if clusters and not kwargs.get("replicas_per_node_group") and kwargs.get("cluster_mode") != "enabled":
            kwargs["replicas_per_node_group"] = int(clusters) - 1  # moto sizes the node group from this
        return original(self, *args, **kwargs)

    return create_replication_group


# (account, region, snapshot name) -> the RDB the snapshot holds (cache_data.CacheData.capture)
_snapshot_data: dict[tuple[str, str, str], bytes] = {}
RESTORE_POLL_SECONDS = 0.05  # how often a restoring group looks at its server
DELETE_SECONDS = 0.5  # how long a deleted group reads `deleting` before it is gone


def _snapshot_with_data(original: Callable[..., Any], cache: Any) -> Callable[..., Any]:
    def create_snapshot(self: Any, *args: Any, **kwargs: Any) -> Any:
        snapshot = original(self, *args, **kwargs)
        data = cache.capture(snapshot.replication_group_id)
        if data is not None:
            _snapshot_data[(self.account_id, self.region_name, str(snapshot.snapshot_name))] = data
        return snapshot

    return create_snapshot


def _restoring_group(original: Callable[..., Any], cache: Any) -> Callable[..., Any]:
    def create_replication_group(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = kwargs.get("snapshot_name")
        if not name:
            return original(self, *args, **kwargs)
        if name not in self.snapshots:
            raise _ec_error("SnapshotNotFoundFault", f"Snapshot {name} not found.")
        data = _snapshot_data.get((self.account_id, self.region_name, name), EMPTY_RDB)
        group = original(self, *args, **kwargs)
        group.status = "creating"
        group_id = group.replication_group_id

        def load() -> None:
            try:
                host, port = cache.restore(group_id, data)
            except Exception as exc:  # noqa: BLE001 - a restore that cannot start fails the group, as on AWS
                log.warning("restore of %s from %s failed: %s", group_id, name, exc)
                group.status = "create-failed"
                return
            for node_group in getattr(group, "node_groups", []):
                node_group["primary_endpoint_address"] = host
                node_group["port"] = port
                node_group["primary_endpoint"] = {"address": host, "port": port}
            group.port = port
            group.status = "available"

        threading.Thread(target=load, name=f"restore-{group_id}", daemon=True).start()
        return group

    return create_replication_group


def _deleting_group(original: Callable[..., Any], cache: Any) -> Callable[..., Any]:
    def delete_replication_group(self: Any, replication_group_id: str, *args: Any, **kwargs: Any) -> Any:
        group = original(self, replication_group_id, *args, **kwargs)
        if replication_group_id in cache.restored():
            backend = self

            def gone() -> None:
                cache.delete(replication_group_id)
                backend.replication_groups.pop(replication_group_id, None)

            _later(DELETE_SECONDS, gone, f"delete-{replication_group_id}")
        return group

    return delete_replication_group


def _put_composite_alarm(self: Any) -> Any:
    if not self._get_param("AlarmRule"):
        from moto.cloudwatch.exceptions import ValidationError

        raise ValidationError("AlarmRule is required")
    return type(self).put_metric_alarm(self)


def _test_failover(self: Any) -> Any:
    from moto.core.responses import ActionResult

    backend = self.elasticache_backend
    group_id = self._get_param("ReplicationGroupId")
    node_group_id = self._get_param("NodeGroupId")
    [group] = backend.describe_replication_groups(
        replication_group_id=group_id
    )  # ReplicationGroupNotFoundFault
    if group.status != "available":
        raise _ec_error(
            "InvalidReplicationGroupState", f"Replication group {group_id} is {group.status}, not available."
        )
    if group.automatic_failover != "enabled":
        raise _ec_error(
            "TestFailoverNotAvailableFault",
            f"Automatic failover is not enabled on replication group {group_id}.",
        )
    node_group = next((g for g in group.node_groups if g.get("node_group_id") == node_group_id), None)
    if node_group is None:
        raise _ec_error("NodeGroupNotFoundFault", f"Node group {node_group_id} not found in {group_id}.")
    members = node_group.get("node_group_members", [])
    if len(members) < 2:
        raise _ec_error(
            "TestFailoverNotAvailableFault", f"Node group {node_group_id} of {group_id} has no replica."
        )
    group.status = "modifying"

    def finish() -> None:
        primary = next((m for m in members if m.get("current_role") == "primary"), members[0])
        replica = next(m for m in members if m is not primary)
        primary["current_role"], replica["current_role"] = "replica", "primary"
        group.status = "available"

    _later(FAILOVER_SECONDS, finish, f"failover-{group_id}")
    return ActionResult({"ReplicationGroup": group})


# --------------------------------------------------------------------------------------------
# Lambda: mappings without moto's own delivery; Invoke through the sandbox's runtime
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvokeAnswer:
    payload: bytes
    executed_version: str
    function_error: str | None = None
    status: int = 200


# (function name, qualifier, payload, invocation type) -> answer, or None: not a sandbox function.
Invoker = Callable[[str, str | None, bytes, str], InvokeAnswer | None]


def _detached_mapping(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = original(self, spec)
        if esm.event_source_arn.split(":")[2] == "sqs":
            from moto.sqs.models import sqs_backends

            for queue in sqs_backends[self.account_id][self.region_name].queues.values():
                if queue.queue_arn == esm.event_source_arn:
                    queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        return esm

    return create_event_source_mapping


def _routed_invoke(original: Callable[..., Any], invoker: Invoker) -> Callable[..., Any]:
    def invoke(
        self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
    ) -> Any:
        function = self.get_function(function_name, qualifier)  # ResourceNotFoundException as moto answers it
        if qualifier is None:  # `name:alias` or a qualified ARN names the qualifier itself
            parts = function_name.split(":")
            qualifier = (
                (parts[7] if len(parts) > 7 else None)
                if function_name.startswith("arn:")
                else (parts[1] if len(parts) > 1 else None)
            )
        kind = (
            headers.get("X-Amz-Invocation-Type") or headers.get("x-amz-invocation-type") or "RequestResponse"
        )
        raw = body.encode() if isinstance(body, str) else bytes(body or b"")
        answer = invoker(function.function_name, qualifier, raw, kind)
        if answer is None:
            return original(self, function_name, qualifier, body, headers, response_headers)
        response_headers["x-amz-executed-version"] = answer.executed_version
        if answer.function_error:
            response_headers["x-amz-function-error"] = answer.function_error
        return answer.payload

    return invoke


def _qualifier_passed_on(original: Callable[..., Any]) -> Callable[..., Any]:
    def invoke(self: Any) -> Any:
        qualifier = self._get_param("Qualifier")
        if qualifier and self._get_param("qualifier") is None:
            head, name, tail = self.path.rsplit("/", 2)
            if ":" not in unquote(name).split(":function:")[-1]:
                self.path = f"{head}/{name}%3A{quote(str(qualifier), safe='')}/{tail}"
        return original(self)

    return invoke


def assign_mapping_uuid(account: str, region: str, current: str, wanted: str) -> None:
    """Give a mapping moto created the UUID the stage's templates resolve `Ref` of it to (the
    sandbox's deterministic stand-in for the UUID CloudFormation would return), so the
    functions' settings and their roles' resource ARNs name the mapping that exists."""
    from moto.awslambda import models

    backend = models.lambda_backends[account][region]
    esm = backend.get_event_source_mapping(current)
    if esm is None:
        raise LookupError(f"no event source mapping {current} in {account}/{region}")
    if current == wanted:
        return
    del backend._event_source_mappings[current]
    esm.uuid = wanted
    esm.arn = models.make_event_source_mapping_arn(region, account, wanted)
    backend._event_source_mappings[wanted] = esm


# --------------------------------------------------------------------------------------------
# install / uninstall
# --------------------------------------------------------------------------------------------


@dataclass
class _Installed:
    originals: list[tuple[Any, str, Any, bool]] = field(default_factory=list)  # owner, name, value, existed


_installed: _Installed | None = None
_install_lock = threading.Lock()


def _mark(function: Callable[..., Any]) -> Callable[..., Any]:
    function._sandbox_emulation = True  # type: ignore[attr-defined]
    return function


def _seeded_costs(costs: Any) -> Callable[..., Any]:
    def get_cost_and_usage(self: Any, body: str) -> dict[str, Any]:
        import json

        return dict(costs.answer(json.loads(body)))

    return get_cost_and_usage


def install(invoker: Invoker | None = None, cache: Any = None, costs: Any = None) -> None:
    """Add the emulated actions to moto's response classes (in this process: the sandbox's
    moto server runs here). `invoker` routes Lambda Invoke to the sandbox's functions; `cache`
    (cache_data.CacheData) gives snapshots their data and restored groups their servers;
    `costs` (cost_data.CostData) answers Cost Explorer."""
    global _installed
    with _install_lock:
        if _installed is not None:
            raise RuntimeError("the sandbox's AWS emulations are already installed")
        check_emulation_points()
        from moto.awslambda.models import LambdaBackend
        from moto.cloudwatch.responses import CloudWatchResponse
        from moto.core.botocore_stubber import BotocoreStubber
        from moto.elasticache.models import ElastiCacheBackend
        from moto.elasticache.responses import ElastiCacheResponse
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication
        from moto.sqs.responses import SQSResponse

        from orchestrator.sandbox import keyvaluestore

        plan: list[tuple[Any, str, Any]] = [
            (SQSResponse, "start_message_move_task", _mark(_start_message_move_task)),
            (SQSResponse, "list_message_move_tasks", _mark(_list_message_move_tasks)),
            (SQSResponse, "cancel_message_move_task", _mark(_cancel_message_move_task)),
            (ElastiCacheResponse, "copy_snapshot", _mark(_copy_snapshot)),
            # moto's PutMetricAlarm reads AlarmRule "to re-use this method for composite alarms".
            (CloudWatchResponse, "put_composite_alarm", _mark(_put_composite_alarm)),
            (ElastiCacheResponse, "test_failover", _mark(_test_failover)),
            (
                ElastiCacheBackend,
                "create_replication_group",
                _num_cache_clusters(vars(ElastiCacheBackend)["create_replication_group"]),
            ),
            (
                LambdaBackend,
                "create_event_source_mapping",
                _detached_mapping(vars(LambdaBackend)["create_event_source_mapping"]),
            ),
            (
                DomainDispatcherApplication,
                "__call__",
                keyvaluestore.dispatching(vars(DomainDispatcherApplication)["__call__"]),
            ),
            (
                BotocoreStubber,
                "process_request",
                keyvaluestore.stubbing(vars(BotocoreStubber)["process_request"]),
            ),
        ]
        if invoker is not None:
            from moto.awslambda.responses import LambdaResponse

            plan.append((LambdaBackend, "invoke", _routed_invoke(vars(LambdaBackend)["invoke"], invoker)))
            plan.append((LambdaResponse, "invoke", _qualifier_passed_on(vars(LambdaResponse)["invoke"])))
        if costs is not None:
            from moto.ce.models import CostExplorerBackend

            plan.append((CostExplorerBackend, "get_cost_and_usage", _seeded_costs(costs)))
        if cache is not None:
            # After the NumCacheClusters correction above, so a restored group is sized by it too.
            plan += [
                (
                    ElastiCacheBackend,
                    "create_snapshot",
                    _snapshot_with_data(vars(ElastiCacheBackend)["create_snapshot"], cache),
                ),
                (
                    ElastiCacheBackend,
                    "delete_replication_group",
                    _deleting_group(vars(ElastiCacheBackend)["delete_replication_group"], cache),
                ),
            ]
        state = _Installed()
        for owner, name, value in plan:
            existed = name in vars(owner)
            state.originals.append((owner, name, vars(owner).get(name), existed))
            setattr(owner, name, value)
        if cache is not None:
            # On top of the NumCacheClusters correction installed above.
            state.originals.append(
                (
                    ElastiCacheBackend,
                    "create_replication_group",
                    vars(ElastiCacheBackend)["create_replication_group"],
                    True,
                )
            )
            ElastiCacheBackend.create_replication_group = _restoring_group(  # type: ignore[method-assign]
                vars(ElastiCacheBackend)["create_replication_group"], cache
            )
        _installed = state


def uninstall() -> None:
    """Restore moto as it was; running move tasks are cancelled and forgotten."""
    global _installed
    with _install_lock:
        if _installed is None:
            return
        for owner, name, value, existed in reversed(_installed.originals):
            if existed:
                setattr(owner, name, value)
            else:
                delattr(owner, name)
        _installed = None
    with _tasks_lock:
        for task in _tasks:
            task.cancel.set()
        _tasks.clear()
    _snapshot_data.clear()
    from orchestrator.sandbox import keyvaluestore

    keyvaluestore.STORES.clear()


def is_installed() -> bool:
    return _installed is not None
