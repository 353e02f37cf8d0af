"""The `orchestrator` command line: `main` is the console script's entry point."""

from orchestrator.cli.context import EXIT_AWS, EXIT_OK, EXIT_RELEASE_FAILED, EXIT_USAGE, CliError
from orchestrator.cli.root import app, main

__all__ = ["EXIT_AWS", "EXIT_OK", "EXIT_RELEASE_FAILED", "EXIT_USAGE", "CliError", "app", "main"]
