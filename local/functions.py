"""Run each template function in worker subprocesses (sandboxes), one invocation per sandbox at a time.

`FunctionPool.invoke(logical_id, event)` returns an `Invocation` (result or Lambda-style error).
Like Lambda, a function runs in several sandboxes at once: a small bounded pool per function,
started on demand (cold start), invocations waiting when all are busy. A timeout kills that
sandbox; the next invocation starts a fresh one. The handler's stdout/stderr are passed through,
each line prefixed with the function.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from local.template import REGION, Function

ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = ROOT / "layers" / "mailbridge"
STATE_DIR = Path(os.environ.get("LOCAL_STATE_DIR") or ROOT / ".local")
"""Where `make run` leaves the doubles' URLs for the commands run beside it (`make mailbox`,
`make crm-seed`): `.local/` in the checkout, or `LOCAL_STATE_DIR`, so that two runs started from
one checkout (the tests' parallel `make run`s) each keep their own."""
INIT_TIMEOUT_SECONDS = 30.0  # Lambda allows 10 s of init; imports are slower on a busy laptop
# Sandboxes per function at once; Lambda scales much further, a laptop does not need to.
DEFAULT_MAX_INSTANCES = int(os.environ.get("LOCAL_MAX_INSTANCES", "4"))
# Lambda's synchronous Invoke refuses a request payload (the event as JSON) above 6 MiB
# (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html: "6 MB each for request and response").
MAX_REQUEST_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_PAYLOAD_BYTES = MAX_REQUEST_PAYLOAD_BYTES + 100  # what Lambda enforces on responses


@dataclass(frozen=True)
class Invocation:
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_type is None


def sandbox_environment(function: Function, endpoint_url: str) -> dict[str, str]:
    """What the handler's process sees: its template environment plus what Lambda sets."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")}
    env.update(function.environment)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",  # dummy credentials for moto
            "AWS_SESSION_TOKEN": "local",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_SAM_LOCAL": "true",
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "LAMBDA_RUNTIME_DIR": str(ROOT / "local"),
            "_HANDLER": function.handler,
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join([str(function.code_dir), str(LAYER_DIR)]),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


class _Worker:
    """One live sandbox process and its pipes."""

    def __init__(self, function: Function, endpoint_url: str, log_prefix: bool) -> None:
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "local.worker", str(request_read), str(response_write)],
            cwd=ROOT,
            env=sandbox_environment(function, endpoint_url),
            pass_fds=(request_read, response_write),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(request_read)
        os.close(response_write)
        self.requests = os.fdopen(request_write, "w", encoding="utf-8")
        self.response_fd = response_read
        self._buffer = b""
        self.last_message_bytes = 0
        prefix = f"[{function.logical_id}] " if log_prefix else ""
        for stream, sink in ((self.process.stdout, sys.stdout), (self.process.stderr, sys.stderr)):
            threading.Thread(target=_pass_through, args=(stream, sink, prefix), daemon=True).start()

    def read_message(self, timeout: float) -> dict[str, Any] | None:
        """Next response line, or None on timeout; raises EOFError if the process died."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            poller = select.poll()  # not select.select: descriptors may pass FD_SETSIZE under load
            poller.register(self.response_fd, select.POLLIN)
            if not poller.poll(remaining * 1000):
                return None
            chunk = os.read(self.response_fd, 1 << 20)
            if not chunk:
                raise EOFError("worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        self.last_message_bytes = len(line)
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    def terminate(self) -> None:
        """End the process (SIGKILL, as Lambda ends a sandbox); the pipes stay open."""
        if self.process.poll() is None:
            self.process.kill()

    def kill(self) -> None:
        self.terminate()
        self.process.wait()
        for closing in (self.requests.close, lambda: os.close(self.response_fd)):
            with contextlib.suppress(OSError):
                closing()


def _pass_through(stream: IO[bytes] | None, sink: IO[str], prefix: str) -> None:
    if stream is None:
        return
    for raw in iter(stream.readline, b""):
        sink.write(prefix + raw.decode("utf-8", "replace"))
        sink.flush()


_STOPPED = Invocation(error_type="Runtime.Stopped", error_message="the local runner is stopping")


class LocalFunction:
    """A template function: up to `max_instances` sandboxes at once, like Lambda's concurrency.

    Each sandbox (worker process) serves one invocation at a time. An invocation takes an idle
    sandbox, or starts a new one (cold start) while fewer than `max_instances` exist, or waits for
    one to be free. A timeout or a crash discards that sandbox; `stop()` kills them all at once, so
    invocations in flight end with an error instead of holding the runner up.
    """

    def __init__(
        self,
        function: Function,
        endpoint_url: str,
        log_prefix: bool = True,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        if max_instances < 1:
            raise ValueError("max_instances must be at least 1")
        self.function = function
        self.max_instances = max_instances
        self._endpoint_url = endpoint_url
        self._log_prefix = log_prefix
        self._free = threading.Condition()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()  # every live sandbox, idle, busy or starting
        self._reserved = 0  # sandboxes that exist or are being started
        self._stopped = False

    def _start(self) -> _Worker | Invocation:
        worker = _Worker(self.function, self._endpoint_url, self._log_prefix)
        with self._free:
            self._workers.add(worker)
            stopped = self._stopped
        if stopped:
            self._discard(worker)
            return _STOPPED
        try:
            ready = worker.read_message(INIT_TIMEOUT_SECONDS)
        except EOFError:
            ready = {
                "ready": False,
                "errorType": "Runtime.ExitError",
                "errorMessage": "worker exited during init",
            }
        if ready is None:
            self._discard(worker)
            return Invocation(error_type="Runtime.InitTimeout", error_message="init timed out")
        if not ready.get("ready"):
            self._discard(worker)
            return Invocation(error_type=ready.get("errorType"), error_message=ready.get("errorMessage"))
        return worker

    def _acquire(self) -> _Worker | Invocation:
        """An idle sandbox, a new one, or (when `max_instances` are busy) the next one freed."""
        with self._free:
            while True:
                if self._stopped:
                    return _STOPPED
                while self._idle:
                    worker = self._idle.pop()
                    if worker.process.poll() is None:
                        return worker
                    worker.kill()  # exited while idle: reap it and free its place
                    self._workers.discard(worker)
                    self._reserved -= 1
                if self._reserved < self.max_instances:
                    self._reserved += 1
                    break
                self._free.wait()
        started = self._start()  # outside the lock: a cold start must not hold up other invocations
        if isinstance(started, Invocation):
            with self._free:
                self._reserved -= 1
                self._free.notify()
        return started

    def _release(self, worker: _Worker) -> None:
        with self._free:
            if not self._stopped and worker.process.poll() is None:
                self._idle.append(worker)
                self._free.notify()
                return
        self._discard(worker, reserved=True)

    def _discard(self, worker: _Worker, *, reserved: bool = False) -> None:
        worker.kill()
        with self._free:
            self._workers.discard(worker)
            if reserved:
                self._reserved -= 1
            self._free.notify()

    def warm(self) -> None:
        """Start one sandbox ahead of the first invocation (what `make run` does at start)."""
        acquired = self._acquire()
        if isinstance(acquired, _Worker):
            self._release(acquired)

    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        payload = json.dumps(event, separators=(",", ":"))
        if len(payload.encode()) > MAX_REQUEST_PAYLOAD_BYTES:
            # Lambda refuses the Invoke itself; no sandbox runs (RequestEntityTooLargeException).
            return Invocation(
                error_type="RequestEntityTooLargeException",
                error_message=f"Request must be smaller than {MAX_REQUEST_PAYLOAD_BYTES} bytes for Invoke",
            )
        acquired = self._acquire()
        if isinstance(acquired, Invocation):
            return acquired
        worker = acquired
        deadline_ms = int(time.time() * 1000) + self.function.timeout * 1000
        try:
            envelope = json.dumps({"request_id": request_id, "deadline_ms": deadline_ms})
            worker.requests.write(f'{{"event":{payload},{envelope[1:]}\n')
            worker.requests.flush()
            response = worker.read_message(self.function.timeout)
        except (EOFError, BrokenPipeError, OSError, ValueError):
            self._discard(worker, reserved=True)
            return Invocation(error_type="Runtime.ExitError", error_message="the function process exited")
        if response is None:
            self._discard(worker, reserved=True)
            message = f"{request_id} Task timed out after {self.function.timeout:.2f} seconds"
            return Invocation(error_type="Sandbox.Timedout", error_message=message)
        size = worker.last_message_bytes
        self._release(worker)
        if "result" in response and size > MAX_RESPONSE_PAYLOAD_BYTES:
            return Invocation(
                error_type="Function.ResponseSizeTooLarge",
                error_message=f"Response payload size exceeded {MAX_RESPONSE_PAYLOAD_BYTES} bytes",
            )
        if "errorType" in response:
            return Invocation(error_type=response["errorType"], error_message=response.get("errorMessage"))
        return Invocation(result=response.get("result"))

    def stop(self) -> None:
        """Kill every sandbox now, busy ones too; waiting and later invocations fail at once.

        A busy sandbox's process is killed here and its pipes are closed by the invocation that
        owns it (it reads EOF at once), so no thread reads a descriptor another one closed.
        """
        with self._free:
            self._stopped = True
            idle, self._idle = self._idle, []
            busy = [worker for worker in self._workers if worker not in idle]
            self._workers.difference_update(idle)
            self._free.notify_all()
        for worker in idle:
            worker.kill()
        for worker in busy:
            worker.terminate()


class FunctionPool:
    """All the template's functions by logical id; `environment` is added to each one's own."""

    def __init__(
        self,
        functions: Mapping[str, Function],
        endpoint_url: str,
        log_prefix: bool = True,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        if environment:
            functions = {
                lid: replace(fn, environment={**fn.environment, **environment})
                for lid, fn in functions.items()
            }
        self.functions = {
            lid: LocalFunction(fn, endpoint_url, log_prefix, max_instances) for lid, fn in functions.items()
        }
        self._by_arn = {fn.arn: lid for lid, fn in functions.items()}

    def logical_id_for_arn(self, arn: str) -> str | None:
        return self._by_arn.get(arn)

    def invoke(self, logical_id: str, event: Any) -> Invocation:
        return self.functions[logical_id].invoke(event)

    def stop(self) -> None:
        for fn in self.functions.values():
            fn.stop()
