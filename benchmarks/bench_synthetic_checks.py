"""Synthetic checker capacity against the local gateway running the real service handlers.

One process runs the sandbox (moto, the Valkey server, the gateway with its fan-out poller)
and the checker; the checker's CPU is measured on its own event-loop thread, so the gateway's
threads are not counted. Figures (one JSON line): clients connected and concurrently
subscribed, connect rate configured vs achieved, deliveries, latency percentiles, checker CPU
time per delivered message.

Usage: python benchmarks/bench_synthetic_checks.py [clients] [messages] [connect_rate]
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import os  # noqa: E402

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from orchestrator.gateway import Gateway, LambdaRuntime, QueueBinding  # noqa: E402
from orchestrator.sandbox.redis_server import RedisServer  # noqa: E402
from tasks.checks.report import Thresholds  # noqa: E402
from tasks.checks.run import RunPlan, execute, sqs_publisher  # noqa: E402
from tests.support.moto_service import API_KEY, create_functions, provision  # noqa: E402


def main() -> None:
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    messages = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 100.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # both ends of each socket
    with RedisServer() as server, mock_aws():
        account = provision()
        env = {**account.base_env(server.url), "LOG_LEVEL": "ERROR", "MAX_SUBSCRIPTIONS": "10"}
        create_functions(account, [env])
        runtime = LambdaRuntime(boto3.client("lambda"), account.function_names)
        gateway = Gateway(
            runtime, sqs=boto3.client("sqs"), queue_bindings=[QueueBinding(account.preview_url, "green")]
        )
        urls = gateway.start()
        try:
            plan = RunPlan(
                url=urls.websocket["preview"],
                api_key=API_KEY,
                clients=clients,
                messages=messages,
                connect_rate=rate,
                deadline_seconds=300,
                message_interval_seconds=0.1,
                collect_seconds=30,
                reply_timeout_seconds=30,
                release_id="bench",
            )
            result = execute(plan, sqs_publisher(boto3.client("sqs"), account.preview_url))
        finally:
            gateway.stop()
    thresholds = Thresholds(p99_latency_ms=5000, min_success_rate=1.0)
    output = result.output(thresholds)
    print(
        json.dumps(
            {
                "clients": clients,
                "connected": result.connected,
                "messages": messages,
                "deliveries_expected": result.messages_expected,
                "deliveries_received": result.messages_received,
                "success_rate": output["success_rate"],
                "connect_rate_configured": rate,
                "connect_rate_achieved": result.connect_rate_achieved,
                "latency_ms": output["latency_ms"],
                "errors": output["errors"],
                "checker_cpu_seconds": round(result.cpu_seconds, 3),
                "checker_cpu_ms_per_delivery": round(
                    1000 * result.cpu_seconds / max(result.messages_received, 1), 3
                ),
                "run_seconds": round(result.duration_ms / 1000, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
