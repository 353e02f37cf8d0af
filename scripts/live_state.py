"""What an environment's `live` aliases serve, compared with a built bundle.

    python scripts/live_state.py needed --env staging --manifest dist/bundle.json
    python scripts/live_state.py verify --env staging --manifest dist/bundle.json

`needed` decides whether the pipeline starts a release: when every service function's `live`
alias already serves this exact bundle (same CodeSha256) at 100%, a release would only fail
(green would equal blue), so the pipeline skips it; infrastructure-only commits land this way.
It writes `needed=true|false` to `$GITHUB_OUTPUT`.

`verify` is the post-release check: every function's `live` alias serves one version at 100%,
that version's code is the bundle, and no release-guard alarm is in ALARM. Exit 1 otherwise,
with one line per problem.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python scripts/live_state.py` from a checkout
    sys.path.insert(0, str(ROOT))

from scripts.build_bundle import BundleError, Manifest  # noqa: E402


@dataclass(frozen=True)
class FunctionState:
    function: str
    version: str | None
    weights: dict[str, float]
    code_sha256: str | None

    @property
    def single_version(self) -> bool:
        return self.version is not None and not self.weights


def service_functions(env: str) -> list[str]:
    from contracts import names
    from service.catalog import RELEASED_FUNCTIONS

    return [names.function_name(env, spec.key) for spec in RELEASED_FUNCTIONS]


def read_live(lambda_client: Any, function: str) -> FunctionState:
    """The live alias of `function`: its version, routing weights and that version's CodeSha256."""
    from botocore.exceptions import ClientError

    from contracts import names

    try:
        alias = lambda_client.get_alias(FunctionName=function, Name=names.LIVE_ALIAS)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return FunctionState(function, None, {}, None)
        raise
    version = alias["FunctionVersion"]
    weights = dict(alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}))
    config = lambda_client.get_function_configuration(FunctionName=function, Qualifier=version)
    return FunctionState(function, version, weights, config["CodeSha256"])


def alarms_in_alarm(cloudwatch: Any, env: str) -> list[str]:
    """Release-guard alarms (`<env>-release-*`) currently in ALARM."""
    from contracts import names

    firing: list[str] = []
    paginator = cloudwatch.get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmNamePrefix=names.release_alarm_prefix(env), StateValue="ALARM"):
        firing += [a["AlarmName"] for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])]
    return sorted(firing)


def release_needed(states: Sequence[FunctionState], manifest: Manifest) -> tuple[bool, str]:
    for state in states:
        if state.version is None:
            return True, f"{state.function}: no live alias yet"
        if state.weights:
            return (
                True,
                f"{state.function}: live is split across versions {state.version} and {sorted(state.weights)}",
            )
        if state.code_sha256 != manifest.code_sha256:
            return True, f"{state.function}: live version {state.version} runs other code"
    return False, f"every live alias already serves {manifest.version}"


def verify_problems(states: Sequence[FunctionState], alarms: Sequence[str], manifest: Manifest) -> list[str]:
    problems: list[str] = []
    for state in states:
        if state.version is None:
            problems.append(f"{state.function}: has no live alias")
        elif not state.single_version:
            problems.append(
                f"{state.function}: live still routes {state.weights} besides version {state.version}"
            )
        elif state.code_sha256 != manifest.code_sha256:
            problems.append(
                f"{state.function}: live version {state.version} has CodeSha256 {state.code_sha256}, "
                f"the bundle {manifest.code_sha256}"
            )
    problems += [f"alarm {name} is in ALARM" for name in alarms]
    return problems


def _write_output(values: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(f"{k}={v}\n" for k, v in values.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="live_state.py", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=["needed", "verify"])
    parser.add_argument("--env", required=True, choices=["staging", "production"])
    parser.add_argument("--manifest", type=Path, required=True, help="bundle.json written by build_bundle.py")
    return parser


def main(argv: Sequence[str] | None = None, *, session: Any = None) -> int:
    args = build_parser().parse_args(argv)

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        manifest = Manifest.load(args.manifest)
        aws = session or boto3.session.Session()
        lam = aws.client("lambda")
        states = [read_live(lam, fn) for fn in service_functions(args.env)]
        if args.command == "needed":
            needed, reason = release_needed(states, manifest)
            print(f"release {'needed' if needed else 'not needed'}: {reason}")
            _write_output({"needed": "true" if needed else "false"})
            return 0
        problems = verify_problems(states, alarms_in_alarm(aws.client("cloudwatch"), args.env), manifest)
    except BundleError as exc:
        print(f"live_state: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"live_state: AWS call failed: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"live_state: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.env}: every live alias serves {manifest.version} at 100%; no release-guard alarm in ALARM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
