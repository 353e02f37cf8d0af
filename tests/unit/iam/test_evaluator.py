"""The policy evaluator (iam-simulate in one Node process) on real policy snippets."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.iam.evaluator import Evaluator, NamedPolicy

ACCOUNT = "123456789012"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT}:assumed-role/worker-role/worker"
TABLE = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/releases"
KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _identity(*statements: dict[str, Any]) -> list[NamedPolicy]:
    return [NamedPolicy("policy", {"Version": "2012-10-17", "Statement": list(statements)})]


def _judge(
    evaluator: Evaluator, action: str, resource: str, policies: list[NamedPolicy], **kwargs: Any
) -> Any:
    return evaluator.evaluate(
        principal=PRINCIPAL,
        action=action,
        resource=resource,
        account_id=ACCOUNT,
        identity_policies=policies,
        **kwargs,
    )


def test_scoped_arn_allows_only_that_resource(evaluator: Evaluator) -> None:
    policies = _identity({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE})
    assert _judge(evaluator, "dynamodb:PutItem", TABLE, policies).result == "Allowed"
    other = _judge(evaluator, "dynamodb:PutItem", TABLE.replace("releases", "other"), policies)
    assert other.result == "ImplicitlyDenied"
    assert other.reason == "because no identity-based policy allows the dynamodb:PutItem action"


def test_wildcards_in_action_and_resource(evaluator: Evaluator) -> None:
    policies = _identity(
        {
            "Effect": "Allow",
            "Action": "cloudwatch:Describe*",
            "Resource": f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:staging-*",
        }
    )
    alarm = f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:staging-release-health"
    assert _judge(evaluator, "cloudwatch:DescribeAlarms", alarm, policies).allowed
    assert not _judge(
        evaluator, "cloudwatch:DescribeAlarms", alarm.replace("staging", "production"), policies
    ).allowed
    assert not _judge(evaluator, "cloudwatch:SetAlarmState", alarm, policies).allowed


@pytest.mark.parametrize(("namespace", "allowed"), [("Release", True), ("Other", False)])
def test_string_equals_condition_on_cloudwatch_namespace(
    evaluator: Evaluator, namespace: str, allowed: bool
) -> None:
    policies = _identity(
        {
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": "Release"}},
        }
    )
    verdict = _judge(
        evaluator, "cloudwatch:PutMetricData", "*", policies, context={"cloudwatch:namespace": namespace}
    )
    assert verdict.allowed is allowed


def test_explicit_deny_wins_over_allow(evaluator: Evaluator) -> None:
    policies = _identity(
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE},
    )
    verdict = _judge(evaluator, "dynamodb:DeleteItem", TABLE, policies)
    assert verdict.result == "ExplicitlyDenied"
    assert verdict.reason == "with an explicit deny in an identity-based policy"


def test_resource_policy_deny_on_insecure_transport(evaluator: Evaluator) -> None:
    queue = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:events"
    policies = _identity({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue})
    resource_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "sqs:*",
                "Resource": queue,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    secure = _judge(
        evaluator,
        "sqs:SendMessage",
        queue,
        policies,
        resource_policy=resource_policy,
        context={"aws:SecureTransport": "true"},
    )
    insecure = _judge(
        evaluator,
        "sqs:SendMessage",
        queue,
        policies,
        resource_policy=resource_policy,
        context={"aws:SecureTransport": "false"},
    )
    assert secure.allowed
    assert insecure.result == "ExplicitlyDenied"
    assert insecure.reason == "with an explicit deny in a resource-based policy"


def test_same_account_resource_policy_alone_allows(evaluator: Evaluator) -> None:
    topic = f"arn:aws:sns:eu-west-1:{ACCOUNT}:alerts"
    resource_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": PRINCIPAL}, "Action": "sns:Publish", "Resource": topic}
        ],
    }
    assert _judge(evaluator, "sns:Publish", topic, [], resource_policy=resource_policy).allowed


def test_kms_needs_the_key_policy(evaluator: Evaluator) -> None:
    policies = _identity({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"})
    without_key_policy = _judge(evaluator, "kms:Decrypt", KEY, policies)
    assert without_key_policy.result == "ImplicitlyDenied"
    assert without_key_policy.reason == "because no resource-based policy allows the kms:Decrypt action"
    enable_iam = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    assert _judge(evaluator, "kms:Decrypt", KEY, policies, resource_policy=enable_iam).allowed
    # The key policy's root statement delegates to IAM: without an identity grant, still denied.
    assert not _judge(evaluator, "kms:Decrypt", KEY, [], resource_policy=enable_iam).allowed
    # A key policy that names the role directly is enough on its own.
    direct = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/worker-role"},
                "Action": "kms:Decrypt",
                "Resource": "*",
            }
        ],
    }
    assert _judge(evaluator, "kms:Decrypt", KEY, [], resource_policy=direct).allowed


def test_verdicts_are_cached_per_question(evaluator: Evaluator) -> None:
    policies = _identity({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE})
    first = _judge(evaluator, "dynamodb:GetItem", TABLE, policies, policies_version="cache-test")
    calls = evaluator.calls
    again = _judge(evaluator, "dynamodb:GetItem", TABLE, policies, policies_version="cache-test")
    assert again is first and evaluator.calls == calls
    _judge(evaluator, "dynamodb:GetItem", TABLE, policies, policies_version="cache-test-2")
    assert evaluator.calls == calls + 1


def test_an_invalid_request_is_an_error_verdict_not_an_allow(evaluator: Evaluator) -> None:
    verdict = _judge(evaluator, "kms:DescribeKey", f"arn:aws:kms:eu-west-1:{ACCOUNT}:alias/unknown", [])
    assert verdict.result == "Error" and not verdict.allowed
    assert "policy evaluator rejected" in verdict.reason


def test_stop_and_restart() -> None:
    private = Evaluator().start()
    private.stop()
    policies = _identity({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE})
    assert private.evaluate(
        principal=PRINCIPAL,
        action="dynamodb:GetItem",
        resource=TABLE,
        account_id=ACCOUNT,
        identity_policies=policies,
    ).allowed  # restarts on demand
    private.stop()
