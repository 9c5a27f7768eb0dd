"""`make run` as a user starts it: `python -m local` in a process of its own, its output captured.

The other e2e modules drive a `Runner` inside the test process; these start the command the
README starts (`make run` is `PORT=$(PORT) .venv/bin/python -m local`), on a free port, with its
issuer file and its state files in a temporary folder (`LOCAL_ISSUER_FILE`, `LOCAL_STATE_DIR`, so
the `.local/` of a developer's own `make run` stays theirs and two runs do not overwrite each
other's doubles' URLs), and everything it prints (the runner's own lines and
every function's log lines) in one file the tests can read.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from local.auth import Issuer
from local.functions import ROOT
from local.template import REGION

START_SECONDS = 180.0  # `python -m local` starts every function's first sandbox; slow on a busy machine
STOP_SECONDS = 30.0  # a bound for the tests, not a target: the runner itself gives requests 2 s
# Every make-run.log started in this process: the log scan reads them at its module's end (conftest.py)
STARTED_LOGS: list[Path] = []
_BANNER = re.compile(r"mailbridge is running on (http://\S+) \(AWS APIs: moto at (http://\S+)\)")

# `python -m local` with other template parameters (it starts with AllowPrivateMailHosts=true).
_WITH_PARAMETERS = (
    "import sys\n"
    "import local.__main__ as make_run\n"
    "make_run.LOCAL_PARAMETERS.update(arg.split('=', 1) for arg in sys.argv[1:])\n"
    "make_run.main()\n"
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """Our `error.code`, or None (a success, or API Gateway's own `{"message"}`)."""
        try:
            payload = self.json()
        except ValueError:
            return None
        error = payload.get("error") if isinstance(payload, dict) else None
        return error.get("code") if isinstance(error, dict) else None


@dataclass
class MakeRun:
    process: subprocess.Popen[bytes]
    url: str
    endpoint_url: str
    issuer: Issuer
    log_path: Path
    state_dir: Path
    """This run's `LOCAL_STATE_DIR`: the doubles' URLs it wrote (`crm-doubles.json`, ...)."""

    def token(self, tenant: str = "demo", role: str = "owner", sub: str = "local-user", **claims: Any) -> str:
        return self.issuer.token(tenant=tenant, role=role, sub=sub, **claims)

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        timeout: float = 120.0,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One HTTP request on a fresh connection; `body` is sent as JSON, `raw` as it is; `headers`
        are sent besides (e.g. `If-Match`)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {**(headers or {}), **({"Content-Type": content_type} if data is not None else {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers.items()), error.read())

    def boto3_client(self, service: str) -> Any:
        """A client on the runner's moto, to read what was stored."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> float:
        """Ctrl-C, as a user stops `make run`; the seconds it took to exit (killed after STOP_SECONDS)."""
        if self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # the stacks of what held it up, into the log
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_make_run(
    folder: Path, parameters: Mapping[str, str] | None = None, *, sigint_ignored: bool = False
) -> MakeRun:
    """Start `python -m local` on a free port and wait for its banner; output goes to folder/make-run.log.

    `sigint_ignored`: start it as a shell without job control starts a background job (`make run &`
    in a script), with SIGINT ignored."""
    folder.mkdir(parents=True, exist_ok=True)
    issuer_file = folder / "dev-issuer.json"
    log_path = folder / "make-run.log"
    STARTED_LOGS.append(log_path)
    state_dir = folder / "state"
    env = {
        **os.environ,
        "PORT": "0",
        "LOCAL_ISSUER_FILE": str(issuer_file),
        "LOCAL_STATE_DIR": str(state_dir),
        "PYTHONUNBUFFERED": "1",
    }
    # -X faulthandler: when it does not stop in time, SIGABRT prints every thread's stack to the log
    command = [sys.executable, "-X", "faulthandler", "-m", "local"]
    if parameters:
        command = [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            _WITH_PARAMETERS,
            *(f"{k}={v}" for k, v in parameters.items()),
        ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_ignore_sigint if sigint_ignored else None,  # noqa: PLW1509 - no threads yet
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        banner = _BANNER.search(log_path.read_text(encoding="utf-8", errors="replace"))
        if banner is not None:
            return MakeRun(process, banner[1], banner[2], Issuer.load(issuer_file), log_path, state_dir)
        if process.poll() is not None:
            break
        time.sleep(0.25)
    process.kill()
    process.wait()
    raise RuntimeError(f"make run did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
