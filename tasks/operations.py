"""What the scheduled operations tasks (backup, cost check, DR drill) share: metrics and notices
(their settings are tasks.settings.OpsSettings and its subclasses).

Operations metrics go out with PutMetricData under one `Environment` dimension (not the EMF
service dimension of the release tasks), so alarms and budgets in infra can name them exactly.
Notices go to the operations topic; a failed notice is logged, never raised: the task's own
outcome (and its metric) is what the alarms watch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tasks.common import client, iso, logger, utc_now
from tasks.settings import METRICS_NAMESPACE_DEFAULT, OperationsSettingsError, OpsSettings

__all__ = ["METRICS_NAMESPACE_DEFAULT", "OperationsSettingsError", "OpsContext", "OpsSettings"]

SUBJECT_LIMIT = 100


@dataclass(frozen=True)
class OpsContext:
    """Where an operations task reports: environment, metrics namespace, operations topic."""

    environment: str
    topic_arn: str | None
    namespace: str = METRICS_NAMESPACE_DEFAULT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpsContext:
        return cls.of(OpsSettings.from_env(env))

    @classmethod
    def of(cls, settings: OpsSettings) -> OpsContext:
        """Where the task whose settings these are reports."""
        return cls(
            environment=settings.environment, topic_arn=settings.topic_arn, namespace=settings.namespace
        )

    def put_metrics(
        self, metrics: Mapping[str, tuple[float, str]], extra: Mapping[str, str] | None = None
    ) -> None:
        """PutMetricData: name -> (value, unit), dimension Environment (+ `extra`)."""
        # No Timestamp: CloudWatch stamps receipt time (a virtual clock's time could fall outside
        # the two weeks CloudWatch accepts).
        dimensions = [{"Name": "Environment", "Value": self.environment}]
        dimensions += [{"Name": k, "Value": v} for k, v in (extra or {}).items()]
        data = [
            {"MetricName": name, "Value": float(value), "Unit": unit, "Dimensions": dimensions}
            for name, (value, unit) in metrics.items()
        ]
        # PutMetricData takes at most 1000 data points per call; the tasks send a handful.
        client("cloudwatch").put_metric_data(Namespace=self.namespace, MetricData=data)

    def notify(self, kind: str, summary: str, detail: Mapping[str, Any] | None = None) -> bool:
        """Publish to the operations topic; False (logged) when it could not be sent."""
        if not self.topic_arn:
            logger.info("no operations topic configured; notice skipped", extra={"kind": kind})
            return False
        subject = f"[{self.environment}] {kind}: {summary}"
        subject = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)
        if len(subject) > SUBJECT_LIMIT:
            subject = subject[: SUBJECT_LIMIT - 3] + "..."
        message = {
            "environment": self.environment,
            "kind": kind,
            "summary": summary,
            "detail": dict(detail or {}),
            "at": iso(utc_now()),
        }
        try:
            client("sns").publish(
                TopicArn=self.topic_arn,
                Subject=subject,
                Message=json.dumps(message, default=str),
                MessageAttributes={
                    "kind": {"DataType": "String", "StringValue": kind},
                    "environment": {"DataType": "String", "StringValue": self.environment},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("operations notice failed", extra={"kind": kind, "error": str(exc)})
            return False
        return True
