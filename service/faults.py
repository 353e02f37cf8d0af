"""Fault injection, so a release can be made to misbehave on purpose (demo, tests).

Read from the invocation's environment (a published version's configuration), default off:
- FAULT_ERROR_RATE: share of invocations (0-1) that raise InjectedFault;
- FAULT_DELAY_MS: extra latency added to every invocation;
- FAULT_DROP_RATE: share of fan-out posts (0-1) silently not sent;
- FAULT_FUNCTIONS: comma-separated catalog keys (e.g. `messages`) that the error rate and delay
  apply to; empty means every released function. It lets a rehearsal break the traffic path
  while the `$connect` authorizer keeps refusing bad keys correctly.
Because the values belong to one published version, a faulty green shows up in exactly that
version's CloudWatch metrics while blue stays healthy.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from service.settings import settings

F = TypeVar("F", bound=Callable[..., Any])
_rng = random.SystemRandom()


class InjectedFault(RuntimeError):
    """Raised on purpose by FAULT_ERROR_RATE."""


def applies_to(key: str, functions: str) -> bool:
    wanted = {name.strip() for name in functions.split(",") if name.strip()}
    return not wanted or key in wanted


def before_invocation(key: str, rng: random.Random = _rng) -> None:
    current = settings()
    if not applies_to(key, current.fault_functions):
        return
    if current.fault_delay_ms:
        time.sleep(current.fault_delay_ms / 1000)
    if current.fault_error_rate and rng.random() < current.fault_error_rate:
        raise InjectedFault(f"injected fault (FAULT_ERROR_RATE={current.fault_error_rate})")


def drop_post(rate: float, rng: random.Random = _rng) -> bool:
    """Whether to drop one post; `rate` is read by the caller (posts run on worker threads
    that do not carry the invocation's environment)."""
    return bool(rate) and rng.random() < rate


def inject_faults(key: str) -> Callable[[F], F]:
    """Decorate the handler of the catalog function `key`."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(event: Any, context: Any) -> Any:
            before_invocation(key)
            return fn(event, context)

        return wrapper  # type: ignore[return-value]

    return decorate
