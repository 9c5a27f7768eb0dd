"""E2e tests drive the local runner (template.yaml + the probe overlay) with a manual clock.

A runner costs seconds of CPU to start (moto, the template's resources) and each function's first
sandbox another second (its imports), so the modules that need the same runner share one:
`probe_runner` (template + probe overlay, clock at START) and `mail_runner` (template alone,
loopback mail hosts allowed, clock at the real time) and `gmail_runner` (template alone wired to a
Google double) each start once per session (per xdist worker) and serve every module that asks for
them; the modules keep apart by their own tenant ids (and, at the Google double, their own mailboxes).
tests/e2e/runner_groups.py lists them, so `make pytest` runs each group on one worker. moto's
backends are per process and a runner's start resets them, so at most one in-process runner lives
at a time: the shared one is stopped before a test that does not use it (a module with a runner of
its own, e.g. other settings, a fresh clock or a stopped runner) starts.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.clock import ManualClock
from local.google import GoogleDouble
from local.runner import Runner
from tests.e2e import log_scan
from tests.e2e.make_run import STARTED_LOGS

ROOT = Path(__file__).resolve().parents[2]
PROBE_TEMPLATE = ROOT / "tests" / "e2e" / "probe" / "template.yaml"
START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


class SharedRunners:
    """The one in-process runner shared by the modules that ask for it by the same fixture name."""

    def __init__(self) -> None:
        self.name: str | None = None  # the fixture the live runner serves
        self.runner: Runner | None = None

    def get(self, name: str, make: Callable[[], Runner]) -> Runner:
        """The live runner if it serves `name`; otherwise the live one is stopped and `make()` started."""
        if self.name == name and self.runner is not None:
            return self.runner
        self.release()
        runner = make()
        try:
            runner.start()
        except BaseException:
            runner.stop()
            raise
        self.name, self.runner = name, runner
        return runner

    def release(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        self.name, self.runner = None, None


_SHARED = pytest.StashKey[SharedRunners]()

# ------------------------------------------------------------------ issue 20 point 4: the log scan
# Every line a runner and its function sandboxes print is scanned for personal data (log_scan.py)
# when the last test of a module is torn down (a module's own runner, or a shared one it used, has
# printed everything of this module by then); a finding fails that teardown with file:line and kind.
# In-process runners print into pytest's capture (the sandboxes' output is passed to sys.stdout and
# sys.stderr, the runner's own lines are logging): the captured sections of each phase are scanned.
# `python -m local` runners (make_run.py) print into their make-run.log: those files are scanned.
_NEXT_ITEM = pytest.StashKey["pytest.Item | None"]()
_CAPTURED = pytest.StashKey[list[tuple[str, str]]]()


@pytest.fixture(scope="session", autouse=True)
def _remember_credentials() -> Iterator[None]:
    """The passwords the fixtures hand out join the scan (the SMTP sink's, each Dovecot user's)."""
    from tests.fixtures.smtp import SINK_PASSWORD, SINK_UTF8_PASSWORD
    from tests.integration.dovecot import DovecotServer, DovecotUser

    for password in (SINK_PASSWORD, SINK_UTF8_PASSWORD):
        log_scan.remember_secret("password", password)
    add_user = DovecotServer.add_user

    def add_remembered_user(
        self: DovecotServer, name: str | None = None, password: str | None = None
    ) -> DovecotUser:
        user = add_user(self, name, password)
        log_scan.remember_secret("password", user.password)
        return user

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DovecotServer, "add_user", add_remembered_user)
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    item.stash[_NEXT_ITEM] = nextitem
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    captured = item.config.stash.setdefault(_CAPTURED, [])
    # a report carries the sections of the earlier phases too: take this phase's own
    captured += [
        (f"{item.nodeid} [{title}]", text)
        for title, text in report.sections
        if title.endswith(f" {call.when}")
    ]
    nextitem = item.stash.get(_NEXT_ITEM, None)
    if call.when != "teardown" or (nextitem is not None and nextitem.path == item.path):
        return
    findings = [f for where, text in captured for f in log_scan.scan(where, text)]
    for path in STARTED_LOGS:
        if path.exists():
            findings += log_scan.scan(str(path), path.read_text(encoding="utf-8", errors="replace"))
    captured.clear()
    STARTED_LOGS.clear()
    if findings and report.failed:  # keep the teardown's own error; the findings go alongside
        report.sections.append(("log scan", log_scan.report(findings)))
    elif findings:
        report.outcome = "failed"
        report.longrepr = log_scan.report(findings)
        # pytest would print the captured output with the failure: that is the value found
        report.sections = [(t, c) for t, c in report.sections if not t.startswith("Captured ")]


@pytest.fixture(scope="session")
def shared_runners(request: pytest.FixtureRequest) -> Iterator[SharedRunners]:
    shared = request.config.stash.setdefault(_SHARED, SharedRunners())
    yield shared
    shared.release()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared runner before a test that does not use it (it may start a runner of its own)."""
    shared = item.config.stash.get(_SHARED, None)
    if shared is None or shared.name is None:
        return
    if nextitem is None or shared.name not in getattr(nextitem, "fixturenames", ()):
        shared.release()


