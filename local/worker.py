"""One Lambda sandbox: `python -m local.worker REQUEST_FD RESPONSE_FD`, started by local.functions.

The environment is the function's (PYTHONPATH = its code dir + the layer). The worker imports the
handler once (cold start), answers {"ready": true} or an init error, then serves one invocation per
line on its dedicated pipes: request {"event", "request_id", "deadline_ms"} -> response {"result"}
or {"errorType", "errorMessage", "stackTrace"}. stdout/stderr stay the handler's log streams.
Standard library only, so nothing of the runner leaks into the handler's import path.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any


class LambdaContext:
    """The attributes of the Python runtime's context object."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{self.function_name}"
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _load_handler(spec: str) -> Callable[[Any, Any], Any]:
    module_name, _, function_name = spec.rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle; it ends us via the pipe
    requests = os.fdopen(int(sys.argv[1]), "r", encoding="utf-8")
    responses = os.fdopen(int(sys.argv[2]), "w", encoding="utf-8")
    # `python -m` put the runner's root first on sys.path; the handler must see only what Lambda has.
    runner_root = os.getcwd()  # noqa: PTH109 - stdlib-only, string paths like sys.path
    sys.path[:] = [p for p in sys.path if p not in ("", runner_root)]
    os.chdir(os.environ["LAMBDA_TASK_ROOT"])
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except Exception as exc:  # noqa: BLE001 - any init failure is a Lambda init error
        traceback.print_exc()
        _send(responses, {"ready": False, **_error(exc, f"Runtime.ImportModuleError: {type(exc).__name__}")})
        return
    _send(responses, {"ready": True})
    for line in requests:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{int(time.time()):08x}-{request['request_id'][:24]}"
        try:
            result = handler(request["event"], context)
        except Exception as exc:  # noqa: BLE001 - any handler exception is a Lambda error
            traceback.print_exc()
            _send(responses, _error(exc))
            continue
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        try:
            _send(responses, {"result": result})
        except (TypeError, ValueError) as exc:
            _send(responses, _error(exc, "Runtime.MarshalError"))


if __name__ == "__main__":
    main()
