"""Permission report: what each function and state machine did with its role, and what it never used.

For every role of the template (named by the functions, state machines and schedules that use
it): each (action, resource) observed with its verdict and count, and each granted (action,
resource pattern) of an Allow statement that no allowed observation exercised. Written as JSON
and as a Markdown table.

    python -m orchestrator.iam.report reports/iam-observations.jsonl cdk.out/<stack>.template.json ...
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from orchestrator.engine.intrinsics import ResourceMap, Sandbox
from orchestrator.iam.enforcer import UNMAPPED, load_observations
from orchestrator.iam.evaluator import ALLOWED
from orchestrator.iam.policies import Grant, PolicySet, build_policy_set

DEFAULT_OUT = Path("reports/iam-report")


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: `*` any run of characters, `?` one character; everything else literal.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def iam_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_pattern(pattern, ignore_case).match(value))


@dataclass
class RoleReport:
    role_arn: str
    callers: list[dict[str, str]]
    observed: list[dict[str, Any]] = field(default_factory=list)
    unexercised: list[dict[str, Any]] = field(default_factory=list)
    unknown_managed: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        names = sorted({c["name"] for c in self.callers})
        return ", ".join(names) if names else self.role_arn.rsplit("/", 1)[-1]


def _exercised(grant: Grant, allowed: Iterable[Mapping[str, Any]]) -> bool:
    return any(
        iam_match(grant.action, str(o["action"]), ignore_case=True)
        and (grant.resource == "*" or iam_match(grant.resource, str(o["resource"])))
        for o in allowed
    )


def build_report(observations: Sequence[Mapping[str, Any]], policies: PolicySet) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for o in observations:
        key = (
            o["principal"],
            o["action"],
            o["resource"],
            o["verdict"],
            o.get("operation", ""),
            o.get("caller", ""),
        )
        entry = merged.setdefault(key, {**o, "count": 0})
        entry["count"] += int(o.get("count", 1))
    by_role: dict[str, list[dict[str, Any]]] = {}
    for entry in merged.values():
        by_role.setdefault(str(entry["principal"]), []).append(entry)

    roles: list[RoleReport] = []
    for role_arn in sorted(set(policies.roles) | set(by_role)):
        callers = [{"kind": c.kind, "name": c.name, "arn": c.arn} for c in policies.callers_of(role_arn)]
        report = RoleReport(role_arn, callers)
        seen = sorted(by_role.get(role_arn, []), key=lambda e: (e["action"], e["resource"], e["verdict"]))
        report.observed = [
            {
                "action": e["action"],
                "resource": e["resource"],
                "verdict": e["verdict"],
                "reason": e.get("reason", ""),
                "operation": e.get("operation", ""),
                "caller": e.get("caller", ""),
                "via": e.get("via", "sdk"),
                "on_behalf_of": e.get("on_behalf_of", ""),
                "count": e["count"],
            }
            for e in seen
        ]
        allowed = [e for e in seen if e["verdict"] in (ALLOWED, UNMAPPED)]
        role = policies.role(role_arn)
        if role is not None:
            report.unknown_managed = list(role.unknown_managed)
            unique: dict[tuple[str, str, str], Grant] = {}
            for grant in policies.grants(role_arn):
                unique.setdefault((grant.action, grant.resource, grant.policy), grant)
            report.unexercised = [
                {
                    "action": g.action,
                    "resource": g.resource,
                    "policy": g.policy,
                    "conditional": g.has_condition,
                }
                for g in unique.values()
                if not _exercised(g, allowed)
            ]
        roles.append(report)

    total = sum(e["count"] for e in merged.values())
    allowed_total = sum(e["count"] for e in merged.values() if e["verdict"] == ALLOWED)
    unmapped_total = sum(e["count"] for e in merged.values() if e["verdict"] == UNMAPPED or e.get("unmapped"))
    return {
        "summary": {
            "roles": len(policies.roles),
            "callers": len(policies.callers),
            "checks_observed": total,
            "allowed": allowed_total,
            "denied": total
            - allowed_total
            - sum(e["count"] for e in merged.values() if e["verdict"] == UNMAPPED),
            "unmapped": unmapped_total,
            "distinct_observations": len(merged),
            "unexercised_grants": sum(len(r.unexercised) for r in roles),
            "unresolved_references": len(policies.unresolved),
        },
        "roles": [
            {
                "role": r.role_arn,
                "name": r.name,
                "callers": r.callers,
                "observed": r.observed,
                "unexercised": r.unexercised,
                "unknown_managed_policies": r.unknown_managed,
            }
            for r in roles
        ],
        "unresolved_references": policies.unresolved,
    }


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Mapping[str, Any]) -> str:
    summary = report["summary"]
    lines = [
        "# IAM permission report",
        "",
        f"Checks observed: {summary['checks_observed']} ({summary['distinct_observations']} distinct) - "
        f"allowed {summary['allowed']}, denied {summary['denied']}, unmapped {summary['unmapped']}. "
        f"Unexercised grants: {summary['unexercised_grants']}. Roles: {summary['roles']}.",
        "",
    ]
    for role in report["roles"]:
        if not role["observed"] and not role["unexercised"]:
            continue
        lines += [f"## {role['name']}", "", f"Role `{role['role']}`", ""]
        if role["observed"]:
            lines += [
                "| action | resource | verdict | count | operation | reason |",
                "|---|---|---|---|---|---|",
            ]
            for o in role["observed"]:
                reason = "" if o["verdict"] == ALLOWED else o["reason"]
                lines.append(
                    f"| {_cell(o['action'])} | {_cell(o['resource'])} | {o['verdict']} | {o['count']} "
                    f"| {_cell(o['operation'])} | {_cell(reason)} |"
                )
            lines.append("")
        if role["unexercised"]:
            lines += ["Granted, never exercised:", "", "| action | resource | policy |", "|---|---|---|"]
            for g in role["unexercised"]:
                condition = " (conditional)" if g["conditional"] else ""
                lines.append(
                    f"| {_cell(g['action'])} | {_cell(g['resource'])} | {_cell(g['policy'])}{condition} |"
                )
            lines.append("")
        if role["unknown_managed_policies"]:
            lines += [
                f"Managed policies the sandbox does not know: {', '.join(role['unknown_managed_policies'])}",
                "",
            ]
    if report["unresolved_references"]:
        lines += ["## References the sandbox could not resolve (they grant nothing here)", ""]
        lines += [f"- {_cell(u)}" for u in report["unresolved_references"]]
        lines.append("")
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out: Path = DEFAULT_OUT) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(report), encoding="utf-8")
    return json_path, md_path


def merge_templates(templates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The stacks of one stage as one template (CDK logical ids are unique across its stacks)."""
    merged: dict[str, Any] = {"Resources": {}, "Parameters": {}}
    for template in templates:
        for section in ("Resources", "Parameters"):
            merged[section].update(template.get(section, {}))
    return merged


