"""Ctrl-C and `kill` for the long-running local commands (`python -m local` and each double's own
`python -m local.<provider>`): both raise KeyboardInterrupt in the main thread, which then stops
everything it started."""

from __future__ import annotations

import signal
import time

WAKE_SECONDS = 0.5  # the longest a Ctrl-C waits before stopping starts


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def install() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in the main thread.

    SIGINT is set even when the process was started with it ignored (a background job of a shell
    without job control, `nohup`, some CI runners): Python leaves an inherited SIG_IGN in place,
    and the command then ran on until it was killed."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)


def wait_for_interrupt() -> None:
    """Block the main thread until Ctrl-C or SIGTERM (raises KeyboardInterrupt).

    The main thread wakes every WAKE_SECONDS. The kernel may deliver a process-directed signal to
    any thread (signal(7)); CPython's C-level handler then only marks the Python handler due, and
    the main thread runs it the next time it executes bytecode. A main thread blocked in
    `threading.Event().wait()` (a lock acquire without timeout) never woke for it, so a Ctrl-C
    that landed on another thread was lost."""
    while True:
        time.sleep(WAKE_SECONDS)
