"""DeployGreen: publish the artifact as a new version of every service function and point `green` at it.

For each function: update the code from the artifact (S3) and the release's configuration,
wait until Lambda finished the update, publish a version (Lambda checks the CodeSha256 we pass,
and we check it again), and point the `green` alias (the preview stage) at it. `live` is not
touched here. Idempotent: a retry finds the version already published for this release (by its
description) and reuses it instead of publishing another.
"""

from __future__ import annotations

import base64
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from contracts.names import GREEN_ALIAS, LIVE_ALIAS
from contracts.state import ArtifactRef, Deploy, Release
from tasks import release_record
from tasks.common import Settings, client, event_model, logger, task_handler
from tasks.errors import DeploymentFailed

# Lambda's limit on the environment variables of one function.
MAX_ENVIRONMENT_BYTES = 4096
DEFAULT_CACHE_SCHEMA = "1"
_WAITER = {"Delay": 1, "MaxAttempts": 120}


def code_sha256_of(hex_digest: str) -> str:
    """Lambda reports CodeSha256 as base64 of the digest; the request carries it as hex."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


class DeployGreenInput(BaseModel):
    """DeployGreen's Parameters: `{"release.$": "$.release"}`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    release: Release


def version_description(release: Release) -> str:
    # Lambda allows 256 characters; the release id makes a retry find its own version.
    return f"release {release.release_id} version {release.version}"[:256]


def _find_published(lam: Any, function: str, description: str, sha: str) -> str | None:
    for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=function):
        for version in page["Versions"]:
            if version["Version"] != "$LATEST" and version.get("Description") == description:
                if version["CodeSha256"] != sha:
                    raise DeploymentFailed(
                        f"{function} version {version['Version']} of this release has CodeSha256 "
                        f"{version['CodeSha256']}, expected {sha}"
                    )
                return str(version["Version"])
    return None


def _merged_environment(current: dict[str, str], release: Release, function: str) -> dict[str, str]:
    variables = {**current, **release.configuration, "SERVICE_VERSION": release.version}
    size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise DeploymentFailed(f"{function}: environment variables would be {size} bytes, Lambda allows 4096")
    return variables


def _schema_of(lam: Any, function: str, qualifier: str) -> str:
    config = lam.get_function_configuration(FunctionName=function, Qualifier=qualifier)
    return str(
        config.get("Environment", {}).get("Variables", {}).get("CACHE_SCHEMA_VERSION", DEFAULT_CACHE_SCHEMA)
    )


def _blue_version(lam: Any, function: str) -> str:
    try:
        alias = lam.get_alias(FunctionName=function, Name=LIVE_ALIAS)
    except lam.exceptions.ResourceNotFoundException:
        raise DeploymentFailed(f"{function} has no '{LIVE_ALIAS}' alias; deploy the stack first") from None
    return str(alias["FunctionVersion"])


def deploy_function(lam: Any, function: str, release: Release) -> str:
    """Publish this release's version of one function (or find it) and return its number."""
    artifact = release.artifact
    sha = code_sha256_of(artifact.sha256)
    description = version_description(release)
    existing = _find_published(lam, function, description, sha)
    if existing:
        logger.info(
            "version already published by an earlier attempt",
            extra={"function": function, "version": existing},
        )
        return existing
    waiter = lam.get_waiter("function_updated_v2")
    try:
        lam.update_function_code(FunctionName=function, S3Bucket=artifact.bucket, S3Key=artifact.key)
    except lam.exceptions.InvalidParameterValueException as exc:
        raise DeploymentFailed(f"{function}: artifact s3://{artifact.bucket}/{artifact.key}: {exc}") from None
    waiter.wait(FunctionName=function, WaiterConfig=_WAITER)
    # Blue's environment, not $LATEST's: $LATEST still holds the last deploy's variables, which may be
    # a rolled-back release's (a fault setting, say) that must not reach the next green.
    current = (
        lam.get_function_configuration(FunctionName=function, Qualifier=_blue_version(lam, function))
        .get("Environment", {})
        .get("Variables", {})
    )
    lam.update_function_configuration(
        FunctionName=function,
        Environment={"Variables": _merged_environment(current, release, function)},
        Description=description,
    )
    waiter.wait(FunctionName=function, WaiterConfig=_WAITER)
    published = lam.publish_version(FunctionName=function, CodeSha256=sha, Description=description)
    if published["CodeSha256"] != sha:
        raise DeploymentFailed(
            f"{function}: published CodeSha256 {published['CodeSha256']} does not match the artifact's {sha}"
        )
    return str(published["Version"])


def point_alias(lam: Any, function: str, alias: str, version: str) -> None:
    """`alias` -> `version` at 100% (creating the alias if the stack has not)."""
    try:
        lam.update_alias(
            FunctionName=function,
            Name=alias,
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
    except lam.exceptions.ResourceNotFoundException:
        lam.create_alias(FunctionName=function, Name=alias, FunctionVersion=version)


def check_artifact(artifact: ArtifactRef) -> None:
    """Fail with a clear message before touching any function if the bundle is not there."""
    s3 = client("s3")
    try:
        s3.head_object(Bucket=artifact.bucket, Key=artifact.key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket", "403", "AccessDenied"):
            raise DeploymentFailed(
                f"artifact s3://{artifact.bucket}/{artifact.key} cannot be read ({code})"
            ) from None
        raise


def deploy_green(settings: Settings, release: Release) -> Deploy:
    """`$.deploy`: blue's and green's versions and cache schemas."""
    check_artifact(release.artifact)
    lam = client("lambda")
    blue = {fn: _blue_version(lam, fn) for fn in settings.functions}
    green = {fn: deploy_function(lam, fn, release) for fn in settings.functions}
    for fn, version in green.items():
        if version == blue[fn]:
            raise DeploymentFailed(f"{fn}: the new version {version} is the one live already serves")
    for fn, version in green.items():
        point_alias(lam, fn, GREEN_ALIAS, version)
    first = settings.functions[0]
    blue_schema = _schema_of(lam, first, blue[first])
    green_schema = release.configuration.get("CACHE_SCHEMA_VERSION", blue_schema)
    result = Deploy(blue=blue, green=green, blue_schema=blue_schema, green_schema=green_schema)
    summary = "green deployed: " + ", ".join(f"{fn} v{blue[fn]} -> v{v}" for fn, v in green.items())
    release_record.transition(
        settings,
        release,
        "GreenDeployed",
        summary,
        detail=result.model_dump(),
        updates={"blue_versions": blue, "green_versions": green},
    )
    return result


@task_handler
@event_model(DeployGreenInput)
def handler(event: DeployGreenInput, context: Any) -> dict[str, Any]:
    return deploy_green(Settings.from_env(), event.release).model_dump()
