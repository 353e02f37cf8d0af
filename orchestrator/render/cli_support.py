"""Loading what `orchestrator render` draws: an ASL file, a synthesized template, or the
definition and history of an execution read through boto3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.render.diagram import to_mermaid, to_svg
from orchestrator.render.graph import ExecutionView, parse_definition, view_from_history
from orchestrator.render.report import definition_page, execution_report


class RenderError(ValueError):
    """The input cannot be drawn; the message says why in one line."""


def _flatten(value: Any, logical_id: str) -> str:
    """A DefinitionString as text: intrinsics replaced by readable placeholders.

    The graph needs only the structure, so `{"Ref": X}` becomes `${X}` and `Fn::GetAtt` becomes
    `${X.Attr}`; resolving to concrete ARNs is the local engine's job, not the renderer's.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Fn::Join":
            sep, parts = arg
            return str(sep).join(_flatten(p, logical_id) for p in parts)
        if fn == "Ref":
            return "${" + str(arg) + "}"
        if fn == "Fn::GetAtt":
            return "${" + (".".join(arg) if isinstance(arg, list) else str(arg)) + "}"
        if fn == "Fn::Sub":
            return str(arg[0] if isinstance(arg, list) else arg)
    raise RenderError(f"{logical_id}: unsupported intrinsic in DefinitionString: {json.dumps(value)[:80]}")


def definitions_in_template(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id -> ASL of every AWS::StepFunctions::StateMachine in a CloudFormation template."""
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        props = resource.get("Properties", {})
        if "Definition" in props:
            found[logical_id] = props["Definition"]
            continue
        text = _flatten(props.get("DefinitionString"), logical_id)
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + key + "}", value if isinstance(value, str) else "${" + key + "}")
        try:
            found[logical_id] = json.loads(text)
        except ValueError as exc:
            raise RenderError(f"{logical_id}: DefinitionString is not JSON after flattening ({exc})") from exc
    return found


def load_definition(source: str, state_machine: str | None) -> tuple[str, dict[str, Any]]:
    """(title, ASL) from a file holding either ASL or a CloudFormation template."""
    path = Path(source)
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise RenderError(f"cannot read {source}: {exc.strerror}") from exc
    except ValueError as exc:
        raise RenderError(f"{source} is not JSON: {exc}") from exc
    if isinstance(document, dict) and "StartAt" in document:
        return path.stem, document
    if isinstance(document, dict) and "Resources" in document:
        machines = definitions_in_template(document)
        if not machines:
            raise RenderError(f"{source} has no AWS::StepFunctions::StateMachine resource")
        if state_machine:
            chosen = [k for k in machines if k == state_machine] or [
                k for k in machines if state_machine.lower() in k.lower()
            ]
            if len(chosen) != 1:
                raise RenderError(
                    f"--state-machine {state_machine!r} matches {len(chosen)} of: {', '.join(sorted(machines))}"
                )
            return chosen[0], machines[chosen[0]]
        if len(machines) > 1:
            raise RenderError(
                f"{source} holds several state machines; pick one with --state-machine: {', '.join(sorted(machines))}"
            )
        ((logical_id, asl),) = machines.items()
        return logical_id, asl
    raise RenderError(f"{source} is neither an ASL definition nor a CloudFormation template")


def render_command(
    source: str | None, state_machine: str | None, execution: str | None, fmt: str, aws: Any
) -> str:
    view: ExecutionView | None = None
    if execution:
        asl = aws.definition_for_execution(execution)
        title = execution.rsplit(":", 1)[-1]
        if source:
            title, asl = load_definition(source, state_machine)
        view = view_from_history(asl, aws.history_after(execution))
    else:
        assert source is not None
        title, asl = load_definition(source, state_machine)
    try:
        graph = parse_definition(asl)
    except ValueError as exc:
        raise RenderError(str(exc)) from exc
    if fmt == "mermaid":
        return to_mermaid(graph, view)
    if fmt == "svg":
        return to_svg(graph, view, title=title) + "\n"
    if view is not None and execution:
        return execution_report(view, execution_arn=execution)
    return definition_page(to_svg(graph, None, title=title), title)
