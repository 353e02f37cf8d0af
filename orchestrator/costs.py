"""Offline monthly estimate of a synthesized stage, from the price table in orchestrator/pricing.json.

Counts the resources that cost money whether or not anyone uses the service (NAT gateways and
their public IPs, cache nodes, interface endpoint ENIs per AZ, provisioned concurrency at its
minimum, KMS keys, secrets, alarms, dashboards) plus Step Functions transitions per release.
Usage-driven costs (requests, GB-seconds, data processed, messages) depend on traffic and are
left out on purpose: the estimate answers "what does this change cost before anyone calls it".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRICING_FILE = Path(__file__).with_name("pricing.json")
# Transitions of one successful release, measured through the local engine by
# `python benchmarks/bench_release.py`: 24 for 3 traffic steps, 52 for 10 steps, i.e.
# 12 + 4 per step. Retries, approval waits and rollbacks add transitions on top.
RELEASE_FIXED_TRANSITIONS = 12
RELEASE_TRANSITIONS_PER_STEP = 4
# Not measured by a benchmark: an allowance per drill run (the engine tests bound a successful
# DR or event-path drill below 60 transitions; back-off loops add 3 per extra check).
DRILL_TRANSITIONS = 60


class EstimateError(ValueError):
    """The template or the price table cannot be estimated (the message names what is missing)."""


@dataclass
class Line:
    item: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float


@dataclass
class Estimate:
    environment: str
    region: str
    prices_as_of: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return round(sum(line.monthly for line in self.lines), 2)

    def add(self, item: str, quantity: float, unit: str, unit_price: float, hours: float = 1.0) -> None:
        if quantity:
            self.lines.append(Line(item, quantity, unit, unit_price, round(quantity * unit_price * hours, 2)))

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "region": self.region,
            "prices_as_of": self.prices_as_of,
            "monthly_usd": self.total,
            "lines": [line.__dict__ for line in self.lines],
            "notes": self.notes,
        }


def load_pricing(path: Path = PRICING_FILE) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _resources(template: Mapping[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (lid, r.get("Properties", {}))
        for lid, r in template.get("Resources", {}).items()
        if r.get("Type") == kind
    ]


def estimate(
    template: Mapping[str, Any],
    *,
    environment: str,
    region: str,
    release_steps: int,
    releases_per_month: int,
    drills_per_month: int,
    pricing: Mapping[str, Any] | None = None,
) -> Estimate:
    prices = dict(pricing or load_pricing())
    hours = float(prices["hours_per_month"])
    result = Estimate(environment=environment, region=region, prices_as_of=str(prices["prices_as_of"]))
    if region != prices["region"]:
        result.notes.append(f"prices are for {prices['region']}; the stage deploys to {region}")

    nats = len(_resources(template, "AWS::EC2::NatGateway"))
    result.add("NAT gateway hours", nats, "gateway", prices["nat_gateway_hour"], hours)
    result.add(
        "NAT public IPv4 address hours",
        len(_resources(template, "AWS::EC2::EIP")),
        "address",
        prices["eip_hour"],
        hours,
    )

    enis = sum(
        len(p.get("SubnetIds", []))
        for _, p in _resources(template, "AWS::EC2::VPCEndpoint")
        if p.get("VpcEndpointType") == "Interface"
    )
    result.add(
        "Interface endpoint ENI hours (endpoint x AZ)",
        enis,
        "ENI",
        prices["interface_endpoint_az_hour"],
        hours,
    )

    for lid, props in _resources(template, "AWS::ElastiCache::ReplicationGroup"):
        node_type = props.get("CacheNodeType")
        if node_type not in prices["cache_node_hour"]:
            raise EstimateError(f"{lid}: no price for cache node type {node_type!r} in pricing.json")
        nodes = props.get("NumCacheClusters") or int(props.get("NumNodeGroups") or 1) * (
            int(props.get("ReplicasPerNodeGroup") or 0) + 1
        )
        price = float(prices["cache_node_hour"][node_type])
        if props.get("Engine") == "valkey":
            price = round(price * (1 - float(prices["valkey_node_discount"])), 6)
        result.add(
            f"Cache nodes {node_type} ({props.get('Engine', 'redis')})", int(nodes), "node", price, hours
        )

    functions = dict(_resources(template, "AWS::Lambda::Function"))
    seconds = hours * 3600
    for lid, props in _resources(template, "AWS::Lambda::Alias"):
        pc = (props.get("ProvisionedConcurrencyConfig") or {}).get("ProvisionedConcurrentExecutions")
        if not pc:
            continue
        ref = props.get("FunctionName", {})
        fn = functions.get(ref.get("Ref", "") if isinstance(ref, dict) else "", {})
        memory_gb = int(fn.get("MemorySize", 128)) / 1024
        arch = (fn.get("Architectures") or ["x86_64"])[0]
        rate = float(prices["lambda_provisioned_gb_second"][arch])
        result.add(
            f"Provisioned concurrency {lid} (minimum, {memory_gb:g} GB {arch})",
            int(pc),
            "environment",
            round(memory_gb * rate * seconds, 4),
        )
    if any(
        t == "AWS::ApplicationAutoScaling::ScalableTarget"
        for t in (r.get("Type") for r in template.get("Resources", {}).values())
    ):
        result.notes.append("provisioned concurrency is auto-scaled: the estimate uses the minimum capacity")

    transitions = releases_per_month * (
        RELEASE_FIXED_TRANSITIONS + RELEASE_TRANSITIONS_PER_STEP * release_steps
    )
    transitions += drills_per_month * DRILL_TRANSITIONS
    result.add(
        f"Step Functions transitions ({releases_per_month} releases x {release_steps} steps, "
        f"{drills_per_month} drills)",
        transitions,
        "transition",
        prices["step_functions_transition"],
    )
    result.add(
        "KMS customer managed keys",
        len(_resources(template, "AWS::KMS::Key")),
        "key",
        prices["kms_key_month"],
    )
    result.add(
        "Secrets Manager secrets",
        len(_resources(template, "AWS::SecretsManager::Secret")),
        "secret",
        prices["secret_month"],
    )
    alarms = len(_resources(template, "AWS::CloudWatch::Alarm")) + len(
        _resources(template, "AWS::CloudWatch::CompositeAlarm")
    )
    result.add("CloudWatch alarms", alarms, "alarm", prices["alarm_month"])
    result.add(
        "CloudWatch dashboards",
        len(_resources(template, "AWS::CloudWatch::Dashboard")),
        "dashboard",
        prices["dashboard_month"],
    )
    result.notes.append(
        "usage-driven costs (requests, GB-seconds, data processed, messages, logs) are not included"
    )
    return result


def stage_templates(cdk_out: Path, environment: str) -> list[dict[str, Any]]:
    """The synthesized templates of one stage (`cdk.out/assembly-<Stage>/*.template.json`)."""
    stage = environment.capitalize()
    files = sorted((cdk_out / f"assembly-{stage}").glob("*.template.json"))
    if not files:
        raise EstimateError(f"{cdk_out}/assembly-{stage} holds no template: run `make synth` first")
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def merge(templates: list[dict[str, Any]]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for template in templates:
        resources.update(template.get("Resources", {}))
    return {"Resources": resources}
