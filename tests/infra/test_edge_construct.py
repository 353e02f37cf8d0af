"""The CloudFront edge in isolation: TLS 1.3 viewers, HTTPS origin with the secret header, logs, DNS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template

from contracts import names
from infra.edge_construct import CANARY_ROUTER_SOURCE, FORWARDED_HEADERS, EdgeConstruct, EdgeProps

ACCOUNT = "111111111111"
PUBLIC = "ws.staging.analytics.example.com"
ORIGIN = "origin-ws.staging.analytics.example.com"
CF_CERT = f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/11111111-1111-4111-8111-222222222222"
WEB_ACL = f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/staging-realtime-edge/abcd"


@pytest.fixture(scope="module")
def built() -> tuple[Template, dict[str, Any], EdgeConstruct]:
    app = App()
    stack = Stack(app, "EdgeTest", env=Environment(account=ACCOUNT, region="eu-west-1"))
    edge = EdgeConstruct(
        stack,
        "Edge",
        props=EdgeProps(
            environment="staging",
            public_domain_name=PUBLIC,
            origin_domain_name=ORIGIN,
            cloudfront_certificate_arn=CF_CERT,
            hosted_zone_id="Z0STAGING000000000001",
            hosted_zone_name="staging.analytics.example.com",
            secrets_key=kms.Key(stack, "SecretsKey"),
            logs_key=kms.Key(stack, "LogsKey"),
            access_log_retention_days=90,
            web_acl_arn=WEB_ACL,
        ),
    )
    template = Template.from_stack(stack)
    return template, template.to_json(), edge


def _distribution(tpl: dict[str, Any]) -> dict[str, Any]:
    (dist,) = [r for r in tpl["Resources"].values() if r["Type"] == "AWS::CloudFront::Distribution"]
    return dist["Properties"]["DistributionConfig"]


def test_viewers_need_tls13_on_the_public_name(built) -> None:
    _, tpl, _ = built
    config = _distribution(tpl)
    assert config["Aliases"] == [PUBLIC]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": CF_CERT,
        "MinimumProtocolVersion": "TLSv1.3_2025",
        "SslSupportMethod": "sni-only",
    }
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "https-only"
    assert config["WebACLId"] == WEB_ACL


def test_origin_is_the_api_domain_over_https_with_the_secret_header_by_reference(built) -> None:
    _, tpl, _ = built
    (origin,) = _distribution(tpl)["Origins"]
    assert origin["DomainName"] == ORIGIN
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    (header,) = origin["OriginCustomHeaders"]
    assert header["HeaderName"] == "x-origin-verify"
    value = json.dumps(header["HeaderValue"])
    # Only a dynamic reference to the generated secret: no header value in the template.
    assert "{{resolve:secretsmanager:" in value and ":SecretString:header_value::}}" in value
    secret_id = next(lid for lid, r in tpl["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret")
    assert secret_id in value


def test_origin_secret_is_generated_and_kms_encrypted(built) -> None:
    template, _, edge = built
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": "staging/realtime/origin-verify",
            "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("SecretsKey"), "Arn"]},
            "GenerateSecretString": Match.object_like(
                {"GenerateStringKey": "header_value", "SecretStringTemplate": "{}", "PasswordLength": 64}
            ),
        },
    )
    assert edge.stage_url("live") == f"wss://{PUBLIC}/live"


def test_websocket_behavior_disables_caching_and_forwards_only_handshake_and_key(built) -> None:
    template, tpl, _ = built
    behavior = _distribution(tpl)["DefaultCacheBehavior"]
    # Managed CachingDisabled policy.
    assert behavior["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    template.has_resource_properties(
        "AWS::CloudFront::OriginRequestPolicy",
        {
            "OriginRequestPolicyConfig": Match.object_like(
                {
                    "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": list(FORWARDED_HEADERS)},
                    "QueryStringsConfig": {"QueryStringBehavior": "whitelist", "QueryStrings": ["api_key"]},
                    "CookiesConfig": {"CookieBehavior": "none"},
                }
            )
        },
    )
    headers = {h.lower() for h in FORWARDED_HEADERS}
    assert "host" not in headers and {"sec-websocket-key", "sec-websocket-version"} <= headers


def _one_of(tpl: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(lid, r["Properties"]) for lid, r in tpl["Resources"].items() if r["Type"] == kind]
    return found


def test_canary_router_is_a_js2_viewer_request_function_reading_the_canary_store(built) -> None:
    _, tpl, edge = built
    store_id, store = _one_of(tpl, "AWS::CloudFront::KeyValueStore")
    assert store["Name"] == names.canary_store_name("staging") == "staging-realtime-canary"
    function_id, function = _one_of(tpl, "AWS::CloudFront::Function")
    assert (
        function["Name"] == names.canary_router_function_name("staging") == "staging-realtime-canary-router"
    )
    # KeyValueStore reads need the 2.0 runtime; a function can have one store (this one).
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert function["FunctionConfig"]["KeyValueStoreAssociations"] == [
        {"KeyValueStoreARN": {"Fn::GetAtt": [store_id, "Arn"]}}
    ]
    assert function["AutoPublish"] is True
    # The code deployed is the repository's file, byte for byte.
    assert function["FunctionCode"] == CANARY_ROUTER_SOURCE.read_text(encoding="utf-8")
    # On the only (default) behavior, on viewer requests: every WebSocket handshake passes through it.
    config = _distribution(tpl)
    assert "CacheBehaviors" not in config
    assert config["DefaultCacheBehavior"]["FunctionAssociations"] == [
        {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": [function_id, "FunctionARN"]}}
    ]
    assert Stack.of(edge).resolve(edge.canary_store_arn) == {"Fn::GetAtt": [store_id, "Arn"]}


def test_access_logs_go_to_a_locked_kms_encrypted_private_bucket(built) -> None:
    template, tpl, _ = built
    logging = _distribution(tpl)["Logging"]
    assert logging["Prefix"] == "cloudfront/"
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like(
                        {
                            "BucketKeyEnabled": True,
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": {
                                    "Fn::GetAtt": [Match.string_like_regexp("LogsKey"), "Arn"]
                                },
                            },
                        }
                    )
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "ObjectLockEnabled": True,
            "VersioningConfiguration": {"Status": "Enabled"},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "ObjectWriter"}]},
        },
    )
    # TLS-only bucket policy.
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "delivery.logs.amazonaws.com"},
                                "Action": "kms:GenerateDataKey*",
                            }
                        )
                    ]
                )
            }
        },
    )


def test_public_name_resolves_to_the_distribution_over_ipv4_and_ipv6(built) -> None:
    template, _, _ = built
    for record_type in ("A", "AAAA"):
        template.has_resource_properties(
            "AWS::Route53::RecordSet",
            {
                "Name": f"{PUBLIC}.",
                "Type": record_type,
                "HostedZoneId": "Z0STAGING000000000001",
                "AliasTarget": Match.object_like({"HostedZoneId": Match.any_value()}),
            },
        )


def test_scanner_suppressions_sit_on_their_resource_with_a_reason(built) -> None:
    _, tpl, _ = built
    skipped = {
        r["Type"]: [entry["id"] for entry in r["Metadata"]["checkov"]["skip"] if entry["comment"]]
        for r in tpl["Resources"].values()
        if "checkov" in r.get("Metadata", {})
    }
    assert skipped == {"AWS::CloudFront::Distribution": ["CKV_AWS_68"], "AWS::S3::Bucket": ["CKV_AWS_18"]}
