"""The Gmail sync through the local runner with the Google double, as `make run` wires them: a
mailbox connected by the OAuth redirect chain syncs in full, pushes bring new mail, label changes
and deletions, a revoked grant waits for a reconnect that resumes from the saved cursor, a stale
history id resyncs with no duplicates, and a quota storm slows the sync but completes it."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from local.google import GoogleDouble
from local.runner import Runner
from tests.e2e.conftest import GmailRunner, call
from tests.e2e.test_gmail_e2e import get
from tests.integration.local_google.conftest import rfc5322

USER = "grace@example.com"
TENANT = "gmail-sync-e2e"
ALL_MAIL = "[Gmail]%2FAll%20Mail"


@pytest.fixture(scope="module")
def google(gmail_runner: GmailRunner) -> GoogleDouble:
    """The shared runner's Google double (tests/e2e/conftest.py), with this module's user."""
    gmail_runner.double.add_user(USER, "Grace Hopper")
    return gmail_runner.double


@pytest.fixture(scope="module")
def runner(gmail_runner: GmailRunner, google: GoogleDouble) -> Runner:
    return gmail_runner


def connect(runner: Runner, token: str, account_id: str | None = None) -> str:
    """GET /oauth/gmail/start, the double's consent, the runner's callback: the account id."""
    query = f"login_hint={USER}" + (f"&account_id={account_id}" if account_id else "")
    status, started = call(runner, "GET", f"/oauth/gmail/start?{query}", token)
    assert status == 200, started
    status, headers, _ = get(started["authorization_url"])
    assert status == 302
    status, _, body = get(headers["Location"])
    assert status == 200, body
    outcome = json.loads(body)
    assert outcome["outcome"] in ("connected", "reconnected"), outcome
    return str(outcome["account_id"])


def pushed(runner: Runner, google: GoogleDouble) -> None:
    """Gmail notifies (at most once a second), Pub/Sub pushes to the runner, the runner syncs.
    (The double's clock stays within the verifier's 10 s of skew of real time.)"""
    google.advance(1)
    google.notify(google.gmail.mailbox(USER))
    google.pubsub.flush()
    runner.drain(timeout=120)


def listing(runner: Runner, token: str, account_id: str, folder: str = ALL_MAIL) -> dict[str, dict[str, Any]]:
    status, body = call(runner, "GET", f"/emails?account_id={account_id}&folder={folder}&limit=100", token)
    assert status == 200, body
    return {str(e["subject"]): e for e in body["items"]}


def status_of(runner: Runner, token: str, account_id: str) -> dict[str, Any]:
    status, body = call(runner, "GET", f"/accounts/{account_id}/status", token)
    assert status == 200, body
    return dict(body)


def test_a_gmail_mailbox_syncs_through_the_runner(runner: Runner, google: GoogleDouble) -> None:
    token = runner.token(tenant=TENANT, role="member", sub="grace-user")
    quote = google.deliver(USER, rfc5322("Renewal quote", to=USER, message_id="<r1@customer.example>"))
    google.deliver(USER, rfc5322("Kickoff", to=USER, message_id="<k1@customer.example>"))

    # Given a mailbox connected by the OAuth redirect chain
    account_id = connect(runner, token)
    runner.drain(timeout=120)

    # Then the initial sync stored its mail and the account is idle
    assert sorted(listing(runner, token, account_id)) == ["Kickoff", "Renewal quote"]
    state = status_of(runner, token, account_id)
    assert (state["stage"], state["reason"]) == ("idle", None)

    # When new mail arrives and Gmail pushes
    google.deliver(USER, rfc5322("Order confirmed", to=USER, message_id="<o1@customer.example>"))
    pushed(runner, google)
    # Then it is stored
    assert sorted(listing(runner, token, account_id)) == ["Kickoff", "Order confirmed", "Renewal quote"]

    # When the quote is read and starred in Gmail
    google.relabel(USER, quote, add=["STARRED"], remove=["UNREAD"])
    pushed(runner, google)
    # Then its flags follow
    stored = listing(runner, token, account_id)["Renewal quote"]
    assert (stored["read"], stored["flagged"]) == (True, True)

    # When it is deleted for good in Gmail
    google.delete(USER, quote)
    pushed(runner, google)
    # Then it is marked deleted (gone from the listings)
    assert sorted(listing(runner, token, account_id)) == ["Kickoff", "Order confirmed"]
    status, email = call(runner, "GET", f"/emails/{stored['email_id']}", token)
    assert (status, email["deleted"]) == (200, True)

    # When the user revokes the app's access and mail keeps arriving
    google.revoke(USER)  # its refresh and access tokens die at once
    google.deliver(USER, rfc5322("While away", to=USER, message_id="<w1@customer.example>"))
    pushed(runner, google)
    # Then the account waits for its user
    state = status_of(runner, token, account_id)
    assert (state["stage"], state["reason"]) == ("failed", "reauth_required")
    cursor = next(f for f in state["folders"] if f["name"] == "[Gmail]/All Mail")

    # When the user reconnects
    assert connect(runner, token, account_id) == account_id
    runner.drain(timeout=120)
    # Then the sync resumed from the saved cursor (the same generation, no full resync)
    assert "While away" in listing(runner, token, account_id)
    state = status_of(runner, token, account_id)
    assert state["stage"] == "idle"
    again = next(f for f in state["folders"] if f["name"] == "[Gmail]/All Mail")
    assert again["uidvalidity"] == cursor["uidvalidity"]

    # When Gmail no longer has the saved history (and mail arrived meanwhile)
    google.deliver(USER, rfc5322("After the gap", to=USER, message_id="<g1@customer.example>"))
    google.truncate_history(USER)
    pushed(runner, google)
    # Then a full resync stored the new mail and duplicated nothing
    after = listing(runner, token, account_id)
    assert sorted(after) == ["After the gap", "Kickoff", "Order confirmed", "While away"]
    state = status_of(runner, token, account_id)
    assert state["stage"] == "idle"
    resynced = next(f for f in state["folders"] if f["name"] == "[Gmail]/All Mail")
    assert resynced["uidvalidity"] == cursor["uidvalidity"] + 1


def test_a_quota_storm_slows_the_sync_but_completes_it(runner: Runner, google: GoogleDouble) -> None:
    token = runner.token(tenant=TENANT, role="member", sub="grace-user")
    status, accounts = call(runner, "GET", "/accounts", token)
    assert status == 200
    [account_id] = [a["account_id"] for a in accounts["items"] if a["address"] == USER]
    before = len(listing(runner, token, account_id))

    # Given a Gmail that allows 40 units a minute (8 messages.get) and 20 new messages
    for i in range(20):
        google.deliver(USER, rfc5322(f"Storm {i}", to=USER, message_id=f"<s{i}@customer.example>"))
    google.quota.units_per_minute = 40
    rejected = google.quota.rejected
    # When Gmail pushes, and Gmail's minutes pass while the sync waits (a second of the test is
    # ten of the double's: no push is verified after this)
    google.advance(1)
    google.notify(google.gmail.mailbox(USER))
    google.pubsub.flush()
    stop = threading.Event()

    def minutes_pass() -> None:
        while not stop.wait(0.1):
            google.advance(1)

    ticker = threading.Thread(target=minutes_pass, daemon=True)
    ticker.start()
    try:
        # The runner is rarely quiet during a storm (records held back for Gmail's Retry-After
        # fall due again): a drain that times out only means the storm is not over yet. A drain
        # that settles while the sync sleeps out a Retry-After (its record in flight) is followed
        # by a pause, not by the next drain at once: a tight loop of drains and listings burnt
        # the CPU the sync needs.
        started = time.monotonic()
        settled = False
        while not settled and time.monotonic() - started < 420:
            try:
                runner.drain(timeout=60)
            except TimeoutError:
                continue
            settled = len(listing(runner, token, account_id)) >= before + 20
            if not settled:
                time.sleep(1)
    finally:
        stop.set()
        ticker.join()
        google.quota.units_per_minute = 15_000

    # Then Gmail refused calls on the way, and every message was stored once
    assert google.quota.rejected > rejected
    stored = listing(runner, token, account_id)
    assert len(stored) == before + 20
    assert status_of(runner, token, account_id)["stage"] == "idle"
