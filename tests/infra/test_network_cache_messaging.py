"""Template assertions: network, cache and messaging, for both environments."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from contracts import names
from infra.config import EnvironmentConfig


def _only(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return next(iter(found.items()))


def _subnets(template: Template, name: str) -> dict[str, dict[str, Any]]:
    return {
        logical: resource
        for logical, resource in template.find_resources("AWS::EC2::Subnet").items()
        if any(
            tag["Key"] == "aws-cdk:subnet-name" and tag["Value"] == name
            for tag in resource["Properties"]["Tags"]
        )
    }


def test_vpc_spans_configured_zones_with_three_tiers(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    zones = configs[env].network.availability_zones
    for tier in ("ingress", "service", "cache"):
        subnets = _subnets(template, tier)
        assert sorted(s["Properties"]["AvailabilityZone"] for s in subnets.values()) == sorted(zones)
        for subnet in subnets.values():
            assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    template.resource_count_is("AWS::EC2::NatGateway", configs[env].network.nat_gateways)


def test_nat_one_in_staging_one_per_zone_in_production(
    staging_template: Template, production_template: Template
) -> None:
    staging_template.resource_count_is("AWS::EC2::NatGateway", 1)
    production_template.resource_count_is("AWS::EC2::NatGateway", 3)


def test_cache_subnets_have_no_route_to_the_internet(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    cache_subnets = set(_subnets(template, "cache"))
    tables = {
        assoc["Properties"]["RouteTableId"]["Ref"]
        for assoc in template.find_resources("AWS::EC2::SubnetRouteTableAssociation").values()
        if assoc["Properties"]["SubnetId"]["Ref"] in cache_subnets
    }
    routes = template.find_resources("AWS::EC2::Route")
    assert not [r for r in routes.values() if r["Properties"]["RouteTableId"]["Ref"] in tables]


def test_endpoints(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint")
    names = []
    for endpoint in endpoints.values():
        service = endpoint["Properties"]["ServiceName"]
        names.append(service if isinstance(service, str) else "".join(str(p) for p in service["Fn::Join"][1]))
        if endpoint["Properties"].get("VpcEndpointType") == "Interface":
            assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    joined = " ".join(names)
    for service in ("sqs", "sns", "secretsmanager", "logs", "monitoring", "sts", "xray", "s3", "dynamodb"):
        assert f".{service}" in joined, f"no VPC endpoint for {service}"
    assert "execute-api" not in joined  # @connections is not served by an execute-api endpoint


def test_flow_logs_to_encrypted_group(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    template.has_resource_properties(
        "AWS::EC2::FlowLog",
        {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"},
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "LogGroupName": Match.string_like_regexp("/flow-logs$"),
            "KmsKeyId": Match.any_value(),
            "RetentionInDays": Match.any_value(),
        },
    )


def test_every_log_group_is_encrypted_with_retention(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    for logical, group in template.find_resources("AWS::Logs::LogGroup").items():
        assert "KmsKeyId" in group["Properties"], logical
        assert group["Properties"]["RetentionInDays"] >= 365, logical


def test_cache_reachable_only_from_lambda_sg(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    port = configs[env].cache.port
    groups = template.find_resources("AWS::EC2::SecurityGroup")
    cache_sg = next(k for k, v in groups.items() if "ElastiCache" in v["Properties"]["GroupDescription"])
    lambda_sg = next(
        k
        for k, v in groups.items()
        if v["Properties"]["GroupDescription"].startswith("Service and task Lambdas")
    )
    ingress = [
        rule["Properties"]
        for rule in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [cache_sg, "GroupId"]}
    ]
    assert ingress == [
        {
            "Description": "Redis protocol (TLS) from the Lambdas",
            "FromPort": port,
            "ToPort": port,
            "IpProtocol": "tcp",
            "GroupId": {"Fn::GetAtt": [cache_sg, "GroupId"]},
            "SourceSecurityGroupId": {"Fn::GetAtt": [lambda_sg, "GroupId"]},
        }
    ]
    assert "SecurityGroupIngress" not in groups[cache_sg]["Properties"]
    # No egress from the cache security group at all (CDK renders a harmless placeholder rule).
    egress = groups[cache_sg]["Properties"]["SecurityGroupEgress"]
    assert [rule["CidrIp"] for rule in egress] == ["255.255.255.255/32"]


def test_cache_nacl_admits_only_cache_port_from_service_subnets(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    port = configs[env].cache.port
    service_cidrs = {s["Properties"]["CidrBlock"] for s in _subnets(template, "service").values()}
    cache_cidrs = {s["Properties"]["CidrBlock"] for s in _subnets(template, "cache").values()}
    inbound = [
        e["Properties"]
        for e in template.find_resources("AWS::EC2::NetworkAclEntry").values()
        if not e["Properties"].get("Egress")
    ]
    for entry in inbound:
        assert entry["RuleAction"] == "allow"
        if entry["CidrBlock"] in service_cidrs:
            assert entry["PortRange"] == {"From": port, "To": port}
        else:
            assert entry["CidrBlock"] in cache_cidrs
    assert {e["CidrBlock"] for e in inbound} == service_cidrs | cache_cidrs


def test_replication_group_security_properties(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    """The checks cdk-nag and Control Tower skip for Valkey (they key on Engine == "redis")."""
    env, template = env_template
    cache = configs[env].cache
    _, group = _only(template, "AWS::ElastiCache::ReplicationGroup")
    props = group["Properties"]
    assert props["Engine"] == cache.engine and props["EngineVersion"] == cache.engine_version
    assert props["MultiAZEnabled"] is True and props["AutomaticFailoverEnabled"] is True
    assert props["ReplicasPerNodeGroup"] == cache.replicas >= 1
    assert len(set(props["PreferredCacheClusterAZs"])) >= 2
    assert props["AtRestEncryptionEnabled"] is True
    assert props["KmsKeyId"]["Fn::GetAtt"][0].startswith("KeysCache")
    assert props["TransitEncryptionEnabled"] is True and props["TransitEncryptionMode"] == "required"
    auth = props["AuthToken"]["Fn::Join"][1]
    assert auth[0] == "{{resolve:secretsmanager:" and auth[2] == ":SecretString:token::}}"
    assert props["Port"] == cache.port != 6379
    assert props["SnapshotRetentionLimit"] == cache.snapshot_retention_days >= 1
    assert props["SnapshotWindow"] == cache.snapshot_window
    assert props["PreferredMaintenanceWindow"] == cache.maintenance_window
    assert props["AutoMinorVersionUpgrade"] is True
    assert props["ReplicationGroupId"] == names.cache_replication_group_id(env)
    assert group["DeletionPolicy"] == "Snapshot"
    template.has_resource_properties(
        "AWS::ElastiCache::ParameterGroup",
        {
            "CacheParameterGroupFamily": cache.parameter_family,
            "Properties": {"maxmemory-policy": cache.maxmemory_policy},
        },
    )
    cache_subnets = set(_subnets(template, "cache"))
    _, subnet_group = _only(template, "AWS::ElastiCache::SubnetGroup")
    assert {ref["Ref"] for ref in subnet_group["Properties"]["SubnetIds"]} == cache_subnets


def test_cache_auth_secret_is_generated_and_encrypted(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": names.secret_name(env, "cache-auth"),
            "KmsKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^KeysSecrets"), "Arn"]},
            "GenerateSecretString": Match.object_like(
                {"GenerateStringKey": "token", "ExcludePunctuation": True}
            ),
        },
    )


def test_queues_encrypted_with_dlq_redrive(
    env_template: tuple[str, Template], configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    queues = template.find_resources("AWS::SQS::Queue")
    by_name = {q["Properties"]["QueueName"]: (logical, q["Properties"]) for logical, q in queues.items()}
    for name in ("events", "preview-events"):
        _, props = by_name[names.queue_name(env, name)]
        dlq_logical, dlq_props = by_name[names.dlq_name(env, name)]
        assert props["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq_logical, "Arn"]},
            "maxReceiveCount": configs[env].messaging.dlq_max_receive_count,
        }
        for queue in (props, dlq_props):
            assert queue["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("KeysMessaging")
        assert dlq_props["MessageRetentionPeriod"] == configs[env].messaging.dlq_retention_days * 86400


def _denies_insecure_transport(policy: dict[str, Any]) -> bool:
    return any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in policy["Statement"]
    )


def test_queues_and_topics_refuse_plain_http(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    queue_policies = template.find_resources("AWS::SQS::QueuePolicy")
    covered = {q["Ref"] for p in queue_policies.values() for q in p["Properties"]["Queues"]}
    # Every queue of the stack (events, preview-events, their DLQs and any other) has one.
    assert covered == set(template.find_resources("AWS::SQS::Queue"))
    assert all(_denies_insecure_transport(p["Properties"]["PolicyDocument"]) for p in queue_policies.values())
    topic_policies = template.find_resources("AWS::SNS::TopicPolicy")
    covered = {t["Ref"] for p in topic_policies.values() for t in p["Properties"]["Topics"]}
    assert covered == set(template.find_resources("AWS::SNS::Topic"))
    assert all(_denies_insecure_transport(p["Properties"]["PolicyDocument"]) for p in topic_policies.values())


def test_topics_kms_encrypted(env_template: tuple[str, Template]) -> None:
    env, template = env_template
    for name in ("alerts", "operations"):
        template.has_resource_properties(
            "AWS::SNS::Topic",
            {
                "TopicName": names.topic_name(env, name),
                "KmsMasterKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^KeysMessaging"), "Arn"]},
            },
        )


def test_kms_keys_rotate_and_deny_grants_to_non_services(env_template: tuple[str, Template]) -> None:
    _, template = env_template
    keys = template.find_resources("AWS::KMS::Key")
    assert {"KeysLogs", "KeysMessaging", "KeysCache", "KeysSecrets"} <= {k[:-8] for k in keys}
    for logical, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True
        if logical.startswith("Keys"):
            assert key["DeletionPolicy"] == "Retain"
        statements = key["Properties"]["KeyPolicy"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Action"] == "kms:CreateGrant" for s in statements)
