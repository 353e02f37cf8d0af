"""A release in `connections` routing against the running sandbox, seen by real clients.

The clients connect to the live URL, as clients of the deployed service do; the edge function
(the synthesized template's code, run in Node) sends the step's share of new connections to the
canary stage. Each client records the service version of every pong. An operator's rollback during
the bake then goes the alarm rollback's way: the edge's share to 0, every alias back on blue, the
canary stage drained, the lock released; the drained clients reconnect to blue, and the fan-out
keeps reaching them.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from contracts.canary import CANARY_SHARE_KEY, parse_share
from orchestrator.cli import main
from orchestrator.demo import ARTIFACT_BUCKET, artifact
from orchestrator.sandbox import keyvaluestore
from orchestrator.sandbox.state import SandboxState
from orchestrator.traffic import TrafficGenerator
from tests.e2e.release_args import load_tolerant_checks
from tests.e2e.test_cli_sandbox import live_versions, wait_for_state, watch

pytestmark = pytest.mark.slow
ENV = "staging"
VERSION = "3.0.0"
# What the release's DrainCanary may take (DRAIN_TIMEOUT_SECONDS, the task's default).
DRAIN_BOUND_SECONDS = 60.0
HELD_CLIENTS = 12


def aws(state: SandboxState, service: str) -> Any:
    return boto3.client(service, endpoint_url=state.moto_url, region_name=state.region)


def canary_share(state: SandboxState) -> int:
    """The share the edge reads, asked through the KeyValueStore API as an operator would."""
    kvs = boto3.client(
        "cloudfront-keyvaluestore",
        endpoint_url=keyvaluestore.endpoint_url(state.moto_url),
        region_name=state.region,
    )
    try:
        return parse_share(kvs.get_key(KvsARN=_store_arn(state), Key=CANARY_SHARE_KEY)["Value"])
    except kvs.exceptions.ResourceNotFoundException:
        return 0


def _store_arn(state: SandboxState) -> str:
    """The store the release tasks write (their CANARY_KVS_ARN, as the sandbox deployed it)."""
    lam = aws(state, "lambda")
    variables = lam.get_function_configuration(FunctionName=f"{ENV}-release-set-weights")["Environment"][
        "Variables"
    ]
    return str(variables["CANARY_KVS_ARN"])


@pytest.fixture(scope="module")
def traffic(sandbox: SandboxState) -> Any:
    sqs = aws(sandbox, "sqs")
    queue = sqs.get_queue_url(QueueName=f"{ENV}-realtime-events")["QueueUrl"]
    generator = TrafficGenerator(
        sandbox.gateway["websocket live"],
        sandbox.gateway["api key"],
        sqs,
        queue,
        clients=6,
        ping_interval=0.1,
        connection_lifetime=1.5,
    )
    generator.start()
    try:
        yield generator
    finally:
        generator.stop()


def versions_seen(generator: TrafficGenerator, since: float) -> set[str]:
    return {v for seen in list(generator.stats.connections) if seen.opened >= since for v in seen.versions}


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def test_a_rollback_in_connections_routing_drains_the_canary_and_clients_return_to_blue(
    sandbox: SandboxState, traffic: TrafficGenerator, capsys: pytest.CaptureFixture[str]
) -> None:
    before = live_versions(sandbox)
    started = time.time()
    wait_until(lambda: versions_seen(traffic, started), 60, "clients answered by blue")
    blue_versions = versions_seen(traffic, started)
    s3 = aws(sandbox, "s3")
    body = artifact(VERSION)
    key = f"service/service-{VERSION}.zip"
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=body)
    code = main(
        [
            "--sandbox",
            "release",
            "start",
            "--env",
            ENV,
            "--version",
            VERSION,
            "--artifact",
            f"s3://{ARTIFACT_BUCKET}/{key}",
            "--sha256",
            hashlib.sha256(body).hexdigest(),
            "--steps",
            "50,100",
            "--bake",
            "3600",
            "--routing",
            "connections",
            *load_tolerant_checks(),
            "--release-id",
            "e2e-connections",
            "--min-green-invocations",
            "0",
            "--json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    arn = json.loads(capsys.readouterr().out)["execution_arn"]
    wait_for_state(sandbox, arn, "Bake", timeout=120)
    baking = time.time()
    assert canary_share(sandbox) == 50
    # Green's clients: connections the edge sent to the canary stage, answered by 3.0.0.
    wait_until(lambda: VERSION in versions_seen(traffic, baking), 60, "a client on the canary stage")
    wait_until(
        lambda: len([s for s in traffic.stats.connections if s.opened >= baking and s.closed]) >= 12,
        60,
        "a dozen connections opened and closed during the bake",
    )
    during = traffic.consistency(baking, time.time())
    assert during["mixed"] == 0, during  # each connection was answered by one version alone
    assert during.get(VERSION, 0) > 0 and sum(during.get(v, 0) for v in blue_versions) > 0, during
    # Clients that stay connected (they never close by themselves): those the edge sent to the
    # canary stage are there when the rollback comes.
    held = TrafficGenerator(
        sandbox.gateway["websocket live"],
        sandbox.gateway["api key"],
        aws(sandbox, "sqs"),
        traffic.events_queue_url,
        clients=HELD_CLIENTS,
        ping_interval=0.2,
        event_interval=3600,
    )
    held.start()
    try:
        wait_until(
            lambda: len([s for s in held.stats.connections if s.versions]) >= HELD_CLIENTS,
            60,
            "every held client answered",
        )
        on_canary = len([s for s in held.stats.connections if VERSION in s.versions])
        rollback_and_check(sandbox, traffic, held, arn, on_canary, before, capsys)
    finally:
        held.stop()


def rollback_and_check(
    sandbox: SandboxState,
    traffic: TrafficGenerator,
    held: TrafficGenerator,
    arn: str,
    on_canary: int,
    before: set[tuple[str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--sandbox", "release", "rollback", "--env", ENV, "--reason", "e2e", "--wait"]) == 0
    capsys.readouterr()
    code, records = watch(capsys, arn)
    assert code == 1 and records[-1]["status"] in {"ABORTED", "FAILED"}
    # The invariant: live on blue alone, the lock released, the edge sending nobody to the canary.
    assert live_versions(sandbox) == before
    assert (
        aws(sandbox, "dynamodb")
        .get_item(TableName=f"{ENV}-release", Key={"pk": {"S": f"lock#{ENV}"}, "sk": {"S": "lock"}})
        .get("Item")
        is None
    )
    assert canary_share(sandbox) == 0
    # The drain closed the canary stage's connections within its bound, and said so on the record.
    table = boto3.resource("dynamodb", endpoint_url=sandbox.moto_url, region_name=sandbox.region).Table(
        f"{ENV}-release"
    )
    events = table.query(
        KeyConditionExpression=Key("pk").eq("release#e2e-connections") & Key("sk").begins_with("event#")
    )["Items"]
    rolled = [e for e in events if e["transition"] == "ROLLED_BACK"]
    drain = rolled[-1]["detail"]["drain"]
    assert drain["remaining"] == 0 and float(drain["drain_seconds"]) < DRAIN_BOUND_SECONDS, drain
    # Clients whose connection was closed came back, to blue; the fan-out reaches them.
    settled = time.time()
    wait_until(
        lambda: (
            len([s for s in traffic.stats.connections if s.opened >= settled and s.closed and s.events]) >= 6
        ),
        60,
        "clients connected after the rollback receiving events",
    )
    after = traffic.consistency(settled, time.time())
    assert after["mixed"] == 0 and VERSION not in after, after
    # Every held client on the canary stage saw the server close its connection, and came back to blue.
    assert drain["closed"] >= on_canary >= 1, (drain, on_canary)
    wait_until(
        lambda: held.stats.server_closes >= on_canary, 30, "the held canary clients closed by the server"
    )

    def current() -> list[Any]:
        return [s for s in list(held.stats.connections) if s.closed is None]

    wait_until(
        lambda: len(current()) == HELD_CLIENTS and all(s.versions for s in current()),
        60,
        "every held client connected again and answered",
    )
    now_serving = {v for s in current() for v in s.versions}
    assert now_serving and VERSION not in now_serving, now_serving
