"""Graph subscriptions and `POST /webhooks/graph` on moto, with the Microsoft double sending real
validation requests, change and lifecycle notifications to the webhooks function (through a
loopback bridge that builds API Gateway events): subscriptions made on connect, a change queues a
sync, lifecycle events, renewal before expiry, forgeries refused, removal deletes them."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

import pytest

from local.microsoft.subscriptions import VALIDATION_TEXT
from mailbridge.config import get_settings
from mailbridge.queues import SyncQueue
from mailbridge.store.graph_subscriptions import GraphSubscriptionStore
from mailbridge.sync.messages import RenewWatches
from mailbridge.webhooks import graph_subscriptions
from mailbridge.webhooks.graph import client_state_digest
from tests.events import load_event
from tests.integration.graph_harness import TENANT, USER, GraphStack
from tests.integration.local_microsoft.conftest import rfc5322


def _store() -> GraphSubscriptionStore:
    return GraphSubscriptionStore(get_settings().tables.accounts)


def _queue() -> SyncQueue:
    return SyncQueue(get_settings().sync_queue_url)


def _deps(graph_stack: GraphStack) -> graph_subscriptions.SubscriptionDeps:
    """The subscription service on the double's clock (it moves when the test advances it)."""
    deps = graph_subscriptions.default_deps()
    deps.now = graph_stack.clock.now
    return deps


def _connected(graph_stack: GraphStack) -> str:
    account_id = graph_stack.connect()
    graph_stack.sync_messages()  # the connect's own sync request
    return account_id


def test_connecting_subscribes_inbox_and_sent_items_after_the_double_validated_our_url(
    graph_stack: GraphStack,
) -> None:
    # When a Microsoft mailbox is connected
    account_id = graph_stack.connect()

    # Then the double holds one subscription per synced folder, pointed at our webhook for both
    # notifications and lifecycle events, with a clientState
    subscriptions = graph_stack.ms.subscriptions_of(USER)
    folders = {s.folder_id for s in subscriptions}
    assert folders == {graph_stack.ms.folder_id(USER, "inbox"), graph_stack.ms.folder_id(USER, "sentitems")}
    assert {(s.notification_url, s.lifecycle_url) for s in subscriptions} == {
        (graph_stack.webhook_url, graph_stack.webhook_url)
    }
    (client_state,) = {s.client_state for s in subscriptions}
    assert client_state is not None
    assert len(client_state) >= 32
    # And the double's validation requests (two per subscription) reached the webhook and passed
    validations = [d for d in graph_stack.ms.deliveries() if d.kind == "validation"]
    assert [d.status for d in validations] == [200, 200, 200, 200]
    # And we keep each subscription's lookup with the clientState's digest only, and Graph's expiry
    known = _store().get_many(s.id for s in subscriptions)
    assert set(known) == {s.id for s in subscriptions}
    for subscription in subscriptions:
        record = known[subscription.id]
        assert (record.tenant_id, record.account_id) == (TENANT, account_id)
        assert record.client_state_hash == client_state_digest(client_state)
        assert record.expires_at == subscription.expiration
    stored = json.dumps(graph_stack.stack.table("AccountsTable").scan()["Items"], default=str)
    assert client_state not in stored


def test_mail_arriving_queues_one_push_sync_for_the_account(graph_stack: GraphStack) -> None:
    # Given a connected mailbox
    account_id = _connected(graph_stack)

    # When two messages arrive in the Inbox and the double delivers its notification batch
    graph_stack.ms.deliver(USER, rfc5322(subject="one"))
    graph_stack.ms.deliver(USER, rfc5322(subject="two"))
    deliveries = [d for d in graph_stack.ms.flush() if d.kind == "notification"]

    # Then every batch was acknowledged with 202 and each batch queued one push sync of the account
    assert deliveries
    assert {d.status for d in deliveries} == {202}
    queued = graph_stack.sync_messages()
    assert queued
    assert {(m["kind"], m["account_id"], m["reason"]) for m in queued} == {("sync", account_id, "push")}
    assert len(queued) == len(deliveries)


@pytest.mark.parametrize("forgery", ["wrong_client_state", "missing_client_state", "unknown_subscription"])
def test_forged_notifications_are_refused_and_queue_nothing(graph_stack: GraphStack, forgery: str) -> None:
    # Given a connected mailbox and a notification forged against one of its subscriptions
    _connected(graph_stack)
    subscription = graph_stack.ms.subscriptions_of(USER)[0]
    imitated = None if forgery == "unknown_subscription" else subscription.id
    forged = graph_stack.ms.forge_notification(imitated, forgery, url=graph_stack.webhook_url)

    # When it is posted to the webhook
    answer = graph_stack.post_webhook(forged.url, forged.body)

    # Then it is refused with 403 and nothing is queued
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forged_notification"
    assert graph_stack.sync_messages() == []


