"""Worker processes reused like warm Lambda containers, one pool per function version.

`LambdaWorkers` owns every pool and zygote of one engine or sandbox. A pool keeps idle workers
(warm containers) and starts a new one when an invocation finds none idle, up to the
function's reserved concurrency (else a small bound; beyond it invocations queue). A worker
runs one invocation at a time. A run past the function's timeout kills the worker
(`Sandbox.Timedout`); a worker that dies mid-invocation reports `Runtime.ExitError`; a peak RSS
above the function's memory size reports `Runtime.OutOfMemory` and the worker is discarded (the
limit is checked after each invocation from the worker's own `ru_maxrss`, not enforced by the
kernel: an RLIMIT_AS address-space limit would break CPython's allocator long before RSS nears it).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.lambda_runtime import bootstrap
from orchestrator.lambda_runtime.config import CodeLayout, FunctionConfig

log = logging.getLogger(__name__)

BOOTSTRAP = Path(bootstrap.__file__).resolve()
INIT_LIMIT_SECONDS = 10.0
PRESTART_THREADS = max(1, (os.cpu_count() or 2) // 2)  # Lambda's init phase limit for on-demand functions
_POLL = 0.02


class WorkerInitError(RuntimeError):
    """The handler could not be imported; `payload` is Lambda's error for the invocation."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        self.payload = payload


@dataclass(frozen=True)
class Outcome:
    """One invocation as a worker answered it (payload is the result or Lambda's error object)."""

    payload: Any
    error: bool
    duration_ms: float
    cold_start_ms: float | None
    max_rss_mb: float | None
    request_id: str


def _isolated_python() -> list[str]:
    # -I: no PYTHON* variables, no user site, no script directory; -S: no site module, so
    # neither the venv's site-packages nor its .pth files (an editable install) are on the path.
    return [sys.executable, "-I", "-S", str(BOOTSTRAP)]


# Runtime libraries whose import reads an optional package: botocore sets HAS_CRT (and with it the
# signers it uses, SigV4A among them) when it is first imported, from whether `awscrt` imports.
# On Lambda the asset's directory is on sys.path before the runtime's botocore is imported, so an
# asset that ships awscrt gets CRT signing; a zygote that imported botocore without the asset on
# its path would hand every worker a botocore without it.
PRELOAD_DEPENDS_ON = {"awscrt": ("boto3", "botocore", "aws_lambda_powertools", "aws_xray_sdk")}


def preload_skip(shipped: list[str]) -> list[str]:
    """The top-level packages a zygote must not pre-import for an asset shipping `shipped`."""
    skip = set(shipped)
    for package, dependents in PRELOAD_DEPENDS_ON.items():
        if package in skip:
            skip.update(dependents)
    return sorted(skip)


