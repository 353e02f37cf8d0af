"""The local engine's virtual wall clock.

Real time keeps flowing (optionally scaled by `speed`), and every wait the state machine asks
for (Wait states, Retry back-off, task and heartbeat timeouts, a handler's `clock.sleep`) is
measured against this clock. With `auto_advance=True` a wait jumps the clock to its deadline at
once, so a 24 h bake finishes in microseconds while history timestamps still move 24 h. With
`auto_advance=False` waits block until real time (times `speed`) or `advance()` reaches their
deadline, which lets a test hold an execution inside a bake and act on it.

The clock is shared by every execution of one engine: an instant 24 h Wait in one execution
moves time for all of them (as it would for anyone reading a wall clock).
"""

from __future__ import annotations

import datetime as _dt
import threading
import time as _time
from collections.abc import Callable

# How often a blocked waiter re-reads the clock; advance() also wakes waiters at once.
_POLL_SECONDS = 0.01


class VirtualClock:
    """A thread-safe wall clock with skippable waits. Times are UTC epoch seconds."""

    def __init__(
        self,
        start: _dt.datetime | None = None,
        *,
        auto_advance: bool = True,
        speed: float = 1.0,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"VirtualClock speed must be positive, got {speed}")
        if start is not None and start.tzinfo is None:
            raise ValueError("VirtualClock start must be timezone-aware (UTC)")
        self.auto_advance = auto_advance
        self.speed = speed
        self._cond = threading.Condition()
        self._origin_real = _time.monotonic()
        self._origin_virtual = (start or _dt.datetime.now(_dt.UTC)).timestamp()
        self._offset = 0.0
        self._sleepers = 0

    # -- reading ---------------------------------------------------------------------------
    def _time_locked(self) -> float:
        return self._origin_virtual + (_time.monotonic() - self._origin_real) * self.speed + self._offset

    def time(self) -> float:
        """Virtual UTC epoch seconds (like `time.time()`)."""
        with self._cond:
            return self._time_locked()

    def now(self) -> _dt.datetime:
        """Virtual time as an aware UTC datetime (like `datetime.now(UTC)`)."""
        return _dt.datetime.fromtimestamp(self.time(), _dt.UTC)

    @property
    def skipped_seconds(self) -> float:
        """Virtual seconds added by skipped waits and `advance()` so far."""
        with self._cond:
            return self._offset

    @property
    def sleepers(self) -> int:
        """Number of threads currently blocked in `sleep_until` (manual mode only)."""
        with self._cond:
            return self._sleepers

    # -- moving ----------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every waiter whose deadline has come."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, got advance({seconds})")
        with self._cond:
            self._offset += seconds
            self._cond.notify_all()

    def advance_to(self, epoch_seconds: float) -> None:
        """Move the clock to `epoch_seconds` unless it is already past it."""
        with self._cond:
            behind = epoch_seconds - self._time_locked()
            if behind > 0:
                self._offset += behind
                self._cond.notify_all()

    def notify(self) -> None:
        """Wake waiters so they re-check their condition (an event was set)."""
        with self._cond:
            self._cond.notify_all()

    # -- waiting ---------------------------------------------------------------------------
    def sleep_until(
        self,
        deadline: float,
        *,
        keep_waiting: Callable[[], bool] | None = None,
        done: Callable[[], bool] | None = None,
    ) -> bool:
        """Block until virtual time reaches `deadline`.

        Returns True when the deadline was reached, False when `keep_waiting()` turned false
        (the execution was stopped) or `done()` turned true (what we waited for happened).
        With `auto_advance` and no `done`, the clock jumps to the deadline at once; a wait
        with `done` (a timeout) never jumps by itself, since the awaited thing may come first.
        """
        if self.auto_advance and done is None:
            self.advance_to(deadline)
            return True
        with self._cond:
            self._sleepers += 1
            self._cond.notify_all()
            try:
                while True:
                    if done is not None and done():
                        return False
                    now = self._time_locked()
                    if now >= deadline:
                        return True
                    if keep_waiting is not None and not keep_waiting():
                        return False
                    self._cond.wait(min((deadline - now) / self.speed, _POLL_SECONDS))
            finally:
                self._sleepers -= 1

    def sleep(self, seconds: float, *, keep_waiting: Callable[[], bool] | None = None) -> bool:
        """Sleep `seconds` of virtual time; see `sleep_until`."""
        return self.sleep_until(self.time() + max(0.0, seconds), keep_waiting=keep_waiting)

    def wait_for_sleepers(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block (real time) until at least `count` threads wait on this clock.

        Lets a test in manual mode act while an execution sits in a Wait state.
        """
        deadline = _time.monotonic() + timeout
        with self._cond:
            while self._sleepers < count:
                remaining = deadline - _time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{self._sleepers} thread(s) wait on the virtual clock after {timeout}s, expected {count}"
                    )
                self._cond.wait(min(remaining, _POLL_SECONDS))


class VirtualEvent:
    """`threading.Event` whose `wait(timeout)` measures the timeout on a VirtualClock.

    An event set after its waiter's virtual deadline counts as a timeout: a task handler that
    slept past the state's TimeoutSeconds fails with States.Timeout, as on AWS.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._event = threading.Event()
        self._set_at: float | None = None

    def is_set(self) -> bool:
        return self._event.is_set()

    isSet = is_set  # noqa: N815 - threading.Event compatibility

    def set(self) -> None:
        self._set_at = self._clock.time()
        self._event.set()
        self._clock.notify()

    def clear(self) -> None:
        self._event.clear()
        self._set_at = None

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return self._event.wait()
        deadline = self._clock.time() + max(0.0, timeout)
        if self._clock.auto_advance:
            # Auto mode never jumps to a timeout by itself: only advance() or another wait
            # moving the clock can expire it; otherwise wait for the event.
            while not self._event.wait(_POLL_SECONDS):
                if self._clock.time() >= deadline:
                    return False
        else:
            self._clock.sleep_until(deadline, done=self._event.is_set)
        if not self._event.is_set():
            return False
        set_at = self._set_at
        return set_at is None or set_at <= deadline