def test_a_forged_lifecycle_event_is_refused(graph_stack: GraphStack) -> None:
    # Given a lifecycle event with a wrong clientState
    _connected(graph_stack)
    subscription = graph_stack.ms.subscriptions_of(USER)[0]
    forged = graph_stack.ms.forge_notification(
        subscription.id,
        "wrong_client_state",
        url=graph_stack.webhook_url,
        lifecycle_event="subscriptionRemoved",
    )

    # When it is posted
    answer = graph_stack.post_webhook(forged.url, forged.body)

    # Then nothing is recreated or resynced
    assert answer.status_code == 403
    assert graph_stack.sync_messages() == []


def test_the_handshake_echoes_the_decoded_token_as_plain_text(graph_stack: GraphStack) -> None:
    # Given the validation request Graph sends (the token URL-encoded in the query)
    request, token = graph_stack.ms.validation_request(graph_stack.webhook_url)

    # When it reaches the webhook
    answer = graph_stack.post_webhook(request.url, b"", "text/plain; charset=utf-8")

    # Then the answer is 200 text/plain with the decoded token and nothing else
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == token
    assert token.startswith(VALIDATION_TEXT)


@pytest.mark.parametrize(
    "token",
    [
        quote(VALIDATION_TEXT + "0f0e", safe=""),  # still encoded after API Gateway decoded it once
        "Validation:\r\nSet-Cookie: x=1",
        "\x00",
        "A" * 513,
        "",
    ],
    ids=["encoded", "crlf", "nul", "oversized", "empty"],
)
def test_bad_validation_tokens_are_refused_with_400(graph_stack: GraphStack, token: str) -> None:
    # When a validation request carries a token Graph never sends
    answer = graph_stack.post_webhook(f"{graph_stack.webhook_url}?validationToken={quote(token, safe='')}")

    # Then it is refused with a code and the token is not echoed
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_validation_token"


def test_missed_queues_a_resync(graph_stack: GraphStack) -> None:
    # Given a connected mailbox whose Inbox subscription reports missed notifications
    account_id = _connected(graph_stack)
    subscription = graph_stack.ms.subscriptions_of(USER)[0]

    # When the double sends the `missed` lifecycle event
    graph_stack.ms.send_lifecycle(subscription.id, "missed")
    lifecycle = [d for d in graph_stack.ms.flush() if d.kind == "lifecycle"]

    # Then it was accepted and a resync of the account is queued
    assert [d.status for d in lifecycle] == [202]
    assert [(m["kind"], m["account_id"], m["reason"]) for m in graph_stack.sync_messages()] == [
        ("sync", account_id, "resync")
    ]


def test_subscription_removed_recreates_it_and_resyncs(graph_stack: GraphStack) -> None:
    # Given a connected mailbox whose Inbox subscription Graph removes
    account_id = _connected(graph_stack)
    inbox = graph_stack.ms.folder_id(USER, "inbox")
    removed = next(s for s in graph_stack.ms.subscriptions_of(USER) if s.folder_id == inbox)
    graph_stack.ms.send_lifecycle(removed.id, "subscriptionRemoved")
    graph_stack.ms.flush()

    # When the queued work runs (a recreate and a resync)
    queued = graph_stack.sync_messages()
    assert sorted((m["kind"], m.get("action"), m.get("reason")) for m in queued) == [
        ("renew_watches", "recreate", None),
        ("sync", None, "resync"),
    ]
    recreate = RenewWatches.model_validate(next(m for m in queued if m["kind"] == "renew_watches"))
    made = graph_subscriptions.handle_renewal(recreate, graph_stack.accounts, _queue(), _deps(graph_stack))

    # Then the Inbox has a new subscription (validated again; Sent Items' was renewed) and mail
    # there is pushed again
    assert made == 2
    again = [s for s in graph_stack.ms.subscriptions_of(USER) if s.folder_id == inbox]
    assert len(again) == 1
    assert again[0].id != removed.id
    assert removed.id not in _store().get_many([removed.id])
    graph_stack.ms.deliver(USER, rfc5322(subject="after"))
    graph_stack.ms.flush()
    assert [(m["account_id"], m["reason"]) for m in graph_stack.sync_messages()] == [(account_id, "push")]


def test_renewal_happens_before_expiry_by_the_expiry_graph_returned(graph_stack: GraphStack) -> None:
    # Given a connected mailbox whose subscriptions Graph keeps for its maximum lifetime
    account_id = _connected(graph_stack)
    before = {s.id: s.expiration for s in graph_stack.ms.subscriptions_of(USER)}
    deps = _deps(graph_stack)

    # When the hourly schedule runs while more than the margin remains
    nothing = graph_subscriptions.handle_renewal(
        RenewWatches(provider="graph"), graph_stack.accounts, _queue(), deps
    )
    # Then nothing is queued
    assert nothing == 0
    assert graph_stack.sync_messages() == []

    # When both clocks move to 23 hours before Graph's expiry and the schedule runs again
    soonest = min(before.values())
    graph_stack.ms.advance((soonest - graph_stack.clock.now() - timedelta(hours=23)).total_seconds())
    fanned = graph_subscriptions.handle_renewal(
        RenewWatches(provider="graph"), graph_stack.accounts, _queue(), deps
    )
    # (the double also sent reauthorizationRequired, its access token having expired: a forced renewal)
    queued = [m for m in graph_stack.sync_messages() if not m["force"]]
    assert fanned == 1
    assert [(m["kind"], m["provider"], m["account_id"]) for m in queued] == [
        ("renew_watches", "graph", account_id)
    ]
    renewed = graph_subscriptions.handle_renewal(
        RenewWatches.model_validate(queued[0]), graph_stack.accounts, _queue(), deps
    )

    # Then both subscriptions were PATCHed at the double, still alive, and we keep Graph's new expiry
    assert renewed == 2
    after = {s.id: s.expiration for s in graph_stack.ms.subscriptions_of(USER)}
    assert set(after) == set(before)
    assert all(after[i] > before[i] for i in before)
    known = _store().get_many(after)
    assert {i: r.expires_at for i, r in known.items()} == after


