"""VirtualClock and VirtualEvent semantics (no sleeping on real time beyond a few polls)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from orchestrator.engine.clock import VirtualClock, VirtualEvent

START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def test_auto_clock_skips_sleeps() -> None:
    clock = VirtualClock(START)
    assert clock.sleep(86_400) is True
    assert clock.now() - START >= dt.timedelta(days=1)
    assert clock.skipped_seconds == pytest.approx(86_400, abs=1)


def test_clock_rejects_naive_start_and_backwards_moves() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(dt.datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="only moves forward"):
        VirtualClock().advance(-1)
    with pytest.raises(ValueError, match="speed must be positive"):
        VirtualClock(speed=0)


def test_manual_clock_blocks_until_advanced() -> None:
    clock = VirtualClock(START, auto_advance=False)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (clock.sleep(3600), done.set()))
    thread.start()
    clock.wait_for_sleepers(1)
    assert not done.is_set()
    clock.advance(3600)
    thread.join(5)
    assert done.is_set()
    assert clock.sleepers == 0


def test_manual_sleep_ends_early_when_the_execution_stops() -> None:
    clock = VirtualClock(START, auto_advance=False)
    running = threading.Event()
    running.set()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(clock.sleep(3600, keep_waiting=running.is_set)))
    thread.start()
    clock.wait_for_sleepers(1)
    running.clear()
    thread.join(5)
    assert result == [False]


def test_wait_for_sleepers_times_out_with_a_clear_message() -> None:
    with pytest.raises(TimeoutError, match="0 thread"):
        VirtualClock(auto_advance=False).wait_for_sleepers(1, timeout=0.05)


@pytest.mark.parametrize("auto", [True, False])
def test_event_set_in_time_is_not_a_timeout(auto: bool) -> None:
    clock = VirtualClock(START, auto_advance=auto)
    event = VirtualEvent(clock)
    event.set()
    assert event.wait(60) is True
    assert event.is_set()
    event.clear()
    assert not event.is_set()


@pytest.mark.parametrize("auto", [True, False])
def test_event_times_out_when_the_clock_passes_the_deadline(auto: bool) -> None:
    clock = VirtualClock(START, auto_advance=auto)
    event = VirtualEvent(clock)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(event.wait(3600)))
    thread.start()
    if not auto:
        clock.wait_for_sleepers(1)
    else:
        # an auto-mode timeout only expires when something moves the clock
        thread.join(0.05)
        assert thread.is_alive()
    clock.advance(3601)
    thread.join(5)
    assert result == [False]


def test_event_set_after_the_virtual_deadline_counts_as_timeout() -> None:
    clock = VirtualClock(START)
    event = VirtualEvent(clock)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(event.wait(30)))
    thread.start()
    clock.sleep(120)  # the "handler" ran past the timeout on virtual time
    event.set()
    thread.join(5)
    assert result == [False]
