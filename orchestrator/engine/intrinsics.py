"""Resolve a synthesized CloudFormation template to concrete values with sandbox ARNs.

The local engine runs the very ASL that `cdk synth` wrote, so a state machine's
`DefinitionString` (an `Fn::Join` of literal JSON and `Ref`/`Fn::GetAtt` of functions, tables,
topics ...) is resolved here the way CloudFormation would resolve it, against deterministic
physical names: the name set in the template (`FunctionName`, `TableName`, `TopicName` ...) or
`<stack>-<LogicalId>` when the template leaves the name to CloudFormation. Anything that cannot
be resolved raises `UnresolvableIntrinsic` naming the logical id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class UnresolvableIntrinsic(ValueError):
    """An intrinsic function or reference the sandbox cannot resolve."""


@dataclass(frozen=True)
class Sandbox:
    """Where the template is 'deployed': account, region and the stack name used for generated names."""

    account_id: str = "123456789012"
    region: str = "eu-west-1"
    partition: str = "aws"
    stack_name: str = "sandbox"
    url_suffix: str = "amazonaws.com"


# The template property that names each resource type, when the template sets it.
_NAME_PROPERTY: dict[str, str] = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::StepFunctions::Activity": "Name",
    "AWS::IAM::Role": "RoleName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
    "AWS::Lambda::Alias": "Name",
    "AWS::SSM::Parameter": "Name",
    "AWS::ElastiCache::SubnetGroup": "CacheSubnetGroupName",
    "AWS::ElastiCache::ReplicationGroup": "ReplicationGroupId",
    "AWS::CloudFront::KeyValueStore": "Name",
}

_NAME_LIMIT = {
    "AWS::Lambda::Function": 64,
    "AWS::SQS::Queue": 80,
    "AWS::IAM::Role": 64,
    "AWS::SNS::Topic": 256,
}


@dataclass
class ResourceMap:
    """Logical id -> physical name, ARN and `Ref` value of every resource in one template."""

    template: Mapping[str, Any]
    sandbox: Sandbox = field(default_factory=Sandbox)
    overrides: Mapping[str, str] = field(default_factory=dict)  # logical id -> physical name
    parameters: Mapping[str, Any] = field(default_factory=dict)  # template parameter values

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.template.get("Resources", {})

    def resource_type(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise UnresolvableIntrinsic(f"no resource with logical id {logical_id!r} in the template")
        return str(resource["Type"])

    def physical_name(self, logical_id: str) -> str:
        if logical_id in self.overrides:
            return self.overrides[logical_id]
        rtype = self.resource_type(logical_id)
        props = self.resources[logical_id].get("Properties", {})
        prop = _NAME_PROPERTY.get(rtype)
        if prop and prop in props:
            return str(resolve(props[prop], self, where=f"{logical_id}.{prop}"))
        generated = re.sub(r"[^A-Za-z0-9-]", "-", f"{self.sandbox.stack_name}-{logical_id}")
        return generated[: _NAME_LIMIT.get(rtype, 128)]

    def _suffix(self, logical_id: str) -> str:
        # Deterministic stand-in for the random suffixes AWS appends (secret ARNs, key ids).
        return hashlib.sha256(f"{self.sandbox.stack_name}/{logical_id}".encode()).hexdigest()

    def _arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        sb = self.sandbox
        return f"arn:{sb.partition}:{service}:{sb.region if region else ''}:{sb.account_id if account else ''}:{resource}"

    def arn(self, logical_id: str) -> str:
        rtype = self.resource_type(logical_id)
        name = self.physical_name(logical_id)
        builders = {
            "AWS::Lambda::Function": lambda: self._arn("lambda", f"function:{name}"),
            "AWS::DynamoDB::Table": lambda: self._arn("dynamodb", f"table/{name}"),
            "AWS::DynamoDB::GlobalTable": lambda: self._arn("dynamodb", f"table/{name}"),
            "AWS::SNS::Topic": lambda: self._arn("sns", name),
            "AWS::SQS::Queue": lambda: self._arn("sqs", name),
            "AWS::StepFunctions::StateMachine": lambda: self._arn("states", f"stateMachine:{name}"),
            "AWS::StepFunctions::Activity": lambda: self._arn("states", f"activity:{name}"),
            "AWS::IAM::Role": lambda: self._arn("iam", f"role/{name}", region=False),
            "AWS::SecretsManager::Secret": lambda: self._arn(
                "secretsmanager", f"secret:{name}-{self._suffix(logical_id)[:6]}"
            ),
            "AWS::Events::EventBus": lambda: self._arn("events", f"event-bus/{name}"),
            "AWS::Events::Rule": lambda: self._arn("events", f"rule/{name}"),
            "AWS::Logs::LogGroup": lambda: self._arn("logs", f"log-group:{name}:*"),
            "AWS::S3::Bucket": lambda: self._arn("s3", name, region=False, account=False),
            "AWS::CloudWatch::Alarm": lambda: self._arn("cloudwatch", f"alarm:{name}"),
            "AWS::CloudWatch::CompositeAlarm": lambda: self._arn("cloudwatch", f"alarm:{name}"),
            "AWS::KMS::Key": lambda: self._arn("kms", f"key/{self._key_id(logical_id)}"),
            "AWS::Lambda::Alias": lambda: f"{self._alias_function_arn(logical_id)}:{name}",
            "AWS::SSM::Parameter": lambda: self._arn("ssm", f"parameter/{name.lstrip('/')}"),
            "AWS::Lambda::EventSourceMapping": lambda: self._arn(
                "lambda", f"event-source-mapping:{self._key_id(logical_id)}"
            ),
            # Global: no region in the ARN; the id is a UUID (the sandbox creates the store under it).
            "AWS::CloudFront::KeyValueStore": lambda: self._arn(
                "cloudfront", f"key-value-store/{self._key_id(logical_id)}", region=False
            ),
        }
        builder = builders.get(rtype)
        if builder is None:
            raise UnresolvableIntrinsic(f"the sandbox has no ARN for {logical_id!r} of type {rtype}")
        return builder()

    def api_id(self, logical_id: str) -> str:
        """An API Gateway API's id (10 lowercase letters and digits on AWS); the sandbox's gateway
        serves the template's WebSocket API under it, so alarms on AWS/ApiGateway {ApiId, Stage}
        watch what the gateway records."""
        return self._suffix(logical_id)[:10]

    def _security_group_id(self, logical_id: str) -> str:
        return "sg-" + self._suffix(logical_id)[:17]

    def _key_id(self, logical_id: str) -> str:
        h = self._suffix(logical_id)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def _alias_function_arn(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {})
        function = str(resolve(props.get("FunctionName"), self, where=f"{logical_id}.FunctionName"))
        return function if function.startswith("arn:") else self._arn("lambda", f"function:{function}")

    def ref(self, logical_id: str) -> Any:
        """What `{"Ref": logical_id}` returns (CloudFormation's documented Ref value per type)."""
        if logical_id in self.template.get("Parameters", {}):
            if logical_id in self.parameters:
                return self.parameters[logical_id]
            default = self.template["Parameters"][logical_id].get("Default")
            if default is None:
                raise UnresolvableIntrinsic(f"template parameter {logical_id!r} has no value and no default")
            return default
        rtype = self.resource_type(logical_id)
        if rtype in (
            "AWS::SNS::Topic",
            "AWS::StepFunctions::StateMachine",
            "AWS::StepFunctions::Activity",
            "AWS::SecretsManager::Secret",
            "AWS::Lambda::Alias",
        ):
            return self.arn(logical_id)
        if rtype == "AWS::SQS::Queue":
            sb = self.sandbox
            return f"https://sqs.{sb.region}.{sb.url_suffix}/{sb.account_id}/{self.physical_name(logical_id)}"
        if rtype in ("AWS::KMS::Key", "AWS::Lambda::EventSourceMapping"):
            # Both a UUID on AWS; the sandbox deploys the mapping under this one.
            return self._key_id(logical_id)
        if rtype == "AWS::EC2::SecurityGroup":
            return self._security_group_id(logical_id)
        if rtype == "AWS::ApiGatewayV2::Api":
            return self.api_id(logical_id)
        if rtype in _NAME_PROPERTY or rtype == "AWS::Lambda::Function":
            return self.physical_name(logical_id)
        raise UnresolvableIntrinsic(f"the sandbox cannot resolve Ref of {logical_id!r} ({rtype})")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        rtype = self.resource_type(logical_id)
        if attribute == "Arn" or (rtype == "AWS::SNS::Topic" and attribute == "TopicArn"):
            return self.arn(logical_id)
        named = {
            ("AWS::SNS::Topic", "TopicName"),
            ("AWS::SQS::Queue", "QueueName"),
            ("AWS::StepFunctions::StateMachine", "Name"),
            ("AWS::StepFunctions::Activity", "Name"),
            ("AWS::Events::EventBus", "Name"),
        }
        if (rtype, attribute) in named:
            return self.physical_name(logical_id)
        if rtype == "AWS::SQS::Queue" and attribute == "QueueUrl":
            return self.ref(logical_id)
        if rtype == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/1970-01-01T00:00:00.000"
        if rtype == "AWS::IAM::Role" and attribute == "RoleId":
            return "AROA" + self._suffix(logical_id)[:17].upper()
        if rtype == "AWS::KMS::Key" and attribute == "KeyId":
            return self._key_id(logical_id)
        if rtype == "AWS::EC2::SecurityGroup" and attribute == "GroupId":
            return self._security_group_id(logical_id)
        if rtype == "AWS::CloudFront::KeyValueStore" and attribute == "Id":
            return self._key_id(logical_id)
        if rtype == "AWS::CloudFront::KeyValueStore" and attribute == "Status":
            return "READY"
        raise UnresolvableIntrinsic(
            f"the sandbox cannot resolve Fn::GetAtt [{logical_id}, {attribute}] ({rtype})"
        )


_PSEUDO = {
    "AWS::Partition": lambda sb: sb.partition,
    "AWS::Region": lambda sb: sb.region,
    "AWS::AccountId": lambda sb: sb.account_id,
    "AWS::URLSuffix": lambda sb: sb.url_suffix,
    "AWS::StackName": lambda sb: sb.stack_name,
    "AWS::StackId": lambda sb: (
        f"arn:{sb.partition}:cloudformation:{sb.region}:{sb.account_id}:stack/{sb.stack_name}/00000000-0000-0000-0000-000000000000"
    ),
}

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def resolve(value: Any, resources: ResourceMap, *, where: str = "template") -> Any:
    """Resolve every intrinsic in `value` (recursively). `where` names the place in errors."""
    if isinstance(value, list):
        return [resolve(v, resources, where=where) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _ref(str(arg), resources, where)
        if key == "Fn::GetAtt":
            logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            try:
                return resources.get_att(logical_id, resolve(attribute, resources, where=where))
            except UnresolvableIntrinsic as exc:
                raise UnresolvableIntrinsic(f"{where}: {exc}") from exc
        if key == "Fn::Join":
            delimiter, parts = arg
            resolved = resolve(parts, resources, where=where)
            return str(delimiter).join(_as_text(p, where) for p in resolved)
        if key == "Fn::Sub":
            return _sub(arg, resources, where)
        if key == "Fn::Select":
            index, items = resolve(arg, resources, where=where)
            return items[int(index)]
        if key == "Fn::Split":
            delimiter, text = resolve(arg, resources, where=where)
            return str(text).split(str(delimiter))
        if key.startswith("Fn::") or key == "Condition":
            raise UnresolvableIntrinsic(f"{where}: the sandbox does not resolve {key}")
    return {k: resolve(v, resources, where=f"{where}.{k}") for k, v in value.items()}


def _ref(name: str, resources: ResourceMap, where: str) -> Any:
    if name in _PSEUDO:
        return _PSEUDO[name](resources.sandbox)
    try:
        return resources.ref(name)
    except UnresolvableIntrinsic as exc:
        raise UnresolvableIntrinsic(f"{where}: {exc}") from exc


def _as_text(value: Any, where: str) -> str:
    if isinstance(value, (dict, list)):
        raise UnresolvableIntrinsic(f"{where}: Fn::Join part is not a string after resolution: {value!r}")
    return str(value)


def _sub(arg: Any, resources: ResourceMap, where: str) -> str:
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], resolve(arg[1], resources, where=where))

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return _as_text(variables[name], where)
        if "." in name and name not in _PSEUDO:
            logical_id, attribute = name.split(".", 1)
            return _as_text(resources.get_att(logical_id, attribute), where)
        return _as_text(_ref(name, resources, where), where)

    # `${!Literal}` is CloudFormation's escape for a literal `${Literal}`.
    return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


