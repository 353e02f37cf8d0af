"""The CloudFront edge as wired into each stage: public name, certificates, origin, no plaintext secret."""

from __future__ import annotations

import json

from infra.api_construct import origin_domain_name_for
from infra.config import EnvironmentConfig


def test_distribution_serves_the_configured_name_with_tls13_and_the_us_east_1_certificate(
    env_template, configs: dict[str, EnvironmentConfig]
) -> None:
    env, template = env_template
    domain = configs[env].domain
    (distribution,) = template.find_resources("AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    assert config["Aliases"] == [domain.domain_name]
    assert config["ViewerCertificate"]["AcmCertificateArn"] == domain.cloudfront_certificate_arn
    assert config["ViewerCertificate"]["MinimumProtocolVersion"] == "TLSv1.3_2025"
    (origin,) = config["Origins"]
    assert origin["DomainName"] == origin_domain_name_for(domain.domain_name)
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"


def test_no_origin_header_value_appears_in_the_template(env_template) -> None:
    _, template = env_template
    (distribution,) = template.find_resources("AWS::CloudFront::Distribution").values()
    (header,) = distribution["Properties"]["DistributionConfig"]["Origins"][0]["OriginCustomHeaders"]
    value = json.dumps(header["HeaderValue"])
    assert value.count("{{resolve:secretsmanager:") == 1
    # The reference names the secret; the only literal parts are the dynamic-reference syntax.
    literals = [part for part in header["HeaderValue"]["Fn::Join"][1] if isinstance(part, str)]
    assert "".join(literals) == "{{resolve:secretsmanager::SecretString:header_value::}}"


def test_public_records_alias_the_distribution(env_template, configs: dict[str, EnvironmentConfig]) -> None:
    env, template = env_template
    domain = configs[env].domain
    (distribution_id,) = template.find_resources("AWS::CloudFront::Distribution")
    records = {
        r["Properties"]["Type"]: r["Properties"]
        for r in template.find_resources("AWS::Route53::RecordSet").values()
        if r["Properties"]["Name"] == f"{domain.domain_name}."
    }
    assert set(records) == {"A", "AAAA"}
    for record in records.values():
        assert record["HostedZoneId"] == domain.hosted_zone_id
        assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": [distribution_id, "DomainName"]}
