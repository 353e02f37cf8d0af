"""Security gates that run at synthesis: cdk-nag AwsSolutions and the Control Tower guard rules.

Both are CDK validation plugins (the guard rules through infra/guard_gate.py): an unacknowledged finding stops `app.synth()` (and so
`make synth`, `cdk synth`, `cdk deploy` and the template tests) with a report.
Acknowledgments live in infra/nag_acknowledgments.py only.
"""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.guard_gate import GuardGate

# Guard rules that cannot apply to this project at all are disabled here, with the reason;
# findings on individual resources are acknowledged in nag_acknowledgments.
DISABLED_GUARD_RULES: dict[str, str] = {}


def attach_security_gates(app: App) -> None:
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True),
        # The package's CfnGuardValidator with every Control Tower rule, run in parallel slices
        # and remembered per byte-identical template and rule set (infra/guard_gate.py).
        GuardGate(
            disabled_rules=sorted(DISABLED_GUARD_RULES),
            # Production templates exceed Node's 1 MB default pipe buffer for guard's output.
            max_buffer=64 * 1024 * 1024,
        ),
    )
