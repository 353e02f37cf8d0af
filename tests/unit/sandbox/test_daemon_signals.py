"""The sandbox daemon stops on SIGTERM whichever of its threads the kernel hands the signal to."""

from __future__ import annotations

import signal
import threading
import time

from orchestrator.sandbox.daemon import wait_for_signal


def test_a_sigterm_taken_by_another_thread_still_wakes_the_main_thread() -> None:
    # The kernel may deliver a process-directed signal to any thread; Python then runs the handler
    # only when the main thread next runs bytecode. Send it to a busy helper thread on purpose.
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    helper_running = threading.Event()
    release_helper = threading.Event()

    def helper() -> None:
        helper_running.set()
        release_helper.wait(30)

    thread = threading.Thread(target=helper, daemon=True)
    thread.start()
    helper_running.wait(10)
    sender = threading.Timer(0.2, signal.pthread_kill, args=(thread.ident, signal.SIGTERM))
    try:
        sender.start()
        started = time.monotonic()
        wait_for_signal(done, poll_seconds=0.05)
        waited = time.monotonic() - started
    finally:
        release_helper.set()
        sender.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert done.is_set()
    # Not a timing assertion on speed: it bounds a hang (an unbounded Event.wait never returns).
    assert waited < 20, f"the main thread slept {waited:.1f}s through the SIGTERM"
