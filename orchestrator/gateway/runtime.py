"""An in-process Lambda runtime that honours aliases, weights and per-version configuration.

Every invocation resolves `<function>:<alias>` through the alias's routing configuration
(GetAlias: FunctionVersion plus RoutingConfig.AdditionalVersionWeights, one random draw per
invocation, as Lambda does), then runs the catalog's handler with THAT version's environment
variables (GetFunctionConfiguration with Qualifier=<version>). The code itself is this
process's `service` package: every version runs the same code, and versions differ by their
configuration (cache schema, fault injection, ...), which is what a release changes here.

With `workers` (orchestrator.lambda_runtime), each invocation instead runs in a worker process
of that version's pool, from the function's asset, with that version's handler, environment,
timeout and memory and its role's credentials: versions then differ by configuration exactly
as on AWS, and nothing of this process leaks into the function.

Concurrency (in-process): the environment is bound per invocation through `service.settings.use_env`
(a context variable), so invocations of different versions run at the same time in
different threads without seeing each other's variables. Process-wide state (the AWS
credentials and endpoint that boto3 reads, Python's logging) is shared, as the sandbox's
single account is.
"""

from __future__ import annotations

import importlib
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.gateway.metrics import MetricRecorder, Sample
from service import catalog
from service.settings import use_env

if TYPE_CHECKING:
    from orchestrator.lambda_runtime import CodeLayout, FunctionConfig, LambdaWorkers

log = logging.getLogger(__name__)


class FunctionNotConfigured(LookupError):
    """The runtime has no Lambda function name for a catalog key."""


@dataclass(frozen=True)
class Invocation:
    function_key: str
    function_name: str
    alias: str
    version: str
    request_id: str
    duration_ms: float
    result: Any = None
    error: dict[str, str] | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class _AliasEntry:
    expires: float
    primary: str
    weights: tuple[tuple[str, float], ...]


class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    def __init__(
        self, function_name: str, version: str, alias: str, arn: str, memory_mb: int, timeout_s: int
    ) -> None:
        self.function_name = function_name
        self.function_version = version
        self.invoked_function_arn = f"{arn}:{alias}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/[{version}]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def choose_version(primary: str, weights: tuple[tuple[str, float], ...], draw: float) -> str:
    """Lambda's weighted alias routing: `draw` in [0, 1) falls in an additional version's share or the primary's."""
    edge = 0.0
    for version, weight in weights:
        edge += weight
        if draw < edge:
            return version
    return primary


