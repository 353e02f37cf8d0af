"""Putting a local service bundle where a release can deploy it from.

The object is written as `scripts/build_bundle.py upload` writes it (content-addressed key,
`sha256` metadata, S3's SHA-256 checksum), so either tool recognises what the other uploaded.
"""

from __future__ import annotations

import base64

from orchestrator.aws import Aws, AwsError


def upload_bundle(aws: Aws, bucket: str, key: str, body: bytes, sha256: str) -> bool:
    """Upload `body` to s3://bucket/key unless the same bundle is already there; True if uploaded."""
    try:
        head = aws.call("s3", "head_object", Bucket=bucket, Key=key)
    except AwsError:
        head = None  # absent (or unreadable: the put below then names the real problem)
    if head is not None:
        recorded = head.get("Metadata", {}).get("sha256")
        if recorded != sha256:
            raise AwsError(
                f"s3://{bucket}/{key}: holds sha256 {recorded}, expected {sha256}; "
                "refusing to overwrite a content-addressed object"
            )
        return False
    aws.call(
        "s3",
        "put_object",
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="application/zip",
        ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
        Metadata={"sha256": sha256},
    )
    return True