@dataclass(frozen=True)
class StateMachineSpec:
    """One state machine of a template, resolved for the sandbox."""

    logical_id: str
    name: str
    arn: str
    definition: str  # concrete ASL JSON text
    role_arn: str
    type: str  # STANDARD | EXPRESS
    logging: dict[str, Any] | None
    tracing_enabled: bool

    @property
    def asl(self) -> dict[str, Any]:
        return json.loads(self.definition)


def state_machines(
    template: Mapping[str, Any], resources: ResourceMap | None = None
) -> dict[str, StateMachineSpec]:
    """Every AWS::StepFunctions::StateMachine of the template, by logical id, with concrete ASL."""
    resources = resources or ResourceMap(template)
    specs: dict[str, StateMachineSpec] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        props = resource.get("Properties", {})
        where = f"{logical_id}.Properties"
        if "DefinitionString" in props:
            definition = resolve(props["DefinitionString"], resources, where=f"{where}.DefinitionString")
        elif "Definition" in props:
            definition = json.dumps(resolve(props["Definition"], resources, where=f"{where}.Definition"))
        else:
            raise UnresolvableIntrinsic(
                f"{logical_id}: state machine has no Definition/DefinitionString (S3 definitions are not supported)"
            )
        substitutions = resolve(
            props.get("DefinitionSubstitutions", {}), resources, where=f"{where}.DefinitionSubstitutions"
        )
        for key, value in substitutions.items():
            definition = definition.replace(
                "${" + key + "}", _as_text(value, f"{where}.DefinitionSubstitutions.{key}")
            )
        leftover = _SUB_VARIABLE.search(definition)
        if leftover and leftover.group(1) in props.get("DefinitionSubstitutions", {}):
            raise UnresolvableIntrinsic(
                f"{logical_id}: substitution ${{{leftover.group(1)}}} left unresolved"
            )
        try:
            json.loads(definition)
        except ValueError as exc:
            raise UnresolvableIntrinsic(
                f"{logical_id}: resolved definition is not valid JSON: {exc}"
            ) from exc
        role_arn = (
            resolve(props.get("RoleArn"), resources, where=f"{where}.RoleArn")
            if "RoleArn" in props
            else (
                f"arn:{resources.sandbox.partition}:iam::{resources.sandbox.account_id}:role/{resources.physical_name(logical_id)}-role"
            )
        )
        logging_config = (
            resolve(props["LoggingConfiguration"], resources, where=f"{where}.LoggingConfiguration")
            if "LoggingConfiguration" in props
            else None
        )
        tracing = bool(props.get("TracingConfiguration", {}).get("Enabled", False))
        specs[logical_id] = StateMachineSpec(
            logical_id=logical_id,
            name=resources.physical_name(logical_id),
            arn=resources.arn(logical_id),
            definition=definition,
            role_arn=str(role_arn),
            type=str(props.get("StateMachineType", "STANDARD")),
            logging=_camel_logging(logging_config),
            tracing_enabled=tracing,
        )
    return specs


