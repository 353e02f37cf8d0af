"""The gateway's edge: a CloudFront Function's own code in one Node.js process, with the
runtime's `cloudfront` module reading the sandbox's KeyValueStore as it is at each request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.gateway.edge import (
    FUNCTION_ERROR_STATUS,
    FUNCTION_VALIDATION_STATUS,
    EdgeFunction,
    EdgeFunctionCode,
    ViewerRequest,
    viewer_request_event,
)

ROUTER = Path(__file__).resolve().parents[3] / "infra" / "edge" / "canary_router.js"
ARN = "arn:aws:cloudfront::123456789012:key-value-store/0c1d2e3f-0000-4000-8000-000000000001"

PROBE = """
import cf from 'cloudfront';
const kvs = cf.kvs();
async function handler(event) {
    const request = event.request;
    if (request.uri === '/deny') {
        return { statusCode: 403, statusDescription: 'Forbidden', body: 'no' };
    }
    if (request.uri === '/throw') {
        throw new Error('boom');
    }
    if (request.uri === '/spin') {
        for (;;) {}
    }
    if (request.uri === '/nothing') {
        return 42;
    }
    if (request.uri === '/read') {
        let value;
        try {
            value = await kvs.get(request.querystring.key.value, { format: 'string' });
        } catch (err) {
            value = 'missing: ' + err.message;
        }
        const meta = await kvs.meta();
        request.querystring = { value: { value: String(value) }, count: { value: String(meta.keyCount) },
                                exists: { value: String(await kvs.exists('a')) } };
        request.uri = '/live';
        return request;
    }
    return request;
}
"""


@pytest.fixture
def items() -> dict[str, str]:
    return {}


@pytest.fixture
def probe(items: dict[str, str]) -> Iterator[EdgeFunction]:
    code = EdgeFunctionCode("probe", PROBE, "test", {ARN.rsplit("/", 1)[-1]: ARN})
    with EdgeFunction(code, lambda arn: items if arn == ARN else {}, timeout_seconds=1.0) as running:
        yield running


def test_the_event_is_cloudfronts_viewer_request() -> None:
    event = viewer_request_event(
        ViewerRequest(
            "/live", {"api_key": ["k"], "x": ["1", "2"]}, [("Host", "h"), ("Cookie", "a=1; b=2")], "10.0.0.1"
        ),
        "d111.cloudfront.net",
        "E1",
    )
    assert event["version"] == "1.0" and event["context"]["eventType"] == "viewer-request"
    assert event["viewer"] == {"ip": "10.0.0.1"}
    request = event["request"]
    assert (request["method"], request["uri"]) == ("GET", "/live")
    assert request["querystring"]["api_key"] == {"value": "k"}
    assert request["querystring"]["x"] == {"value": "1", "multiValue": [{"value": "1"}, {"value": "2"}]}
    assert request["headers"]["host"] == {"value": "h"}
    assert request["cookies"] == {"a": {"value": "1"}, "b": {"value": "2"}}


def test_the_store_is_read_as_it_is_at_each_request(probe: EdgeFunction, items: dict[str, str]) -> None:
    missing = probe.viewer_request(ViewerRequest("/read", {"key": ["canary_share"]}))
    assert missing.forwarded and missing.uri == "/live"
    assert missing.querystring["value"] == ["missing: Key canary_share does not exist"]
    assert missing.querystring["exists"] == ["false"]
    items.update(canary_share="10", a="x")
    found = probe.viewer_request(ViewerRequest("/read", {"key": ["canary_share"]}))
    assert (found.querystring["value"], found.querystring["count"], found.querystring["exists"]) == (
        ["10"],
        ["2"],
        ["true"],
    )


def test_answers_errors_and_timeouts_as_cloudfront_does(probe: EdgeFunction) -> None:
    denied = probe.viewer_request(ViewerRequest("/deny"))
    assert (denied.forwarded, denied.status, denied.body) == (False, 403, "no")
    thrown = probe.viewer_request(ViewerRequest("/throw"))
    assert (thrown.status, thrown.error) == (FUNCTION_ERROR_STATUS, "boom")
    assert probe.viewer_request(ViewerRequest("/nothing")).status == FUNCTION_VALIDATION_STATUS
    spun = probe.viewer_request(ViewerRequest("/spin"))
    assert spun.status == FUNCTION_ERROR_STATUS and "did not answer" in str(spun.error)
    # The process that hung is replaced: the next request is served.
    assert probe.viewer_request(ViewerRequest("/preview")).uri == "/preview" and probe.restarts == 1


def test_the_canary_router_only_moves_live(items: dict[str, str]) -> None:
    code = EdgeFunctionCode.from_file(ROUTER, [ARN])
    with EdgeFunction(code, lambda arn: items) as router:
        items["canary_share"] = "100"
        assert router.viewer_request(ViewerRequest("/live", {"api_key": ["k"]})).uri == "/canary"
        assert router.viewer_request(ViewerRequest("/live/")).uri == "/canary"
        assert router.viewer_request(ViewerRequest("/preview")).uri == "/preview"
        outcome = router.viewer_request(ViewerRequest("/live", {"api_key": ["k"]}))
        assert outcome.querystring == {"api_key": ["k"]}  # the query string goes on unchanged
        items["canary_share"] = "0"
        assert {router.viewer_request(ViewerRequest("/live")).uri for _ in range(50)} == {"/live"}


def test_code_that_does_not_load_is_reported() -> None:
    from orchestrator.gateway.edge import EdgeFunctionError

    broken = EdgeFunctionCode("broken", "function handler(event) { return event.request; ", "test")
    with pytest.raises(EdgeFunctionError, match="broken .* did not load"):
        EdgeFunction(broken, lambda arn: {}).start()
    with pytest.raises(EdgeFunctionError, match="runtime cloudfront-js-1.0"):
        EdgeFunction(EdgeFunctionCode("old", "", "test", runtime="cloudfront-js-1.0"), lambda arn: {})
