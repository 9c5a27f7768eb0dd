"""POST /webhooks/gmail through the webhooks function on moto, with pushes signed (or forged) by
the Google double's Pub/Sub: a genuine push queues a sync of every account connected for the
mailbox; forged, replayed and malformed pushes queue nothing and never answer 5xx."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.google.pubsub import FORGERIES, PushRequest
from mailbridge.models.account import Account
from tests.emf import emitted
from tests.events import load_event
from tests.integration.gmail_harness import TOPIC, USER, GmailStack


def push_event(
    push: PushRequest | None = None, *, body: str | None = None, authorization: str | None = None
) -> dict[str, Any]:
    event = load_event("webhooks/gmail-push.json")
    headers = event["headers"]
    headers.pop("authorization", None)
    if push is not None:
        headers.update({k.lower(): v for k, v in push.headers.items()})
        event["body"] = push.body.decode()
    if authorization is not None:
        headers["authorization"] = authorization
    if body is not None:
        event["body"] = body
    return event


def forge(
    gmail_stack: GmailStack, forgery: str | None = None, *, address: str = USER, message_id: str | None = None
) -> PushRequest:
    return gmail_stack.google.pubsub.forge(TOPIC, address, "987654", forgery, message_id=message_id)


def deliver(gmail_stack: GmailStack, event: dict[str, Any]) -> dict[str, Any]:
    return gmail_stack.invoke("webhooks", event)


def code_of(response: dict[str, Any]) -> tuple[int, str, Any]:
    error = json.loads(response["body"])["error"]
    return response["statusCode"], error["code"], (error.get("details") or {}).get("reason")


@pytest.fixture
def connected(gmail_stack: GmailStack) -> str:
    return gmail_stack.add_account()


def test_a_genuine_push_queues_a_sync_of_the_mailbox(gmail_stack: GmailStack) -> None:
    # Given a mailbox connected through the OAuth flow
    connected = gmail_stack.connect()
    gmail_stack.sync_messages()  # the connect's own sync

    # When Pub/Sub pushes a notification for the mailbox
    response = deliver(gmail_stack, push_event(forge(gmail_stack)))

    # Then it is acknowledged at once and a push sync of the account is queued
    assert response["statusCode"] == 204, response
    assert [(m["kind"], m["account_id"], m["reason"]) for m in gmail_stack.sync_messages()] == [
        ("sync", connected, "push")
    ]


def test_a_replayed_message_id_queues_nothing_more(gmail_stack: GmailStack, connected: str) -> None:
    # Given a push that was handled
    push = forge(gmail_stack, message_id="4242")
    assert deliver(gmail_stack, push_event(push))["statusCode"] == 204
    assert len(gmail_stack.sync_messages()) == 1

    # When the same message is delivered again (Pub/Sub redelivery, or a replay of the request)
    again = deliver(gmail_stack, push_event(push))
    resent = deliver(gmail_stack, push_event(forge(gmail_stack, message_id="4242")))

    # Then both are acknowledged and nothing more is queued
    assert (again["statusCode"], resent["statusCode"]) == (204, 204)
    assert gmail_stack.sync_messages() == []


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_push_is_refused_and_queues_nothing(
    gmail_stack: GmailStack, connected: str, forgery: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # When a push arrives whose token is not Pub/Sub's for us
    response = deliver(gmail_stack, push_event(forge(gmail_stack, forgery)))

    # Then it is refused with a reason, and nothing is queued or recorded as seen
    expected = {
        "bad_signature": "bad_signature",
        "unknown_kid": "bad_signature",
        "wrong_audience": "wrong_audience",
        "wrong_email": "wrong_email",
        "expired": "expired",
        "unverified_email": "email_unverified",
        "wrong_issuer": "wrong_issuer",
    }[forgery]
    assert code_of(response) == (401, "invalid_token", expected)
    assert gmail_stack.sync_messages() == []
    # And the WebhookRejected metric the alarm reads counts it by the check that failed
    rejected = emitted(capsys.readouterr().out, "WebhookRejected")
    assert [(r["value"], r["dimensions"]["provider"], r["dimensions"]["reason"]) for r in rejected] == [
        (1, "gmail", expected)
    ]


def test_a_forged_push_does_not_spend_the_genuine_message_id(gmail_stack: GmailStack, connected: str) -> None:
    # Given a forger who saw a message id first
    forged = deliver(gmail_stack, push_event(forge(gmail_stack, "bad_signature", message_id="77")))
    # When the genuine push with that id arrives
    genuine = deliver(gmail_stack, push_event(forge(gmail_stack, message_id="77")))
    # Then it is still handled
    assert (forged["statusCode"], genuine["statusCode"]) == (401, 204)
    assert len(gmail_stack.sync_messages()) == 1


@pytest.mark.parametrize(
    "authorization", ["", "Basic abc", "Bearer", "Bearer not.a.jwt", "Bearer " + "e" * 5000]
)
def test_a_push_without_a_usable_token_is_refused(
    gmail_stack: GmailStack, connected: str, authorization: str
) -> None:
    # Given a genuine body without the header, or with something that is no OIDC token
    event = push_event(forge(gmail_stack), authorization=authorization)
    if not authorization:
        del event["headers"]["authorization"]
    # When it is delivered
    status, code, _ = code_of(deliver(gmail_stack, event))
    # Then 401 and nothing queued
    assert (status, code) == (
        401,
        "missing_token" if authorization in ("", "Basic abc", "Bearer") else "invalid_token",
    )
    assert gmail_stack.sync_messages() == []


def _body(data: Any) -> str:
    encoded = base64.b64encode(json.dumps(data).encode()).decode() if not isinstance(data, str) else data
    return json.dumps({"message": {"data": encoded, "messageId": "1"}, "subscription": "s"})


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[" * 50_000,
        json.dumps({"message": {}}),
        _body("%%% not base64 %%%"),
        _body({"historyId": "1"}),
        _body({"emailAddress": "not an address", "historyId": "1"}),
        _body({"emailAddress": USER, "historyId": "1e9"}),
        _body([1, 2]),
        "x" * 70_000,
    ],
)
def test_a_signed_push_with_a_bad_body_is_400_never_5xx(
    gmail_stack: GmailStack, connected: str, body: str
) -> None:
    # Given a valid token on a body that is not a Gmail notification
    event = push_event(forge(gmail_stack), body=body)
    # When it is delivered
    response = deliver(gmail_stack, event)
    # Then 400 invalid_push and nothing queued
    assert code_of(response)[:2] == (400, "invalid_push")
    assert gmail_stack.sync_messages() == []


def test_a_push_for_a_mailbox_nobody_connected_is_acknowledged_and_ignored(
    gmail_stack: GmailStack, connected: str
) -> None:
    response = deliver(gmail_stack, push_event(forge(gmail_stack, address="stranger@example.com")))
    assert response["statusCode"] == 204
    assert gmail_stack.sync_messages() == []


def test_a_mailbox_connected_in_two_tenants_syncs_in_both(gmail_stack: GmailStack, connected: str) -> None:
    # Given the same mailbox connected by another tenant too (the push lookup is cross-tenant)
    other = gmail_stack.account(connected).model_copy(
        update={"tenant_id": "globex", "account_id": "acc_" + "1" * 20}
    )
    envelope = gmail_stack.account_item(connected)["credentials"]
    from mailbridge.crypto import Envelope

    gmail_stack.accounts.create_account(
        Account.model_validate(other.model_dump()), Envelope.model_validate(envelope)
    )

    # When a push arrives
    assert deliver(gmail_stack, push_event(forge(gmail_stack)))["statusCode"] == 204

    # Then each tenant's account gets its own sync
    queued = sorted((m["tenant_id"], m["account_id"]) for m in gmail_stack.sync_messages())
    assert queued == [("acme", connected), ("globex", "acc_" + "1" * 20)]


def test_a_push_whose_sync_could_not_be_queued_is_handled_when_pubsub_retries(
    gmail_stack: GmailStack, connected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given SQS refusing the first send
    from mailbridge.errors import QueueSendError
    from mailbridge.queues import SyncQueue

    send_many = SyncQueue.send_many
    refusals = [QueueSendError("1 sync message(s) not queued: ['ServiceUnavailable']")]

    def flaky(queue: SyncQueue, *args: Any, **kwargs: Any) -> None:
        if refusals:
            raise refusals.pop()
        send_many(queue, *args, **kwargs)

    monkeypatch.setattr(SyncQueue, "send_many", flaky)
    push = forge(gmail_stack, message_id="5150")

    # When Pub/Sub delivers a push, is answered 503, and delivers the same message again
    first = deliver(gmail_stack, push_event(push))
    retry = deliver(gmail_stack, push_event(push))

    # Then the retry is not taken for a duplicate: it queues the sync
    assert code_of(first)[:2] == (503, "queue_send_failed")
    assert retry["statusCode"] == 204, retry
    assert [(m["account_id"], m["reason"]) for m in gmail_stack.sync_messages()] == [(connected, "push")]
