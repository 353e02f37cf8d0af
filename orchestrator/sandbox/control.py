"""The sandbox's control endpoint: its clock and its scheduler, on loopback HTTP.

AWS has no API for either (its clock is the world's; its scheduler keeps no run history you can
read), so the sandbox answers these on its own small server, whose URL is in the state file
(`control_url`). The CLI's `schedule` commands use it with `--sandbox` only.

    GET  /clock           {"now": ISO, "epoch": s, "time_scale": x}
    POST /clock           {"advance_to": ISO} or {"advance_seconds": s}: the clock only moves forward
    GET  /schedules       {"now": ISO, "firing": bool, "next": {<group>/<name>: ISO|null}, "runs": [...]}
    GET  /costs           {"days": {YYYY-MM-DD: {service: USD}}} for the 14 days up to today
    POST /costs           {"day": YYYY-MM-DD, "costs": {service: USD}} sets a day; {"reset": true}
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from orchestrator.engine.clock import VirtualClock
from orchestrator.sandbox.scheduler import SandboxScheduler, read_runs


class ControlError(RuntimeError):
    """The control endpoint refused or did not answer; the message says why in one line."""


class ControlServer:
    def __init__(
        self, clock: VirtualClock, scheduler: SandboxScheduler | None, directory: Path, costs: Any = None
    ) -> None:
        self.clock, self.scheduler, self.directory, self.costs = clock, scheduler, directory, costs
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # the sandbox log has enough
                return

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/clock":
                    self._answer(200, server.clock_view())
                elif self.path == "/schedules":
                    self._answer(200, server.schedules_view())
                elif self.path == "/costs" and server.costs is not None:
                    self._answer(200, server.costs_view())
                else:
                    self._answer(404, {"error": f"no such resource {self.path}"})

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                actions = {"/clock": (server.move_clock, server.clock_view)}
                if server.costs is not None:
                    actions["/costs"] = (server.set_costs, server.costs_view)
                if self.path not in actions:
                    self._answer(404, {"error": f"no such resource {self.path}"})
                    return
                act, view = actions[self.path]
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    act(json.loads(self.rfile.read(length) or b"{}"))
                except (ValueError, TypeError, KeyError) as exc:
                    self._answer(400, {"error": str(exc)})
                    return
                self._answer(200, view())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sandbox-control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def clock_view(self) -> dict[str, Any]:
        return {
            "now": self.clock.now().isoformat(),
            "epoch": self.clock.time(),
            "time_scale": self.clock.speed,
        }

    def schedules_view(self) -> dict[str, Any]:
        return {
            "now": self.clock.now().isoformat(),
            "firing": bool(self.scheduler and self.scheduler.firing),
            "next": self.scheduler.next_runs() if self.scheduler else {},
            "runs": read_runs(self.directory),
        }

    def costs_view(self) -> dict[str, Any]:
        today = self.clock.now().date()
        days = [today - timedelta(days=n) for n in range(13, -1, -1)]
        return {"days": {d.isoformat(): self.costs.day(d) for d in days}}

    def set_costs(self, request: dict[str, Any]) -> None:
        if request.get("reset"):
            self.costs.reset()
            return
        costs = request["costs"]
        if not isinstance(costs, dict) or not all(isinstance(v, int | float) for v in costs.values()):
            raise ValueError("costs: a map of service name -> USD expected")
        self.costs.set_day(date.fromisoformat(str(request["day"])), costs)

    def move_clock(self, request: dict[str, Any]) -> None:
        if "advance_to" in request:
            moment = datetime.fromisoformat(str(request["advance_to"]).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                raise ValueError("advance_to needs a time zone (e.g. 2026-12-02T08:59:00+00:00)")
            if moment.timestamp() < self.clock.time():
                raise ValueError(f"the clock only moves forward: it reads {self.clock.now().isoformat()}")
            self.clock.advance_to(moment.timestamp())
        elif "advance_seconds" in request:
            self.clock.advance(float(request["advance_seconds"]))  # ValueError when negative
        else:
            raise ValueError("give advance_to (ISO time) or advance_seconds")


def call(url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """A request to a sandbox's control endpoint (the CLI side)."""
    if not url:
        raise ControlError("this sandbox has no control endpoint (started by an older version?)")
    request = urllib.request.Request(  # noqa: S310 - the loopback URL the sandbox wrote
        f"{url}{path}",
        method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            reason = str(exc)
        raise ControlError(f"the sandbox refused {path}: {reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ControlError(f"the sandbox's control endpoint {url} does not answer: {exc}") from exc
