"""Run each template function in its own worker subprocess, one invocation at a time.

`FunctionPool.invoke(logical_id, event)` returns an `Invocation` (result or Lambda-style error).
The worker is started on first use (cold start); a timeout kills it and the next call starts a
fresh one. The handler's stdout/stderr are passed through, each line prefixed with the function.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from local.template import REGION, Function

ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = ROOT / "layers" / "mailbridge"
INIT_TIMEOUT_SECONDS = 30.0  # Lambda allows 10 s of init; imports are slower on a busy laptop


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
            ready, _, _ = select.select([self.response_fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.response_fd, 1 << 20)
            if not chunk:
                raise EOFError("worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
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


class LocalFunction:
    """A template function: starts its worker lazily, serializes invocations, enforces Timeout."""

    def __init__(self, function: Function, endpoint_url: str, log_prefix: bool = True) -> None:
        self.function = function
        self._endpoint_url = endpoint_url
        self._log_prefix = log_prefix
        self._lock = threading.Lock()
        self._worker: _Worker | None = None

    def _start(self) -> _Worker | Invocation:
        worker = _Worker(self.function, self._endpoint_url, self._log_prefix)
        try:
            ready = worker.read_message(INIT_TIMEOUT_SECONDS)
        except EOFError:
            ready = {
                "ready": False,
                "errorType": "Runtime.ExitError",
                "errorMessage": "worker exited during init",
            }
        if ready is None:
            worker.kill()
            return Invocation(error_type="Runtime.InitTimeout", error_message="init timed out")
        if not ready.get("ready"):
            worker.kill()
            return Invocation(error_type=ready.get("errorType"), error_message=ready.get("errorMessage"))
        return worker

    def warm(self) -> None:
        with self._lock:
            if self._worker is None:
                started = self._start()
                if isinstance(started, _Worker):
                    self._worker = started

    def invoke(self, event: Any) -> Invocation:
        with self._lock:
            if self._worker is None or self._worker.process.poll() is not None:
                started = self._start()
                if isinstance(started, Invocation):
                    return started
                self._worker = started
            worker = self._worker
            request_id = str(uuid.uuid4())
            deadline_ms = int(time.time() * 1000) + self.function.timeout * 1000
            try:
                worker.requests.write(
                    json.dumps({"event": event, "request_id": request_id, "deadline_ms": deadline_ms}) + "\n"
                )
                worker.requests.flush()
                response = worker.read_message(self.function.timeout)
            except (EOFError, BrokenPipeError):
                self._drop_worker()
                return Invocation(error_type="Runtime.ExitError", error_message="the function process exited")
            if response is None:
                self._drop_worker()
                message = f"{request_id} Task timed out after {self.function.timeout:.2f} seconds"
                return Invocation(error_type="Sandbox.Timedout", error_message=message)
            if "errorType" in response:
                return Invocation(
                    error_type=response["errorType"], error_message=response.get("errorMessage")
                )
            return Invocation(result=response.get("result"))

    def _drop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def stop(self) -> None:
        with self._lock:
            self._drop_worker()


class FunctionPool:
    """All the template's functions by logical id."""

    def __init__(self, functions: Mapping[str, Function], endpoint_url: str, log_prefix: bool = True) -> None:
        self.functions = {lid: LocalFunction(fn, endpoint_url, log_prefix) for lid, fn in functions.items()}
        self._by_arn = {fn.arn: lid for lid, fn in functions.items()}

    def logical_id_for_arn(self, arn: str) -> str | None:
        return self._by_arn.get(arn)

    def invoke(self, logical_id: str, event: Any) -> Invocation:
        return self.functions[logical_id].invoke(event)

    def stop(self) -> None:
        for fn in self.functions.values():
            fn.stop()
