"""E2e tests drive the local runner (template.yaml + the probe overlay) with a manual clock."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local.clock import ManualClock
from local.runner import Runner

ROOT = Path(__file__).resolve().parents[2]
PROBE_TEMPLATE = ROOT / "tests" / "e2e" / "probe" / "template.yaml"
START = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    with Runner(templates=[ROOT / "template.yaml", PROBE_TEMPLATE], port=0, clock=ManualClock(START)) as r:
        yield r


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
def mail_runner() -> Iterator[Runner]:
    """The template alone, with loopback mail hosts allowed (the tests' Dovecot and SMTP sink), on a
    clock that starts at the real time (scheduled sends are validated against it)."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with Runner(
        templates=[ROOT / "template.yaml"], port=0, clock=clock, parameters={"AllowPrivateMailHosts": "true"}
    ) as r:
        yield r


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
