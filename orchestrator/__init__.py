"""The release orchestrator: CLI, release request model, AWS client, local engine and sandbox."""
