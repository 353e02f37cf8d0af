"""What AWS Lambda would run, rebuilt on this machine: functions, their assets, runtime and layer.

No `aws_cdk` import here: the tests, the sandbox and the local engine read a synthesized cloud
assembly (cdk.out) with these helpers.

- `python_functions(assembly_dir)`: every Python `AWS::Lambda::Function` of every template in
  the assembly (nested stage assemblies included), with its handler, runtime, environment,
  timeout, memory and its code asset directory (the `aws:asset:path` metadata, or the asset
  manifest entry of its S3 key).
- `lambda_runtime_dirs()`: two host-platform directories built once with `pip --target` and
  cached under `.build/lambda/`: the "runtime" (boto3/botocore as the Lambda Python runtime
  ships them) and the "layer" (Powertools with its extras, as AWS's public layer ships it).
  A function runs with `sys.path = [host asset dir, layer dir, runtime dir] + stdlib`, in the
  order Lambda searches `/var/task`, `/opt/python` and the runtime's own packages.
- `isolated_sys_path(asset_dir)`: that list, for a `python -I -S` interpreter.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import bundling

# --- Versions of what AWS provides (one place) ---------------------------------------------
#
# boto3/botocore of the Lambda Python runtimes. AWS's "Building Lambda functions with Python"
# page (docs.aws.amazon.com/lambda/latest/dg/lambda-python.html, "Runtime-included SDK
# versions") publishes no number: the included SDK "depends on the runtime version and your
# AWS Region" and is updated by AWS over time. The figure below is the one reported for both
# the python3.12 and python3.13 runtimes in github.com/terricain/aioboto3/issues/381
# (August 2025: "The AWS Lambda Python 3.12 runtime currently provides boto3 and botocore
# version 1.38.36"); both versions exist on PyPI. Re-check it against a deployed function
# (`boto3.__version__`) when AWS updates the runtime.
LAMBDA_RUNTIME_SDK: dict[str, tuple[str, ...]] = {
    "python3.12": ("boto3==1.38.36", "botocore==1.38.36"),
    "python3.13": ("boto3==1.38.36", "botocore==1.38.36"),
}
# Powertools for AWS Lambda (Python) v3 public layer version -> the release it packages.
# Layer versions are published per release by the project's "layer docs update" pull requests
# (github.com/aws-powertools/powertools-lambda-python): #7354 (2025-09-09) moved the docs from
# layer 22 to 23, #7565 (2025-10-21, after v3.22.0) and #7636 (2025-11-05, after v3.22.1) to
# the next ones, and #7757 sets the documented ARN to version 27, the layer of v3.23.0
# (2025-11-13). The layer bundles the `all` extras (tracer -> aws-xray-sdk, parser ->
# pydantic, validation -> fastjsonschema, ...) and no boto3 (the runtime provides it).
POWERTOOLS_LAYER_RELEASES: dict[int, str] = {27: "3.23.0"}
POWERTOOLS_LAYER_EXTRAS = "all"

_LAYER_ARN = re.compile(r":layer:AWSLambdaPowertoolsPythonV3-[a-z0-9]+-(?:arm64|x86_64):(\d+)$")


@dataclass(frozen=True)
class LambdaFunction:
    """One Python function of a synthesized template, as Lambda would run it."""

    stage: str  # nested assembly directory (e.g. "assembly-Staging"), "" for the root assembly
    stack: str  # stack name
    logical_id: str
    function_name: str  # the physical name; the logical id when CloudFormation names it
    handler: str  # "package.module.attribute"
    runtime: str  # "python3.12"
    asset_dir: Path  # the code asset directory in the assembly
    region: str
    account: str
    timeout: int = 3  # seconds (Lambda's default)
    memory_size: int = 128  # MB (Lambda's default)
    # Raw template values: strings or CloudFormation intrinsics ({"Ref": ...}, {"Fn::GetAtt": ...}).
    environment: Mapping[str, Any] = field(default_factory=dict)
    layers: tuple[Any, ...] = ()
    role: Any = None

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[-1]

    @property
    def powertools_layer_version(self) -> int | None:
        for layer in self.layers:
            match = _LAYER_ARN.search(layer) if isinstance(layer, str) else None
            if match:
                return int(match.group(1))
        return None

    def placeholder_environment(self) -> dict[str, str]:
        """The environment with intrinsics replaced by readable placeholders (enough to import)."""
        return {name: placeholder(value) for name, value in self.environment.items()}


def placeholder(value: Any) -> str:
    """A string standing in for a CloudFormation value that only deployment would resolve."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return json.dumps(value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, argument),) = value.items()
        if kind == "Ref":
            return f"<Ref {argument}>"
        if kind == "Fn::GetAtt":
            target = ".".join(argument) if isinstance(argument, list) else str(argument)
            return f"<GetAtt {target}>"
        if kind == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
            separator, parts = argument
            return str(separator).join(placeholder(part) for part in parts)
        if kind == "Fn::Sub":
            return str(argument[0] if isinstance(argument, list) else argument)
        if kind == "Fn::ImportValue":
            return f"<ImportValue {placeholder(argument)}>"
    return f"<{json.dumps(value, sort_keys=True)}>"