class Zygote:
    """A process that has imported only the runtime and layer libraries and forks workers."""

    def __init__(self, layout: CodeLayout, region: str) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        shipped = (
            sorted(p.name.removesuffix(".py") for p in layout.asset_dir.iterdir())
            if layout.asset_dir.is_dir()
            else []
        )
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "LAMBDA_RUNTIME_DIR": str(layout.runtime_dir),
            "_LOCAL_LAYER_DIRS": os.pathsep.join(map(str, layout.layer_dirs)),
            # What the asset ships itself is imported from the asset, after the fork, never here;
            # nor what decides at import time on something the asset ships (PRELOAD_DEPENDS_ON).
            "_LOCAL_PRELOAD_SKIP": ",".join(preload_skip(shipped)),
        }
        self._process = subprocess.Popen(  # noqa: S603 - our own bootstrap, fixed arguments
            [*_isolated_python(), "zygote", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None,
            close_fds=True,
        )
        theirs.close()
        self._socket = ours
        self._lock = threading.Lock()

    def spawn(self, env: dict[str, str], log_path: str, fds: list[int]) -> int:
        with self._lock:
            if self._process.poll() is not None:
                raise RuntimeError(f"the worker zygote exited with {self._process.returncode}")
            socket.send_fds(self._socket, [json.dumps({"env": env, "log": log_path}).encode()], fds)
            reply = self._socket.recv(4096)
        if not reply:
            raise RuntimeError("the worker zygote closed its control socket")
        return int(json.loads(reply)["pid"])

    def close(self) -> None:
        self._socket.close()  # EOF: the zygote returns
        try:
            self._process.wait(2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class Worker:
    """One execution environment: a process running bootstrap.py with the function's handler."""

    def __init__(self, config: FunctionConfig, zygote: Zygote | None) -> None:
        self.config = config
        started = time.perf_counter()
        request_r, self._request_w = os.pipe()
        self._response_r, response_w = os.pipe()
        log_path = config.log_file()
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        env = config.process_environment()
        self._process: subprocess.Popen[bytes] | None = None
        try:
            if zygote is not None:
                self.pid = zygote.spawn(env, str(log_path or os.devnull), [request_r, response_w])
            else:
                with open(log_path or os.devnull, "ab") as log_file:
                    self._process = subprocess.Popen(  # noqa: S603 - our own bootstrap, fixed arguments
                        [*_isolated_python(), "worker", str(request_r), str(response_w)],
                        pass_fds=[request_r, response_w],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=log_file,
                        close_fds=True,
                    )
                self.pid = self._process.pid
        finally:
            os.close(request_r)
            os.close(response_w)
        ready = self._read(time.monotonic() + INIT_LIMIT_SECONDS)
        self.cold_start_ms = round((time.perf_counter() - started) * 1000, 1)
        if ready is None or ready.get("type") != "ready":
            self.kill()
            raise WorkerInitError(
                {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"Runtime exited during init: {self.exit_reason()}",
                }
            )
        if "error" in ready:
            self.kill()
            raise WorkerInitError(ready["error"])
        self.init_ms = float(ready.get("init_ms", 0.0))

    # -- plumbing --------------------------------------------------------------------------
    def _read(self, deadline: float, expired: Callable[[], bool] | None = None) -> Any:
        """The next message; None on EOF; TimeoutError when `deadline` (real) or `expired()` hits."""
        while True:
            readable, _, _ = select.select([self._response_r], [], [], _POLL)
            if readable:
                try:
                    return bootstrap.read_message(self._response_r)
                except (OSError, ValueError):
                    return None
            if time.monotonic() >= deadline or (expired is not None and expired()):
                raise TimeoutError

    def alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def exit_reason(self) -> str:
        if self._process is not None:
            try:
                code = self._process.wait(1)
            except subprocess.TimeoutExpired:
                return "Runtime exited without providing a reason"
            if code < 0:
                return f"Runtime exited with error: signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
            return f"Runtime exited with error: exit status {code}"
        return "Runtime exited without providing a reason"

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, AttributeError):
            pass
        self._close_fds()
        if self._process is not None:
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        """Let the worker finish (its request pipe closes, it exits), else kill it."""
        self._close_fds()
        if self._process is not None:
            try:
                self._process.wait(1)
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def _close_fds(self) -> None:
        for name in ("_request_w", "_response_r"):
            fd = getattr(self, name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)

    # -- invoking --------------------------------------------------------------------------
    def invoke(
        self, message: dict[str, Any], expired: Callable[[], bool], real_limit: float
    ) -> dict[str, Any]:
        """Send one invocation; the worker's reply, or a Lambda error object (the worker then is dead)."""
        request_id = message["request_id"]
        try:
            assert self._request_w is not None
            bootstrap.write_message(self._request_w, message)
            reply = self._read(time.monotonic() + real_limit, expired)
        except TimeoutError:
            self.kill()
            return {
                "type": "timeout",
                "payload": {
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                    f"{self.config.timeout_seconds:.2f} seconds",
                },
            }
        except (OSError, AssertionError):
            reply = None
        if reply is None:
            reason = self.exit_reason()
            self.kill()
            return {
                "type": "exit",
                "payload": {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: {reason}",
                },
            }
        rss = reply.get("max_rss_mb")
        if rss is not None and rss > self.config.memory_mb:
            self.kill()
            return {
                **reply,
                "type": "oom",
                "payload": {
                    "errorType": "Runtime.OutOfMemory",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed "
                    f"(max memory used {rss:.0f} MB > memory size {self.config.memory_mb} MB)",
                },
            }
        return dict(reply)


@dataclass
class FunctionStats:
    cold_starts_ms: list[float] = field(default_factory=list)
    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    exits: int = 0
    max_rss_mb: float = 0.0

    def summary(self) -> dict[str, Any]:
        cold = self.cold_starts_ms
        return {
            "invocations": self.invocations,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "worker_exits": self.exits,
            "cold_starts": len(cold),
            "cold_start_ms_p50": round(statistics.median(cold), 1) if cold else None,
            "cold_start_ms_max": max(cold) if cold else None,
            "max_rss_mb": round(self.max_rss_mb, 1),
        }


class FunctionPool:
    """The warm workers of one function version (one configuration)."""

    def __init__(self, config: FunctionConfig, owner: LambdaWorkers) -> None:
        self.config = config
        self._owner = owner
        self._cond = threading.Condition()
        self._idle: list[Worker] = []
        self._count = 0  # idle + busy + starting
        self._closed = False

    @property
    def workers(self) -> int:
        with self._cond:
            return self._count

    @property
    def idle(self) -> int:
        with self._cond:
            return len(self._idle)

    def _acquire(self) -> Worker | None:
        """An idle worker, or None when the caller may start a new one (the count is reserved)."""
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError(f"the workers of {self.config.name} are stopped")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.config.concurrency:
                    self._count += 1
                    return None
                self._cond.wait()

    def _release(self, worker: Worker | None) -> None:
        with self._cond:
            if worker is not None and not self._closed and worker.alive():
                self._idle.append(worker)
            else:
                self._count -= 1
                if worker is not None:
                    threading.Thread(target=worker.stop, daemon=True).start()
            self._cond.notify()

    def _start(self) -> Worker:
        try:
            worker = Worker(self.config, self._owner.zygote(self.config))
        except Exception:
            self._release(None)
            raise
        self._owner.record_cold_start(self.config.name, worker.cold_start_ms)
        return worker

    def prestart(self) -> None:
        """Start one worker ahead of the first invocation (its cold start is still recorded)."""
        with self._cond:
            if self._idle or self._count >= self.config.concurrency:
                return
            self._count += 1
        try:
            worker = self._start()
        except WorkerInitError:
            return
        self._release(worker)

    def invoke(
        self,
        event: Any,
        *,
        clock: Callable[[], float] | None = None,
        speed: float = 1.0,
        invoked_function_arn: str | None = None,
        publish_clock: bool = False,
        request_id: str | None = None,
    ) -> Outcome:
        """Run one invocation. `clock` (epoch seconds, default: real time) is the caller's clock,
        moving `speed` times as fast as real time, which `publish_clock` passes on to the
        function. The timeout runs on real time (the function's code runs at real speed; a
        compressed clock shortens waits, not work) from the moment a ready worker takes the
        invocation (a cold start's init is not part of it, as on AWS)."""
        request_id = request_id or str(uuid.uuid4())
        now_of = clock or time.time
        worker = self._acquire()
        cold: float | None = None
        if worker is None:
            try:
                worker = self._start()
            except WorkerInitError as exc:
                self._owner.record(self.config.name, error=True)
                return Outcome(exc.payload, True, 0.0, None, None, request_id)
            cold = worker.cold_start_ms
        now = now_of()
        deadline = time.time() + self.config.timeout_seconds

        def expired() -> bool:
            return time.time() >= deadline

        message = {
            "type": "invoke",
            "request_id": request_id,
            "event": event,
            "deadline": deadline,
            "now": now,
            "speed": speed,
            "function_version": self.config.version,
            "invoked_function_arn": invoked_function_arn or self.config.arn,
            "log_stream_name": f"{time.strftime('%Y/%m/%d')}/[{self.config.version}]{worker.pid:08x}",
            "trace_id": _trace_id(),
            "clock": publish_clock,
        }
        reply = worker.invoke(message, expired, self.config.timeout_seconds + 1.0)
        kind = reply.get("type")
        self._release(worker if kind in ("result", "error") else None)
        self._owner.record(
            self.config.name,
            error=kind != "result",
            timeout=kind == "timeout",
            exit=kind in ("exit", "oom"),
            rss=reply.get("max_rss_mb"),
        )
        return Outcome(
            reply.get("payload"),
            kind != "result",
            float(reply.get("duration_ms", 0.0)),
            cold,
            reply.get("max_rss_mb"),
            request_id,
        )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.stop()


def _trace_id() -> str:
    # X-Ray's trace header as Lambda sets it per invocation.
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"


class _Batch:
    """Configurations handed to one `prestart` call; `done` is set when all are handled."""

    def __init__(self, configs: list[FunctionConfig]) -> None:
        self.configs = configs
        self.done = threading.Event()
        self._left = len(configs)
        self._lock = threading.Lock()

    def finish_one(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self.done.set()


class LambdaWorkers:
    """Every worker pool (and zygote) of one engine or sandbox; `close()` stops them all."""

    def __init__(self, *, fork: bool = True, region: str = "eu-west-1") -> None:
        self.fork = fork
        self.region = region
        self._lock = threading.Lock()
        self._pools: dict[tuple[object, ...], FunctionPool] = {}
        self._zygotes: dict[tuple[str, ...], Zygote] = {}
        self._stats: dict[str, FunctionStats] = {}
        self._prestarts: deque[tuple[FunctionConfig, _Batch]] = deque()
        self._prestarters = 0
        self._closed = False

    def __enter__(self) -> LambdaWorkers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def pool(self, config: FunctionConfig) -> FunctionPool:
        with self._lock:
            if self._closed:
                raise RuntimeError("the Lambda workers are stopped")
            found = self._pools.get(config.pool_key)
            if found is None:
                found = self._pools[config.pool_key] = FunctionPool(config, self)
            return found

    def zygote(self, config: FunctionConfig) -> Zygote | None:
        return self.zygote_for(config.layout, config.region)

    def zygote_for(self, layout: CodeLayout, region: str | None = None) -> Zygote | None:
        """The zygote of a code layout, started now if it is not running (None without fork)."""
        if not self.fork:
            return None
        key = layout.zygote_key()
        with self._lock:
            found = self._zygotes.get(key)
            if found is None:
                found = self._zygotes[key] = Zygote(layout, region or self.region)
            return found

    def invoke(self, config: FunctionConfig, event: Any, **kwargs: Any) -> Outcome:
        return self.pool(config).invoke(event, **kwargs)

    def prestart(self, configs: Iterable[FunctionConfig], *, urgent: bool = False) -> threading.Event:
        """Start one worker per configuration in the background; the returned event is set when
        all of them are started (or failed: the invocation will report it).

        Starts go through one queue served by PRESTART_THREADS threads (one per two cores), so
        background starts never crowd out the invocations' own on a small host; `urgent` ones
        (a version an alias routes traffic to) go ahead of the queue.
        """
        batch = _Batch(list(configs))
        items = [(config, batch) for config in batch.configs]
        with self._lock:
            if urgent:
                self._prestarts.extendleft(reversed(items))
            else:
                self._prestarts.extend(items)
            missing = min(PRESTART_THREADS, len(self._prestarts)) - self._prestarters
            self._prestarters += max(0, missing)
        for _ in range(missing):
            threading.Thread(target=self._serve_prestarts, daemon=True, name="lambda-prestart").start()
        if not items:
            batch.done.set()
        return batch.done

    def _serve_prestarts(self) -> None:
        while True:
            with self._lock:
                if not self._prestarts or self._closed:
                    self._prestarters -= 1
                    return
                config, batch = self._prestarts.popleft()
            try:
                self.pool(config).prestart()
            except Exception:  # noqa: BLE001 - the invocation will report the failure
                log.debug("prestart of %s failed", config.name, exc_info=True)
            batch.finish_one()

    # -- statistics ------------------------------------------------------------------------
    def record_cold_start(self, function: str, ms: float) -> None:
        with self._lock:
            self._stats.setdefault(function, FunctionStats()).cold_starts_ms.append(ms)

    def record(
        self,
        function: str,
        *,
        error: bool,
        timeout: bool = False,
        exit: bool = False,  # noqa: A002
        rss: float | None = None,
    ) -> None:
        with self._lock:
            stats = self._stats.setdefault(function, FunctionStats())
            stats.invocations += 1
            stats.errors += error
            stats.timeouts += timeout
            stats.exits += exit
            if rss:
                stats.max_rss_mb = max(stats.max_rss_mb, rss)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per function: invocations, errors, cold starts and their p50/max (ms), peak RSS."""
        with self._lock:
            return {name: s.summary() for name, s in sorted(self._stats.items())}

    def report(self) -> dict[str, Any]:
        stats = self.stats()
        cold = [ms for s in self._stats.values() for ms in s.cold_starts_ms]
        return {
            "mode": "isolated",
            "spawn": "zygote fork" if self.fork else "fresh interpreter",
            "python": sys.version.split()[0],
            "functions": stats,
            "cold_start_ms_p50_all": round(statistics.median(cold), 1) if cold else None,
            "cold_starts": len(cold),
            "invocations": sum(s["invocations"] for s in stats.values()),
        }

    def write_report(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.report(), indent=2) + "\n")
        tmp.replace(path)  # readers never see half a report
        return path

    def publish(self, path: Path, interval: float = 1.0) -> threading.Event:
        """Keep `path` holding the current report (rewritten when a figure changed) so another
        process (`orchestrator sandbox lambdas`) can read it; set the returned event to stop."""
        stop = threading.Event()

        def run() -> None:
            last = ""
            while not stop.wait(interval):
                with self._lock:
                    marker = json.dumps(
                        {n: (len(s.cold_starts_ms), s.invocations) for n, s in self._stats.items()}
                    )
                if marker != last:
                    last = marker
                    try:
                        self.write_report(path)
                    except OSError:
                        log.debug("could not write %s", path, exc_info=True)

        threading.Thread(target=run, daemon=True, name="lambda-report").start()
        return stop

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for pool in pools:
            pool.close()
        for zygote in zygotes:
            zygote.close()
