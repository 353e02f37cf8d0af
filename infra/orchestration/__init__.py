"""Release orchestration: the lock/release table, the release tasks, the release state machine
and the alarm-triggered rollback (see `construct.py`)."""

from infra.orchestration.construct import ReleaseOrchestration, ReleaseOrchestrationProps

__all__ = ["ReleaseOrchestration", "ReleaseOrchestrationProps"]
