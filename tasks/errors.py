"""Errors that the state machines route on by name (Catch `ErrorEquals`).

A Lambda task that raises one of these surfaces in Step Functions with the class name as the
error, so Catch clauses and the runbooks speak the same words.
"""


class ReleaseError(Exception):
    """Base class of every named release error."""


class InvalidRelease(ReleaseError):
    """The release request failed validation; nothing was changed."""


class InvalidState(ReleaseError):
    """A task's input (a section of the execution state) is missing or malformed: a wiring mistake
    in the definition, or a state edited by hand for a redrive. The message names the field."""


class ReleaseInProgress(ReleaseError):
    """Another release or DR drill holds the environment's lock."""


class DeploymentFailed(ReleaseError):
    """Green could not be deployed (code update, publish or checksum mismatch)."""


class GreenUnhealthy(ReleaseError):
    """Green failed its synthetic checks or its alarms fired while it took traffic."""


class AlarmTriggered(ReleaseError):
    """A release-guard alarm is in ALARM during a bake."""


class CanaryFailed(ReleaseError):
    """JudgeCanary found green worse than blue under the same traffic (error rate or p99)."""


class ApprovalRejected(ReleaseError):
    """An operator rejected the release at the approval gate (sent with SendTaskFailure)."""


class InsufficientGreenTraffic(ReleaseError):
    """Green served fewer invocations during a bake than the release requires to judge it."""


class LockLost(ReleaseError):
    """The release no longer holds the environment's lock (an alarm rollback or an operator took over)."""


class TransientAwsError(ReleaseError):
    """An AWS API throttled or failed transiently beyond the SDK's own retries; the state machine retries."""


class CacheUnavailable(ReleaseError):
    """The cache could not be reached; the step can be retried from its last cursor."""


class AwsRequestFailed(ReleaseError):
    """An AWS API call of a release task failed permanently (the message names the call and the code)."""


# -- DR drill (state_machines/dr_drill.py routes on these) --------------------------------------


class InvalidDrill(ReleaseError):
    """The drill request is invalid (the message names the field); nothing was changed."""


class NoSnapshot(ReleaseError):
    """No usable snapshot (with its manifest) exists to restore from."""


class RestoreFailed(ReleaseError):
    """The temporary replication group could not be created from the snapshot."""


class RestoreTimedOut(ReleaseError):
    """The temporary replication group did not become available within the polling bound."""


class VerificationFailed(ReleaseError):
    """The restored data does not match the snapshot's manifest."""


class TemporaryGroupBusy(ReleaseError):
    """The temporary group is still being created or modified; deletion is retried."""


# -- event-path drill (state_machines/event_path_drill.py routes on these) ------------------------


class EventPathNotReady(ReleaseError):
    """The event path is not in a state to drill (mapping paused, DLQ or queue not empty); nothing was changed."""


class MappingBusy(ReleaseError):
    """The event source mapping is between states (Enabling/Disabling/Updating); the change is retried."""


class MappingStuck(ReleaseError):
    """The event source mapping did not reach the expected state within the polling bound."""


class EventsNotDeadLettered(ReleaseError):
    """The drill's marked events did not all reach the dead-letter queue within the bound."""


class RedriveFailed(ReleaseError):
    """The dead-letter queue redrive (message move task) failed or was cancelled."""


class DeliveryTimedOut(ReleaseError):
    """The redriven events were not all delivered by the fan-out within the polling bound."""
