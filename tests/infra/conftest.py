"""Synthesize each stage once per test session; every infra test reads these templates.

Synthesis runs both security gates (cdk-nag, Control Tower guard rules), so a session that
gets templates at all has already passed them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Importing `infra` points jsii at the wheel's Node.js (infra/__init__.py); aws_cdk is imported
# only after it, inside the fixtures, so jsii never starts on a system Node.
from contracts import names
from infra.config import EnvironmentConfig, load_config

if TYPE_CHECKING:
    from aws_cdk import cx_api
    from aws_cdk.assertions import Template


@pytest.fixture(scope="session")
def configs() -> dict[str, EnvironmentConfig]:
    return {env: load_config(env) for env in names.ENVIRONMENTS}


@pytest.fixture(scope="session")
def synth_assembly(synthesized: Path) -> cx_api.CloudAssembly:
    """The whole app (both stages, gates attached), synthesized once per session (tests/conftest.py)."""
    from aws_cdk import cx_api

    return cx_api.CloudAssembly(str(synthesized))


def stage_templates(assembly: cx_api.CloudAssembly, env: str) -> dict[str, dict[str, Any]]:
    """Stack artifact id -> template JSON of one stage."""
    nested = assembly.get_nested_assembly(f"assembly-{names.stage_id(env)}")
    return {stack.stack_name: stack.template for stack in nested.stacks}


def main_template_json(assembly: cx_api.CloudAssembly, env: str) -> dict[str, Any]:
    return stage_templates(assembly, env)[names.stack_name(env)]


@pytest.fixture(scope="session")
def staging_template(synth_assembly: cx_api.CloudAssembly) -> Template:
    from aws_cdk.assertions import Template

    return Template.from_json(main_template_json(synth_assembly, "staging"))


@pytest.fixture(scope="session")
def production_template(synth_assembly: cx_api.CloudAssembly) -> Template:
    from aws_cdk.assertions import Template

    return Template.from_json(main_template_json(synth_assembly, "production"))


@pytest.fixture(scope="session", params=names.ENVIRONMENTS)
def env_template(
    request: pytest.FixtureRequest, synth_assembly: cx_api.CloudAssembly
) -> Iterator[tuple[str, Template]]:
    """Parametrized over both environments: (environment, main stack template)."""
    from aws_cdk.assertions import Template

    yield request.param, Template.from_json(main_template_json(synth_assembly, request.param))


def resources_of(template: Template, kind: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(kind)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
