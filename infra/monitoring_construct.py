"""Dashboards, alarms and the release guard.

Two kinds of alarms live here:
- Operational alarms (cdk-monitoring-constructs `MonitoringFacade`): Lambda, SQS + DLQ, SNS,
  ElastiCache, Step Functions, the WebSocket API (as custom metrics: API Gateway's WebSocket
  metrics are not covered by the library) and the service's business metrics. All notify the
  operations topic.
- The release guard, which the orchestrator watches while it shifts traffic: plain metric
  alarms (one metric, static threshold, no metric math) so the local sandbox can evaluate the
  very same definitions against moto's CloudWatch, plus one composite `<env>-release-health`.
  Each Lambda guard watches only the `live` alias (`Resource = <function>:live`): during a
  shift, live carries both versions' traffic, and the preview stage's green traffic must not
  trip the guard before green takes clients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    CustomMetricGroup,
    CustomMetricWithAlarm,
    CustomThreshold,
    DefaultDashboardFactory,
    ElastiCacheClusterType,
    ErrorCountThreshold,
    ErrorRateThreshold,
    LatencyThreshold,
    MaxMessageAgeThreshold,
    MaxMessageCountThreshold,
    MonitoringFacade,
    NotificationsFailedThreshold,
    SnsAlarmActionStrategy,
    UsageThreshold,
)
from constructs import Construct

from contracts.canary import CANARY_STAGE
from contracts.names import (
    CANARY_GUARD_METRICS,
    LIVE_ALIAS,
    release_guard_alarm_name,
    release_guard_canary_alarm_name,
    release_guard_dlq_alarm_name,
    release_health_alarm_name,
)
from infra.config import AlarmConfig

BUSINESS_NAMESPACE = "RealtimeAnalytics"
# (metric name, statistic, unit label, catalog keys of the functions that emit it): what the
# service emits through Powertools EMF, each under its function's `service` dimension.
BUSINESS_METRICS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("ConnectionsOpened", "Sum", "count", ("connect",)),
    ("ConnectionsClosed", "Sum", "count", ("disconnect",)),
    ("MessagesIn", "Sum", "count", ("messages",)),
    ("MessagesOut", "Sum", "count", ("messages", "fanout")),
    ("FanoutLatency", "p99", "ms", ("fanout",)),
    ("AlertsPublished", "Sum", "count", ("fanout",)),
    ("EventsRejected", "Sum", "count", ("fanout",)),
    ("StaleConnectionsRemoved", "Sum", "count", ("fanout",)),
    ("PostsFailed", "Sum", "count", ("fanout",)),
)
BUSINESS_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Connections opened / closed", ("ConnectionsOpened", "ConnectionsClosed")),
    ("Messages in / out", ("MessagesIn", "MessagesOut")),
    ("Fan-out latency p99 (ms)", ("FanoutLatency",)),
    ("Alerts published", ("AlertsPublished",)),
    ("Fan-out delivery problems", ("EventsRejected", "StaleConnectionsRemoved", "PostsFailed")),
)
# API Gateway WebSocket metrics (namespace AWS/ApiGateway, dimensions ApiId + Stage).
API_COUNT_METRICS = ("ConnectCount", "MessageCount", "ClientError", "IntegrationError", "ExecutionError")
GUARD_PERIOD = Duration.seconds(60)


@dataclass(frozen=True)
class QueuePair:
    queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue


@dataclass(frozen=True)
class MonitoringProps:
    environment: str
    # Catalog key -> deployed function (physical names are known: guard dimensions use them).
    functions: Mapping[str, lambda_.IFunction]
    function_names: Mapping[str, str]
    queues: Mapping[str, QueuePair]
    # The DLQ of the queue that feeds fan-out's `live` alias.
    fanout_dead_letter_queue: sqs.IQueue
    topics: Mapping[str, sns.ITopic]
    operations_topic: sns.ITopic
    # ElastiCache node ids (CacheClusterId dimension), e.g. `<group>-001`, `<group>-002`.
    cache_node_ids: Sequence[str]
    api_id: str
    api_stages: Sequence[str]
    live_stage: str
    alarms: AlarmConfig
    # Errors per minute on a `live` alias that fail the release (static, >= threshold).
    release_guard_error_threshold: int = 1
    # Catalog key -> the `service` dimension of its EMF metrics (its POWERTOOLS_SERVICE_NAME).
    business_metric_services: Mapping[str, str] = field(default_factory=dict)


class MonitoringConstruct(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: MonitoringProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        prefix = f"{props.environment}-realtime"
        self.alarm_action = cloudwatch_actions.SnsAction(props.operations_topic)
        self.facade = MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=AlarmFactoryDefaults(
                alarm_name_prefix=prefix,
                actions_enabled=True,
                action=SnsAlarmActionStrategy(on_alarm_topic=props.operations_topic),
                datapoints_to_alarm=props.alarms.evaluation_periods,
                evaluation_periods=props.alarms.evaluation_periods,
            ),
            dashboard_factory=DefaultDashboardFactory(
                self,
                "Dashboards",
                dashboard_name_prefix=prefix,
                create_dashboard=True,
                create_summary_dashboard=True,
                create_alarm_dashboard=True,
            ),
        )
        self.facade.add_large_header(f"Realtime analytics ({props.environment})")
        self._monitor_api()
        self._monitor_business_metrics()
        self._monitor_functions()
        self._monitor_queues_and_topics()
        self._monitor_cache()
        self.release_guard_alarms: list[cloudwatch.Alarm] = self._release_guard()
        self.release_health_alarm = cloudwatch.CompositeAlarm(
            self,
            "ReleaseHealth",
            composite_alarm_name=release_health_alarm_name(props.environment),
            alarm_description="Any release-guard alarm: the orchestrator rolls a release back when this is in ALARM",
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(
                    cloudwatch.AlarmRule.from_alarm(alarm, cloudwatch.AlarmState.ALARM)
                    for alarm in self.release_guard_alarms
                )
            ),
        )
        self.release_health_alarm.add_alarm_action(self.alarm_action)
        self.release_health_alarm.add_ok_action(self.alarm_action)

    # -- orchestration engine hook --------------------------------------------------------------

    def monitor_state_machine(self, state_machine: sfn.IStateMachine, *, name: str) -> None:
        """Dashboard and alarms for a state machine (release, rollback, DR drill, backup ...)."""
        self.facade.monitor_step_function(
            state_machine=state_machine,
            alarm_friendly_name=name,
            human_readable_name=f"State machine {name}",
            add_failed_execution_count_alarm={"Warning": ErrorCountThreshold(max_error_count=0)},
            add_timed_out_execution_count_alarm={"Warning": ErrorCountThreshold(max_error_count=0)},
            add_aborted_execution_count_alarm={"Warning": ErrorCountThreshold(max_error_count=0)},
        )

    # -- sections ---------------------------------------------------------------------------------

    def _monitor_api(self) -> None:
        props = self._props
        groups: list[CustomMetricGroup] = []
        for stage in props.api_stages:
            dimensions = {"ApiId": props.api_id, "Stage": stage}
            is_live = stage == props.live_stage
            count_metrics: list[cloudwatch.Metric | CustomMetricWithAlarm] = []
            for name in API_COUNT_METRICS:
                metric = self._api_metric(name, dimensions, "Sum")
                if is_live and name in ("IntegrationError", "ExecutionError"):
                    count_metrics.append(
                        CustomMetricWithAlarm(
                            metric=metric,
                            alarm_friendly_name=f"api-{stage}-{name}",
                            add_alarm={
                                "Critical": CustomThreshold(
                                    threshold=props.alarms.api_5xx_count,
                                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                                    treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
                                )
                            },
                        )
                    )
                else:
                    count_metrics.append(metric)
            latency = self._api_metric("IntegrationLatency", dimensions, "p99")
            latency_entry: cloudwatch.Metric | CustomMetricWithAlarm = (
                CustomMetricWithAlarm(
                    metric=latency,
                    alarm_friendly_name=f"api-{stage}-IntegrationLatencyP99",
                    add_alarm={
                        "Warning": CustomThreshold(
                            threshold=props.alarms.integration_latency_p99_ms,
                            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                            treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
                        )
                    },
                )
                if is_live
                else latency
            )
            groups.append(
                CustomMetricGroup(
                    title=f"WebSocket `{stage}`: connections, messages, errors", metrics=count_metrics
                )
            )
            groups.append(
                CustomMetricGroup(
                    title=f"WebSocket `{stage}`: integration latency p99 (ms)", metrics=[latency_entry]
                )
            )
        self.facade.monitor_custom(
            alarm_friendly_name="websocket-api",
            human_readable_name="WebSocket API",
            metric_groups=groups,
            add_to_summary_dashboard=True,
        )

    def _api_metric(self, name: str, dimensions: Mapping[str, str], statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map=dict(dimensions),
            statistic=statistic,
            period=Duration.minutes(1),
            label=f"{name} ({statistic})",
        )

    def _monitor_business_metrics(self) -> None:
        services = self._props.business_metric_services
        definitions = {
            name: (statistic, unit, emitters) for name, statistic, unit, emitters in BUSINESS_METRICS
        }
        groups = []
        for title, names in BUSINESS_GROUPS:
            metrics = [
                cloudwatch.Metric(
                    namespace=BUSINESS_NAMESPACE,
                    metric_name=name,
                    dimensions_map={"service": services[key]},
                    statistic=definitions[name][0],
                    period=Duration.minutes(1),
                    label=f"{name} from {key} ({definitions[name][0]}, {definitions[name][1]})",
                )
                for name in names
                for key in definitions[name][2]
                if key in services
            ]
            if metrics:
                groups.append(CustomMetricGroup(title=title, metrics=metrics))
        if groups:
            self.facade.monitor_custom(
                alarm_friendly_name="business",
                human_readable_name="Service (business metrics)",
                metric_groups=groups,
                add_to_summary_dashboard=True,
            )

    def _monitor_functions(self) -> None:
        alarms = self._props.alarms
        for key, function in sorted(self._props.functions.items()):
            self.facade.monitor_lambda_function(
                lambda_function=function,
                alarm_friendly_name=f"lambda-{key}",
                human_readable_name=f"Lambda {key}",
                add_fault_rate_alarm={
                    "Warning": ErrorRateThreshold(max_error_rate=alarms.lambda_error_rate_percent)
                },
                add_latency_p99_alarm={
                    "Warning": LatencyThreshold(max_latency=Duration.millis(alarms.lambda_p99_duration_ms))
                },
            )

    def _monitor_queues_and_topics(self) -> None:
        alarms = self._props.alarms
        for name, pair in sorted(self._props.queues.items()):
            self.facade.monitor_sqs_queue_with_dlq(
                queue=pair.queue,
                dead_letter_queue=pair.dead_letter_queue,
                alarm_friendly_name=f"sqs-{name}",
                human_readable_name=f"Queue {name}",
                add_queue_max_message_age_alarm={
                    "Warning": MaxMessageAgeThreshold(max_age_in_seconds=alarms.queue_oldest_age_seconds)
                },
                # `dlq_depth` is the depth that alarms; the library alarms above its maximum.
                add_dead_letter_queue_max_size_alarm={
                    "Critical": MaxMessageCountThreshold(max_message_count=alarms.dlq_depth - 1)
                },
                add_dead_letter_queue_max_message_age_alarm={
                    "Warning": MaxMessageAgeThreshold(max_age_in_seconds=alarms.dlq_oldest_age_seconds)
                },
            )
        for name, topic in sorted(self._props.topics.items()):
            self.facade.monitor_sns_topic(
                topic=topic,
                alarm_friendly_name=f"sns-{name}",
                human_readable_name=f"Topic {name}",
                add_message_notifications_failed_alarm={
                    "Warning": NotificationsFailedThreshold(max_notifications_failed_count=0)
                },
            )

    def _monitor_cache(self) -> None:
        alarms = self._props.alarms
        for node_id in self._props.cache_node_ids:
            self.facade.monitor_elasti_cache_cluster(
                cluster_type=ElastiCacheClusterType.REDIS,
                cluster_id=node_id,
                alarm_friendly_name=f"cache-{node_id}",
                human_readable_name=f"Cache node {node_id}",
                add_cpu_usage_alarm={"Warning": UsageThreshold(max_usage_percent=alarms.cache_cpu_percent)},
                add_redis_engine_cpu_usage_alarm={
                    "Warning": UsageThreshold(max_usage_percent=alarms.cache_cpu_percent)
                },
            )
        memory = [
            CustomMetricWithAlarm(
                metric=cloudwatch.Metric(
                    namespace="AWS/ElastiCache",
                    metric_name="DatabaseMemoryUsagePercentage",
                    dimensions_map={"CacheClusterId": node_id},
                    statistic="Maximum",
                    period=Duration.minutes(5),
                    label=f"{node_id} memory used (%)",
                ),
                alarm_friendly_name=f"cache-{node_id}-memory",
                add_alarm={
                    "Warning": CustomThreshold(
                        threshold=alarms.cache_memory_percent,
                        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    )
                },
            )
            for node_id in self._props.cache_node_ids
        ]
        if memory:
            self.facade.monitor_custom(
                alarm_friendly_name="cache-memory",
                human_readable_name="Cache memory",
                metric_groups=[CustomMetricGroup(title="Database memory usage (%)", metrics=memory)],
            )

    def _release_guard(self) -> list[cloudwatch.Alarm]:
        props = self._props
        guards: list[cloudwatch.Alarm] = []
        for key in sorted(props.function_names):
            name = props.function_names[key]
            metric = cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions_map={"FunctionName": name, "Resource": f"{name}:{LIVE_ALIAS}"},
                statistic="Sum",
                period=GUARD_PERIOD,
            )
            guards.append(
                metric.create_alarm(
                    self,
                    f"ReleaseGuard{_camel(key)}Errors",
                    alarm_name=release_guard_alarm_name(props.environment, key),
                    alarm_description=f"Errors on {name}:{LIVE_ALIAS} (release guard)",
                    threshold=props.release_guard_error_threshold,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=1,
                    datapoints_to_alarm=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        dlq_metric = props.fanout_dead_letter_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=GUARD_PERIOD
        )
        guards.append(
            dlq_metric.create_alarm(
                self,
                "ReleaseGuardFanoutDlq",
                alarm_name=release_guard_dlq_alarm_name(props.environment),
                alarm_description="Events dead-lettered by the live fan-out (release guard)",
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        # `connections` routing: green's share of clients connect through the canary stage, whose
        # integrations resolve the `green` aliases. Lambda's per-alias metrics for `green` also
        # count the preview stage's synthetic checks, so the guard watches the stage itself.
        for metric_name in CANARY_GUARD_METRICS:
            metric = cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=metric_name,
                dimensions_map={"ApiId": props.api_id, "Stage": CANARY_STAGE},
                statistic="Sum",
                period=GUARD_PERIOD,
            )
            guards.append(
                metric.create_alarm(
                    self,
                    f"ReleaseGuardCanary{metric_name}",
                    alarm_name=release_guard_canary_alarm_name(props.environment, metric_name),
                    alarm_description=f"{metric_name} on the canary stage (release guard, connections routing)",
                    threshold=props.release_guard_error_threshold,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=1,
                    datapoints_to_alarm=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        for guard in guards:
            # Operators see which guard fired; the composite below says a release is unhealthy.
            guard.add_alarm_action(self.alarm_action)
        return guards


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", "_").split("_") if part)
