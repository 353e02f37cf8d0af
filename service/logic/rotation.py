"""Secrets Manager rotation of the client API key (secret JSON `{"api_key": ...}`).

Follows Secrets Manager's four-step contract, each step idempotent:
- createSecret: stage a new random key as AWSPENDING under the rotation's token;
- setSecret: nothing to do. There is no downstream system holding the key: the authorizer
  reads the secret itself and accepts AWSCURRENT and AWSPREVIOUS, so a key is "set" the moment
  it is staged;
- testSecret: the pending value is well-formed and differs from the current key;
- finishSecret: move AWSCURRENT to the token's version (Secrets Manager moves AWSPREVIOUS to
  the old current version, which keeps old clients working until the next rotation) and
  drop AWSPENDING.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from botocore.exceptions import ClientError

from service.observability import logger

Step = Literal["createSecret", "setSecret", "testSecret", "finishSecret"]
STEPS: tuple[Step, ...] = ("createSecret", "setSecret", "testSecret", "finishSecret")
KEY_FIELD = "api_key"
MIN_KEY_LENGTH = 32


class RotationError(RuntimeError):
    """The rotation cannot proceed; Secrets Manager records the failure and retries."""


def new_api_key() -> str:
    return secrets.token_urlsafe(32)  # 256 bits of entropy, 43 URL-safe characters


def _parse(secret_string: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(secret_string)
    except ValueError:
        raise RotationError(f"{where} is not JSON") from None
    if not isinstance(value, dict):
        raise RotationError(f"{where} is not a JSON object")
    return value


def rotate(sm: Any, step: str, secret_id: str, token: str) -> None:
    if step not in STEPS:
        raise RotationError(f"unknown rotation step {step!r}; expected one of {', '.join(STEPS)}")
    described = sm.describe_secret(SecretId=secret_id)
    if not described.get("RotationEnabled"):
        raise RotationError(f"secret {secret_id} does not have rotation enabled")
    stages = described.get("VersionIdsToStages", {}).get(token)
    if stages is not None and "AWSCURRENT" in stages:
        logger.info("rotation version is already current", extra={"step": step})
        return
    if step != "createSecret" and (stages is None or "AWSPENDING" not in stages):
        raise RotationError(f"version {token} of {secret_id} is not staged AWSPENDING")
    {"createSecret": _create, "setSecret": _set, "testSecret": _test, "finishSecret": _finish}[step](
        sm, secret_id, token
    )


def _create(sm: Any, secret_id: str, token: str) -> None:
    current = _parse(
        sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"], "AWSCURRENT"
    )
    try:
        sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
        logger.info("pending key already staged", extra={"step": "createSecret"})
        return
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    pending = {**current, KEY_FIELD: new_api_key()}  # other fields of the secret are kept
    sm.put_secret_value(
        SecretId=secret_id,
        ClientRequestToken=token,
        SecretString=json.dumps(pending),
        VersionStages=["AWSPENDING"],
    )
    logger.info("staged a new key as AWSPENDING", extra={"step": "createSecret"})


def _set(sm: Any, secret_id: str, token: str) -> None:
    logger.info("no downstream system to set: the authorizer reads the secret", extra={"step": "setSecret"})


def _test(sm: Any, secret_id: str, token: str) -> None:
    pending = _parse(
        sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")["SecretString"],
        "AWSPENDING",
    )
    current = _parse(
        sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"], "AWSCURRENT"
    )
    key = pending.get(KEY_FIELD)
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        raise RotationError(
            f"AWSPENDING '{KEY_FIELD}' is missing or shorter than {MIN_KEY_LENGTH} characters"
        )
    if key == current.get(KEY_FIELD):
        raise RotationError("AWSPENDING key equals the current key")


def _finish(sm: Any, secret_id: str, token: str) -> None:
    versions = sm.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    current = next((vid for vid, stages in versions.items() if "AWSCURRENT" in stages), None)
    sm.update_secret_version_stage(
        SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
    )
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    logger.info("new key is AWSCURRENT, the old one AWSPREVIOUS", extra={"step": "finishSecret"})
