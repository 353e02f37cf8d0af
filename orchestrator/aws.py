"""The CLI's only door to AWS (or to the sandbox): boto3 clients and the few reads and writes a
release operator needs.

Credentials come from boto3's default chain (`--profile` selects a named profile); the sandbox
is the same code with `endpoint_url` pointing at its moto server. Every AWS failure is turned
into `AwsError` with one line naming the operation, so the CLI can print it without a
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from contracts import names

# Catalog keys of the service functions released in lockstep (service/catalog.py is the
# source; this fallback keeps the CLI usable when only the client is installed).
_FALLBACK_FUNCTION_KEYS = ("authorizer", "connect", "disconnect", "messages", "fanout")


class AwsError(RuntimeError):
    """An AWS call failed; the message is one line fit for an operator."""


def function_keys() -> tuple[str, ...]:
    try:
        from service.catalog import released_keys
    except ImportError:
        return _FALLBACK_FUNCTION_KEYS
    return released_keys()


@dataclass(frozen=True)
class Names:
    """Physical names of what the CLI addresses in one environment."""

    env: str

    @property
    def release_state_machine(self) -> str:
        return names.release_state_machine_name(self.env)

    @property
    def release_table(self) -> str:
        return names.release_table_name(self.env)

    @property
    def health_alarm(self) -> str:
        """The composite of every release-guard alarm (what the alarm-rollback rule listens to)."""
        return names.release_health_alarm_name(self.env)

    @property
    def alarm_prefix(self) -> str:
        """Every alarm of the release gate: the guards `<env>-release-guard-*` and the composite."""
        return names.release_alarm_prefix(self.env)

    @property
    def guard_alarm_prefix(self) -> str:
        return names.release_guard_alarm_prefix(self.env)

    def functions(self) -> list[str]:
        return [names.function_name(self.env, key) for key in function_keys()]


@dataclass(frozen=True)
class Target:
    """Where the CLI talks: AWS (profile/region) or an endpoint such as the sandbox's."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    sandbox: bool = False


@dataclass
class AliasSplit:
    """Who `live` (or `green`) serves: a primary version and at most one weighted extra."""

    function: str
    alias: str
    version: str
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def weights(self) -> dict[str, float]:
        share = sum(self.extra.values())
        return {self.version: round(1.0 - share, 6), **self.extra}

    def describe(self) -> str:
        return ", ".join(f"v{v} {w * 100:.0f}%" for v, w in self.weights.items())


@dataclass
class AlarmState:
    name: str
    state: str
    reason: str
    updated: datetime | None