class LambdaRuntime:
    def __init__(
        self,
        lambda_client: Any,
        function_names: Mapping[str, str],
        *,
        recorder: MetricRecorder | None = None,
        alias_cache_seconds: float = 1.0,
        rng: random.Random | None = None,
        region: str = "eu-west-1",
        workers: LambdaWorkers | None = None,
        layout: CodeLayout | Callable[[str], CodeLayout] | None = None,
        roles: Mapping[str, str] | None = None,
        endpoint_url: str | None = None,
        log_dir: Path | None = None,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        """function_names: catalog key -> Lambda function name in the (moto) account.

        alias_cache_seconds: how long a GetAlias answer is reused; weights changed by a
        release take effect within that time (Lambda's own propagation is similar).
        workers/layout: run every invocation in a worker of its version's pool, from `layout`
        (the service asset; or a function name -> its asset's layout), with the role of `roles[function name]`, calling `endpoint_url`;
        `worker_env` adds what the local stand-ins need (e.g. no X-Ray daemon to send to).
        """
        self._lambda = lambda_client
        self._names = dict(function_names)
        self._recorder = recorder
        self._alias_ttl = alias_cache_seconds
        self._rng = rng or random.SystemRandom()
        self._region = region
        self._lock = threading.Lock()
        self._aliases: dict[tuple[str, str], _AliasEntry] = {}
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        if workers is not None and layout is None:
            raise ValueError("isolated service functions need the layout of their asset")
        self._workers = workers
        self._layout = layout
        self._roles = dict(roles or {})
        self._endpoint = endpoint_url
        self._log_dir = log_dir
        self._worker_env = dict(worker_env or {})
        self._ca_bundle_before: tuple[bool, str | None] | None = None

    def trust_ca_bundle(self, bundle: str | None) -> None:
        """Let the functions trust the CAs in `bundle` (AWS_CA_BUNDLE: the gateway's local CA,
        for the https @connections endpoint they derive); None takes that back.

        Workers get the variable in their environment (every version's, so a version keeps one
        pool of workers); in-process handlers share this process's, where botocore reads it."""
        if self._workers is not None:
            if bundle is None:
                self._worker_env.pop("AWS_CA_BUNDLE", None)
            else:
                self._worker_env["AWS_CA_BUNDLE"] = bundle
            return
        import os

        if bundle is not None:
            if self._ca_bundle_before is None:
                self._ca_bundle_before = ("AWS_CA_BUNDLE" in os.environ, os.environ.get("AWS_CA_BUNDLE"))
            os.environ["AWS_CA_BUNDLE"] = bundle
            return
        if self._ca_bundle_before is not None:
            existed, value = self._ca_bundle_before
            self._ca_bundle_before = None
            if existed and value is not None:
                os.environ["AWS_CA_BUNDLE"] = value
            else:
                os.environ.pop("AWS_CA_BUNDLE", None)

    def function_name(self, key: str) -> str:
        try:
            return self._names[key]
        except KeyError:
            raise FunctionNotConfigured(
                f"no Lambda function name configured for service function {key!r}"
            ) from None

    def resolve(self, key: str, alias: str) -> str:
        """The version this invocation of `<function>:<alias>` runs."""
        name = self.function_name(key)
        now = time.monotonic()
        with self._lock:
            entry = self._aliases.get((name, alias))
        if entry is None or entry.expires <= now:
            answer = self._lambda.get_alias(FunctionName=name, Name=alias)
            weights = (answer.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            entry = _AliasEntry(
                expires=now + self._alias_ttl,
                primary=answer["FunctionVersion"],
                weights=tuple(sorted((str(v), float(w)) for v, w in weights.items())),
            )
            with self._lock:
                self._aliases[(name, alias)] = entry
        return choose_version(entry.primary, entry.weights, self._rng.random())

    def _config(self, name: str, version: str) -> dict[str, Any]:
        # A published version's configuration never changes: cache it for good.
        with self._lock:
            found = self._configs.get((name, version))
        if found is None:
            found = self._lambda.get_function_configuration(FunctionName=name, Qualifier=version)
            with self._lock:
                self._configs[(name, version)] = found
        return found

    def _handler(self, key: str) -> Callable[[Any, Any], Any]:
        with self._lock:
            found = self._handlers.get(key)
        if found is None:
            module, _, attr = catalog.by_key(key).handler.rpartition(".")
            found = getattr(importlib.import_module(module), attr)
            with self._lock:
                self._handlers[key] = found
        return found

    def environment(self, key: str, version: str) -> dict[str, str]:
        """What the function's process environment holds in Lambda: runtime variables, then its own."""
        name = self.function_name(key)
        config = self._config(name, version)
        env = {
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
        }
        env.update((config.get("Environment") or {}).get("Variables") or {})
        return env

    def invoke(
        self, key: str, alias: str, event: Any, *, env_overrides: Mapping[str, str] | None = None
    ) -> Invocation:
        """Run one invocation; a raised exception becomes Lambda's {errorType, errorMessage}."""
        name = self.function_name(key)
        version = self.resolve(key, alias)
        config = self._config(name, version)
        fn = catalog.by_key(key)
        arn = str(config.get("FunctionArn") or name).removesuffix(f":{version}")
        context = LambdaContext(
            name,
            version,
            alias,
            arn,
            int(config.get("MemorySize", fn.memory_mb)),
            int(config.get("Timeout", fn.timeout_seconds)),
        )
        if self._workers is not None:
            return self._invoke_worker(key, alias, version, config, event, env_overrides)
        env = self.environment(key, version)
        env.update(env_overrides or {})
        handler = self._handler(key)
        result: Any = None
        error: dict[str, str] | None = None
        started = time.perf_counter()
        try:
            with use_env(env):
                result = handler(event, context)
        except Exception as exc:  # noqa: BLE001 - every failure is the invocation's result
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            log.debug("invocation of %s:%s (version %s) failed", name, alias, version, exc_info=True)
        duration = (time.perf_counter() - started) * 1000
        if self._recorder is not None:
            self._recorder.record(Sample(name, alias, version, duration, error is not None))
        return Invocation(key, name, alias, version, context.aws_request_id, duration, result, error)

    def _invoke_worker(
        self,
        key: str,
        alias: str,
        version: str,
        config: Mapping[str, Any],
        event: Any,
        env_overrides: Mapping[str, str] | None,
    ) -> Invocation:
        assert self._workers is not None
        function = self._worker_config(key, version, config, env_overrides)
        started = time.perf_counter()
        outcome = self._workers.invoke(function, event, invoked_function_arn=f"{function.arn}:{alias}")
        duration = (time.perf_counter() - started) * 1000
        error: dict[str, str] | None = None
        result: Any = None
        if outcome.error:
            payload = outcome.payload if isinstance(outcome.payload, dict) else {}
            error = {
                "errorType": str(payload.get("errorType", "Unhandled")),
                "errorMessage": str(payload.get("errorMessage", "")),
            }
            log.info("invocation of %s:%s (version %s) failed: %s", function.name, alias, version, error)
        else:
            result = outcome.payload
        if self._recorder is not None:
            # Lambda's Duration metric is the handler's run; a cold start's init is not in it.
            self._recorder.record(
                Sample(function.name, alias, version, outcome.duration_ms, error is not None)
            )
        return Invocation(key, function.name, alias, version, outcome.request_id, duration, result, error)

    def _worker_config(
        self, key: str, version: str, config: Mapping[str, Any], env_overrides: Mapping[str, str] | None
    ) -> FunctionConfig:
        from orchestrator.lambda_runtime import FunctionConfig

        assert self._layout is not None
        name = self.function_name(key)
        layout = self._layout(name) if callable(self._layout) else self._layout
        fn = catalog.by_key(key)
        arn = str(config.get("FunctionArn") or name).removesuffix(f":{version}")
        return FunctionConfig(
            name=name,
            arn=arn,
            handler=str(config.get("Handler") or fn.handler),
            layout=layout,
            environment={
                **((config.get("Environment") or {}).get("Variables") or {}),
                **self._worker_env,
                **(env_overrides or {}),
            },
            timeout_seconds=int(config.get("Timeout", fn.timeout_seconds)),
            memory_mb=int(config.get("MemorySize", fn.memory_mb)),
            version=version,
            role_arn=self._roles.get(name, ""),
            region=self._region,
            endpoint_url=self._endpoint,
            log_dir=self._log_dir,
        )

    def prewarm(
        self, routes: list[tuple[str, Mapping[str, str], Collection[str] | None]], interval: float = 0.5
    ) -> threading.Event:
        """Keep one worker started for every version the given aliases route to, as Lambda's
        provisioned concurrency on an alias would: a version DeployGreen just published and
        pointed `green` at is initialized before the synthetic checks call it, and the versions
        a traffic shift adds to `live` before they take traffic.

        routes: (alias, the overrides its callers pass, the function keys called that way or
        None for all). One ListAliases per function per `interval` (the first scan at once);
        new versions go to the front of the workers' start queue. Returns the stop event."""
        stop = threading.Event()
        seen: set[tuple[str, str, str]] = set()

        def scan() -> None:
            assert self._workers is not None
            for key in self._names:
                wanted = [
                    (alias, overrides) for alias, overrides, keys in routes if keys is None or key in keys
                ]
                if not wanted:
                    continue
                name = self.function_name(key)
                try:
                    aliases = {a["Name"]: a for a in self._lambda.list_aliases(FunctionName=name)["Aliases"]}
                except Exception:  # noqa: BLE001, S112 - the function may not exist yet
                    continue
                configs = []
                for alias, overrides in wanted:
                    answer = aliases.get(alias)
                    if answer is None:
                        continue
                    weights = (answer.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
                    for version in (answer["FunctionVersion"], *weights):
                        marker = (key, str(version), json.dumps(dict(overrides), sort_keys=True))
                        if marker in seen:
                            continue
                        seen.add(marker)
                        config = self._config(name, str(version))
                        configs.append(self._worker_config(key, str(version), config, overrides))
                if configs:
                    self._workers.prestart(configs, urgent=True)

        def watch() -> None:
            while True:
                try:
                    scan()
                except Exception:  # noqa: BLE001 - a failed scan is retried at the next tick
                    log.debug("prewarm scan failed", exc_info=True)
                if stop.wait(interval):
                    return

        if self._workers is not None:
            threading.Thread(target=watch, daemon=True, name="lambda-prewarm").start()
        return stop
