"""The sandbox's release artifact bucket.

On AWS the bucket exists before the stage (config `deploy.artifact_bucket_name`; the stack only
grants DeployGreen read access to it), so the sandbox creates it at start-up, as an operator does
once per account: after `sandbox up`, `release start --sandbox --artifact dist/service-<hash>.zip`
uploads a local bundle there, and `scripts/build_bundle.py upload` works against it too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.paths import REPO_ROOT


def artifact_bucket_name(environment: str, config_dir: Path = REPO_ROOT / "config") -> str:
    """The bucket DeployGreen's role may read: config/<env>.json `deploy.artifact_bucket_name`."""
    config = json.loads((config_dir / f"{environment}.json").read_text(encoding="utf-8"))
    return str(config["deploy"]["artifact_bucket_name"])


def create_artifact_bucket(s3: Any, name: str, region: str) -> str:
    """Create the bucket (versioned, as a bucket of release bundles should be); returns its name."""
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name
