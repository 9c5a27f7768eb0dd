"""Real-world case 12 through the sync: a Korean Outlook reply threads with its original."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailbridge.sync.wiring import service_deps
from tests.fixtures.aws import Stack
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import SyncHarness

pytestmark = pytest.mark.dovecot

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "real-world-reports"


def test_real_world_case_12_korean_reply_prefix_joins_the_thread(
    stack: Stack,
    invoke_api: Callable[[dict[str, Any]], dict[str, Any]],
    dovecot_server: DovecotServer,
    dovecot_user: DovecotUser,
) -> None:
    # Given the case's original and a reply whose only link is the subject "회신: 견적 요청"
    # (no In-Reply-To, no References), in a connected mailbox
    case = json.loads((CASES / "12-korean-reply-prefix-threading.json").read_text())
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
    for raw in case["messages"]:
        h.server.append(h.user, "INBOX", raw.encode())
    status, body = h.connect()
    assert status == 201, body

    # When the mailbox is synced
    h.drain()

    # Then both are stored, under their decoded subjects, in one thread
    emails = {e["message_id"]: e for e in h.emails()}
    assert emails["k1@example.test"]["subject"] == "견적 요청"
    assert emails["k2@partner.example.test"]["subject"] == "회신: 견적 요청"
    assert emails["k2@partner.example.test"]["thread_id"] == emails["k1@example.test"]["thread_id"]
