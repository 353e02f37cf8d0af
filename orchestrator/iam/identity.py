"""Who is calling: the credentials a function's worker process runs with, and back to its role.

On AWS a function runs with temporary credentials of its execution role (`ASIA...` access key,
secret, session token in its environment). The sandbox does the same: every role gets its own
deterministic access key, so each request that reaches moto can be attributed to the role
that would make it on AWS, and judged against that role's policies. Requests signed with any
other key (the operator's, a test's) are the account's own and are not judged.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_lock = threading.Lock()
_roles_by_key: dict[str, str] = {}


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        """The variables Lambda sets for the execution role's session."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


def access_key_for(role_arn: str) -> str:
    """`ASIA` + 16 characters derived from the role ARN (the shape of an STS session key)."""
    digest = hashlib.sha256(role_arn.encode()).digest()
    return "ASIA" + "".join(_ALPHABET[b % 32] for b in digest[:16])


def credentials_for(role_arn: str) -> Credentials:
    """The session credentials of `role_arn`; remembered so requests signed with them map back."""
    key = access_key_for(role_arn)
    with _lock:
        _roles_by_key[key] = role_arn
    secret = hashlib.sha256(b"secret/" + role_arn.encode()).hexdigest()[:40]
    token = hashlib.sha256(b"token/" + role_arn.encode()).hexdigest()
    return Credentials(key, secret, token)


def role_of(access_key_id: str) -> str | None:
    """The role whose session signed a request, or None for the account's own callers."""
    with _lock:
        return _roles_by_key.get(access_key_id)


def forget_all() -> None:
    with _lock:
        _roles_by_key.clear()
