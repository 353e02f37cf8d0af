"""Building a release request from command-line options and an optional request file.

A request file alone is a complete request; each option given overrides its field. The result
is validated by the one model the state machine's ValidateRequest uses
(`contracts.release.parse_release_request`, strict: `"dry_run": "yes"` is refused, not coerced),
and nothing here calls AWS except `artifact_sha256`, which runs only once everything else is valid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from contracts.release import InvalidRequest, loads_request, parse_release_request
from orchestrator.aws import Aws, AwsError, function_keys
from orchestrator.paths import REPO_ROOT

# The bake of each step given by --steps without --bake (config steps keep their own bakes).
DEFAULT_BAKE_SECONDS = 300
DEFAULT_PERCENTS = (10, 50, 100)
# Where scripts/build_bundle.py puts a bundle: a content-addressed key, one object per digest.
BUNDLE_KEY = "service/{sha256}/service.zip"


class RequestError(ValueError):
    """The options or the request file do not make a valid request; one line naming the problem."""


def parse_steps(text: str, bake: int | None, default_bake: int) -> list[dict[str, int]]:
    if not text.replace(",", "").strip():
        raise RequestError("--steps: empty; give traffic percents, e.g. --steps 10,50,100")
    steps: list[dict[str, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d{1,3}", part):
            raise RequestError(f"--steps: {part!r} is not a whole percent (example: --steps 10,50,100)")
        steps.append({"percent": int(part), "bake_seconds": default_bake if bake is None else bake})
    return steps


def parse_artifact(uri: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
    if not match:
        raise RequestError(f"--artifact: {uri!r} is not an S3 URI (s3://bucket/key.zip)")
    return match.group(1), match.group(2)


def parse_config(pairs: Sequence[str]) -> dict[str, str]:
    config: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise RequestError(f"--config: {pair!r} is not NAME=VALUE")
        config[name] = value
    return config


def environment_strategy(env: str) -> list[dict[str, int]] | None:
    """The environment's default traffic steps (config/<env>.json), if the file is there."""
    path = REPO_ROOT / "config" / f"{env}.json"
    try:
        steps = json.loads(path.read_text())["release"]["steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [{"percent": int(s["percent"]), "bake_seconds": int(s["bake_seconds"])} for s in steps]


def read_request_file(path: Path) -> dict[str, Any]:
    """A request file's JSON object; a key given twice is refused (json would keep the last)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(f"--request-file: cannot read {path}: {str(exc).splitlines()[0]}") from None
    try:
        raw = loads_request(text)
    except InvalidRequest as exc:
        raise RequestError(f"--request-file: {'; '.join(exc.problems)} ({path})") from None
    if not isinstance(raw, dict):
        raise RequestError(f"--request-file: must hold a JSON object, got {type(raw).__name__} ({path})")
    return raw


def local_bundle(path: Path) -> tuple[bytes, str]:
    """A local bundle's bytes and hex SHA-256; refused unless it is a readable .zip file."""
    if path.suffix != ".zip":
        raise RequestError(f"--artifact: {str(path)!r} is neither an S3 URI nor a local .zip bundle")
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise RequestError(f"--artifact: cannot read {path}: {exc.strerror or exc}") from None
    if not body.startswith(b"PK"):
        raise RequestError(f"--artifact: {path} is not a zip archive")
    return body, hashlib.sha256(body).hexdigest()


def bundle_manifest_version(path: Path) -> str | None:
    """The version scripts/build_bundle.py recorded for this zip in the manifest beside it, if any."""
    try:
        manifest = json.loads((path.parent / "bundle.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(manifest, dict) and manifest.get("zip_file") == path.name:
        version = manifest.get("version")
        return version if isinstance(version, str) else None
    return None


def bundle_key(sha256: str) -> str:
    return BUNDLE_KEY.format(sha256=sha256)


def artifact_sha256(aws: Aws, bucket: str, key: str) -> str:
    """The artifact's whole-object SHA-256 from S3 (uploaded with --checksum-algorithm SHA256)."""
    try:
        head = aws.call("s3", "head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except AwsError as exc:
        raise RequestError(f"--sha256 not given and the artifact could not be read: {exc}") from exc
    value = head.get("ChecksumSHA256")
    if not value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        raise RequestError(
            "artifact.sha256: pass --sha256 (the object has no full-object SHA-256 checksum in S3)"
        )
    return base64.b64decode(value.split("-")[0]).hex()


def validated(request: dict[str, Any]) -> dict[str, Any]:
    """The request checked by the model ValidateRequest uses, with its release id filled in.

    Only the fields the request gives are sent: a field it leaves out (approval, checks, the
    minimum of green invocations, the strategy when no config is at hand) takes the environment's
    default in ValidateRequest (RELEASE_DEFAULTS), so `release start --env production` without
    `--approval` still waits at production's approval gate.
    """
    try:
        model = parse_release_request(request, function_keys=function_keys())
    except InvalidRequest as exc:
        raise RequestError(str(exc)) from None
    given = model.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    return {**given, "release_id": model.with_defaults().release_id}


def _strategy(
    env: str, steps: str | None, bake: int | None, from_file: Any
) -> dict[str, list[dict[str, int]]] | Any:
    default_steps = environment_strategy(env)
    if steps is not None:
        return {"steps": parse_steps(steps, bake, DEFAULT_BAKE_SECONDS)}
    if bake is not None:
        percents = [s["percent"] for s in default_steps] if default_steps else list(DEFAULT_PERCENTS)
        return {"steps": [{"percent": p, "bake_seconds": bake} for p in percents]}
    if from_file is not None:
        return from_file
    return {"steps": default_steps} if default_steps else None


def build_request(
    *,
    env: str,
    version: str | None = None,
    artifact: str | None = None,
    sha256: str | None = None,
    steps: str | None = None,
    bake: int | None = None,
    dry_run: bool | None = None,
    approval: bool | None = None,
    requested_by: str | None = None,
    release_id: str | None = None,
    config: Sequence[str] = (),
    min_green_invocations: int | None = None,
    judge: bool | None = None,
    routing: str | None = None,
    request_file: Path | None = None,
    default_requester: str = "unknown",
    resolve_sha256: Callable[[str, str], str] | None = None,
) -> dict[str, Any]:
    """The release request as a validated dict: the request file (if any), then every option
    given on top of it. `resolve_sha256(bucket, key)` is asked for the artifact's digest when
    neither an option nor the file gives one, and only once everything else is valid.

    Raises RequestError naming the option or field at fault.
    """
    if bake is not None and bake < 0:
        raise RequestError("--bake: must be 0 or more seconds")
    base = read_request_file(request_file) if request_file is not None else {}
    request: dict[str, Any] = dict(base)
    if version is not None:
        request["version"] = version
    if artifact is not None:
        bucket, key = parse_artifact(artifact)
        request["artifact"] = {"bucket": bucket, "key": key, "sha256": sha256 or ""}
    elif sha256 is not None and isinstance(base.get("artifact"), dict):
        request["artifact"] = {**base["artifact"], "sha256": sha256}
    # Flags the command line leaves unset keep the file's value as written: the model, not a
    # bool() here, decides what a valid value is.
    if dry_run is not None:
        request["dry_run"] = dry_run
    if approval is not None:
        request["approval"] = "required" if approval else "none"
    request["requested_by"] = requested_by or base.get("requested_by") or default_requester
    if release_id is not None:
        request["release_id"] = release_id
    if config:
        configured = base.get("configuration", {})
        pairs = parse_config(config)
        request["configuration"] = {**configured, **pairs} if isinstance(configured, dict) else pairs
    if min_green_invocations is not None:
        request["min_green_invocations"] = min_green_invocations
    if judge is not None:
        judged = base.get("judge")
        request["judge"] = {**(judged if isinstance(judged, dict) else {}), "enabled": judge}
    if routing is not None:
        request["routing"] = routing
    strategy = _strategy(env, steps, bake, base.get("strategy"))
    if strategy is not None:
        request["strategy"] = strategy
    for name, option in (("version", "--version"), ("artifact", "--artifact")):
        if name not in request:
            where = "or in the request file" if request_file is not None else "or a --request-file holding it"
            raise RequestError(f"{name}: missing; give {option} {where}")
    target = request["artifact"]
    if isinstance(target, dict) and not target.get("sha256"):
        # Everything else must be valid before S3 is asked for the checksum.
        validated({**request, "artifact": {**target, "sha256": "0" * 64}})
        if resolve_sha256 is None:
            raise RequestError("artifact.sha256: pass --sha256")
        request["artifact"] = {**target, "sha256": resolve_sha256(str(target["bucket"]), str(target["key"]))}
    return validated(request)
