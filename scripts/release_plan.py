"""What the pipeline needs from an environment's typed configuration, checked against GitHub's.

    python scripts/release_plan.py --env production --role-arn "$AWS_DEPLOY_ROLE_ARN"

Prints the plan and appends to `$GITHUB_OUTPUT`: `region`, `account`, `approval` (`true`
when config says `release.require_approval`), `steps` (e.g. `5,25,50,100`) and
`bake_seconds` (sum of the bakes). The region and the approval gate therefore come from
config/<env>.json only; the GitHub environment supplies only the role ARN, whose account must
be the configured one, so a mis-set variable can never point staging's pipeline at production.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")


def plan(env: str, role_arn: str) -> dict[str, str]:
    from infra.config import load_config

    config = load_config(env)
    match = _ROLE_ARN.match(role_arn)
    if not match:
        raise ValueError(
            f"--role-arn: {role_arn!r} is not an IAM role ARN (set AWS_DEPLOY_ROLE_ARN on the {env} GitHub environment)"
        )
    if match.group(1) != config.account:
        raise ValueError(
            f"--role-arn: account {match.group(1)} is not {env}'s account {config.account} (config/{env}.json)"
        )
    steps = config.release.steps
    return {
        "region": config.region,
        "account": config.account,
        "approval": "true" if config.release.require_approval else "false",
        "steps": ",".join(str(step.percent) for step in steps),
        "bake_seconds": str(sum(step.bake_seconds for step in steps)),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release_plan.py", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--env", required=True, choices=["staging", "production"])
    parser.add_argument("--role-arn", required=True, help="the deploy role the job will assume")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from infra.config import ConfigError

    try:
        values = plan(args.env, args.role_arn)
    except (ConfigError, ValueError) as exc:
        print(f"release_plan: {exc}", file=sys.stderr)
        return 2
    for name, value in values.items():
        print(f"{name:<13}{value}")
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(f"{name}={value}\n" for name, value in values.items())
    return 0


if __name__ == "__main__":
    sys.exit(main())
