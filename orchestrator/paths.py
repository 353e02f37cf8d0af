"""Where the repository's own files are (config/, cdk.out/, .sandbox/), for the CLI and its commands."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
