"""What the integration tests share: a moto server for functions that run in their own processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """A moto server on loopback, in this process: it serves the same in-memory backends as the
    tests' `mock_aws`, so a test's own boto3 calls and isolated Lambda workers (over HTTP) see
    one AWS world."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    finally:
        server.stop()
