"""The WebSocket API: routes, the `$connect` authorizer, the `live`, `preview` and `canary` stages, the origin domain.

Why mostly L1: every integration (and the authorizer) targets `<function-arn>:${stageVariables.alias}`,
so one API serves two releases at once: the `live` stage resolves to each function's `live` alias,
the `preview` and `canary` stages to its `green` alias. The L2 Lambda integration only targets a
fixed function ARN, so the routes, integrations, authorizer and stages are written against the
CloudFormation resources directly; the custom domain uses the L2 `DomainName`.

Hostnames (one origin domain, three API mappings whose keys equal the stage names):
    wss://<origin-host>/live     -> stage `live`    (alias `live`)
    wss://<origin-host>/preview  -> stage `preview` (alias `green`)
    wss://<origin-host>/canary   -> stage `canary`  (alias `green`)
Mapping key == stage name keeps the `@connections` callback URL that a handler builds from
`requestContext.domainName` + `requestContext.stage` (`https://<origin-host>/<stage>`) correct
for every stage. The default execute-api endpoint is disabled: the only way in is the custom
domain, which CloudFront fronts (see edge_construct.py).

`canary` is the connection-level canary (contracts/canary.py): clients never name it; the edge
function rewrites a share of new `/live` handshakes to `/canary`, so those connections run on
green for their whole life. It is throttled like `live`, whose clients it carries a share of.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import Aws, CfnResource, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct, IDependable

from contracts.canary import CANARY_STAGE
from infra.retention import retention
from service import catalog

LIVE_STAGE = "live"
PREVIEW_STAGE = "preview"
# Stage -> the Lambda alias its integrations resolve to (stage variable `alias`).
STAGE_ALIASES: Mapping[str, str] = {LIVE_STAGE: "live", PREVIEW_STAGE: "green", CANARY_STAGE: "green"}
# The stages `ApiProps.throttle` configures (config/<env>.json `api`), and the stage whose limits each
# stage takes: `canary` carries a share of `live`'s clients (up to all of them at a 100% step), so it
# gets live's limits. API Gateway throttles per stage, so the two together may take twice live's rate.
THROTTLED_STAGES: tuple[str, ...] = (LIVE_STAGE, PREVIEW_STAGE)
THROTTLE_OF_STAGE: Mapping[str, str] = {
    LIVE_STAGE: LIVE_STAGE,
    PREVIEW_STAGE: PREVIEW_STAGE,
    CANARY_STAGE: LIVE_STAGE,
}
ROUTE_SELECTION_EXPRESSION = "$request.body.action"
ORIGIN_VERIFY_HEADER = "x-origin-verify"
# API Gateway rejects a $connect that lacks any identity source before invoking the authorizer.
# Only the CloudFront-added header is listed: the API key may come as header `x-api-key` OR
# query string `api_key`, and identity sources are all-required, so the authorizer checks the key.
AUTHORIZER_IDENTITY_SOURCES = (f"route.request.header.{ORIGIN_VERIFY_HEADER}",)

# JSON access log line per WebSocket event; keys are stable so log queries do not break.
ACCESS_LOG_FORMAT: Mapping[str, str] = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "requestTimeEpoch": "$context.requestTimeEpoch",
    "stage": "$context.stage",
    "domainName": "$context.domainName",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "integrationLatency": "$context.integrationLatency",
    "errorMessage": "$context.error.message",
    "errorResponseType": "$context.error.responseType",
}


@dataclass(frozen=True)
class ApiThrottle:
    """Steady-state requests/s and burst per stage (all routes); API Gateway answers 429 above it."""

    rate_limit: float
    burst_limit: int


@dataclass(frozen=True)
class ApiProps:
    environment: str
    # Catalog key -> function (unqualified); the aliases `live` and `green` must exist on each.
    functions: Mapping[str, lambda_.IFunction]
    origin_domain_name: str
    regional_certificate_arn: str
    hosted_zone_id: str
    hosted_zone_name: str
    logs_key: kms.IKey
    log_retention_days: int
    # Per THROTTLED_STAGES stage; the canary stage takes live's (THROTTLE_OF_STAGE).
    throttle: Mapping[str, ApiThrottle]
    # Resources the Lambda permissions must wait for (the aliases they name).
    alias_dependencies: Sequence[IDependable] = field(default_factory=tuple)
    # The account-wide API Gateway -> CloudWatch Logs role; WebSocket stages cannot log without it.
    manage_account_logging_role: bool = True


class WebSocketApiConstruct(Construct):
    """API Gateway v2 WebSocket API with alias-routed integrations, three stages and a custom domain."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ApiProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self._stack = Stack.of(self)
        missing = sorted({*catalog.route_table().values(), "authorizer"} - set(props.functions))
        if missing:
            raise ValueError(f"WebSocket API: no function for catalog key(s) {', '.join(missing)}")
        if set(props.throttle) != set(THROTTLED_STAGES):
            raise ValueError(
                f"WebSocket API: throttle needs exactly the stages {sorted(THROTTLED_STAGES)} (canary takes "
                f"{THROTTLE_OF_STAGE[CANARY_STAGE]}'s), got {sorted(props.throttle)}"
            )

        self.api = apigwv2.CfnApi(
            self,
            "Api",
            name=f"{props.environment}-realtime-websocket",
            description=f"{props.environment} realtime analytics WebSocket API",
            protocol_type="WEBSOCKET",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
            # Clients must come through the custom domain (and so through CloudFront).
            disable_execute_api_endpoint=True,
        )
        self.api_id = self.api.ref

        self.authorizer = self._authorizer()
        self.routes = self._routes()
        self._grant_invoke()
        self.log_group = self._access_log_group()
        account_logging = self._account_logging_role() if props.manage_account_logging_role else None
        self.stages: dict[str, apigwv2.CfnStage] = {}
        for stage_name in STAGE_ALIASES:
            stage = self._stage(stage_name)
            if account_logging is not None:
                stage.node.add_dependency(account_logging)
            self.stages[stage_name] = stage
        self.domain = self._domain()

    # -- identifiers other constructs need -------------------------------------------------

    @property
    def origin_domain_name(self) -> str:
        return self._props.origin_domain_name

    def stage_url(self, stage: str) -> str:
        """`wss://<origin-host>/<stage>` (reachable only with the CloudFront origin header)."""
        return f"wss://{self._props.origin_domain_name}/{stage}"

    def connections_endpoint(self, stage: str) -> str:
        """Base URL of the `@connections` management API for a stage (boto3 `endpoint_url`)."""
        return f"https://{self._props.origin_domain_name}/{stage}"

    def execute_api_arn(self, resource: str) -> str:
        """`arn:...:execute-api:<region>:<account>:<api-id>/<resource>`.

        Region and account stay pseudo-parameter references (not the configured literals), so
        policy findings read the same in every environment and one acknowledgment covers both.
        """
        return Fn.join(
            "",
            [f"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:", self.api_id, f"/{resource}"],
        )

    def connections_arn(self, stage: str, method: str = "*") -> str:
        """`<api>/<stage>/<method>/@connections/*`: the `@connections` of one stage (method POST, GET, DELETE or *)."""
        if stage not in STAGE_ALIASES:
            raise ValueError(f"WebSocket API has no stage {stage!r}")
        return self.execute_api_arn(f"{stage}/{method}/@connections/*")

    def grant_manage_connections(self, grantee: iam.IGrantable) -> iam.Grant:
        """`execute-api:ManageConnections` on every stage's `@connections` (POST/GET/DELETE), nothing else.

        Every stage: a client connected to `canary` is fanned out to like one on `live`.
        """
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:ManageConnections"],
            resource_arns=[self.connections_arn(stage) for stage in STAGE_ALIASES],
        )

    # -- building blocks ---------------------------------------------------------------------

    def _lambda_uri(self, function: lambda_.IFunction) -> str:
        # The alias is chosen per request by the stage; `${stageVariables.alias}` stays literal.
        return (
            f"arn:{self._stack.partition}:apigateway:{self._stack.region}:lambda:path/2015-03-31/functions/"
            f"{function.function_arn}:${{stageVariables.alias}}/invocations"
        )

    def _authorizer(self) -> apigwv2.CfnAuthorizer:
        return apigwv2.CfnAuthorizer(
            self,
            "ConnectAuthorizer",
            api_id=self.api_id,
            name="api-key-and-origin",
            authorizer_type="REQUEST",
            authorizer_uri=self._lambda_uri(self._props.functions["authorizer"]),
            identity_source=list(AUTHORIZER_IDENTITY_SOURCES),
        )

    def _routes(self) -> dict[str, apigwv2.CfnRoute]:
        integrations: dict[str, apigwv2.CfnIntegration] = {}
        routes: dict[str, apigwv2.CfnRoute] = {}
        for route_key, function_key in sorted(catalog.route_table().items()):
            integration = integrations.get(function_key)
            if integration is None:
                integration = apigwv2.CfnIntegration(
                    self,
                    f"{_camel(function_key)}Integration",
                    api_id=self.api_id,
                    integration_type="AWS_PROXY",
                    integration_uri=self._lambda_uri(self._props.functions[function_key]),
                    # Lambda proxy integrations must be invoked with POST.
                    integration_method="POST",
                    timeout_in_millis=29_000,
                )
                integrations[function_key] = integration
            is_connect = route_key == "$connect"
            route = apigwv2.CfnRoute(
                self,
                f"{_camel(route_key)}Route",
                api_id=self.api_id,
                route_key=route_key,
                target=f"integrations/{integration.ref}",
                # WebSocket APIs authorize once, at $connect; later frames ride that connection.
                authorization_type="CUSTOM" if is_connect else "NONE",
                authorizer_id=self.authorizer.ref if is_connect else None,
                operation_name=_camel(route_key),
            )
            routes[route_key] = route
        self.integrations = integrations
        return routes

    def _grant_invoke(self) -> None:
        """Lambda permissions per alias, each scoped to the stages that route to it."""
        integrated = sorted(set(catalog.route_table().values()))
        authorized: set[str] = set()
        for stage_name, alias in STAGE_ALIASES.items():
            # The first stage of an alias keeps the id it had before `canary` existed (a new logical
            # id replaces the permission); a later stage on the same alias adds its own name.
            suffix = _camel(alias) if alias not in authorized else f"{_camel(alias)}{_camel(stage_name)}"
            for key in integrated:
                self._permission(
                    f"Invoke{_camel(key)}{suffix}",
                    key,
                    alias,
                    self.execute_api_arn(f"{stage_name}/*"),
                )
            if alias in authorized:
                continue
            authorized.add(alias)
            # Authorizer source ARNs carry no stage: `<api>/authorizers/<authorizer-id>`, one per alias.
            self._permission(
                f"InvokeAuthorizer{_camel(alias)}",
                "authorizer",
                alias,
                self.execute_api_arn(f"authorizers/{self.authorizer.ref}"),
            )

    def _permission(self, construct_id: str, key: str, alias: str, source_arn: str) -> None:
        permission = lambda_.CfnPermission(
            self,
            construct_id,
            action="lambda:InvokeFunction",
            function_name=f"{self._props.functions[key].function_arn}:{alias}",
            principal="apigateway.amazonaws.com",
            source_account=self._stack.account,
            source_arn=source_arn,
        )
        for dependency in self._props.alias_dependencies:
            permission.node.add_dependency(dependency)

    def _access_log_group(self) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{self._props.environment}-realtime-websocket/access",
            retention=retention(self._props.log_retention_days),
            encryption_key=self._props.logs_key,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _account_logging_role(self) -> CfnResource:
        # WebSocket (like REST) stages log through the regional account setting's role.
        role = iam.Role(
            self,
            "ApiGatewayCloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway account role: writes WebSocket access and execution logs",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                )
            ],
        )
        # The account setting is an API Gateway (v1) resource shared by REST and WebSocket APIs.
        account = apigw.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
        # Keep the setting when the stack goes: other APIs in the account may rely on it.
        account.apply_removal_policy(RemovalPolicy.RETAIN)
        self.account_logging_role = role
        return account

    def _stage(self, stage_name: str) -> apigwv2.CfnStage:
        throttle = self._props.throttle[THROTTLE_OF_STAGE[stage_name]]
        stage = apigwv2.CfnStage(
            self,
            f"{_camel(stage_name)}Stage",
            api_id=self.api_id,
            stage_name=stage_name,
            description=f"Routes to each function's `{STAGE_ALIASES[stage_name]}` alias"
            + (
                " (connection canary: the edge sends a share of new /live handshakes here)"
                if stage_name == CANARY_STAGE
                else ""
            ),
            auto_deploy=True,
            stage_variables={"alias": STAGE_ALIASES[stage_name]},
            access_log_settings=apigwv2.CfnStage.AccessLogSettingsProperty(
                destination_arn=self.log_group.log_group_arn,
                format=json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")),
            ),
            default_route_settings=apigwv2.CfnStage.RouteSettingsProperty(
                throttling_rate_limit=throttle.rate_limit,
                throttling_burst_limit=throttle.burst_limit,
                # Execution logs carry errors only; message bodies (data trace) never reach logs.
                logging_level="ERROR",
                data_trace_enabled=False,
                detailed_metrics_enabled=True,
            ),
        )
        # Auto-deploy snapshots the routes: create them first so the first deployment is complete.
        for route in self.routes.values():
            stage.node.add_dependency(route)
        return stage

    def _domain(self) -> apigwv2.DomainName:
        props = self._props
        domain = apigwv2.DomainName(
            self,
            "OriginDomain",
            domain_name=props.origin_domain_name,
            certificate=acm.Certificate.from_certificate_arn(
                self, "RegionalCertificate", props.regional_certificate_arn
            ),
            endpoint_type=apigwv2.EndpointType.REGIONAL,
            # The best WebSocket APIs offer: TLS 1.2 and 1.3 accepted, 1.0/1.1 refused.
            security_policy=apigwv2.SecurityPolicy.TLS_1_2,
        )
        self.api_mappings: dict[str, apigwv2.CfnApiMapping] = {}
        for stage_name, stage in self.stages.items():
            mapping = apigwv2.CfnApiMapping(
                self,
                f"{_camel(stage_name)}Mapping",
                api_id=self.api_id,
                domain_name=domain.name,
                stage=stage.ref,
                api_mapping_key=stage_name,
            )
            mapping.node.add_dependency(stage)
            self.api_mappings[stage_name] = mapping
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=props.hosted_zone_id, zone_name=props.hosted_zone_name
        )
        target = route53.RecordTarget.from_alias(
            targets.ApiGatewayv2DomainProperties(domain.regional_domain_name, domain.regional_hosted_zone_id)
        )
        self.origin_record = route53.ARecord(
            self, "OriginRecord", zone=zone, record_name=props.origin_domain_name, target=target
        )
        return domain


def origin_domain_name_for(public_domain_name: str) -> str:
    """`ws.example.com` -> `origin-ws.example.com`: a sibling name, so one wildcard certificate covers both."""
    first, _, rest = public_domain_name.partition(".")
    if not rest:
        raise ValueError(f"domain name {public_domain_name!r} has no parent domain")
    return f"origin-{first}.{rest}"


def _camel(text: str) -> str:
    parts = [part for part in text.replace("$", "").replace("-", "_").split("_") if part]
    return "".join(part[:1].upper() + part[1:] for part in parts)
