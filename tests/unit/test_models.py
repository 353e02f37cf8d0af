"""The release request model: valid requests, rejections that name the field, the exported schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from contracts.release import (
    MAX_REQUEST_BYTES,
    SCHEMA_PATH,
    InvalidRequest,
    ReleaseDefaults,
    Strategy,
    json_schema,
    parse_release_request,
)
from service.catalog import released_keys

VALID = {
    "version": "1.8.0",
    "artifact": {"bucket": "release-artifacts", "key": "service/1.8.0.zip", "sha256": "a" * 64},
    "requested_by": "alice",
}


def test_exported_schema_is_current():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), "run: python -m contracts.release"


def test_valid_request_gets_an_execution_safe_id_and_default_strategy():
    request = parse_release_request(json.dumps(VALID)).with_defaults()
    assert request.release_id and len(request.release_id) <= 80
    assert request.strategy is not None and request.strategy.steps[-1].percent == 100
    jsonschema.validate(VALID, json_schema())


def test_environment_defaults_fill_only_absent_fields():
    defaults = ReleaseDefaults(
        strategy=Strategy.model_validate({"steps": [{"percent": 100, "bake_seconds": 5}]}),
        approval="required",
        min_green_invocations=7,
    )
    request = parse_release_request({**VALID, "approval": "none"}, defaults)
    assert request.approval == "none"
    assert request.min_green_invocations == 7
    assert request.strategy is not None and [s.percent for s in request.strategy.steps] == [100]


def test_a_requests_judge_thresholds_merge_over_the_environments():
    from contracts.release import CanaryJudge

    defaults = ReleaseDefaults(judge=CanaryJudge(min_sample=200, p99_tolerance=1.3, p99_marginal=1.1))
    assert parse_release_request(VALID, defaults).judge.p99_tolerance == 1.3
    request = parse_release_request({**VALID, "judge": {"enabled": False}}, defaults)
    assert (request.judge.enabled, request.judge.min_sample, request.judge.p99_tolerance) == (False, 200, 1.3)
    request = parse_release_request({**VALID, "judge": {"p99_tolerance": 2.0}}, defaults)
    assert (request.judge.p99_tolerance, request.judge.p99_marginal) == (2.0, 1.1)
    with pytest.raises(InvalidRequest, match="judge.min_sample"):
        parse_release_request({**VALID, "judge": {"min_sample": 3}}, defaults)
    with pytest.raises(
        InvalidRequest, match=r"judge: p99_marginal \(1.4\) must not exceed p99_tolerance \(1.3\)"
    ):
        parse_release_request({**VALID, "judge": {"p99_marginal": 1.4}}, defaults)


MALFORMED = [
    ({k: v for k, v in VALID.items() if k != "version"}, "version: Field required"),
    ({**VALID, "version": 18}, "version: Input should be a valid string"),
    ({**VALID, "dry_run": "yes"}, "dry_run: Input should be a valid boolean"),
    (
        {
            **VALID,
            "strategy": {"steps": [{"percent": 0, "bake_seconds": 1}, {"percent": 100, "bake_seconds": 1}]},
        },
        "strategy.steps.0.percent",
    ),
    ({**VALID, "strategy": {"steps": [{"percent": 101, "bake_seconds": 1}]}}, "strategy.steps.0.percent"),
    (
        {**VALID, "strategy": {"steps": [{"percent": 50, "bake_seconds": 1}]}},
        "the last step must be 100 percent",
    ),
    (
        {
            **VALID,
            "strategy": {
                "steps": [
                    {"percent": 50, "bake_seconds": 1},
                    {"percent": 20, "bake_seconds": 1},
                    {"percent": 100, "bake_seconds": 1},
                ]
            },
        },
        "percent must increase strictly",
    ),
    ({**VALID, "strategy": {"steps": []}}, "strategy.steps"),
    ({**VALID, "artifact": {**VALID["artifact"], "sha256": "xyz"}}, "artifact.sha256"),
    ({**VALID, "artifact": {**VALID["artifact"], "key": "service/1.8.0.tar"}}, "artifact.key"),
    ({**VALID, "artifact": {**VALID["artifact"], "bucket": "Bad_Bucket"}}, "artifact.bucket"),
    ({**VALID, "approval": "maybe"}, "approval"),
    ({**VALID, "release_id": "has space"}, "release_id"),
    ({**VALID, "release_id": "x" * 81}, "release_id"),
    ({**VALID, "unexpected": 1}, "unexpected: Extra inputs are not permitted"),
    ({**VALID, "artifact": {**VALID["artifact"], "extra": 1}}, "artifact.extra"),
    ({**VALID, "configuration": {"AWS_REGION": "x"}}, "'AWS_REGION' is reserved"),
    ({**VALID, "configuration": {"1BAD": "x"}}, "not a valid environment variable name"),
    (
        {**VALID, "configuration": {"CACHE_SCHEMA_VERSION": "two"}},
        "CACHE_SCHEMA_VERSION must be a positive integer",
    ),
    (
        {**VALID, "configuration": {"FAULT_ERROR_RATE": "1.5"}},
        "FAULT_ERROR_RATE must be a number between 0 and 1",
    ),
    (
        {**VALID, "configuration": {"FAULT_FUNCTIONS": "messages,billing"}},
        "FAULT_FUNCTIONS names unknown functions ['billing']",
    ),
    ({**VALID, "checks": {"min_success_rate": 2}}, "checks.min_success_rate"),
    ({**VALID, "requested_by": ""}, "requested_by"),
    ({**VALID, "padding": "x" * (MAX_REQUEST_BYTES + 1)}, "the limit is"),
]


@pytest.mark.parametrize(("raw", "expected"), MALFORMED)
def test_malformed_requests_name_the_field(raw, expected):
    with pytest.raises(InvalidRequest) as caught:
        parse_release_request(raw, function_keys=released_keys())
    assert expected in str(caught.value)


def test_fault_functions_are_checked_against_the_catalog_only_when_it_is_given():
    raw = {**VALID, "configuration": {"FAULT_FUNCTIONS": "messages,billing"}}
    assert parse_release_request(raw).configuration == {"FAULT_FUNCTIONS": "messages,billing"}
    assert parse_release_request(
        {**VALID, "configuration": {"FAULT_FUNCTIONS": "messages"}}, function_keys=released_keys()
    )


def test_non_object_and_non_json_inputs_are_rejected():
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_release_request("{")
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        parse_release_request("[1]")
    with pytest.raises(InvalidRequest, match="the limit is"):
        parse_release_request(b" " * (MAX_REQUEST_BYTES + 1))
