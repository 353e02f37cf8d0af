"""SQS consumer: each record is processed on its own; failures are reported per record
(ReportBatchItemFailures), so one bad event goes to the DLQ path without redelivering the rest.
A record is an event or a delivery shard of a split event (service.logic.fanout)."""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from service.clients import aws
from service.clients.cache import cache
from service.faults import inject_faults
from service.logic import alerts, fanout
from service.observability import MetricUnit, add_metric, log_metrics, logger, tracer
from service.settings import Settings, settings


def _sharding(record: SQSRecord, current: Settings, context: LambdaContext | None) -> fanout.Sharding:
    # Shards go back to the queue the record came from: live's events stay with live's fan-out,
    # preview-events with green's.
    queue_url = fanout.source_queue_url(
        record.event_source_arn, (current.events_queue_url, current.preview_events_queue_url)
    )
    lease = fanout.DEFAULT_LEASE_SECONDS
    if context is not None:
        lease = max(1, math.ceil(context.get_remaining_time_in_millis() / 1000))
    return fanout.Sharding(
        shard_size=current.fanout_shard_size,
        split_above=current.fanout_split_above,
        queue_url=queue_url,
        sqs=aws.client("sqs") if queue_url else None,
        window_seconds=current.fanout_redelivery_window_seconds,
        lease_seconds=lease,
    )


def _record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    current = settings()
    try:
        result = fanout.process(
            record.body,
            cache(),
            schema=current.cache_schema_version,
            snapshot_ttl=current.snapshot_ttl_seconds,
            rules=alerts.parse_rules(current.alert_rules),
            sns=aws.client("sns") if current.alerts_topic_arn else None,
            topic_arn=current.alerts_topic_arn,
            concurrency=current.fanout_concurrency,
            drop_rate=current.fault_drop_rate,
            message_id=record.message_id,
            sharding=_sharding(record, current, lambda_context),
        )
    except fanout.EventRejected as exc:
        logger.error("event rejected", extra={"message_id": record.message_id, "reason": str(exc)})
        add_metric("EventsRejected", MetricUnit.Count, 1)
        raise
    except fanout.ShardInProgress as exc:
        logger.warning(
            "shard held by another invocation", extra={"message_id": record.message_id, "reason": str(exc)}
        )
        raise
    base = {"message_id": record.message_id, "event_id": result.event.id, "channel": result.event.channel}
    if result.kind == "duplicate":
        add_metric("DuplicatesSkipped", MetricUnit.Count, 1)
        logger.info("already handled", extra={**base, "shard": result.shard, "shards": result.shards})
        return
    if result.kind == "split":
        add_metric("ShardsQueued", MetricUnit.Count, result.shards - 1)
    report = result.delivery
    add_metric("MessagesOut", MetricUnit.Count, report.sent)
    if result.kind in ("event", "split"):
        add_metric("AlertsPublished", MetricUnit.Count, result.alerts_published)
    add_metric("FanoutLatency", MetricUnit.Milliseconds, result.latency_ms or 0.001)
    add_metric("StaleConnectionsRemoved", MetricUnit.Count, report.gone)
    add_metric("PostsFailed", MetricUnit.Count, report.failed)
    log = logger.warning if report.failed else logger.debug
    log(
        {"event": "event fanned out", "split": "event split", "shard": "shard fanned out"}[result.kind],
        extra={
            **base,
            **({"shard": result.shard, "shards": result.shards} if result.kind != "event" else {}),
            "subscribers": report.subscribers,
            "sent": report.sent,
            "gone": report.gone,
            "dropped": report.dropped,
            "failed": dict(report.failures),
            "latency_ms": round(result.latency_ms, 1),
        },
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@log_metrics
@inject_faults("fanout")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # One processor per invocation: its success/failure lists are per batch. A batch whose
    # records all failed is still reported record by record rather than as a function error:
    # bad events must not look like a faulty release to the Errors alarms that guard it.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(
            event=event, record_handler=_record_handler, processor=processor, context=context
        )
    )