@pytest.fixture(scope="module")
def probe_runner(shared_runners: SharedRunners) -> Runner:
    """template.yaml + the probe overlay on a manual clock at START; shared by the modules using it."""
    return shared_runners.get(
        "probe_runner",
        lambda: Runner(templates=[ROOT / "template.yaml", PROBE_TEMPLATE], port=0, clock=ManualClock(START)),
    )


@pytest.fixture(scope="module")
def runner(probe_runner: Runner) -> Runner:
    return probe_runner


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(runner: Runner, method: str, path: str, token: str | None = None, **headers: str) -> Reply:
    all_headers = dict(headers)
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(runner.url + path, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers.items()), error.read())


def probe_items(runner: Runner) -> list[dict[str, Any]]:
    """Everything the probe function recorded, one item per record attempt."""
    table = runner.physical_name("ProbeTable")
    items = runner.boto3_client("dynamodb").scan(TableName=table)["Items"]
    return [
        {
            "message_id": i["message_id"]["S"],
            "receive_count": int(i["receive_count"]["N"]),
            "body": json.loads(i["body"]["S"]),
            "outcome": i["outcome"]["S"],
            "record": json.loads(i["record"]["S"]),
        }
        for i in items
    ]


@pytest.fixture(scope="module")
def mail_runner(shared_runners: SharedRunners) -> Runner:
    """The template alone, with loopback mail hosts allowed (the tests' Dovecot and SMTP sink), on a
    clock that starts at the real time (scheduled sends are validated against it); shared by the
    modules using it (each moves the clock only forward)."""
    return shared_runners.get(
        "mail_runner",
        lambda: Runner(
            templates=[ROOT / "template.yaml"],
            port=0,
            clock=ManualClock(datetime.now(UTC).replace(microsecond=0)),
            parameters={"AllowPrivateMailHosts": "true"},
        ),
    )


class GmailRunner(Runner):
    """A runner wired to its own Google double, which it starts and stops with itself."""

    def __init__(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        google = GoogleDouble(clock=ManualClock(now), seed=21)
        super().__init__(templates=[ROOT / "template.yaml"], port=0, clock=ManualClock(now), google=google)
        self.double = google

    def start(self) -> GmailRunner:
        self.double.start()
        super().start()
        return self

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.double.stop()


# The push verifier allows 10 s of skew against real time (mailbridge.webhooks.verify): a double
# whose clock a module moved further ahead (a quota storm's minutes) signs pushes the next module's
# runner refuses, so that module gets a fresh runner and double.
_GMAIL_CLOCK_AHEAD = timedelta(seconds=5)


@pytest.fixture(scope="module")
def gmail_runner(shared_runners: SharedRunners) -> GmailRunner:
    """The template alone wired to a Google double (`.double`), both clocks at the real time; shared
    by the modules using it, each with its own tenant and its own Google users (added by the module).
    Each module starts with no push pending and the queues drained."""
    live = shared_runners.runner if shared_runners.name == "gmail_runner" else None
    if isinstance(live, GmailRunner) and live.double.now() > datetime.now(UTC) + _GMAIL_CLOCK_AHEAD:
        shared_runners.release()
    runner = shared_runners.get("gmail_runner", GmailRunner)
    assert isinstance(runner, GmailRunner)
    runner.double.pubsub.flush()
    runner.drain(timeout=120)
    return runner


def call(runner: Runner, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    """A JSON request through the runner's HTTP API: (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        runner.url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def connect_mailbox(
    runner: Runner, token: str, server: Any, user: Any, smtp: dict[str, Any] | None = None
) -> str:
    """Connect a test Dovecot user (plain IMAP on loopback) through POST /accounts; the account id."""
    body = {
        "provider": "imap",
        "address": f"{user.name}@example.com",
        "imap": {
            "host": server.host,
            "port": server.imap_port,
            "security": "none",
            "username": user.name,
            "password": user.password,
        },
        "smtp": smtp,
    }
    status, account = call(runner, "POST", "/accounts", token, body)
    assert status == 201, account
    return str(account["account_id"])
