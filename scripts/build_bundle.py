"""Build the service bundle once, name it by its content, and upload it to an artifact bucket.

The pipeline builds one zip per commit and promotes those exact bytes through every
environment. The zip is deterministic (sorted entries, fixed timestamps and modes), so its
SHA-256 is the bundle's identity: the release version is `<project version>+<first 12 hex
digits>`, and Lambda's `CodeSha256` (base64 of the same digest) lets the release state machine
check that what it deployed is what was built.

    python scripts/build_bundle.py build  [--source DIR] [--out dist]
    python scripts/build_bundle.py verify --manifest dist/bundle.json
    python scripts/build_bundle.py upload --manifest dist/bundle.json --bucket NAME [--expected-owner ACCOUNT]

`build` and `upload` append their results to `$GITHUB_OUTPUT` when it is set.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import stat
import sys
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUNDLE_NAME = "service"
KEY_PREFIX = "service"
MANIFEST_NAME = "bundle.json"
# The earliest timestamp a zip entry can carry: every entry gets it, so rebuilding the same
# tree yields the same bytes whatever the checkout time was.
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_SKIPPED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache"})
_SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})
# Marker files written by infra/bundling.py's build cache; not part of the code.
_SKIPPED_NAMES = frozenset({".complete"})


class BundleError(RuntimeError):
    """The bundle could not be built, verified or uploaded; the message is one line."""


@dataclass(frozen=True)
class Manifest:
    """What was built: written next to the zip and carried with it between pipeline jobs."""

    name: str
    version: str
    sha256: str
    # Lambda reports CodeSha256 as the base64 of the zip's SHA-256 digest.
    code_sha256: str
    size: int
    files: int
    zip_file: str
    key: str
    commit: str | None

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(**raw)
        except FileNotFoundError:
            raise BundleError(f"{path}: manifest not found (run `build` first)") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise BundleError(f"{path}: not a bundle manifest ({exc})") from None

    def zip_path(self, manifest_path: Path) -> Path:
        return manifest_path.parent / self.zip_file

    def s3_uri(self, bucket: str) -> str:
        return f"s3://{bucket}/{self.key}"


def project_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    with pyproject.open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _files(source: Path) -> Iterator[Path]:
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if any(part in _SKIPPED_DIRS for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in _SKIPPED_SUFFIXES and path.name not in _SKIPPED_NAMES:
            yield path


def write_deterministic_zip(source: Path, destination: Path) -> int:
    """Zip every file under `source` in sorted order with fixed metadata; return the file count."""
    if not source.is_dir():
        raise BundleError(f"{source}: bundle source is not a directory")
    files = sorted(_files(source), key=lambda p: p.relative_to(source).as_posix())
    if not files:
        raise BundleError(f"{source}: bundle source holds no files")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(source).as_posix(), date_time=FIXED_TIMESTAMP)
            # Keep only the executable bit: umask and checkout differences must not change bytes.
            executable = path.stat().st_mode & stat.S_IXUSR
            mode = 0o755 if executable else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the build host
            archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return len(files)


def digest(path: Path) -> bytes:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.digest()


def build(source: Path, out_dir: Path, base_version: str, commit: str | None = None) -> Manifest:
    """Zip `source` into `out_dir`, name it by content, write the manifest beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / f".{BUNDLE_NAME}.zip.partial"
    files = write_deterministic_zip(source, scratch)
    raw = digest(scratch)
    sha = raw.hex()
    version = f"{base_version}+{sha[:12]}"
    zip_name = f"{BUNDLE_NAME}-{sha[:12]}.zip"
    os.replace(scratch, out_dir / zip_name)
    manifest = Manifest(
        name=BUNDLE_NAME,
        version=version,
        sha256=sha,
        code_sha256=base64.b64encode(raw).decode("ascii"),
        size=(out_dir / zip_name).stat().st_size,
        files=files,
        zip_file=zip_name,
        # Content-addressed key: a given object key can only ever hold these bytes.
        key=f"{KEY_PREFIX}/{sha}/{BUNDLE_NAME}.zip",
        commit=commit,
    )
    (out_dir / MANIFEST_NAME).write_text(json.dumps(asdict(manifest), indent=2) + "\n", encoding="utf-8")
    return manifest


def verify(manifest_path: Path) -> Manifest:
    """Check that the zip next to the manifest still has the recorded digest and size."""
    manifest = Manifest.load(manifest_path)
    zip_path = manifest.zip_path(manifest_path)
    if not zip_path.is_file():
        raise BundleError(f"{zip_path}: bundle zip named by the manifest is missing")
    actual = digest(zip_path).hex()
    if actual != manifest.sha256:
        raise BundleError(f"{zip_path}: sha256 {actual} does not match the manifest's {manifest.sha256}")
    return manifest


