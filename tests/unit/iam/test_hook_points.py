"""The IAM hook points exist in the pinned moto, and installing the enforcer restores moto when removed."""

from __future__ import annotations

import pytest

from orchestrator.engine import moto_hooks
from orchestrator.engine.moto_hooks import IAM_HOOK_POINTS, HookPoint
from orchestrator.iam.enforcer import IamEnforcer
from orchestrator.iam.evaluator import Evaluator
from orchestrator.iam.policies import PolicySet


@pytest.mark.parametrize("point", IAM_HOOK_POINTS, ids=lambda p: p.symbol)
def test_iam_hook_point_exists_in_pinned_moto(point: HookPoint) -> None:
    point.owner_and_name()


def test_install_and_uninstall_restore_every_original(policy_set: PolicySet, evaluator: Evaluator) -> None:
    def current() -> dict[str, object]:
        return {p.symbol: vars(p.owner_and_name()[0])[p.owner_and_name()[1]] for p in IAM_HOOK_POINTS}

    before = current()
    with IamEnforcer(policy_set, evaluator) as enforcer:
        assert moto_hooks.iam_enforcer() is enforcer
        during = current()
        assert all(during[s] is not before[s] for s in before)
    assert moto_hooks.iam_enforcer() is None
    assert current() == before
