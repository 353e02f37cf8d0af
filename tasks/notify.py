"""Notify: one SNS message per release transition, with the console URL of the execution.

Best effort by design: a release must not roll back because a notification could not be sent.
A failed publish is logged and counted (`NotificationsFailed`) so an alarm can watch it.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from contracts.state import ReleaseRef
from tasks.common import MetricUnit, Settings, add_metric, client, console_url, iso, logger, utc_now

SUBJECT_LIMIT = 100


def message_for(
    settings: Settings,
    release: ReleaseRef,
    transition: str,
    summary: str,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    execution_arn = release.execution_arn
    return {
        "environment": settings.environment,
        "release_id": release.release_id,
        "version": release.version,
        "transition": transition,
        "summary": summary,
        "detail": detail or {},
        "requested_by": release.requested_by,
        "dry_run": release.dry_run,
        "execution_arn": execution_arn,
        "console_url": console_url(settings.region, execution_arn) if execution_arn else None,
        "at": iso(utc_now()),
    }


def subject_for(settings: Settings, release: ReleaseRef, transition: str) -> str:
    subject = f"[{settings.environment}] release {release.release_id}: {transition}"
    # SNS subjects: printable ASCII, no line breaks, at most 100 characters.
    subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)
    return subject[: SUBJECT_LIMIT - 3] + "..." if len(subject) > SUBJECT_LIMIT else subject


def publish(
    settings: Settings,
    release: ReleaseRef,
    transition: str,
    summary: str,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Publish the transition; True when SNS accepted it (or no topic is configured: False)."""
    if not settings.topic_arn:
        logger.info("no release topic configured; notification skipped", extra={"transition": transition})
        return False
    message = message_for(settings, release, transition, summary, detail)
    try:
        client("sns").publish(
            TopicArn=settings.topic_arn,
            Subject=subject_for(settings, release, transition),
            Message=json.dumps(message, default=str),
            MessageAttributes={
                "transition": {"DataType": "String", "StringValue": transition},
                "environment": {"DataType": "String", "StringValue": settings.environment},
            },
        )
    except (ClientError, BotoCoreError) as exc:
        logger.warning("release notification failed", extra={"transition": transition, "error": str(exc)})
        add_metric("NotificationsFailed", MetricUnit.Count, 1)
        return False
    return True
