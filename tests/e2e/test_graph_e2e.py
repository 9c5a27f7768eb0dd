"""Microsoft 365 through the local runner with the Microsoft double, as `make run` wires them:
connect by the OAuth redirect chain (msal in the oauth function, the double over HTTPS with its
own CA), subscriptions validated against the runner's /webhooks/graph, then change and lifecycle
notifications queue work and forgeries are refused.

(The Graph sync itself is another part of issue 12; here the queued work is counted, not run.)
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from local.runner import Runner
from tests.e2e.conftest import ROOT, call
from tests.integration.local_microsoft.conftest import rfc5322

USER = "ada@contoso.example"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def get(url: str, ca_file: str | None) -> tuple[int, dict[str, str], bytes]:
    """One GET without following redirects (a browser's hop), trusting the double's CA."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=60) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def ms() -> Iterator[MicrosoftDouble]:
    with MicrosoftDouble(clock=ManualClock(datetime.now(UTC).replace(microsecond=0)), seed=23) as double:
        double.add_user(USER, "Ada Lovelace")
        yield double


@pytest.fixture(scope="module")
def graph_runner(ms: MicrosoftDouble) -> Iterator[Runner]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    # Started as `make run` starts it (warm): Graph waits 10 s for the validation answer, and the
    # runner sends one request through /webhooks/graph at start (a deployed webhook is kept warm
    # by the notifications it answers).
    with Runner(templates=[ROOT / "template.yaml"], port=0, clock=clock, microsoft=ms, warm=True) as runner:
        waited = 0.0
        while not runner.warmed and waited < 180:
            time.sleep(0.5)
            waited += 0.5
        yield runner


def test_a_warm_start_sends_a_request_through_the_graph_webhook(graph_runner: Runner) -> None:
    # Given the runner started warm, as `make run` starts it (the fixture)
    # When nothing has been asked of it yet
    # Then /webhooks/graph has answered one request already: the body-less batch, refused
    assert graph_runner.warmed == {"POST /webhooks/graph": 400}


def waiting(runner: Runner) -> list[dict[str, Any]]:
    """The messages waiting on the SyncQueue (received and deleted)."""
    sqs = runner.boto3_client("sqs")
    url = runner.queue_url("SyncQueue")
    out: list[dict[str, Any]] = []
    while True:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not received:
            return out
        for message in received:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_connect_subscribe_push_lifecycle_and_forgeries(graph_runner: Runner, ms: MicrosoftDouble) -> None:
    token = graph_runner.token(tenant="acme", role="member", sub="ada-user")

    # Given a member who asks the runner for the consent URL
    status, started = call(graph_runner, "GET", f"/oauth/graph/start?login_hint={USER}", token)
    assert status == 200, started
    url = started["authorization_url"]
    assert url.startswith(ms.authorize_url())

    # When the browser opens it: the double consents and redirects to the runner's callback
    status, headers, _ = get(url, ms.ca_file)
    assert status == 302
    callback = headers["Location"]
    assert urlsplit(callback).netloc == urlsplit(graph_runner.url).netloc
    status, _, body = get(callback, None)

    # Then the mailbox is connected
    assert status == 200, body
    outcome = json.loads(body)
    assert outcome["outcome"] == "connected", outcome
    account_id = outcome["account_id"]
    status, listed = call(graph_runner, "GET", "/accounts", token)
    assert [(a["account_id"], a["provider"], a["address"]) for a in listed["items"]] == [
        (account_id, "graph", USER)
    ]
    # And Inbox and Sent Items are subscribed, after the double's validation requests reached the
    # runner's /webhooks/graph and were answered
    subscriptions = ms.subscriptions_of(USER)
    assert {s.folder_id for s in subscriptions} == {
        ms.folder_id(USER, "inbox"),
        ms.folder_id(USER, "sentitems"),
    }
    assert {s.notification_url for s in subscriptions} == {graph_runner.url + "/webhooks/graph"}
    assert [d.status for d in ms.deliveries() if d.kind == "validation"] == [200] * 4
    assert [(m["kind"], m["reason"]) for m in waiting(graph_runner)] == [("sync", "connected")]

    # When mail arrives in the Inbox
    ms.deliver(USER, rfc5322(subject="A new quote"))
    notified = [d for d in ms.flush() if d.kind == "notification"]

    # Then the notification was acknowledged with 202 and a push sync of the account is queued
    assert [d.status for d in notified] == [202]
    assert [(m["kind"], m["account_id"], m["reason"]) for m in waiting(graph_runner)] == [
        ("sync", account_id, "push")
    ]

    # When Graph reports missed notifications, then removes the Inbox subscription
    inbox = next(s for s in subscriptions if s.folder_id == ms.folder_id(USER, "inbox"))
    ms.send_lifecycle(inbox.id, "missed")
    ms.flush()
    missed = waiting(graph_runner)
    ms.send_lifecycle(inbox.id, "subscriptionRemoved")
    ms.flush()
    removed = waiting(graph_runner)

    # Then a resync is queued, then a recreate and a resync
    assert [(m["kind"], m["reason"]) for m in missed] == [("sync", "resync")]
    assert sorted((m["kind"], m.get("action", "")) for m in removed) == [
        ("renew_watches", "recreate"),
        ("sync", ""),
    ]
    assert [d.status for d in ms.deliveries() if d.kind == "lifecycle"] == [202, 202]

    # When notifications forged against the Sent Items subscription arrive
    sent = next(s for s in subscriptions if s.folder_id == ms.folder_id(USER, "sentitems"))
    answers = [
        post(forged.url, forged.body)
        for forged in (
            ms.forge_notification(sent.id, "wrong_client_state"),
            ms.forge_notification(sent.id, "missing_client_state"),
            ms.forge_notification(None, "unknown_subscription", url=sent.notification_url),
        )
    ]

    # Then each is refused and nothing is queued
    assert [(status, body["error"]["code"]) for status, body in answers] == [(403, "forged_notification")] * 3
    assert waiting(graph_runner) == []


BOB = "bob@contoso.example"
CUSTOMER = "carol@customer.example"


def test_the_graph_walk_connect_sync_push_reply_and_verdicts(
    graph_runner: Runner, ms: MicrosoftDouble
) -> None:
    # (Runs on the module's runner, so before the test below starts a runner of its own: moto's
    # state is per process, and a new runner starts it afresh.)
    runner = graph_runner
    token = runner.token(tenant="globex", role="member", sub="bob-user")
    # Given a Microsoft 365 mailbox holding one message from a customer
    ms.add_user(BOB, "Bob Builder")
    ms.deliver(BOB, rfc5322(subject="Renewal quote", to=BOB, message_id="<quote-1@customer.example>"))

    # When its owner connects it by the OAuth redirect chain, and the runner drains its queues
    status, started = call(runner, "GET", f"/oauth/graph/start?login_hint={BOB}", token)
    assert status == 200, started
    _, headers, _ = get(started["authorization_url"], ms.ca_file)
    status, _, body = get(headers["Location"], None)
    assert status == 200, body
    account_id = json.loads(body)["account_id"]
    runner.drain()

    # Then the initial delta sync stored the message
    def subjects() -> list[str]:
        status, listed = call(runner, "GET", f"/emails?account_id={account_id}&limit=50", token)
        assert status == 200, listed
        return sorted(str(e["subject"]) for e in listed["items"])

    assert subjects() == ["Renewal quote"]

    # When new mail arrives: Graph notifies the runner's /webhooks/graph, and the queue drains
    ms.deliver(BOB, rfc5322(subject="Signed order", to=BOB, message_id="<order-1@customer.example>"))
    bobs = {s.id for s in ms.subscriptions_of(BOB)}
    notified = [
        d.status
        for d in ms.flush()
        if d.kind == "notification" and {i["subscriptionId"] for i in (d.body or {}).get("value", [])} <= bobs
    ]
    assert notified == [202]
    runner.drain()

    # Then the pushed message is stored too
    assert subjects() == ["Renewal quote", "Signed order"]

    # When the owner replies to the first message from the Microsoft account
    status, listed = call(runner, "GET", f"/emails?account_id={account_id}&limit=50", token)
    quote = next(e for e in listed["items"] if e["subject"] == "Renewal quote")
    reply = {
        "account_id": account_id,
        "to": [{"address": CUSTOMER}],
        "subject": "Re: Renewal quote",
        "text": "The quote is 42,000 EUR.",
        "reply_to_email_id": quote["email_id"],
    }
    status, accepted = call(runner, "POST", "/emails/send", token, reply)
    assert status == 202, accepted
    runner.drain()
    ms.flush()
    runner.drain()

    # Then Graph sent it once, in reply to the customer's message, and it lands in Sent Items
    sent = ms.sent(BOB)
    assert len(sent) == 1
    sent_items = ms.folder_contents(BOB, "sentitems")
    assert [m.internet_message_id for m in sent_items] == [sent[0].internet_message_id]
    assert b"<quote-1@customer.example>" in sent_items[0].raw

    # When the owner asks for a reconcile, and it runs
    status, _ = call(runner, "POST", f"/accounts/{account_id}/reconcile", token)
    assert status == 202
    runner.drain()

    # Then each synced folder's status shows the server and stored counts agreeing, and healthy
    status, health = call(runner, "GET", f"/accounts/{account_id}/status", token)
    assert status == 200, health
    verdicts = {f["name"]: (f["server_count"], f["stored_count"], f["verdict"]) for f in health["folders"]}
    assert verdicts == {"inbox": (2, 2, "healthy"), "sentitems": (1, 1, "healthy")}, verdicts


@pytest.fixture(scope="module")
def short_lived() -> Iterator[MicrosoftDouble]:
    """A Graph that keeps subscriptions 10 hours at most (it clamps what is asked for)."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with MicrosoftDouble(clock=clock, seed=29, subscription_max_minutes=600) as double:
        double.add_user(USER, "Ada Lovelace")
        yield double


def test_the_schedule_renews_subscriptions_before_the_expiry_graph_returned(
    short_lived: MicrosoftDouble,
) -> None:
    ms = short_lived
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with Runner(templates=[ROOT / "template.yaml"], port=0, clock=clock, microsoft=ms) as runner:
        assert post(runner.url + "/webhooks/graph", b"{}")[0] == 400
        token = runner.token(tenant="acme", role="member", sub="ada-user")
        # Given a mailbox connected to a Graph that kept its subscriptions 10 hours, not the 4,230
        # minutes asked for
        status, started = call(runner, "GET", f"/oauth/graph/start?login_hint={USER}", token)
        assert status == 200, started
        _, headers, _ = get(started["authorization_url"], ms.ca_file)
        status, _, body = get(headers["Location"], None)
        assert json.loads(body)["outcome"] == "connected", body
        first = {s.id: s.expiration for s in ms.subscriptions_of(USER)}
        assert len(first) == 2
        assert all(e - ms.now() <= timedelta(hours=10) for e in first.values())

        runner.drain()  # the connect's sync runs; the pump sees the schedules (first run in an hour)

        # When an hour passes for Graph and for the runner, whose hourly schedule then runs
        ms.advance(3600)
        runner.advance(3600)
        runner.drain()

        # Then both subscriptions were renewed (PATCHed) before they expired: same ids, later expiry
        renewed = {s.id: s.expiration for s in ms.subscriptions_of(USER)}
        assert set(renewed) == set(first)
        assert all(renewed[i] > first[i] for i in first)
