"""'Deploy' a synthesized stage template into the sandbox's moto, resource by resource.

What a release touches is created with the template's own names and settings: Lambda
functions (with their bootstrap version 1 and the `live`/`green` aliases), SQS queues, SNS
topics, DynamoDB tables (keys and indexes), Secrets Manager secrets (generated values),
CloudWatch alarms, EventBridge rules, event source mappings (served by the gateway's poller)
and state machines (the engine resolves their ASL and runs their Lambda tasks). Functions run
in-process (`_with_env`) or, with `isolated`, in Lambda worker processes from their asset with
their template role's credentials (`register_workers`, once every variable is known).
For the operations tasks: the cache's replication group (moto, no data: the local Redis server
stands for it), the S3 buckets with the settings moto takes, the event source mappings in moto
(the gateway's poller honours their state) and the Scheduler schedules. For the connection
canary: the CloudFront KeyValueStores (empty, in the sandbox's stand-in, keyvaluestore.py, under
the ARN the template resolves `Fn::GetAtt [Store, Arn]` to) and the distribution's viewer-request
CloudFront Function (its code, for the gateway's edge). Everything else (VPC, KMS, the
distribution itself, API Gateway...) has a local stand-in or no role in a release, and is
counted as not emulated.

Environment variables are resolved from the template; those naming what has a local stand-in
are replaced: Redis settings by REDIS_URL (the local server), the origin secret is dropped (no
CloudFront in front of the local gateway), and the preview stage URL is the gateway's.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import string
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ParamValidationError

from orchestrator.engine import LocalEngine, ResourceMap, UnresolvableIntrinsic, resolve, state_machines
from orchestrator.sandbox.events import Rule

if TYPE_CHECKING:
    from orchestrator.lambda_runtime import CodeLayout, FunctionConfig

log = logging.getLogger(__name__)

EMULATED = {
    "AWS::Lambda::Function",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::Lambda::EventSourceMapping",
    "AWS::SQS::Queue",
    "AWS::SNS::Topic",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::CompositeAlarm",
    "AWS::Events::Rule",
    "AWS::StepFunctions::StateMachine",
    "AWS::IAM::Role",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::S3::Bucket",
    "AWS::Scheduler::ScheduleGroup",
    "AWS::Scheduler::Schedule",
    "AWS::CloudFront::KeyValueStore",
    "AWS::CloudFront::Function",
}
# Variables whose values point at things the sandbox replaces with local stand-ins.
DROPPED_VARIABLES = {"REDIS_HOST", "REDIS_PORT", "REDIS_TLS", "REDIS_AUTH_SECRET_ARN", "ORIGIN_SECRET_ARN"}
IN_PROCESS_PREFIXES = ("service.", "tasks.")
# The operations tasks time what the schedules and the drill state machines time (RTO, RPO, the
# day a cost check judges): their clock is the sandbox's, as the state machines' and the
# scheduler's is. Only timestamps: their waits and timeouts stay on real time.
CLOCKED_HANDLERS = ("tasks.backup.", "tasks.cost_check.", "tasks.dr_drill.", "tasks.event_path_drill.")


@dataclass(frozen=True)
class EdgeFunctionSpec:
    """A CloudFront Function of the template, as the gateway's edge runs it."""

    logical_id: str
    name: str
    code: str
    runtime: str
    stores: tuple[str, ...]  # the associated KeyValueStores' ARNs
    viewer_request: bool  # a distribution's default behavior runs it on viewer requests


