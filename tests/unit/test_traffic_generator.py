"""The demo's traffic clients count a connection the server closed, whenever the close comes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from orchestrator.traffic import TrafficGenerator


class _Queue:
    def send_message(self, **_: Any) -> None:
        return None


@pytest.fixture
def closing_server() -> Iterator[str]:
    """A WebSocket server that answers the subscribe, then closes each connection as a drain
    would (1000) while its client is between two pings."""
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    url: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # subscribe
        await ws.recv()  # the first ping; the client now sleeps ping_interval, and its lifetime ends
        await ws.close(1000, "Connection closed by the server")

    async def main() -> None:
        nonlocal stop
        stop = asyncio.get_running_loop().create_future()
        async with serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            url.append(f"ws://127.0.0.1:{port}")
            ready.set()
            await stop

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield url[0]
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)


def test_a_close_as_the_clients_lifetime_ends_is_counted_as_the_servers(closing_server: str) -> None:
    # The close comes while the client sleeps after its first ping; when it wakes, its 0.3 s
    # lifetime is over and it would leave without another send (which would have raised).
    generator = TrafficGenerator(
        closing_server,
        "key",
        _Queue(),
        "queue",
        clients=1,
        ping_interval=0.5,
        event_interval=3600,
        connection_lifetime=0.3,
    )
    generator.start()
    try:
        deadline = time.monotonic() + 15
        while generator.stats.server_closes < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        generator.stop()
    stats = generator.stats
    assert stats.server_closes >= 2, stats
    assert stats.connect_failures == 0
    # Every connection was closed by the server before its client would have closed it.
    assert stats.server_closes >= len([c for c in stats.connections if c.closed]) - 1, stats
