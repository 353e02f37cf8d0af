"""What one local Lambda execution environment is made of: code layout and function configuration."""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Lambda's python3.12 runtime answers with these; a function may read them.
EXECUTION_ENV = "AWS_Lambda_python3.12"
XRAY_DAEMON_ADDRESS = "127.0.0.1:2000"  # loopback only: nothing leaves the machine
DEFAULT_CONCURRENCY = 4
WORKERS_VARIABLE = "ORCHESTRATOR_LAMBDA_WORKERS"


def host_worker_limit() -> int:
    """Workers one function version may run at once on this machine.

    Lambda scales a function out up to its reserved concurrency (50 for the service functions),
    one cold start per concurrent request. Here every worker is a process on this host's cores:
    more workers than cores only make cold starts slower for everyone (each start is CPU-bound
    imports), while a warm worker answers in milliseconds. So a version runs at most as many
    workers as the host has cores (ORCHESTRATOR_LAMBDA_WORKERS overrides), and an invocation
    that finds them all busy waits for the first one to be free (the wait is not part of its
    timeout, as a throttled retry's is not).
    """
    raw = os.environ.get(WORKERS_VARIABLE, "").strip()
    if raw:
        return max(1, int(raw))
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True)
class CodeLayout:
    """The directories on a worker's path: /var/task, /opt/python (layers), /var/runtime."""

    asset_dir: Path
    runtime_dir: Path
    layer_dirs: tuple[Path, ...] = ()

    def zygote_key(self) -> tuple[str, ...]:
        return (str(self.asset_dir), str(self.runtime_dir), *map(str, self.layer_dirs))


def host_site_packages() -> Path:
    """This interpreter's site-packages: a stand-in runtime directory for development only
    (it holds far more than Lambda's /var/runtime)."""
    return Path(sysconfig.get_paths()["purelib"])


@dataclass(frozen=True)
class FunctionConfig:
    """One function version's configuration, as GetFunctionConfiguration / the template state it."""

    name: str
    arn: str  # unqualified function ARN
    handler: str  # "package.module.function"
    layout: CodeLayout
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int = 3
    memory_mb: int = 128
    version: str = "$LATEST"
    role_arn: str = ""
    region: str = "eu-west-1"
    endpoint_url: str | None = None  # the moto server workers call (AWS_ENDPOINT_URL)
    reserved_concurrency: int | None = None
    log_dir: Path | None = None

    @property
    def pool_key(self) -> tuple[object, ...]:
        """Workers are shared only by invocations of the very same configuration."""
        return (
            self.name,
            self.version,
            self.handler,
            self.layout.zygote_key(),
            tuple(sorted(self.environment.items())),
            self.timeout_seconds,
            self.memory_mb,
            self.role_arn,
            self.endpoint_url,
        )

    @property
    def concurrency(self) -> int:
        """The function's reserved concurrency (else a small default), within the host's limit."""
        wanted = self.reserved_concurrency if self.reserved_concurrency else DEFAULT_CONCURRENCY
        return min(wanted, host_worker_limit())

    def log_file(self) -> Path | None:
        return self.log_dir / f"{self.name}.log" if self.log_dir else None

    def process_environment(self) -> dict[str, str]:
        """The worker's whole environment: Lambda's runtime variables, credentials, the function's own."""
        from orchestrator.iam.identity import credentials_for

        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": self.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": EXECUTION_ENV,
            "AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON_ADDRESS,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "_AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON_ADDRESS.split(":")[0],
            "_AWS_XRAY_DAEMON_PORT": XRAY_DAEMON_ADDRESS.split(":")[1],
            "_HANDLER": self.handler,
            "LAMBDA_TASK_ROOT": str(self.layout.asset_dir),
            "LAMBDA_RUNTIME_DIR": str(self.layout.runtime_dir),
            "_LOCAL_LAYER_DIRS": os.pathsep.join(map(str, self.layout.layer_dirs)),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if self.role_arn:
            env.update(credentials_for(self.role_arn).environment())
        else:  # an unattributed caller (no role in the template): the account's own
            env.update(AWS_ACCESS_KEY_ID="sandbox", AWS_SECRET_ACCESS_KEY="sandbox")  # noqa: S106 - moto accepts any
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        env.update(self.environment)
        # Reserved variables: a function cannot override them on AWS either.
        for reserved in (
            "_HANDLER",
            "LAMBDA_TASK_ROOT",
            "LAMBDA_RUNTIME_DIR",
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_REGION",
            "AWS_EXECUTION_ENV",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        ):
            env[reserved] = {
                "_HANDLER": self.handler,
                "LAMBDA_TASK_ROOT": str(self.layout.asset_dir),
                "LAMBDA_RUNTIME_DIR": str(self.layout.runtime_dir),
                "AWS_LAMBDA_FUNCTION_NAME": self.name,
                "AWS_REGION": self.region,
                "AWS_EXECUTION_ENV": EXECUTION_ENV,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            }[reserved]
        if not env.get("AWS_XRAY_DAEMON_ADDRESS", "").startswith("127.0.0.1:"):
            env["AWS_XRAY_DAEMON_ADDRESS"] = XRAY_DAEMON_ADDRESS
        return env
