"""Errors that the state machines route on by name (Catch `ErrorEquals`).

A Lambda task that raises one of these surfaces in Step Functions with the class name as the
error, so Catch clauses and the runbooks speak the same words.
"""


class ReleaseError(Exception):
    """Base class of every named release error."""


class InvalidRelease(ReleaseError):
    """The release request failed validation; nothing was changed."""


class ReleaseInProgress(ReleaseError):
    """Another release or DR drill holds the environment's lock."""


class DeploymentFailed(ReleaseError):
    """Green could not be deployed (code update, publish or checksum mismatch)."""


class GreenUnhealthy(ReleaseError):
    """Green failed its synthetic checks or its alarms fired while it took traffic."""


class AlarmTriggered(ReleaseError):
    """A release-guard alarm is in ALARM during a bake."""