def _stack_artifacts(assembly_dir: Path, stage: str) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """(stage, directory, artifact) for every CloudFormation stack, nested assemblies included."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text(encoding="utf-8"))
    for artifact in manifest.get("artifacts", {}).values():
        kind = artifact.get("type")
        properties = artifact.get("properties", {})
        if kind == "aws:cloudformation:stack":
            yield stage, assembly_dir, artifact
        elif kind == "cdk:cloud-assembly":
            nested = properties["directoryName"]
            yield from _stack_artifacts(assembly_dir / nested, nested)


def python_functions(assembly_dir: Path) -> list[LambdaFunction]:
    """Every Python Lambda function in the cloud assembly at `assembly_dir` (e.g. cdk.out)."""
    assembly_dir = Path(assembly_dir)
    found: list[LambdaFunction] = []
    for stage, directory, artifact in _stack_artifacts(assembly_dir, ""):
        properties = artifact.get("properties", {})
        template = json.loads((directory / properties["templateFile"]).read_text(encoding="utf-8"))
        account, region = _environment(artifact.get("environment", ""))
        stack = properties.get("stackName") or properties["templateFile"].removesuffix(".template.json")
        found.extend(
            template_functions(
                template,
                directory,
                stage=stage,
                stack=stack,
                region=region,
                account=account,
                assets=_file_assets(directory),
            )
        )
    return found


def template_file_functions(template_path: Path) -> list[LambdaFunction]:
    """The Python functions of one template file, their assets found next to it.

    For a template of a cloud assembly (its directory holds the `*.assets.json` manifests) or any
    template whose functions carry `aws:asset:path` metadata relative to its directory.
    """
    template_path = Path(template_path)
    template = json.loads(template_path.read_text(encoding="utf-8"))
    return template_functions(
        template,
        template_path.parent,
        stack=template_path.name.removesuffix(".template.json"),
        assets=_file_assets(template_path.parent),
    )


def file_assets(directory: Path) -> dict[str, Path]:
    """S3 object key -> asset directory for the templates of one assembly directory."""
    return _file_assets(Path(directory))


def _file_assets(directory: Path) -> dict[str, Path]:
    """S3 object key -> asset directory, from the asset manifests (`*.assets.json`) of one assembly.

    The `aws:asset:path` metadata is written only when the CDK CLI asks for it; these manifests
    are always there.
    """
    assets: dict[str, Path] = {}
    for manifest_file in directory.glob("*.assets.json"):
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        for entry in manifest.get("files", {}).values():
            source = entry.get("source", {})
            if "path" not in source:
                continue
            for destination in entry.get("destinations", {}).values():
                assets[destination["objectKey"]] = (directory / source["path"]).resolve()
    return assets


def _environment(uri: str) -> tuple[str, str]:
    # "aws://111111111111/eu-west-1"
    parts = uri.removeprefix("aws://").split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else ("", "")


def template_functions(
    template: Mapping[str, Any],
    template_dir: Path,
    *,
    stage: str = "",
    stack: str = "",
    region: str = "",
    account: str = "",
    assets: Mapping[str, Path] | None = None,
) -> list[LambdaFunction]:
    """The Python functions of one template.

    The code directory comes from the `aws:asset:path` metadata (relative to `template_dir`)
    or else from `assets` (S3 object key -> directory, see `_file_assets`).
    """
    functions = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        properties = resource.get("Properties", {})
        runtime = properties.get("Runtime")
        if not (isinstance(runtime, str) and runtime.startswith("python")):
            continue
        asset_path = resource.get("Metadata", {}).get("aws:asset:path")
        object_key = properties.get("Code", {}).get("S3Key")
        if asset_path:
            asset_dir = (Path(template_dir) / asset_path).resolve()
        elif isinstance(object_key, str) and assets and object_key in assets:
            asset_dir = assets[object_key]
        else:
            raise ValueError(
                f"{stack}/{logical_id}: code asset not found (inline code or an unknown S3 key?)"
            )
        name = properties.get("FunctionName")
        functions.append(
            LambdaFunction(
                stage=stage,
                stack=stack,
                logical_id=logical_id,
                function_name=name if isinstance(name, str) else logical_id,
                handler=properties["Handler"],
                runtime=runtime,
                asset_dir=asset_dir,
                region=region,
                account=account,
                timeout=int(properties.get("Timeout", 3)),
                memory_size=int(properties.get("MemorySize", 128)),
                environment=dict(properties.get("Environment", {}).get("Variables", {})),
                layers=tuple(properties.get("Layers", [])),
                role=properties.get("Role"),
            )
        )
    return functions


# --- Runtime and layer directories -----------------------------------------------------------


def _configured_lambda_settings() -> tuple[str, int]:
    from infra.config import load_config  # pydantic only; kept lazy for callers that pass both

    lambdas = load_config("staging").lambdas
    return lambdas.python_runtime, lambdas.powertools_layer_version


def runtime_requirements(runtime: str) -> tuple[str, ...]:
    try:
        return LAMBDA_RUNTIME_SDK[runtime]
    except KeyError:
        raise bundling.BundlingError(
            f"no SDK pins for the Lambda runtime {runtime} (infra/lambda_assets.py)"
        ) from None


def layer_requirements(powertools_layer_version: int) -> tuple[str, ...]:
    try:
        release = POWERTOOLS_LAYER_RELEASES[powertools_layer_version]
    except KeyError:
        raise bundling.BundlingError(
            f"Powertools layer version {powertools_layer_version}: release unknown; "
            "add it to POWERTOOLS_LAYER_RELEASES in infra/lambda_assets.py"
        ) from None
    return (f"aws-lambda-powertools[{POWERTOOLS_LAYER_EXTRAS}]=={release}",)


def lambda_runtime_dirs(
    runtime: str | None = None, powertools_layer_version: int | None = None
) -> tuple[Path, Path]:
    """(runtime dir, layer dir) for this machine, built once and cached under `.build/lambda/`.

    Defaults come from the configuration (`lambdas.python_runtime`, `lambdas.powertools_layer_version`).
    The layer is resolved with the runtime's SDK pins as constraints, then loses every top-level
    name the runtime dir provides, so it never shadows the runtime's boto3 (as on AWS).
    """
    if runtime is None or powertools_layer_version is None:
        configured_runtime, configured_layer = _configured_lambda_settings()
        runtime = runtime or configured_runtime
        powertools_layer_version = powertools_layer_version or configured_layer
    python_version, platform_tag = bundling.host_python_version(), bundling.host_platform()
    sdk = runtime_requirements(runtime)
    runtime_dir = bundling.install_dependencies(sdk, python_version, platform_tag, prefix="runtime")
    layer_dir = bundling.install_dependencies(
        layer_requirements(powertools_layer_version),
        python_version,
        platform_tag,
        prefix="layer",
        constraints=sdk,
    )
    if not (layer_dir / UNSHADOWED).exists():
        with bundling.build_lock(layer_dir.name):  # once, while no other process reads a half-pruned layer
            if not (layer_dir / UNSHADOWED).exists():
                _drop_shadowing(layer_dir, runtime_dir)
                (layer_dir / UNSHADOWED).touch()
    return runtime_dir, layer_dir


UNSHADOWED = ".unshadowed"  # the layer dir no longer carries what the runtime dir provides


def _drop_shadowing(layer_dir: Path, runtime_dir: Path) -> None:
    provided = {entry.name for entry in runtime_dir.iterdir() if not entry.name.startswith(".")}
    provided_dists = {_dist_name(entry.name) for entry in runtime_dir.glob("*.dist-info")}
    for entry in list(layer_dir.iterdir()):
        duplicate = entry.name in provided or (
            entry.name.endswith(".dist-info") and _dist_name(entry.name) in provided_dists
        )
        if duplicate and entry.name not in (".complete", UNSHADOWED):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _dist_name(dist_info: str) -> str:
    return dist_info.split("-", 1)[0].lower().replace("_", "-")


def stdlib_paths() -> list[str]:
    """This interpreter's standard library entries of sys.path (no site-packages)."""
    paths = sysconfig.get_paths()
    zipped = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}{sys.version_info.minor}.zip"
    dynload = Path(paths["platstdlib"]) / "lib-dynload"
    return [str(zipped), paths["stdlib"], str(dynload)]


def isolated_sys_path(asset_dir: Path, runtime_dirs: tuple[Path, Path] | None = None) -> list[str]:
    """sys.path of a function run from `asset_dir`: asset, layer, runtime; the stdlib follows."""
    runtime_dir, layer_dir = runtime_dirs or lambda_runtime_dirs()
    return [str(asset_dir), str(layer_dir), str(runtime_dir)]


ISOLATED_FLAGS = ("-I", "-S")  # no environment, no user site, no site-packages (.pth hooks)
