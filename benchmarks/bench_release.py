"""Release figures through the local engine (virtual time): wall time and transitions of a
3-step release, transitions for 10 steps, and detect-to-rollback latency of the alarm rollback.

Run: python benchmarks/bench_release.py   (prints one JSON line)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="eu-west-1",  # noqa: S105
    AWS_REGION="eu-west-1",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_LOG_LEVEL="ERROR",
    POWERTOOLS_METRICS_DISABLED="true",
)

from orchestrator.engine import LocalEngine, Sandbox, count_transitions, import_handler, lambda_functions  # noqa: E402
from orchestrator.engine.intrinsics import ResourceMap  # noqa: E402
from orchestrator.sandbox.redis_server import RedisServer  # noqa: E402
from tests.support.release_stack import synth_release_template  # noqa: E402
from tests.support.release_world import ENV, GUARD_ALARMS, TABLE, build_world  # noqa: E402

SANDBOX = Sandbox(stack_name="ReleaseBench", region="eu-west-1")


def synthetic_ok(event, context):
    n = int(event["clients"]) * int(event["messages"])
    return {
        "passed": True,
        "clients": event["clients"],
        "messages_expected": n,
        "messages_received": n,
        "success_rate": 1.0,
        "latency_ms": {"p50": 1, "p95": 1, "p99": 1},
        "errors": {},
        "unauthorized_refused": True,
    }


def request(world, release_id, steps):
    percents = [round(100 * (i + 1) / steps) for i in range(steps)]
    return {
        "release_id": release_id,
        "version": "1.1.0",
        "artifact": world.artifact(release_id),
        "requested_by": "bench",
        "strategy": {"steps": [{"percent": p, "bake_seconds": 3600} for p in percents]},
    }


def main() -> None:
    template = synth_release_template(ENV)
    figures: dict[str, float | int] = {}
    with RedisServer() as redis_server:
        os.environ["REDIS_URL"] = redis_server.url
        with LocalEngine(sandbox=SANDBOX) as engine:
            world = build_world()
            handlers = {}
            for spec in lambda_functions(template, ResourceMap(template, SANDBOX)).values():
                handlers[spec.name] = (
                    synthetic_ok if spec.name.endswith("synthetic-checks") else import_handler(spec.handler)
                )
            arn = next(iter(engine.load_template(template, handlers=handlers).values()))
            engine.run(arn, request(world, "warmup", 3), name="warmup")  # imports, first calls
            started = time.perf_counter()
            result = engine.run(arn, request(world, "three-steps", 3), name="three-steps")
            wall = time.perf_counter() - started
            assert result.status == "SUCCEEDED", result.cause
            figures["release_3_steps_wall_s"] = round(wall, 3)
            figures["release_3_steps_transitions"] = count_transitions(result.history)
            ten = engine.run(arn, request(world, "ten-steps", 10), name="ten-steps")
            assert ten.status == "SUCCEEDED", ten.cause
            figures["release_10_steps_transitions"] = count_transitions(ten.history)
            figures["transitions_per_extra_step"] = round(
                (figures["release_10_steps_transitions"] - figures["release_3_steps_transitions"]) / 7, 2
            )

            # Detect-to-rollback: alarm state change -> every live alias back on blue.
            from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

            from contracts.state import ReleaseState
            from tasks.alarm_rollback import alarm_rollback
            from tasks.common import Settings
            from tasks.deploy_green import deploy_green
            from tasks.release_record import start
            from tasks.set_weights import SetWeightsInput, set_weights
            from tasks.validate_request import ValidateInput, defaults_from_env, validate

            settings = Settings.from_env()
            latencies = []
            for run in range(50):
                rid = f"alarm-{run}"
                state = ReleaseState.model_validate(
                    validate(
                        ValidateInput(
                            request=request(world, rid, 3),
                            execution_arn=f"arn:aws:states:eu-west-1:123456789012:execution:x:{rid}",
                            execution_name=rid,
                            started_at=datetime.now(UTC).isoformat(),
                        ),
                        settings,
                        defaults_from_env({}),
                    )
                )
                world_lock = {
                    "pk": f"lock#{ENV}",
                    "sk": "lock",
                    "release_id": rid,
                    "execution_arn": state.release.execution_arn,
                    "kind": "release",
                }
                import boto3

                boto3.resource("dynamodb", region_name="eu-west-1").Table(TABLE).put_item(Item=world_lock)
                start(settings, state.release)
                state = state.with_sections(deploy=deploy_green(settings, state.release))
                set_weights(settings, SetWeightsInput.model_validate(state.json_dict()))
                detected = datetime.now(UTC)
                event = {
                    "version": "0",
                    "id": f"bench-{run}",
                    "source": "aws.cloudwatch",
                    "account": "123456789012",
                    "region": "eu-west-1",
                    "resources": [],
                    "detail-type": "CloudWatch Alarm State Change",
                    "time": detected.isoformat(),
                    "detail": {
                        "alarmName": GUARD_ALARMS[0],
                        "state": {
                            "value": "ALARM",
                            "reason": "bench",
                            "timestamp": detected.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000",
                        },
                    },
                }
                parsed = EventBridgeModel.model_validate(event)
                latencies.append(alarm_rollback(settings, parsed)["detect_to_rollback_ms"])
            latencies.sort()
            figures["detect_to_rollback_runs"] = len(latencies)
            figures["detect_to_rollback_p50_ms"] = round(statistics.median(latencies), 1)
            figures["detect_to_rollback_p99_ms"] = round(
                latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1
            )
    print(json.dumps({"benchmark": "release", **figures}))


if __name__ == "__main__":
    main()