def _error_line(operation: str, exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Error")
        message = (err.get("Message") or "").splitlines()[0:1]
        return f"{operation}: {code}: {message[0] if message else 'no message'}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{operation}: {text}"


class Aws:
    """Thin, typed wrappers over the boto3 calls the CLI makes; one client per service."""

    def __init__(self, target: Target) -> None:
        self.target = target
        try:
            if target.sandbox:
                # The sandbox's moto accepts any key: fixed ones keep real credentials out of it.
                self.session = boto3.Session(
                    aws_access_key_id="sandbox",
                    aws_secret_access_key="sandbox",  # noqa: S106
                    region_name=target.region,
                )
            else:
                self.session = boto3.Session(profile_name=target.profile, region_name=target.region)
        except BotoCoreError as exc:
            raise AwsError(_error_line("session", exc)) from exc
        self.region = self.session.region_name or "us-east-1"
        self._config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra="realtime-orchestrator-cli",
        )
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.target.endpoint_url, config=self._config
            )
        return self._clients[service]

    def call(self, service: str, operation: str, **kwargs: Any) -> Any:
        """Call `operation` (snake_case) and turn any failure into a one-line AwsError."""
        try:
            return getattr(self.client(service), operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(_error_line(f"{service}.{operation}", exc)) from exc

    # ---- Step Functions -------------------------------------------------------------

    def state_machine_arn(self, name: str) -> str:
        try:
            for page in self.client("stepfunctions").get_paginator("list_state_machines").paginate():
                for machine in page["stateMachines"]:
                    if machine["name"] == name:
                        return str(machine["stateMachineArn"])
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(_error_line("stepfunctions.list_state_machines", exc)) from exc
        raise AwsError(f"state machine {name!r} not found in {self.region}")

    def start_execution(self, state_machine_arn: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.call(
                "stepfunctions",
                "start_execution",
                stateMachineArn=state_machine_arn,
                name=name,
                input=json.dumps(payload, separators=(",", ":")),
            )
        )

    def describe_execution(self, execution_arn: str) -> dict[str, Any]:
        return dict(self.call("stepfunctions", "describe_execution", executionArn=execution_arn))

    def definition_for_execution(self, execution_arn: str) -> dict[str, Any]:
        out = self.call("stepfunctions", "describe_state_machine_for_execution", executionArn=execution_arn)
        return dict(json.loads(out["definition"]))

    def definition(self, state_machine_arn: str) -> dict[str, Any]:
        out = self.call("stepfunctions", "describe_state_machine", stateMachineArn=state_machine_arn)
        return dict(json.loads(out["definition"]))

    def list_executions(
        self, state_machine_arn: str, status: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": min(limit, 1000)}
        if status:
            kwargs["statusFilter"] = status
        out = self.call("stepfunctions", "list_executions", **kwargs)
        executions = list(out["executions"])
        executions.sort(key=lambda e: e["startDate"], reverse=True)
        return executions[:limit]

    def history_after(
        self, execution_arn: str, last_id: int = 0, page_size: int = 100
    ) -> list[dict[str, Any]]:
        """Events with id > last_id, oldest first.

        Reads newest-first and stops at the first page that reaches an event already seen, so a
        refresh costs one small request however long the history is. A server that ignores
        `reverseOrder`/`maxResults` (moto) returns everything at once; the id filter copes.
        """
        fresh: dict[int, dict[str, Any]] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "executionArn": execution_arn,
                "reverseOrder": True,
                "maxResults": page_size,
                "includeExecutionData": True,
            }
            if token:
                kwargs["nextToken"] = token
            page = self.call("stepfunctions", "get_execution_history", **kwargs)
            events = page.get("events", [])
            for event in events:
                if event["id"] > last_id:
                    fresh[event["id"]] = event
            token = page.get("nextToken")
            if not token or any(event["id"] <= last_id for event in events):
                break
        return [fresh[i] for i in sorted(fresh)]

    def stop_execution(self, execution_arn: str, error: str, cause: str) -> None:
        self.call("stepfunctions", "stop_execution", executionArn=execution_arn, error=error, cause=cause)

    def send_task_success(self, token: str, output: dict[str, Any]) -> None:
        self.call("stepfunctions", "send_task_success", taskToken=token, output=json.dumps(output))

    def send_task_failure(self, token: str, error: str, cause: str) -> None:
        self.call("stepfunctions", "send_task_failure", taskToken=token, error=error, cause=cause)

    def redrive_execution(self, execution_arn: str) -> dict[str, Any]:
        try:
            return dict(self.client("stepfunctions").redrive_execution(executionArn=execution_arn))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if self.target.endpoint_url and code in {"InvalidAction", "NotImplemented", "404"}:
                raise AwsError(
                    "stepfunctions.redrive_execution: not available at "
                    f"{self.target.endpoint_url} (the sandbox's moto does not implement RedriveExecution)"
                ) from exc
            raise AwsError(_error_line("stepfunctions.redrive_execution", exc)) from exc
        except BotoCoreError as exc:
            raise AwsError(_error_line("stepfunctions.redrive_execution", exc)) from exc

    def console_url(self, execution_arn: str) -> str | None:
        """The Step Functions console page of an execution (None for the sandbox)."""
        if self.target.endpoint_url:
            return None
        region = execution_arn.split(":")[3] or self.region
        domain = (
            "console.amazonaws.cn" if execution_arn.startswith("arn:aws-cn:") else "console.aws.amazon.com"
        )
        return f"https://{region}.{domain}/states/home?region={region}#/v2/executions/details/{execution_arn}"

    # ---- Lambda ---------------------------------------------------------------------

    def alias_split(self, function: str, alias: str = names.LIVE_ALIAS) -> AliasSplit:
        out = self.call("lambda", "get_alias", FunctionName=function, Name=alias)
        extra = (out.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasSplit(
            function, alias, str(out["FunctionVersion"]), {str(k): float(v) for k, v in extra.items()}
        )

    def invoke(self, function: str, payload: dict[str, Any]) -> dict[str, Any]:
        out = self.call(
            "lambda",
            "invoke",
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(payload).encode(),
        )
        body = out["Payload"].read()
        result = json.loads(body) if body else {}
        if out.get("FunctionError"):
            message = result.get("errorMessage", "") if isinstance(result, dict) else str(result)
            kind = result.get("errorType", out["FunctionError"]) if isinstance(result, dict) else "Error"
            raise AwsError(f"lambda.invoke {function}: {kind}: {message}")
        return result if isinstance(result, dict) else {"result": result}

    # ---- CloudWatch -----------------------------------------------------------------

    def alarm_states(self, prefix: str) -> list[AlarmState]:
        alarms: list[AlarmState] = []
        try:
            pages = (
                self.client("cloudwatch")
                .get_paginator("describe_alarms")
                .paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"])
            )
            for page in pages:
                for kind in ("MetricAlarms", "CompositeAlarms"):
                    for alarm in page.get(kind, []):
                        alarms.append(
                            AlarmState(
                                alarm["AlarmName"],
                                alarm.get("StateValue", "INSUFFICIENT_DATA"),
                                alarm.get("StateReason", ""),
                                alarm.get("StateUpdatedTimestamp"),
                            )
                        )
        except (ClientError, BotoCoreError) as exc:
            raise AwsError(_error_line("cloudwatch.describe_alarms", exc)) from exc
        return sorted(alarms, key=lambda a: a.name)


def find_task_token(events: Iterable[dict[str, Any]], state: str | None = None) -> tuple[str, str] | None:
    """The newest `.waitForTaskToken` token still outstanding, as (state name, token).

    The token is the resolved `$$.Task.Token` inside the TaskScheduled parameters; a token whose
    task already succeeded, failed or timed out is no longer outstanding.
    """
    entered: str | None = None
    outstanding: tuple[str, str] | None = None
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            entered = event["stateEnteredEventDetails"]["name"]
        elif kind == "TaskScheduled":
            details = event["taskScheduledEventDetails"]
            if details.get("resource", "").endswith(".waitForTaskToken"):
                token = _token_in(json.loads(details.get("parameters") or "{}"))
                if token and entered and (state is None or state == entered):
                    outstanding = (entered, token)
        elif kind in {"TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskStateExited"}:
            outstanding = None
    return outstanding


def _token_in(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.lower().replace("_", "") == "tasktoken" and isinstance(item, str):
                return item
            found = _token_in(item)
            if found:
                return found
    elif isinstance(value, list):
        for item in value:
            found = _token_in(item)
            if found:
                return found
    return None


def lock_holder(aws: Aws, names: Names) -> str | None:
    """The release (or drill) id holding the environment's lock, None when it is free (the lock
    item's `release_id`, which state_machines/lock.py writes for both)."""
    from tasks.release_record import lock_key

    item = aws.call(
        "dynamodb",
        "get_item",
        TableName=names.release_table,
        Key={k: {"S": v} for k, v in lock_key(names.env).items()},
        ConsistentRead=True,
    ).get("Item")
    if item is None:
        return None
    return str(item.get("release_id", {}).get("S", "unknown"))


def release_records(aws: Aws, names: Names, limit: int) -> list[dict[str, Any]]:
    """The environment's release records, newest first (the release table's environment index)."""
    from tasks.release_record import ENVIRONMENT_INDEX

    deserializer = TypeDeserializer()
    out = aws.call(
        "dynamodb",
        "query",
        TableName=names.release_table,
        IndexName=ENVIRONMENT_INDEX,
        KeyConditionExpression="gsi1pk = :env",
        ExpressionAttributeValues={":env": {"S": f"env#{names.env}"}},
        ScanIndexForward=False,
        Limit=limit,
    )
    rows = [
        {k: _plain(deserializer.deserialize(v)) for k, v in item.items()} for item in out.get("Items", [])
    ]
    return [
        {k: v for k, v in row.items() if k not in {"pk", "sk", "gsi1pk", "gsi1sk", "approval_token"}}
        for row in rows
    ]


def _plain(value: Any) -> Any:
    """DynamoDB numbers arrive as Decimal: whole ones become int, others float (JSON-friendly)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value
