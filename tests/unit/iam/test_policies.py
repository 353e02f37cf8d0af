"""The policy set built from a synthesized template."""

from __future__ import annotations

from orchestrator.iam.policies import PolicySet

from .conftest import ACCOUNT, REGION, role_arn


def test_roles_with_attached_and_managed_policies(policy_set: PolicySet) -> None:
    worker = policy_set.roles[role_arn("worker-role")]
    names = [p.name for p in worker.policies]
    assert "WorkerPolicy" in names
    assert "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" in names
    statement = next(p for p in worker.policies if p.name == "WorkerPolicy").document["Statement"][0]
    assert statement["Resource"] == f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/releases"
    assert worker.unknown_managed == []


def test_unknown_managed_policy_is_reported_not_guessed() -> None:
    from orchestrator.iam.policies import build_policy_set

    template = {
        "Resources": {
            "R": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": "r",
                    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
                },
            }
        }
    }
    role = build_policy_set(template).roles[f"arn:aws:iam::{ACCOUNT}:role/r"]
    assert role.policies == [] and role.unknown_managed == ["arn:aws:iam::aws:policy/AdministratorAccess"]


def test_resource_policies_keyed_by_protected_arn(policy_set: PolicySet) -> None:
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:events"
    assert policy_set.resource_policy(queue)["Statement"][0]["Effect"] == "Deny"
    key = policy_set.encryption_key(queue)
    assert key is not None and key.startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    assert policy_set.resource_policy(key)["Statement"][0]["Principal"] == {
        "AWS": f"arn:aws:iam::{ACCOUNT}:root"
    }
    assert policy_set.encryption_key(f"arn:aws:sqs:{REGION}:{ACCOUNT}:plain") is None


def test_lambda_permission_becomes_a_resource_statement(policy_set: PolicySet) -> None:
    function = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:echo"
    (statement,) = policy_set.resource_policy(function)["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/r"}
    }
    # An alias without its own permission falls back to the function's policy.
    assert policy_set.resource_policy(f"{function}:live") is policy_set.resource_policy(function)


def test_callers_and_their_roles(policy_set: PolicySet) -> None:
    kinds = {(c.kind, c.name, c.role_arn) for c in policy_set.callers}
    assert ("function", "echo", role_arn("worker-role")) in kinds
    assert ("state-machine", "lock-machine", role_arn("machine-role")) in kinds
    assert policy_set.session_name(role_arn("worker-role")) == "echo"


def test_grants_list_every_allow_pair(policy_set: PolicySet) -> None:
    grants = {(g.action, g.resource) for g in policy_set.grants(role_arn("worker-role"))}
    assert ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/releases") in grants
    assert not any(action == "dynamodb:DeleteItem" for action, _ in grants)  # a Deny is not a grant
