"""Wording shared by the tasks' messages, the CLI and the reports."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`1 connection`, `0 connections`, `3 connections`."""
    return f"{count} {singular if count == 1 else plural or singular + 's'}"
