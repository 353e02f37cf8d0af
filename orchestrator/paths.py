"""Where the repository's own files are (config/, cdk.out/, .sandbox/), for the CLI and its commands."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def sandbox_dir() -> Path:
    """The background sandbox's directory (state file, logs): ORCHESTRATOR_SANDBOX_DIR or .sandbox/."""
    return Path(os.environ.get("ORCHESTRATOR_SANDBOX_DIR", REPO_ROOT / ".sandbox"))