@dataclass
class Deployment:
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {handler, env, logical_id}
    queues: dict[str, str] = field(default_factory=dict)  # name -> URL
    topics: dict[str, str] = field(default_factory=dict)  # name -> ARN
    tables: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> ARN
    alarms: list[str] = field(default_factory=list)
    composites: list[dict[str, Any]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    mappings: list[tuple[str, str, str]] = field(default_factory=list)  # (queue name, function, alias)
    state_machines: dict[str, str] = field(default_factory=dict)  # name -> ARN
    cache_groups: list[str] = field(default_factory=list)  # replication group ids
    buckets: list[str] = field(default_factory=list)
    mapping_ids: dict[str, str] = field(default_factory=dict)  # queue name -> event source mapping UUID
    schedules: list[str] = field(default_factory=list)  # <group>/<name>
    not_emulated: Counter[str] = field(default_factory=Counter)
    api_key: str = ""
    # The template's WebSocket API's id as `Ref` resolves it: the gateway serves the API under it
    # and records AWS/ApiGateway metrics with it, so the template's alarms on {ApiId, Stage} work.
    api_id: str = "localws"
    key_value_stores: dict[str, str] = field(default_factory=dict)  # name -> ARN
    edge_functions: list[EdgeFunctionSpec] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per deploy step


def bootstrap_zip(note: str = "bootstrap") -> bytes:
    """A tiny zip standing in for a code bundle (handlers run in-process; moto only stores it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("README.txt", date_time=(2020, 1, 1, 0, 0, 0))
        archive.writestr(info, f"{note}: handlers run in-process in the sandbox\n")
    return buffer.getvalue()


def _generate(spec: dict[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "-_.~"
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    base = json.loads(spec.get("SecretStringTemplate") or "{}")
    if spec.get("GenerateStringKey"):
        base[spec["GenerateStringKey"]] = value
        return json.dumps(base)
    return value


class Deployer:
    def __init__(
        self,
        engine: LocalEngine,
        template: dict[str, Any],
        *,
        env_overrides: dict[str, str],
        isolated: bool = False,
        handler_overrides: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.engine = engine
        self.isolated = isolated
        self.template = template
        self.resources = ResourceMap(template, engine.sandbox)
        self.env_overrides = env_overrides
        self.handler_overrides = handler_overrides or {}
        self.rewrites: dict[str, str] = {}  # template-resolved value -> moto's actual value
        self.out = Deployment()

    def client(self, service: str) -> Any:
        return self.engine.client(service)

    def _items(self, rtype: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (lid, r.get("Properties", {}))
            for lid, r in self.template.get("Resources", {}).items()
            if r.get("Type") == rtype
        ]

    def _resolve(self, value: Any, where: str) -> Any:
        resolved = resolve(value, self.resources, where=where)
        if isinstance(resolved, str):
            for old, new in self.rewrites.items():
                resolved = resolved.replace(old, new)
        return resolved

    def deploy(self) -> Deployment:
        for resource in self.template.get("Resources", {}).values():
            if resource.get("Type") not in EMULATED:
                self.out.not_emulated[resource.get("Type", "?")] += 1
        websocket_apis = [
            lid
            for lid, props in self._items("AWS::ApiGatewayV2::Api")
            if props.get("ProtocolType") == "WEBSOCKET"
        ]
        if len(websocket_apis) == 1:
            self.out.api_id = self.resources.api_id(websocket_apis[0])
        for step in (
            self._role,
            self._queues,
            self._topics,
            self._tables,
            self._secrets,
            self._cache_groups,
            self._buckets,
            self._key_value_stores,
            self._edge_functions,
            self._functions,
            self._mappings,
            self._event_source_mappings,
            self._alarms,
            self._rules,
            self._state_machines,
            self._schedules,
        ):
            started = time.perf_counter()
            step()
            self.out.timings[step.__name__.strip("_")] = round(time.perf_counter() - started, 3)
        return self.out

    def _role(self) -> None:
        iam = self.client("iam")
        self.role_arn = iam.create_role(
            RoleName="sandbox-execution",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]

    def _queues(self) -> None:
        sqs = self.client("sqs")
        for lid, props in self._items("AWS::SQS::Queue"):
            name = self.resources.physical_name(lid)
            attributes = {"VisibilityTimeout": str(props.get("VisibilityTimeout", 30))}
            if "MessageRetentionPeriod" in props:
                attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            self.rewrites[self.resources.ref(lid)] = url
            self.out.queues[name] = url
        for lid, props in self._items("AWS::SQS::Queue"):  # redrive once every DLQ exists
            policy = props.get("RedrivePolicy")
            if policy:
                resolved = self._resolve(policy, f"{lid}.RedrivePolicy")
                sqs.set_queue_attributes(
                    QueueUrl=self.out.queues[self.resources.physical_name(lid)],
                    Attributes={"RedrivePolicy": json.dumps(resolved)},
                )

    def _topics(self) -> None:
        sns = self.client("sns")
        for lid, _props in self._items("AWS::SNS::Topic"):
            name = self.resources.physical_name(lid)
            self.out.topics[name] = sns.create_topic(Name=name)["TopicArn"]

    def _tables(self) -> None:
        ddb = self.client("dynamodb")
        for lid, props in self._items("AWS::DynamoDB::Table"):
            name = self.resources.physical_name(lid)
            kwargs: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            indexes = [
                {k: v for k, v in index.items() if k in {"IndexName", "KeySchema", "Projection"}}
                for index in props.get("GlobalSecondaryIndexes", [])
            ]
            if indexes:
                kwargs["GlobalSecondaryIndexes"] = indexes
            ddb.create_table(**kwargs)
            self.out.tables.append(name)

    def _secrets(self) -> None:
        sm = self.client("secretsmanager")
        for lid, props in self._items("AWS::SecretsManager::Secret"):
            name = self.resources.physical_name(lid)
            value = props.get("SecretString") or _generate(props.get("GenerateSecretString", {}))
            arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
            self.rewrites[self.resources.arn(lid)] = arn
            self.out.secrets[name] = arn
            parsed = json.loads(value) if value.startswith("{") else {}
            if "api_key" in parsed:
                self.out.api_key = parsed["api_key"]

    def _key_value_stores(self) -> None:
        from orchestrator.sandbox.keyvaluestore import STORES

        for lid, props in self._items("AWS::CloudFront::KeyValueStore"):
            name = self.resources.physical_name(lid)
            arn = self.resources.arn(lid)
            if props.get("ImportSource"):
                # CloudFormation would fill it from an S3 object; the sandbox starts it empty.
                self.out.not_emulated["AWS::CloudFront::KeyValueStore (ImportSource)"] += 1
            STORES.create(arn, name, str(props.get("Comment", "")), replace=True)
            self.out.key_value_stores[name] = arn

    def _edge_functions(self) -> None:
        viewer_request: set[str] = set()
        for _lid, props in self._items("AWS::CloudFront::Distribution"):
            behavior = (props.get("DistributionConfig") or {}).get("DefaultCacheBehavior") or {}
            for association in behavior.get("FunctionAssociations") or []:
                target = association.get("FunctionARN")
                if association.get("EventType") == "viewer-request" and isinstance(target, dict):
                    ref = target.get("Fn::GetAtt") or [target.get("Ref")]
                    if isinstance(ref, str):
                        ref = ref.split(".", 1)
                    if ref and ref[0]:
                        viewer_request.add(str(ref[0]))
        for lid, props in self._items("AWS::CloudFront::Function"):
            config = props.get("FunctionConfig") or {}
            stores = []
            for association in config.get("KeyValueStoreAssociations") or []:
                try:
                    stores.append(
                        str(self._resolve(association["KeyValueStoreARN"], f"{lid}.KeyValueStoreARN"))
                    )
                except (KeyError, UnresolvableIntrinsic) as exc:
                    log.info("%s: a KeyValueStore association left out (%s)", lid, exc)
            try:  # inline code as synthesized (a template may build it with intrinsics)
                code = self._resolve(props.get("FunctionCode"), f"{lid}.FunctionCode")
            except UnresolvableIntrinsic as exc:
                log.info("%s: code not resolvable (%s)", lid, exc)
                code = None
            if not isinstance(code, str):
                self.out.not_emulated["AWS::CloudFront::Function (code not inline)"] += 1
                continue
            try:
                name = str(self._resolve(props.get("Name") or lid, f"{lid}.Name"))
            except UnresolvableIntrinsic:
                name = lid
            self.out.edge_functions.append(
                EdgeFunctionSpec(
                    logical_id=lid,
                    name=name,
                    code=code,
                    runtime=str(config.get("Runtime", "")),
                    stores=tuple(stores),
                    viewer_request=lid in viewer_request,
                )
            )

    def _environment(self, lid: str, variables: dict[str, Any], handler: str = "") -> dict[str, str]:
        env: dict[str, str] = {}
        for key, value in variables.items():
            if key in DROPPED_VARIABLES:
                continue
            try:
                resolved = self._resolve(value, f"{lid}.Environment.{key}")
            except UnresolvableIntrinsic as exc:
                log.info("%s: %s left out (%s)", lid, key, exc)
                continue
            env[key] = resolved if isinstance(resolved, str) else json.dumps(resolved)
        env.update(self.env_overrides)
        env.update(self.handler_overrides.get(handler, {}))
        return env

    def _functions(self) -> None:
        lam = self.client("lambda")
        code = bootstrap_zip()
        versions: dict[str, str] = {}
        for lid, props in self._items("AWS::Lambda::Function"):
            handler = str(props.get("Handler", ""))
            if not handler.startswith(IN_PROCESS_PREFIXES):
                self.out.not_emulated["AWS::Lambda::Function (custom resource)"] += 1
                continue
            name = self.resources.physical_name(lid)
            env = self._environment(lid, props.get("Environment", {}).get("Variables", {}), handler)
            lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=self.role_arn,
                Handler=handler,
                Code={"ZipFile": code},
                Timeout=int(props.get("Timeout", 3)),
                MemorySize=int(props.get("MemorySize", 128)),
                Environment={"Variables": env},
                Description=str(props.get("Description", ""))[:256],
            )
            self.out.functions[name] = {
                "handler": handler,
                "env": env,
                "logical_id": lid,
                "role_arn": self._role_of(lid, props),
                "timeout": int(props.get("Timeout", 3)),
                "memory": int(props.get("MemorySize", 128)),
                "reserved": props.get("ReservedConcurrentExecutions"),
            }
            if not self.isolated:
                self.engine.register(
                    self.resources.arn(lid),
                    _with_env(handler, env),
                    timeout_seconds=int(props.get("Timeout", 3)),
                    memory_mb=int(props.get("MemorySize", 128)),
                )
        for lid, props in self._items("AWS::Lambda::Version"):
            function = str(self._resolve(props["FunctionName"], f"{lid}.FunctionName")).rsplit(":", 1)[-1]
            if function in self.out.functions:
                versions[lid] = lam.publish_version(FunctionName=function)["Version"]
        for lid, props in self._items("AWS::Lambda::Alias"):
            function = str(self._resolve(props["FunctionName"], f"{lid}.FunctionName")).rsplit(":", 1)[-1]
            if function not in self.out.functions:
                continue
            version_ref = props.get("FunctionVersion")
            version = "$LATEST"
            if isinstance(version_ref, dict) and "Fn::GetAtt" in version_ref:
                version = versions.get(version_ref["Fn::GetAtt"][0], "$LATEST")
            elif isinstance(version_ref, str):
                version = version_ref
            lam.create_alias(FunctionName=function, Name=props["Name"], FunctionVersion=version)

    def _role_of(self, lid: str, props: dict[str, Any]) -> str:
        # The template's execution role: its credentials are the worker's, so calls are attributed to it.
        try:
            return str(resolve(props["Role"], self.resources, where=f"{lid}.Role")) if "Role" in props else ""
        except UnresolvableIntrinsic:
            return ""

    def register_workers(
        self,
        layout: CodeLayout | Callable[[str], CodeLayout],
        *,
        extra_env: dict[str, str],
        log_dir: Path | None = None,
    ) -> list[FunctionConfig]:
        """Route every deployed function's invocations to Lambda workers (isolated mode); `layout`
        is one layout for all, or the layout of a function's logical id (its own asset)."""
        from orchestrator.lambda_runtime import FunctionConfig

        configs = []
        for name, spec in self.out.functions.items():
            code = layout(spec["logical_id"]) if callable(layout) else layout
            config = FunctionConfig(
                name=name,
                arn=self.resources.arn(spec["logical_id"]),
                handler=spec["handler"],
                layout=code,
                environment={**spec["env"], **extra_env},
                timeout_seconds=spec["timeout"],
                memory_mb=spec["memory"],
                role_arn=spec["role_arn"],
                region=self.engine.sandbox.region,
                endpoint_url=self.engine.worker_endpoint_url
                or self.engine.endpoint_url
                or os.environ.get("AWS_ENDPOINT_URL"),
                reserved_concurrency=int(spec["reserved"]) if spec.get("reserved") else None,
                log_dir=log_dir,
            )
            self.engine.register_worker(config, publish_clock=spec["handler"].startswith(CLOCKED_HANDLERS))
            configs.append(config)
        return configs

    def _mappings(self) -> None:
        for lid, props in self._items("AWS::Lambda::EventSourceMapping"):
            source = str(self._resolve(props["EventSourceArn"], f"{lid}.EventSourceArn"))
            target = str(self._resolve(props["FunctionName"], f"{lid}.FunctionName"))
            function, _, alias = target.rpartition(":")
            function = function.rsplit(":", 1)[-1] if function.startswith("arn:") else function
            queue = source.rsplit(":", 1)[-1]
            if queue in self.out.queues:
                self.out.mappings.append((queue, function, alias or "$LATEST"))

    def _alarms(self) -> None:
        cw = self.client("cloudwatch")
        fields = (
            "AlarmName",
            "AlarmDescription",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Period",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "Dimensions",
            "Metrics",
            "Unit",
        )
        for lid, props in self._items("AWS::CloudWatch::Alarm"):
            try:
                kwargs = {k: self._resolve(props[k], f"{lid}.{k}") for k in fields if k in props}
            except UnresolvableIntrinsic as exc:
                # An alarm on something without a local stand-in (API Gateway, ElastiCache...).
                log.info("alarm %s not emulated: %s", lid, exc)
                self.out.not_emulated["AWS::CloudWatch::Alarm (metric of a resource not emulated)"] += 1
                continue
            kwargs.setdefault("AlarmName", self.resources.physical_name(lid))
            for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
                if number in kwargs:
                    kwargs[number] = int(kwargs[number])
            if "Threshold" in kwargs:
                kwargs["Threshold"] = float(kwargs["Threshold"])
            cw.put_metric_alarm(**kwargs)
            self.out.alarms.append(kwargs["AlarmName"])
        for lid, props in self._items("AWS::CloudWatch::CompositeAlarm"):
            name = self.resources.physical_name(lid)
            composite = {
                "AlarmName": name,
                "AlarmArn": self.resources.arn(lid),
                "AlarmRule": str(self._resolve(props["AlarmRule"], f"{lid}.AlarmRule")),
            }
            # PutCompositeAlarm is emulated (orchestrator/sandbox/emulation.py) where moto lacks it,
            # so DescribeAlarms answers with the composite as CloudWatch does.
            cw.put_composite_alarm(
                AlarmName=name,
                AlarmRule=composite["AlarmRule"],
                AlarmDescription=str(props.get("AlarmDescription", ""))[:1024],
            )
            self.out.composites.append(composite)

    def _rules(self) -> None:
        events = self.client("events")
        for lid, props in self._items("AWS::Events::Rule"):
            name = self.resources.physical_name(lid)
            pattern = self._resolve(props.get("EventPattern", {}), f"{lid}.EventPattern")
            if isinstance(pattern, str):
                pattern = json.loads(pattern)
            targets = [
                {
                    "Id": str(t.get("Id", i)),
                    "Arn": str(self._resolve(t["Arn"], f"{lid}.Targets.{i}.Arn")),
                    **({"Input": t["Input"]} if "Input" in t else {}),
                }
                for i, t in enumerate(props.get("Targets", []))
            ]
            events.put_rule(Name=name, EventPattern=json.dumps(pattern), State=props.get("State", "ENABLED"))
            if targets:
                events.put_targets(Rule=name, Targets=targets)
            self.out.rules.append(Rule(name, pattern, targets, props.get("State", "ENABLED") == "ENABLED"))

    def _state_machines(self) -> None:
        for spec in state_machines(self.template, self.resources).values():
            self.out.state_machines[spec.name] = self.engine.deploy_state_machine(spec)

    # -- operations: the cache group, buckets, event source mappings, schedules ---------------

    def _settings(self, lid: str, props: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        """The properties among `keys` that resolve in the sandbox (the others are left out)."""
        out: dict[str, Any] = {}
        for key in keys:
            if key not in props:
                continue
            try:
                out[key] = self._resolve(props[key], f"{lid}.{key}")
            except UnresolvableIntrinsic as exc:
                log.info("%s: %s left out (%s)", lid, key, exc)
        return out

    def _cache_groups(self) -> None:
        """The replication group as the template shapes it. moto keeps no data: its endpoint
        stands for the local Redis server, which functions reach through REDIS_URL."""
        ec = self.client("elasticache")
        keys = (
            "Engine",
            "EngineVersion",
            "CacheNodeType",
            "NumNodeGroups",
            "ReplicasPerNodeGroup",
            "NumCacheClusters",
            "AutomaticFailoverEnabled",
            "MultiAZEnabled",
            "Port",
            "TransitEncryptionEnabled",
            "TransitEncryptionMode",
            "AtRestEncryptionEnabled",
            "KmsKeyId",
            "CacheSubnetGroupName",
            "SecurityGroupIds",
            "SnapshotRetentionLimit",
            "SnapshotWindow",
            "PreferredMaintenanceWindow",
            "PreferredCacheClusterAZs",
            "Tags",
        )
        for lid, props in self._items("AWS::ElastiCache::ReplicationGroup"):
            kwargs = self._settings(lid, props, keys)
            for number in (
                "NumNodeGroups",
                "ReplicasPerNodeGroup",
                "NumCacheClusters",
                "Port",
                "SnapshotRetentionLimit",
            ):
                if number in kwargs:
                    kwargs[number] = int(kwargs[number])
            group = self.resources.physical_name(lid)
            # No AuthToken: the local server has no AUTH (and functions get REDIS_URL, not the secret).
            ec.create_replication_group(
                ReplicationGroupId=group,
                ReplicationGroupDescription=str(props.get("ReplicationGroupDescription", group)),
                **kwargs,
            )
            self.out.cache_groups.append(group)

    def _buckets(self) -> None:
        """The buckets with the settings moto takes. Bucket policies stay out of moto: its own
        check would judge `aws:SecureTransport` on the sandbox's plain-HTTP endpoint (the IAM
        enforcement judges them from the template, over what stands for TLS)."""
        s3 = self.client("s3")
        region = self.engine.sandbox.region
        for lid, props in self._items("AWS::S3::Bucket"):
            name = self.resources.physical_name(lid)
            if "BucketName" not in props:  # a generated name: S3 takes lower case only
                self.rewrites[name] = name = name.lower()[:63]
            s3.create_bucket(
                Bucket=name,
                CreateBucketConfiguration={"LocationConstraint": region},
                ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled", False)),
            )
            self.out.buckets.append(name)
            settings = self._settings(
                lid,
                props,
                (
                    "VersioningConfiguration",
                    "BucketEncryption",
                    "PublicAccessBlockConfiguration",
                    "OwnershipControls",
                    "LifecycleConfiguration",
                    "ObjectLockConfiguration",
                    "Tags",
                ),
            )
            calls: list[tuple[str, str, dict[str, Any]]] = []
            if "VersioningConfiguration" in settings:
                calls.append(
                    (
                        "versioning",
                        "put_bucket_versioning",
                        {
                            "VersioningConfiguration": {
                                "Status": settings["VersioningConfiguration"]["Status"]
                            }
                        },
                    )
                )
            if "BucketEncryption" in settings:
                calls.append(
                    (
                        "encryption",
                        "put_bucket_encryption",
                        {
                            "ServerSideEncryptionConfiguration": {
                                "Rules": [
                                    {
                                        "ApplyServerSideEncryptionByDefault": rule[
                                            "ServerSideEncryptionByDefault"
                                        ],
                                        **(
                                            {"BucketKeyEnabled": rule["BucketKeyEnabled"]}
                                            if "BucketKeyEnabled" in rule
                                            else {}
                                        ),
                                    }
                                    for rule in settings["BucketEncryption"][
                                        "ServerSideEncryptionConfiguration"
                                    ]
                                ]
                            }
                        },
                    )
                )
            if "PublicAccessBlockConfiguration" in settings:
                calls.append(
                    (
                        "public access block",
                        "put_public_access_block",
                        {"PublicAccessBlockConfiguration": settings["PublicAccessBlockConfiguration"]},
                    )
                )
            if "OwnershipControls" in settings:
                calls.append(
                    (
                        "ownership controls",
                        "put_bucket_ownership_controls",
                        {"OwnershipControls": settings["OwnershipControls"]},
                    )
                )
            if "LifecycleConfiguration" in settings:
                calls.append(
                    (
                        "lifecycle",
                        "put_bucket_lifecycle_configuration",
                        {"LifecycleConfiguration": _lifecycle(settings["LifecycleConfiguration"])},
                    )
                )
            if settings.get("ObjectLockConfiguration", {}).get("Rule"):
                calls.append(
                    (
                        "object lock",
                        "put_object_lock_configuration",
                        {"ObjectLockConfiguration": settings["ObjectLockConfiguration"]},
                    )
                )
            if settings.get("Tags"):
                calls.append(("tags", "put_bucket_tagging", {"Tagging": {"TagSet": settings["Tags"]}}))
            for what, method, kwargs in calls:
                try:
                    getattr(s3, method)(Bucket=name, **kwargs)
                except (
                    ClientError,
                    ParamValidationError,
                ) as exc:  # as far as moto takes them: the rest is counted
                    log.info("bucket %s: %s not applied (%s)", name, what, exc)
                    self.out.not_emulated[f"AWS::S3::Bucket ({what})"] += 1

    def _event_source_mappings(self) -> None:
        """The mappings in moto (Get/Update/List answer as on AWS) under the UUIDs the template's
        `Ref` resolves to; the gateway's poller consumes the queues and honours their state."""
        from orchestrator.sandbox import emulation

        if not emulation.is_installed():
            raise RuntimeError(
                "event source mappings need the sandbox's emulation installed (moto's own SQS "
                "delivery would invoke functions through Docker)"
            )
        lam = self.client("lambda")
        sandbox = self.engine.sandbox
        for lid, props in self._items("AWS::Lambda::EventSourceMapping"):
            source = str(self._resolve(props["EventSourceArn"], f"{lid}.EventSourceArn"))
            target = str(self._resolve(props["FunctionName"], f"{lid}.FunctionName"))
            queue = source.rsplit(":", 1)[-1]
            if queue not in self.out.queues or target.split(":")[0] not in self.out.functions:
                self.out.not_emulated[
                    "AWS::Lambda::EventSourceMapping (source or function not deployed)"
                ] += 1
                continue
            kwargs = self._settings(
                lid,
                props,
                ("BatchSize", "Enabled", "FunctionResponseTypes", "MaximumBatchingWindowInSeconds"),
            )
            created = lam.create_event_source_mapping(EventSourceArn=source, FunctionName=target, **kwargs)
            uuid = str(self.resources.ref(lid))
            emulation.assign_mapping_uuid(sandbox.account_id, sandbox.region, created["UUID"], uuid)
            self.out.mapping_ids[queue] = uuid

    def _schedules(self) -> None:
        """The schedule group and schedules, so the CLI and tests see what runs when. The sandbox's
        scheduler (scheduler.py) fires them on its clock as their roles; `orchestrator ops run`
        fires a schedule's target with its input at once, with the operator's credentials."""
        scheduler = self.client("scheduler")
        for lid, props in self._items("AWS::Scheduler::ScheduleGroup"):
            scheduler.create_schedule_group(Name=str(self._resolve(props["Name"], f"{lid}.Name")))
        keys = (
            "Description",
            "ScheduleExpression",
            "ScheduleExpressionTimezone",
            "FlexibleTimeWindow",
            "State",
            "StartDate",
            "EndDate",
        )
        for lid, props in self._items("AWS::Scheduler::Schedule"):
            try:
                target = self._resolve(props["Target"], f"{lid}.Target")
            except UnresolvableIntrinsic as exc:
                log.info("schedule %s not emulated: %s", lid, exc)
                self.out.not_emulated["AWS::Scheduler::Schedule (target not resolvable)"] += 1
                continue
            group = str(self._resolve(props.get("GroupName", "default"), f"{lid}.GroupName"))
            name = str(self._resolve(props["Name"], f"{lid}.Name"))
            scheduler.create_schedule(
                Name=name, GroupName=group, Target=target, **self._settings(lid, props, keys)
            )
            self.out.schedules.append(f"{group}/{name}")


def _lifecycle(config: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's LifecycleConfiguration in the shape of S3's PutBucketLifecycleConfiguration."""
    rules: list[dict[str, Any]] = []
    for rule in config.get("Rules", []):
        out: dict[str, Any] = {
            "ID": rule.get("Id", f"rule-{len(rules)}"),
            "Status": rule.get("Status", "Enabled"),
            "Filter": {"Prefix": rule.get("Prefix", "")},
        }
        if "ExpirationInDays" in rule:
            out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "Transitions" in rule:
            out["Transitions"] = [
                {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
                for t in rule["Transitions"]
            ]
        if "NoncurrentVersionExpiration" in rule:
            out["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
            }
        if "AbortIncompleteMultipartUpload" in rule:
            out["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
            }
        rules.append(out)
    return {"Rules": rules}


def _with_env(dotted: str, env: dict[str, str]) -> Any:
    """The handler, imported on its first invocation (so start-up does not pay for every
    function's imports), run with its function's environment bound for the invocation.

    Service code reads settings through `service.settings` (a per-invocation context); task
    code reads os.environ, which the daemon fills with the task functions' shared settings.
    """
    from orchestrator.engine import import_handler
    from service.settings import use_env

    loaded: list[Any] = []

    def run(event: Any, context: Any) -> Any:
        if not loaded:
            loaded.append(import_handler(dotted))
        with use_env(env):
            return loaded[0](event, context)

    run.__name__ = dotted.rsplit(".", 1)[-1]
    return run
