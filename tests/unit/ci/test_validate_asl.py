"""validate_asl.py: state machines of a cloud assembly, tokens resolved, checked by asl-validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import validate_asl


def _template(states: dict[str, Any]) -> dict[str, Any]:
    head, _, tail = json.dumps({"StartAt": "Run", "States": states}).partition('"__FN__"')
    return {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "staging-realtime-task"}},
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "staging-realtime-release",
                    "RoleArn": "arn:aws:iam::123456789012:role/sm",
                    # As the CDK writes it: a Join of text and intrinsics.
                    "DefinitionString": {
                        "Fn::Join": ["", [head + '"', {"Fn::GetAtt": ["Fn", "Arn"]}, '"' + tail]]
                    },
                },
            },
        }
    }


GOOD = {"Run": {"Type": "Task", "Resource": "__FN__", "End": True}}
# `Next` names a state that does not exist: moto's interpreter would only fail at run time.
BAD = {"Run": {"Type": "Task", "Resource": "__FN__", "Next": "Nowhere"}}


def _assembly(tmp_path: Path, **machines: dict[str, Any]) -> Path:
    stage = tmp_path / "cdk.out" / "assembly-Staging"
    stage.mkdir(parents=True)
    for name, states in machines.items():
        (stage / f"{name}.template.json").write_text(json.dumps(_template(states)))
    return tmp_path / "cdk.out"


def test_valid_definitions_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assembly = _assembly(tmp_path, Release=GOOD)
    assert validate_asl.main([str(assembly)]) == 0
    out = capsys.readouterr().out
    assert "valid  assembly-Staging/Release.template.json:Machine" in out
    assert "1/1 state machine definitions valid" in out


def test_intrinsics_are_resolved_before_validation(tmp_path: Path) -> None:
    assembly = _assembly(tmp_path, Release=GOOD)
    (definition,) = validate_asl.definitions(next(assembly.rglob("*.template.json"))).values()
    resource = json.loads(definition)["States"]["Run"]["Resource"]
    assert resource.startswith("arn:aws:lambda:") and resource.endswith(":function:staging-realtime-task")


def test_graph_error_fails_and_names_the_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assembly = _assembly(tmp_path, Release=GOOD, Broken=BAD)
    assert validate_asl.main([str(assembly)]) == 1
    err = capsys.readouterr().err
    assert "validate_asl: assembly-Staging/Broken.template.json:Machine:" in err
    assert "Release.template.json" not in err


def test_empty_assembly_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cdk.out").mkdir()
    assert validate_asl.main([str(tmp_path / "cdk.out")]) == 2
    assert "run make synth first" in capsys.readouterr().err