def _camel_logging(config: dict[str, Any] | None) -> dict[str, Any] | None:
    # CloudFormation spells LoggingConfiguration in PascalCase; the Step Functions API in camelCase.
    if config is None:
        return None
    destinations = [
        {"cloudWatchLogsLogGroup": {"logGroupArn": d.get("CloudWatchLogsLogGroup", {}).get("LogGroupArn")}}
        for d in config.get("Destinations", [])
    ]
    return {
        "level": config.get("Level", "OFF"),
        "includeExecutionData": bool(config.get("IncludeExecutionData", False)),
        "destinations": destinations,
    }


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function of a template: enough for the engine to run its handler in-process."""

    logical_id: str
    name: str
    arn: str
    handler: str  # dotted module path + function, e.g. "tasks.deploy_green.handler"
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    role_arn: str = ""  # the execution role (its credentials are the worker's)
    reserved_concurrency: int | None = None


def lambda_functions(
    template: Mapping[str, Any], resources: ResourceMap | None = None
) -> dict[str, FunctionSpec]:
    """Every AWS::Lambda::Function with its handler path, timeout, memory and resolved environment."""
    resources = resources or ResourceMap(template)
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        props = resource.get("Properties", {})
        variables = props.get("Environment", {}).get("Variables", {})
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=resources.physical_name(logical_id),
            arn=resources.arn(logical_id),
            handler=str(props.get("Handler", "")),
            timeout_seconds=int(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            environment={
                k: _as_text(resolve(v, resources, where=f"{logical_id}.Environment.{k}"), logical_id)
                for k, v in variables.items()
            },
            role_arn=_role_arn(props.get("Role"), resources, logical_id),
            reserved_concurrency=(
                int(props["ReservedConcurrentExecutions"])
                if "ReservedConcurrentExecutions" in props
                else None
            ),
        )
    return specs


def _role_arn(role: Any, resources: ResourceMap, logical_id: str) -> str:
    if role is None:
        return ""
    try:
        return str(resolve(role, resources, where=f"{logical_id}.Role"))
    except UnresolvableIntrinsic:
        return ""
