"""Helpers shared by the sandbox and the test suite."""
