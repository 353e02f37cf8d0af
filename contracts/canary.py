"""Connection-level canary: the names the edge function, the infrastructure, the tasks and the
sandbox share.

A release in `connections` routing leaves every `live` alias on blue during its steps. Instead, a
CloudFront Function (viewer request, JavaScript runtime 2.0) reads the canary share from a
CloudFront KeyValueStore and rewrites that share of new WebSocket handshakes for the `live`
stage to the `canary` stage, whose integrations resolve to each function's `green` alias. A
connection keeps the stage, and so the version, it connected to for its whole life.

    KeyValueStore key    CANARY_SHARE_KEY ("canary_share")
    value                the percent of new `live` handshakes sent to `canary`: a decimal
                         integer "0".."100"; a missing key, an unreadable value or any error
                         reading the store means 0 (every handshake stays on `live`)
    stage                CANARY_STAGE ("canary"), API mapping key "canary", alias `green`
    client URL           wss://<public-host>/live (clients never name `canary` themselves)

The tasks find the store and the canary stage's `@connections` endpoint in their environment:
CANARY_KVS_ARN_VARIABLE and CANARY_CONNECTIONS_ENDPOINT_VARIABLE.
"""

from __future__ import annotations

import re
from typing import Literal

Routing = Literal["invocations", "connections"]
ROUTINGS: tuple[Routing, ...] = ("invocations", "connections")
DEFAULT_ROUTING: Routing = "invocations"

CANARY_STAGE = "canary"
CANARY_SHARE_KEY = "canary_share"
# The URI the edge function rewrites, and the one it rewrites it to (API mapping keys == stage names).
LIVE_PATH = "/live"
CANARY_PATH = f"/{CANARY_STAGE}"

CANARY_KVS_ARN_VARIABLE = "CANARY_KVS_ARN"
CANARY_CONNECTIONS_ENDPOINT_VARIABLE = "CANARY_CONNECTIONS_ENDPOINT"


def share_value(percent: int) -> str:
    """The KeyValueStore value for a share (what SetWeights writes and the edge function parses)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"canary share must be between 0 and 100 percent, got {percent}")
    return str(int(percent))


def parse_share(value: str | None) -> int:
    """The share a stored value means, as the edge function reads it: anything unreadable is 0."""
    if value is None:
        return 0
    text = value.strip()
    # Exactly what the edge function accepts: 1 to 3 ASCII digits (`/^[0-9]{1,3}$/`).
    if not re.fullmatch(r"[0-9]{1,3}", text):
        return 0
    return min(int(text), 100)
