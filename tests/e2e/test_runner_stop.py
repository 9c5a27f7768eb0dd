"""Stopping the runner while its functions are busy: it returns within a few seconds."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from local.clock import ManualClock
from local.runner import Runner
from tests.e2e.conftest import PROBE_TEMPLATE, ROOT, START, http
from tests.e2e.make_run import STOP_SECONDS, start_make_run

JOIN_SECONDS = 15.0  # generous: stop() itself gives requests in flight 2 s; the probes sleep 30 s


def _busy_sandboxes(runner: Runner) -> set[int]:
    """Process ids of the sandboxes that started a long probe."""
    table = runner.physical_name("ProbeTable")
    items = runner.boto3_client("dynamodb").scan(TableName=table)["Items"]
    return {int(item["pid"]["N"]) for item in items if item["pk"]["S"].startswith("busy#")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stopping_a_busy_runner_returns_promptly_and_no_client_hangs() -> None:
    runner = Runner(
        templates=[ROOT / "template.yaml", PROBE_TEMPLATE], port=0, clock=ManualClock(START), max_instances=2
    ).start()
    outcomes: list[Any] = []
    try:
        # Given both sandboxes of a function busy for 30 s, and more requests queued behind them
        def call() -> None:
            try:
                outcomes.append(http(runner, "GET", "/_probe/long/30").status)
            except OSError as exc:  # the connection closed under it: an answer too
                outcomes.append(exc)

        clients = [threading.Thread(target=call, daemon=True) for _ in range(5)]
        for client in clients:
            client.start()
        waited = 0.0
        while len(_busy_sandboxes(runner)) < 2 and waited < 120:
            time.sleep(0.2)
            waited += 0.2
        sandboxes = _busy_sandboxes(runner)
        assert len(sandboxes) == 2
        # When the runner is stopped
        stopper = threading.Thread(target=runner.stop, daemon=True)
        stopper.start()
        stopper.join(timeout=JOIN_SECONDS)
        # Then stop() returned without waiting for the 30 s handlers
        assert not stopper.is_alive()
        # And every client got its answer (API Gateway's 500) or a closed connection, none hangs
        for client in clients:
            client.join(timeout=JOIN_SECONDS)
        assert [c for c in clients if c.is_alive()] == []
        assert len(outcomes) == 5
        assert all(o == 500 or isinstance(o, OSError) for o in outcomes), outcomes
        # And the busy sandboxes were killed, not left running
        assert [pid for pid in sandboxes if _alive(pid)] == []
    finally:
        runner.stop()


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """Send `signum` to one thread of `pid` (tgkill(2)): where the kernel may deliver a process signal."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), "tgkill failed")


def test_make_run_started_with_sigint_ignored_stops_on_ctrl_c_whichever_thread_takes_it(
    tmp_path: Path,
) -> None:
    # Given make run started as a background job of a script starts it (SIGINT ignored), running
    # with its many threads
    run = start_make_run(tmp_path, sigint_ignored=True)
    try:
        assert run.request("GET", "/health").status == 200
        pid = run.process.pid
        others = sorted(
            int(task.name) for task in Path(f"/proc/{pid}/task").iterdir() if int(task.name) != pid
        )
        assert others
        # When Ctrl-C's signal is delivered to a thread other than the main one (the kernel may
        # hand a process-directed signal to any thread that does not block it, signal(7))
        _tgkill(pid, others[-1], signal.SIGINT)
        run.process.wait(timeout=STOP_SECONDS)
        # Then it stopped on its own (exit status 0): the inherited SIG_IGN was replaced, and the
        # main thread woke to run the handler
        assert run.process.returncode == 0
        assert "stopping..." in run.output()
    finally:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