def _infer(observations: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    account = region = None
    for o in observations:
        parts = str(o.get("principal", "")).split(":")
        if account is None and len(parts) > 4 and parts[4]:
            account = parts[4]
        resource = str(o.get("resource", "")).split(":")
        if region is None and len(resource) > 4 and resource[3]:
            region = resource[3]
        if account and region:
            break
    return account, region


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.iam.report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("observations", type=Path, help="JSON lines written by IamEnforcer.dump")
    parser.add_argument("templates", type=Path, nargs="+", help="synthesized templates of one stage")
    parser.add_argument("--account-id", help="the sandbox's account (default: from the observations)")
    parser.add_argument("--region", help="the sandbox's region (default: from the observations)")
    parser.add_argument(
        "--stack-name", default="sandbox", help="stack name used for generated physical names"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output path without suffix (.json and .md)"
    )
    args = parser.parse_args(argv)

    observations = load_observations([args.observations]) if args.observations.exists() else []
    if not args.observations.exists():
        print(f"iam-report: {args.observations} does not exist; reporting grants only", file=sys.stderr)
    account, region = _infer(observations)
    sandbox = Sandbox(
        account_id=args.account_id or account or Sandbox.account_id,
        region=args.region or region or Sandbox.region,
        stack_name=args.stack_name,
    )
    template = merge_templates([json.loads(path.read_text(encoding="utf-8")) for path in args.templates])
    policies = build_policy_set(template, ResourceMap(template, sandbox))
    report = build_report(observations, policies)
    json_path, md_path = write_report(report, args.out)
    s = report["summary"]
    print(
        f"iam-report: {s['checks_observed']} checks ({s['allowed']} allowed, {s['denied']} denied, "
        f"{s['unmapped']} unmapped), {s['unexercised_grants']} unexercised grants -> {json_path}, {md_path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
