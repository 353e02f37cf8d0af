"""A steady stream of real client traffic through the local gateway's live stage.

Clients connect with the API key, subscribe to a channel and ping; events are published to the
`events` queue so the live fan-out runs too. Every request is a real invocation of the alias
`live`, so while a release shifts traffic, green's share of these invocations (and its errors)
is exactly what CloudWatch, the release-guard alarms and CheckAlarms see.
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
class TrafficStats:
    connects: int = 0
    connect_failures: int = 0
    sent: int = 0
    frames: int = 0
    error_frames: int = 0
    events_published: int = 0
    publish_failures: int = 0


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
                    await ws.send(json.dumps({"action": "subscribe", "channel": self.channel}))
                    reader = asyncio.create_task(self._read(ws))
                    try:
                        while not self._stop.is_set():
                            await ws.send(
                                json.dumps({"action": "ping", "request_id": f"c{index}-{self.stats.sent}"})
                            )
                            self.stats.sent += 1
                            await asyncio.sleep(self.ping_interval)
                    finally:
                        reader.cancel()
            except (InvalidStatus, ConnectionClosed, OSError, TimeoutError):
                # A refused handshake is itself traffic (an authorizer or $connect invocation that failed).
                self.stats.connect_failures += 1
                await asyncio.sleep(self.ping_interval)

    async def _read(self, ws: Any) -> None:
        async for message in ws:
            self.stats.frames += 1
            if '"error"' in str(message) or "Internal server error" in str(message):
                self.stats.error_frames += 1

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
