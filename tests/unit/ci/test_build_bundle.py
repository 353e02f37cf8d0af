"""The service bundle: deterministic bytes, content-named version, verified upload (moto S3)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from scripts import build_bundle
from scripts.build_bundle import BundleError, Manifest

BUCKET = "staging-realtime-artifacts-111111111111"


def _tree(root: Path) -> Path:
    (root / "service" / "handlers").mkdir(parents=True)
    (root / "service" / "__init__.py").write_text("")
    (root / "service" / "handlers" / "connect.py").write_text("def handler(event, context):\n    return {}\n")
    (root / "redis").mkdir()
    (root / "redis" / "__init__.py").write_text("VERSION = '6'\n")
    # Build leftovers that must never reach the bundle.
    (root / "service" / "__pycache__").mkdir()
    (root / "service" / "__pycache__" / "connect.cpython-312.pyc").write_bytes(b"\x00")
    (root / ".complete").write_text("")
    return root


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return _tree(tmp_path / "src")


def test_same_tree_gives_same_bytes_whatever_mtime_and_creation_order(tmp_path: Path, source: Path) -> None:
    first = build_bundle.build(source, tmp_path / "a", "0.1.0")

    other = tmp_path / "src2"
    other.mkdir()
    # Same content written in a different order, with other timestamps and umask.
    (other / "redis").mkdir()
    (other / "redis" / "__init__.py").write_text("VERSION = '6'\n")
    (other / "service" / "handlers").mkdir(parents=True)
    (other / "service" / "handlers" / "connect.py").write_text(
        "def handler(event, context):\n    return {}\n"
    )
    (other / "service" / "__init__.py").write_text("")
    os.chmod(other / "service" / "__init__.py", 0o600)
    os.utime(other / "redis" / "__init__.py", (1_000_000_000, 1_000_000_000))
    second = build_bundle.build(other, tmp_path / "b", "0.1.0")

    assert first.sha256 == second.sha256
    assert (tmp_path / "a" / first.zip_file).read_bytes() == (tmp_path / "b" / second.zip_file).read_bytes()


def test_manifest_names_the_content(tmp_path: Path, source: Path) -> None:
    manifest = build_bundle.build(source, tmp_path / "dist", "1.4.0", commit="abc123")
    data = (tmp_path / "dist" / manifest.zip_file).read_bytes()
    sha = hashlib.sha256(data).hexdigest()

    assert manifest.sha256 == sha
    assert manifest.version == f"1.4.0+{sha[:12]}"
    assert manifest.code_sha256 == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert manifest.key == f"service/{sha}/service.zip"
    assert manifest.size == len(data)
    assert manifest.commit == "abc123"
    on_disk = json.loads((tmp_path / "dist" / "bundle.json").read_text())
    assert Manifest(**on_disk) == manifest


def test_zip_holds_sorted_code_only_with_fixed_metadata(tmp_path: Path, source: Path) -> None:
    manifest = build_bundle.build(source, tmp_path / "dist", "0.1.0")
    with zipfile.ZipFile(tmp_path / "dist" / manifest.zip_file) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]

    assert names == ["redis/__init__.py", "service/__init__.py", "service/handlers/connect.py"]
    assert manifest.files == 3
    assert {info.date_time for info in infos} == {build_bundle.FIXED_TIMESTAMP}
    assert {(info.external_attr >> 16) & 0o777 for info in infos} == {0o644}


def test_changed_code_changes_the_version(tmp_path: Path, source: Path) -> None:
    before = build_bundle.build(source, tmp_path / "a", "0.1.0")
    (source / "service" / "handlers" / "connect.py").write_text(
        "def handler(event, context):\n    return 1\n"
    )
    after = build_bundle.build(source, tmp_path / "b", "0.1.0")
    assert before.version != after.version


def test_verify_detects_a_tampered_zip(tmp_path: Path, source: Path) -> None:
    manifest = build_bundle.build(source, tmp_path / "dist", "0.1.0")
    manifest_path = tmp_path / "dist" / "bundle.json"
    assert build_bundle.verify(manifest_path) == manifest

    with (tmp_path / "dist" / manifest.zip_file).open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(BundleError, match="does not match the manifest"):
        build_bundle.verify(manifest_path)


def test_empty_or_missing_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="holds no files"):
        build_bundle.build(tmp_path / "empty", tmp_path / "dist", "0.1.0")
    with pytest.raises(BundleError, match="not a directory"):
        build_bundle.build(tmp_path / "missing", tmp_path / "dist", "0.1.0")


@mock_aws
def test_upload_puts_the_zip_once_with_checksum_and_metadata(tmp_path: Path, source: Path) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    manifest = build_bundle.build(source, tmp_path / "dist", "0.1.0", commit="deadbeef")
    manifest_path = tmp_path / "dist" / "bundle.json"
    # moto neither stores nor checks ChecksumSHA256: assert on the request S3 would verify.
    sent: list[dict] = []
    s3.meta.events.register("before-call.s3.PutObject", lambda params, **_: sent.append(params))

    uri, uploaded = build_bundle.upload(manifest_path, BUCKET, s3_client=s3)
    assert uploaded is True
    assert uri == f"s3://{BUCKET}/{manifest.key}"
    assert sent[0]["headers"]["x-amz-checksum-sha256"] == manifest.code_sha256
    head = s3.head_object(Bucket=BUCKET, Key=manifest.key)
    assert head["Metadata"] == {"sha256": manifest.sha256, "version": manifest.version, "commit": "deadbeef"}
    body = s3.get_object(Bucket=BUCKET, Key=manifest.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest.sha256

    # Promotion re-runs the upload: the object is left as it is.
    again_uri, again = build_bundle.upload(manifest_path, BUCKET, s3_client=s3)
    assert (again_uri, again) == (uri, False)


@mock_aws
def test_upload_with_kms_key_encrypts_with_it(tmp_path: Path, source: Path) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    key_id = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["KeyId"]
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    manifest = build_bundle.build(source, tmp_path / "dist", "0.1.0")

    build_bundle.upload(tmp_path / "dist" / "bundle.json", BUCKET, s3_client=s3, kms_key_id=key_id)
    head = s3.head_object(Bucket=BUCKET, Key=manifest.key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)


@mock_aws
def test_upload_refuses_to_overwrite_different_content(tmp_path: Path, source: Path) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    manifest = build_bundle.build(source, tmp_path / "dist", "0.1.0")
    s3.put_object(Bucket=BUCKET, Key=manifest.key, Body=b"other", Metadata={"sha256": "0" * 64})

    with pytest.raises(BundleError, match="refusing to overwrite"):
        build_bundle.upload(tmp_path / "dist" / "bundle.json", BUCKET, s3_client=s3)


@mock_aws
def test_upload_names_a_missing_bucket(tmp_path: Path, source: Path) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    build_bundle.build(source, tmp_path / "dist", "0.1.0")
    with pytest.raises(BundleError, match="NoSuchBucket|HeadObject failed|PutObject failed"):
        build_bundle.upload(tmp_path / "dist" / "bundle.json", "no-such-bucket", s3_client=s3)


@mock_aws
def test_cli_build_verify_upload_write_github_outputs(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_SHA", "0123abcd")
    out = tmp_path / "dist"

    assert build_bundle.main(["build", "--source", str(source), "--out", str(out)]) == 0
    assert build_bundle.main(["verify", "--manifest", str(out / "bundle.json")]) == 0
    assert build_bundle.main(["upload", "--manifest", str(out / "bundle.json"), "--bucket", BUCKET]) == 0

    manifest = Manifest.load(out / "bundle.json")
    assert manifest.commit == "0123abcd"
    lines = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert lines["version"] == manifest.version
    assert lines["artifact"] == f"s3://{BUCKET}/{manifest.key}"
    assert "uploaded: s3://" in capsys.readouterr().out


def test_cli_errors_are_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_bundle.main(["verify", "--manifest", str(tmp_path / "nope.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("build_bundle: ") and "manifest not found" in err and "\n" not in err