def upload(
    manifest_path: Path,
    bucket: str,
    *,
    s3_client: Any = None,
    expected_owner: str | None = None,
    kms_key_id: str | None = None,
) -> tuple[str, bool]:
    """Upload the verified zip under its content-addressed key; return (s3 uri, uploaded?).

    An object already under the key with the same recorded digest is left alone, so re-running
    a pipeline (or promoting to an environment sharing the bucket) does not rewrite it.
    """
    import boto3
    from botocore.exceptions import ClientError

    manifest = verify(manifest_path)
    client = s3_client or boto3.client("s3")
    owner = {"ExpectedBucketOwner": expected_owner} if expected_owner else {}
    try:
        head = client.head_object(Bucket=bucket, Key=manifest.key, **owner)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in {"404", "NoSuchKey", "NotFound"}:
            raise BundleError(f"s3://{bucket}/{manifest.key}: HeadObject failed: {code or exc}") from None
        head = None
    if head is not None:
        recorded = head.get("Metadata", {}).get("sha256")
        if recorded != manifest.sha256:
            raise BundleError(
                f"s3://{bucket}/{manifest.key}: holds sha256 {recorded}, expected {manifest.sha256}; "
                "refusing to overwrite a content-addressed object"
            )
        return manifest.s3_uri(bucket), False

    body = manifest.zip_path(manifest_path).read_bytes()
    encryption: dict[str, str] = {}
    if kms_key_id:
        encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    metadata = {"sha256": manifest.sha256, "version": manifest.version}
    if manifest.commit:
        metadata["commit"] = manifest.commit
    try:
        client.put_object(
            Bucket=bucket,
            Key=manifest.key,
            Body=body,
            ContentType="application/zip",
            # S3 recomputes the checksum and rejects the upload if the bytes changed in transit.
            ChecksumSHA256=base64.b64encode(bytes.fromhex(manifest.sha256)).decode("ascii"),
            Metadata=metadata,
            **encryption,
            **owner,
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise BundleError(f"s3://{bucket}/{manifest.key}: PutObject failed: {code or exc}") from None
    return manifest.s3_uri(bucket), True


def runtime_python_version() -> str:
    """The Lambda runtime's Python, which every environment must share: one bundle is promoted."""
    from contracts import names
    from infra.config import ConfigError, load_config

    try:
        runtimes = {env: load_config(env).lambdas.python_runtime for env in names.ENVIRONMENTS}
    except ConfigError as exc:
        raise BundleError(str(exc)) from None
    if len(set(runtimes.values())) != 1:
        raise BundleError(
            f"lambdas.python_runtime differs between environments ({runtimes}); one bundle serves all"
        )
    return next(iter(runtimes.values())).removeprefix("python")


def default_source() -> Path:
    """The service's Lambda code directory, built by the same code that the CDK asset uses."""
    from contracts import names
    from infra import bundling
    from infra.stacks.realtime_analytics_stack import SERVICE_REQUIREMENTS

    try:
        requirements = bundling.pinned(SERVICE_REQUIREMENTS)
        return bundling.build_bundle(names.SERVICE_PACKAGES, requirements, runtime_python_version())
    except bundling.BundlingError as exc:
        raise BundleError(str(exc)) from None


def write_github_output(values: dict[str, str]) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return
    with open(target, "a", encoding="utf-8") as handle:
        for name, value in values.items():
            handle.write(f"{name}={value}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build_bundle.py", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    build_cmd = commands.add_parser("build", help="build the deterministic bundle zip and its manifest")
    build_cmd.add_argument("--source", type=Path, help="directory to zip (default: the service bundle)")
    build_cmd.add_argument(
        "--out", type=Path, default=ROOT / "dist", help="output directory (default: dist/)"
    )

    verify_cmd = commands.add_parser("verify", help="check the zip against its manifest")
    verify_cmd.add_argument("--manifest", type=Path, required=True)

    upload_cmd = commands.add_parser("upload", help="upload the verified zip to the artifact bucket")
    upload_cmd.add_argument("--manifest", type=Path, required=True)
    upload_cmd.add_argument("--bucket", required=True)
    upload_cmd.add_argument("--expected-owner", help="account id that must own the bucket")
    upload_cmd.add_argument(
        "--kms-key-id", help="KMS key for SSE-KMS (default: the bucket's default encryption)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "build":
            source = args.source or default_source()
            manifest = build(source, args.out, project_version(), os.environ.get("GITHUB_SHA"))
            print(json.dumps(asdict(manifest)))
            write_github_output(
                {
                    "version": manifest.version,
                    "sha256": manifest.sha256,
                    "manifest": str(args.out / MANIFEST_NAME),
                }
            )
        elif args.command == "verify":
            manifest = verify(args.manifest)
            print(f"{manifest.zip_file}: sha256 {manifest.sha256} verified")
        else:
            uri, uploaded = upload(
                args.manifest, args.bucket, expected_owner=args.expected_owner, kms_key_id=args.kms_key_id
            )
            print(f"{'uploaded' if uploaded else 'already present'}: {uri}")
            manifest = Manifest.load(args.manifest)
            write_github_output({"artifact": uri, "version": manifest.version, "sha256": manifest.sha256})
    except BundleError as exc:
        print(f"build_bundle: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
