"""A minimal stack holding the DR drill state machine, synthesized once for the engine tests.

Function names and handlers are the ones infra/operations gives them, so the engine runs the
real `tasks/dr_drill.py`; the table name matches tests/support/ops_world.py.
"""

from __future__ import annotations

import os
from typing import Any

from tests.support.release_stack import node_binary

DRILL_FUNCTION = "staging-ops-dr-drill"
VERIFY_FUNCTION = "staging-ops-dr-verify"


def synth_drill_template(environment: str = "staging", table_name: str = "staging-release") -> dict[str, Any]:
    os.environ.setdefault("JSII_NODE", node_binary())
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template

    from state_machines.dr_drill import DrDrillProps, dr_drill_definition

    app = cdk.App()
    stack = cdk.Stack(app, "DrillTest", env=cdk.Environment(account="123456789012", region="eu-west-1"))
    table = dynamodb.Table(
        stack,
        "Releases",
        table_name=table_name,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
    )

    def function(cid: str, name: str, handler: str) -> lambda_.Function:
        return lambda_.Function(
            stack,
            cid,
            function_name=name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler=handler,
            code=lambda_.Code.from_inline("# bundled by infra"),
            timeout=cdk.Duration.seconds(300),
        )

    props = DrDrillProps(
        environment=environment,
        table=table,
        drill_function=function("Drill", DRILL_FUNCTION, "tasks.dr_drill.handler"),
        verify_function=function("Verify", VERIFY_FUNCTION, "tasks.dr_drill.verify_handler"),
    )
    sfn.StateMachine(
        stack,
        "DrDrill",
        state_machine_name=f"{environment}-dr-drill",
        definition_body=sfn.DefinitionBody.from_chainable(dr_drill_definition(stack, props)),
        tracing_enabled=True,
    )
    return Template.from_stack(stack).to_json()  # type: ignore[no-any-return]
