"""The synthetic WebSocket checks of a stage, run from an operator's machine or the pipeline.

The same run as the release's SyntheticChecks step (`tasks/checks/run.py`: an unauthorized
connect must be refused, real clients subscribe to a per-run `synthetic:` channel, marked events
go through the stage's events queue, every client must receive every event) judged by the same
report against the same thresholds: the environment's `release.synthetic_checks`
(config/<env>.json, the defaults ValidateRequest gives a release). `live` publishes through the
`events` queue (fan-out on `live`), `preview` through `preview-events` (fan-out on `green`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from contracts import names
from contracts.release import SyntheticChecks
from orchestrator.aws import Aws
from orchestrator.paths import REPO_ROOT
from orchestrator.sandbox.state import SandboxState
from tasks.checks.report import RunResult, Thresholds
from tasks.checks.run import RunPlan, execute, sqs_publisher

STAGES = ("live", "preview")
EVENTS_QUEUE = {"live": "events", "preview": "preview-events"}
# The step's own defaults (tasks/synthetic_checks.py): SYNTHETIC_CONNECT_RATE,
# SYNTHETIC_MESSAGE_INTERVAL_MS, and the SYNTHETIC_DEADLINE_SECONDS it is deployed with
# (infra/orchestration/task_functions.py).
CONNECT_RATE = 50.0
MESSAGE_INTERVAL_SECONDS = 0.1
DEADLINE_SECONDS = 240.0


class CheckSetupError(ValueError):
    """The checks cannot be set up for this environment (configuration or secret unusable)."""


@dataclass(frozen=True)
class StageEndpoint:
    stage: str
    url: str
    api_key: str
    events_queue_url: str


def environment_checks(env: str, clients: int | None = None) -> SyntheticChecks:
    """The environment's thresholds (config/<env>.json `release.synthetic_checks`), `clients` overriding."""
    path = REPO_ROOT / "config" / f"{env}.json"
    try:
        raw = dict(json.loads(path.read_text(encoding="utf-8"))["release"]["synthetic_checks"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckSetupError(f"config/{env}.json: release.synthetic_checks unreadable ({exc})") from None
    if clients is not None:
        raw["clients"] = clients
    return SyntheticChecks.model_validate(raw)


def _api_key(aws: Aws, env: str) -> str:
    secret = names.secret_name(env, "api-keys")
    raw = aws.call("secretsmanager", "get_secret_value", SecretId=secret)["SecretString"]
    try:
        key = json.loads(raw).get(names.API_KEY_SECRET_FIELD)
    except (ValueError, AttributeError):
        key = None
    if not isinstance(key, str) or not key:
        raise CheckSetupError(f"secret {secret} has no {names.API_KEY_SECRET_FIELD!r} field")
    return key


def stage_endpoint(aws: Aws, env: str, stage: str, sandbox: SandboxState | None = None) -> StageEndpoint:
    """Where the stage's clients connect (the sandbox's gateway, else `wss://<domain>/<stage>`),
    the current API key (AWSCURRENT of the stage's secret) and the stage's events queue."""
    if sandbox is not None:
        url = sandbox.gateway[f"websocket {stage}"]
    else:
        try:
            config = json.loads((REPO_ROOT / "config" / f"{env}.json").read_text(encoding="utf-8"))
            url = f"wss://{config['domain']['domain_name']}/{stage}"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckSetupError(f"config/{env}.json: domain.domain_name unreadable ({exc})") from None
    queue = aws.call("sqs", "get_queue_url", QueueName=names.queue_name(env, EVENTS_QUEUE[stage]))["QueueUrl"]
    return StageEndpoint(stage=stage, url=url, api_key=_api_key(aws, env), events_queue_url=str(queue))


def plan(endpoint: StageEndpoint, checks: SyntheticChecks, run_id: str) -> RunPlan:
    return RunPlan(
        url=endpoint.url,
        api_key=endpoint.api_key,
        clients=checks.clients,
        messages=checks.messages,
        connect_rate=CONNECT_RATE,
        deadline_seconds=DEADLINE_SECONDS,
        message_interval_seconds=MESSAGE_INTERVAL_SECONDS,
        # As the step waits for the last deliveries: twice the latency threshold, at least 2 s.
        collect_seconds=max(2.0, 2 * checks.p99_latency_ms / 1000),
        release_id=run_id,
    )


def run_checks(aws: Aws, endpoint: StageEndpoint, checks: SyntheticChecks) -> tuple[RunResult, Thresholds]:
    run_id = f"check-{endpoint.stage}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    result = execute(
        plan(endpoint, checks, run_id), sqs_publisher(aws.client("sqs"), endpoint.events_queue_url)
    )
    return result, Thresholds(p99_latency_ms=checks.p99_latency_ms, min_success_rate=checks.min_success_rate)


def report(result: RunResult, thresholds: Thresholds, endpoint: StageEndpoint) -> dict[str, Any]:
    """The step's output, plus where it ran and its one-line summary."""
    return {
        "stage": endpoint.stage,
        "url": endpoint.url,
        **result.output(thresholds),
        "thresholds": {
            "p99_latency_ms": thresholds.p99_latency_ms,
            "min_success_rate": thresholds.min_success_rate,
        },
        "connected": result.connected,
        "duration_ms": result.duration_ms,
        "summary": result.summary(thresholds),
    }