def test_reauthorization_required_queues_a_forced_renewal(graph_stack: GraphStack) -> None:
    # Given a connected mailbox
    account_id = _connected(graph_stack)
    subscription = graph_stack.ms.subscriptions_of(USER)[0]

    # When Graph sends reauthorizationRequired
    graph_stack.ms.send_lifecycle(subscription.id, "reauthorizationRequired")
    graph_stack.ms.flush()

    # Then a forced renewal of the account is queued
    assert [(m["kind"], m["account_id"], m["force"]) for m in graph_stack.sync_messages()] == [
        ("renew_watches", account_id, True)
    ]


def test_removing_the_account_deletes_its_subscriptions(graph_stack: GraphStack) -> None:
    # Given a connected mailbox with its two subscriptions
    account_id = _connected(graph_stack)
    ids = [s.id for s in graph_stack.ms.subscriptions_of(USER)]
    assert len(ids) == 2

    # When the account is removed through the API
    event = load_event("api/delete-account.json", tenant=TENANT, role="admin")
    sample = event["pathParameters"]["account_id"]
    event["pathParameters"]["account_id"] = account_id
    event["rawPath"] = event["rawPath"].replace(sample, account_id)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    removed = graph_stack.invoke("api", event)

    # Then the double has none left and our lookups are gone
    assert removed["statusCode"] == 200, removed
    assert graph_stack.ms.subscriptions_of(USER) == []
    assert _store().get_many(ids) == {}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b'{"value": []}', "application/json"),
        (b'{"value": [{}]}', "application/json"),
        (b'{"value": "x"}', "application/json"),
        (b"[" * 20000 + b"]" * 20000, "application/json"),
        (b'{"value": [{"subscriptionId": "../../x", "clientState": "a"}]}', "application/json"),
        (b'{"value": [{"subscriptionId": "abc", "clientState": 123}]}', "application/json"),
        (
            b'{"value": [{"subscriptionId": "abc", "clientState": "a", "lifecycleEvent": "nope"}]}',
            "application/json",
        ),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"\xff\xfe\x00garbage", "application/octet-stream"),
        (
            b'{"value": [' + b'{"subscriptionId": "abc", "clientState": "a"},' * 9000 + b"{}]}",
            "application/json",
        ),
    ],
    ids=[
        "empty",
        "null",
        "array",
        "no-items",
        "empty-item",
        "value-string",
        "deep-nesting",
        "path-like-id",
        "numeric-state",
        "unknown-lifecycle",
        "not-utf8",
        "binary",
        "oversized",
    ],
)
def test_no_body_gets_a_5xx_and_none_queues_anything(
    graph_stack: GraphStack, body: bytes, content_type: str
) -> None:
    # When anything at all is posted as a notification
    answer = graph_stack.post_webhook(graph_stack.webhook_url, body, content_type)

    # Then it is a 4xx with a code, and nothing is queued
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]["code"] in {"invalid_notification", "forged_notification"}
    assert graph_stack.sync_messages() == []


def test_an_account_whose_subscriptions_failed_on_connect_gets_them_from_the_schedule(
    graph_stack: GraphStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a mailbox connected while our webhook did not answer Graph's validation request
    monkeypatch.setenv("GRAPH_WEBHOOK_URL", "http://127.0.0.1:9/webhooks/graph")
    get_settings.cache_clear()
    account_id = _connected(graph_stack)
    assert graph_stack.ms.subscriptions_of(USER) == []
    monkeypatch.setenv("GRAPH_WEBHOOK_URL", graph_stack.webhook_url)
    get_settings.cache_clear()

    # When the hourly schedule runs, and then the renewal it queued
    fanned = graph_subscriptions.handle_renewal(
        RenewWatches(provider="graph"), graph_stack.accounts, _queue(), _deps(graph_stack)
    )
    (queued,) = graph_stack.sync_messages()
    made = graph_subscriptions.handle_renewal(
        RenewWatches.model_validate(queued), graph_stack.accounts, _queue(), _deps(graph_stack)
    )

    # Then the account has its two subscriptions after all
    assert fanned == 1
    assert queued["account_id"] == account_id
    assert made == 2
    assert len(graph_stack.ms.subscriptions_of(USER)) == 2
