"""The public edge: CloudFront in front of the WebSocket API's custom domain, TLS 1.3 only for viewers.

Hops and what each enforces:
- client -> CloudFront: viewer policy `TLSv1.3_2025` (TLS 1.3 only), HTTPS only.
- CloudFront -> API Gateway custom domain: HTTPS only, origin protocol TLSv1.2 (CloudFront offers
  no newer origin setting; API Gateway's WebSocket policy `TLS_1_2` accepts 1.2 and 1.3).
- The origin accepts only requests that carry `x-origin-verify` with the value in the origin
  secret; CloudFront adds that header on every origin request (a viewer-sent copy is overwritten).

The header value reaches CloudFront through a CloudFormation dynamic reference
(`{{resolve:secretsmanager:<arn>:SecretString:header_value::}}`): the template and the cloud
assembly hold only the reference, CloudFormation resolves it at deploy time. The resolved value
is part of the distribution's configuration (readable with `cloudfront:GetDistributionConfig`),
so that permission is as sensitive as `secretsmanager:GetSecretValue` on the origin secret.
Rotating it means: put a new value, then update the stack (CloudFormation re-resolves only on a
stack update that touches the distribution); the authorizer reads the secret (cached 60 s).

The connection canary (contracts/canary.py): a CloudFront Function (JavaScript runtime 2.0) runs on
every viewer request of the default behavior, the WebSocket upgrade GET included, reads the canary
share from a CloudFront KeyValueStore and rewrites that share of new `/live` handshakes to
`/canary` (the API's canary stage, on each function's `green` alias). The release tasks write the
share with the KeyValueStore API (`canary_store` grant, infra/orchestration/grants.py); the function
only reads it. One store per function is all CloudFront allows, and all this needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contracts import names
from infra.api_construct import ORIGIN_VERIFY_HEADER
from infra.scanner import checkov_skip

ORIGIN_SECRET_FIELD = "header_value"  # noqa: S105 - a JSON field name, not a secret
# The WebSocket handshake needs these to reach the origin; the API key may come as a header.
FORWARDED_HEADERS = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "x-api-key",
)
# `api_key` is the query-string form of the key (browsers cannot set headers on a WebSocket).
FORWARDED_QUERY_STRINGS = ("api_key",)
# The viewer-request function of the connection canary (cloudfront-js-2.0 source, deployed as is).
CANARY_ROUTER_SOURCE = Path(__file__).resolve().parent / "edge" / "canary_router.js"


@dataclass(frozen=True)
class EdgeProps:
    environment: str
    public_domain_name: str
    origin_domain_name: str
    cloudfront_certificate_arn: str
    hosted_zone_id: str
    hosted_zone_name: str
    secrets_key: kms.IKey
    # Encrypts the access-log bucket; CloudFront's log delivery is granted use of it.
    logs_key: kms.IKey
    access_log_retention_days: int
    # A CLOUDFRONT-scope WAF web ACL (created in us-east-1); None leaves the distribution without one.
    web_acl_arn: str | None = None
    price_class: cloudfront.PriceClass = cloudfront.PriceClass.PRICE_CLASS_100


class EdgeConstruct(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: EdgeProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.origin_secret = secretsmanager.Secret(
            self,
            "OriginSecret",
            secret_name=f"{props.environment}/realtime/origin-verify",
            description="Value CloudFront adds as x-origin-verify; the $connect authorizer refuses requests without it",
            encryption_key=props.secrets_key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106 - empty JSON object; the value is generated
                generate_string_key=ORIGIN_SECRET_FIELD,
                exclude_punctuation=True,
                password_length=64,
            ),
        )
        self.log_bucket = self._log_bucket()
        self.canary_store, self.canary_router = self._canary_router()
        self.origin_request_policy = cloudfront.OriginRequestPolicy(
            self,
            "WebSocketOriginRequest",
            origin_request_policy_name=f"{props.environment}-realtime-websocket",
            comment="WebSocket handshake headers and the API key; never Host (API Gateway routes on its own name)",
            header_behavior=cloudfront.OriginRequestHeaderBehavior.allow_list(*FORWARDED_HEADERS),
            query_string_behavior=cloudfront.OriginRequestQueryStringBehavior.allow_list(
                *FORWARDED_QUERY_STRINGS
            ),
            cookie_behavior=cloudfront.OriginRequestCookieBehavior.none(),
        )
        origin = origins.HttpOrigin(
            props.origin_domain_name,
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
            custom_headers={
                ORIGIN_VERIFY_HEADER: self.origin_secret.secret_value_from_json(
                    ORIGIN_SECRET_FIELD
                ).unsafe_unwrap()
            },
            # The handshake is one request; longer waits only hold a failing connection open.
            read_timeout=Duration.seconds(30),
            connection_attempts=3,
            connection_timeout=Duration.seconds(5),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{props.environment} realtime analytics WebSocket edge",
            domain_names=[props.public_domain_name],
            certificate=acm.Certificate.from_certificate_arn(
                self, "Certificate", props.cloudfront_certificate_arn
            ),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_3_2025,
            ssl_support_method=cloudfront.SSLMethod.SNI,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_ipv6=True,
            price_class=props.price_class,
            web_acl_id=props.web_acl_arn,
            enable_logging=True,
            log_bucket=self.log_bucket,
            log_file_prefix="cloudfront/",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                # A WebSocket upgrade is a GET; nothing else is served.
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=self.origin_request_policy,
                compress=False,
                # Decides `live` or `canary` once per connection, on its handshake.
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.canary_router,
                        event_type=cloudfront.FunctionEventType.VIEWER_REQUEST,
                    )
                ],
            ),
        )
        checkov_skip(
            self.distribution,
            "CKV_AWS_68",
            "No web ACL yet (see the AwsSolutions-CFR2 acknowledgment); EdgeProps.web_acl_arn attaches one",
        )
        checkov_skip(
            self.log_bucket,
            "CKV_AWS_18",
            "This bucket holds CloudFront's access logs; logging its own accesses would log into itself",
        )
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=props.hosted_zone_id, zone_name=props.hosted_zone_name
        )
        target = route53.RecordTarget.from_alias(targets.CloudFrontTarget(self.distribution))
        self.records = (
            route53.ARecord(
                self, "PublicRecord", zone=zone, record_name=props.public_domain_name, target=target
            ),
            route53.AaaaRecord(
                self, "PublicRecordIpv6", zone=zone, record_name=props.public_domain_name, target=target
            ),
        )

    def stage_url(self, stage: str) -> str:
        """The client URL of a stage: `wss://<public-host>/<stage>`."""
        return f"wss://{self._props.public_domain_name}/{stage}"

    @property
    def canary_store_arn(self) -> str:
        """`arn:aws:cloudfront::<account>:key-value-store/<id>`: what the release tasks read and write."""
        return self.canary_store.key_value_store_arn

    def _canary_router(self) -> tuple[cloudfront.KeyValueStore, cloudfront.Function]:
        env = self._props.environment
        store = cloudfront.KeyValueStore(
            self,
            "CanaryStore",
            key_value_store_name=names.canary_store_name(env),
            comment="Connection canary: percent of new /live WebSocket handshakes sent to the canary stage",
        )
        router = cloudfront.Function(
            self,
            "CanaryRouter",
            function_name=names.canary_router_function_name(env),
            comment="Sends the KeyValueStore's share of new /live handshakes to /canary (green)",
            code=cloudfront.FunctionCode.from_file(file_path=str(CANARY_ROUTER_SOURCE)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            key_value_store=store,
            auto_publish=True,
        )
        return store, router

    def _log_bucket(self) -> s3.Bucket:
        retention_days = self._props.access_log_retention_days
        # CloudFront's standard-log delivery writes SSE-KMS objects only if the key lets it.
        self._props.logs_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudFrontLogDelivery",
                principals=[iam.ServicePrincipal("delivery.logs.amazonaws.com")],
                actions=["kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        return s3.Bucket(
            self,
            "AccessLogs",
            # Standard logs are delivered with an ACL grant, so ACLs stay enabled for the writer.
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self._props.logs_key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            # Access logs are audit evidence: nobody rewrites them before they expire.
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(Duration.days(retention_days)),
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
