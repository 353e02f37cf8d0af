"""The orchestrator's Lambda tasks, one module per state machine step (handler -> logic -> clients)."""
