"""A steady stream of real client traffic through the local gateway's live stage.

Clients connect with the API key, subscribe to a channel and ping; events are published to the
`events` queue so the live fan-out runs too. Every request is a real invocation of the alias
`live`, so while a release shifts traffic, green's share of these invocations (and its errors)
is exactly what CloudWatch, the release-guard alarms and CheckAlarms see.

Each connection records the service versions that answered its pings (`pong.version`), with
when it opened and closed: what a client sees of a release. With `invocations` routing a
connection open during a step meets both versions; with `connections` routing it meets one.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


@dataclass
class ConnectionSeen:
    """One client connection: when it opened and closed (time.time()), and who answered it."""

    opened: float
    closed: float | None = None
    versions: dict[str, int] = field(default_factory=dict)  # version -> pongs answered
    events: int = 0  # fan-out deliveries of the subscribed channel


@dataclass
class TrafficStats:
    connects: int = 0
    connect_failures: int = 0
    sent: int = 0
    frames: int = 0
    error_frames: int = 0
    events_published: int = 0
    publish_failures: int = 0
    # Connections the server closed (e.g. a canary stage drained after a rollback): the client
    # connects again, as a real client would.
    server_closes: int = 0
    connections: list[ConnectionSeen] = field(default_factory=list)


@dataclass
class TrafficGenerator:
    websocket_url: str
    api_key: str
    sqs: Any
    events_queue_url: str
    clients: int = 4
    ping_interval: float = 0.05
    event_interval: float = 0.25
    channel: str = "price:eth"
    # Seconds a client keeps a connection before it closes it and connects again (None: for as
    # long as the generator runs). With `connections` routing only new connections can reach
    # green, so a churning population is what lets a release's steps show.
    connection_lifetime: float | None = None
    stats: TrafficStats = field(default_factory=TrafficStats)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._threads = [
            threading.Thread(
                target=lambda: asyncio.run(self._clients()), name="traffic-clients", daemon=True
            ),
            threading.Thread(target=self._publisher, name="traffic-events", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    async def _clients(self) -> None:
        await asyncio.gather(*(self._client(index) for index in range(self.clients)))

    async def _client(self, index: int) -> None:
        while not self._stop.is_set():
            closed_by_server = False
            try:
                # The gateway answers a close frame after the messages queued before it (it routes a
                # connection's messages one by one): at the end of a demo, waiting for that answer up to
                # websockets' default 10 s only delays the summary.
                async with connect(
                    self.websocket_url,
                    additional_headers={"x-api-key": self.api_key},
                    open_timeout=5,
                    close_timeout=1,
                ) as ws:
                    self.stats.connects += 1
                    seen = ConnectionSeen(opened=time.time())
                    self.stats.connections.append(seen)
                    await ws.send(json.dumps({"action": "subscribe", "channel": self.channel}))
                    reader = asyncio.create_task(self._read(ws, seen))
                    opened = time.monotonic()
                    try:
                        while not self._stop.is_set() and not self._expired(opened):
                            await ws.send(
                                json.dumps({"action": "ping", "request_id": f"c{index}-{self.stats.sent}"})
                            )
                            self.stats.sent += 1
                            await asyncio.sleep(self.ping_interval)
                            if reader.done():
                                # The server closed the connection while this client slept (its
                                # reader ended), perhaps just as the client's lifetime ran out.
                                closed_by_server = True
                                break
                    finally:
                        reader.cancel()
                        seen.closed = time.time()
            except ConnectionClosed:
                closed_by_server = True
            except (InvalidStatus, OSError, TimeoutError):
                # A refused handshake is itself traffic (an authorizer or $connect invocation that failed).
                self.stats.connect_failures += 1
                await asyncio.sleep(self.ping_interval)
            if closed_by_server:
                self.stats.server_closes += 1
                await asyncio.sleep(self.ping_interval)

    def _expired(self, opened: float) -> bool:
        return self.connection_lifetime is not None and time.monotonic() - opened >= self.connection_lifetime

    async def _read(self, ws: Any, seen: ConnectionSeen) -> None:
        async for message in ws:
            self.stats.frames += 1
            if '"error"' in str(message) or "Internal server error" in str(message):
                self.stats.error_frames += 1
            elif '"type": "event"' in str(message) or '"type":"event"' in str(message):
                seen.events += 1
            elif '"pong"' in str(message):
                try:
                    version = json.loads(message).get("version")
                except ValueError:
                    continue
                if isinstance(version, str):
                    seen.versions[version] = seen.versions.get(version, 0) + 1

    def consistency(self, start: float, end: float) -> dict[str, int]:
        """Connections that opened and closed within [start, end]: how many were answered by one
        version alone (per version) and how many by more than one (`mixed`)."""
        counts: dict[str, int] = {"mixed": 0}
        for seen in list(self.stats.connections):
            if seen.closed is None or seen.opened < start or seen.closed > end or not seen.versions:
                continue
            if len(seen.versions) > 1:
                counts["mixed"] += 1
            else:
                (version,) = seen.versions
                counts[version] = counts.get(version, 0) + 1
        return counts

    def _publisher(self) -> None:
        sequence = 0
        while not self._stop.wait(self.event_interval):
            sequence += 1
            body = {
                "channel": self.channel,
                "type": "price",
                "payload": {"price": 3000 + sequence % 50, "sequence": sequence},
                "ts": time.time() * 1000,
            }
            try:
                self.sqs.send_message(QueueUrl=self.events_queue_url, MessageBody=json.dumps(body))
                self.stats.events_published += 1
            except Exception:  # noqa: BLE001 - a failed publish is counted, and traffic goes on
                self.stats.publish_failures += 1
