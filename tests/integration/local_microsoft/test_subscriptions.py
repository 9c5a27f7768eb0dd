"""Subscriptions on the double: the validation handshake, notifications, retries, lifecycle, forgeries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.integration.local_microsoft.conftest import USER, Receiver, refresh, rfc5322


def _request(receiver: Receiver, ms, minutes: int = 60, lifecycle: bool = True, **extra) -> dict[str, Any]:
    expiration = ms.now() + timedelta(minutes=minutes)
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url + "?tenant=t1",
        "resource": "/me/mailfolders('inbox')/messages",
        "expirationDateTime": expiration.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "clientState": "per-account-secret",
    }
    if lifecycle:
        body["lifecycleNotificationUrl"] = receiver.lifecycle_url
    return body | extra


def _expiration(subscription: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(subscription["expirationDateTime"][:26]).replace(tzinfo=UTC)


def test_creation_validates_both_urls_with_a_decoded_token_and_clamps_the_expiration(ms, graph, receiver):
    # Given a receiver that echoes the decoded validation token as text/plain
    # When a subscription asks for ten days
    response = graph.post("/subscriptions", _request(receiver, ms, minutes=10 * 24 * 60))

    # Then Graph POSTed a validation to both URLs (query kept), and created it with at most 4,230 minutes
    assert response.status_code == 201, response.text
    body = response.json()
    assert [v.path for v in receiver.validations] == ["/webhooks/graph", "/webhooks/graph/lifecycle"]
    first = receiver.validations[0]
    assert first.query["tenant"] == "t1"
    assert first.query["validationToken"].startswith("Validation: Testing client application reachability")
    assert first.headers["content-type"].startswith("text/plain")
    assert first.body == b""
    assert _expiration(body) <= ms.now() + timedelta(minutes=4230)
    assert body["clientState"] == "per-account-secret"
    assert body["applicationId"] == ms.subscriptions_of(USER)[0].app_id
    assert graph.get(f"/subscriptions/{body['id']}").status_code == 200


def test_a_receiver_that_does_not_echo_the_token_gets_no_subscription(ms, graph, receiver):
    # Given receivers that echo the still-encoded token, echo nothing, or fail
    results = []
    for mode in ("encoded", "ignore", 500):
        receiver.validation = mode

        # When a subscription is created
        results.append(graph.post("/subscriptions", _request(receiver, ms)))

    # Then each is a 400 ValidationError and no subscription exists
    assert [r.status_code for r in results] == [400, 400, 400]
    assert {r.json()["error"]["code"] for r in results} == {"ValidationError"}
    assert "must exactly match validationToken" in results[0].json()["error"]["message"]
    assert ms.subscriptions_of(USER) == []


def test_a_bad_lifecycle_url_also_fails_the_creation(ms, graph, receiver):
    # Given a lifecycle URL where nothing listens
    body = _request(receiver, ms) | {"lifecycleNotificationUrl": "http://127.0.0.1:9/nothing"}

    # When the subscription is created
    response = graph.post("/subscriptions", body)

    # Then it fails (timed out / unreachable) and nothing was created
    assert response.status_code == 400
    assert ms.subscriptions_of(USER) == []


def test_new_mail_and_changes_reach_the_receiver_in_the_documented_batched_shape(ms, graph, receiver):
    # Given a subscription on the Inbox
    subscription = graph.post("/subscriptions", _request(receiver, ms)).json()

    # When mail arrives, is read, and is moved out
    message = ms.deliver(USER, rfc5322())
    first_id = message.rest_id
    ms.mark_read(USER, first_id)
    ms.move(USER, first_id, "archive")
    ms.flush()

    # Then the receiver got created, updated, deleted for the message, with clientState and tenantId
    items = receiver.items()
    assert [i["changeType"] for i in items] == ["created", "updated", "deleted"]
    user = ms.identity.users[USER]
    for item in items:
        assert item["subscriptionId"] == subscription["id"]
        assert item["clientState"] == "per-account-secret"
        assert item["tenantId"] == user.tid
        assert item["resource"] == f"Users/{user.oid}/Messages/{first_id}"
        assert item["resourceData"]["id"] == first_id
        assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Message"
    assert all(n.query["tenant"] == "t1" for n in receiver.notifications if n.path == "/webhooks/graph")


def test_notifications_are_retried_with_backoff_until_acknowledged(ms, graph, receiver):
    # Given a subscription and a receiver that fails twice
    graph.post("/subscriptions", _request(receiver, ms, lifecycle=False))
    receiver.statuses = [503, 500]

    # When mail arrives and the clock moves through the backoff
    ms.deliver(USER, rfc5322())
    ms.flush()
    ms.advance(10)
    ms.flush()
    early = len(receiver.notifications)
    ms.advance(19)
    ms.flush()
    still_two = len(receiver.notifications)
    ms.advance(1)
    ms.flush()

    # Then the same notification was POSTed three times, and the third (202) acknowledged it
    assert (early, still_two) == (2, 2)
    assert len(receiver.notifications) == 3
    bodies = [n.json()["value"][0]["id"] for n in receiver.notifications]
    assert len(set(bodies)) == 1
    attempts = [(d.attempt, d.status) for d in ms.deliveries() if d.kind == "notification"]
    assert attempts == [(1, 503), (2, 500), (3, 202)]
    assert ms.subscriptions.pending() == 0


def test_renew_delete_and_expiry(ms, http, app, graph, tokens, receiver):
    # Given a subscription for one hour
    subscription = graph.post("/subscriptions", _request(receiver, ms, minutes=60)).json()

    # When it is renewed to two days, then the clock passes its end (the app refreshes its token)
    renewed = graph.patch(
        f"/subscriptions/{subscription['id']}",
        {"expirationDateTime": (ms.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
    ms.advance(2 * 24 * 3600 + 1)
    graph.token = refresh(http, ms, app, tokens["refresh_token"]).json()["access_token"]
    after = graph.get(f"/subscriptions/{subscription['id']}")

    # Then the renewal answered the new expiration, and after it the subscription is gone (404)
    assert renewed.status_code == 200
    assert _expiration(renewed.json()) > _expiration(subscription)
    assert after.status_code == 404

    # Given another one, when it is deleted, it answers 204 and is gone
    other = graph.post("/subscriptions", _request(receiver, ms)).json()
    assert graph.delete(f"/subscriptions/{other['id']}").status_code == 204
    assert graph.get(f"/subscriptions/{other['id']}").status_code == 404


def test_reauthorization_required_comes_before_expiry_until_reauthorized(
    ms, http, app, graph, tokens, receiver
):
    # Given a subscription for two days, made with an access token that lives 60-90 minutes
    subscription = graph.post("/subscriptions", _request(receiver, ms, minutes=2 * 24 * 60)).json()
    ms.flush()
    assert receiver.items(lifecycle=True) == []

    # When the clock moves to ten minutes before that token expires
    ms.advance(tokens["expires_in"] - 600)
    ms.flush()

    # Then a reauthorizationRequired lifecycle event arrived at the lifecycle URL
    events = receiver.items(lifecycle=True)
    assert [e["lifecycleEvent"] for e in events] == ["reauthorizationRequired"]
    assert events[0]["subscriptionId"] == subscription["id"]
    assert events[0]["clientState"] == "per-account-secret"

    # When the app reauthorizes with a fresh token, no more events come for a while
    graph.token = refresh(http, ms, app, tokens["refresh_token"]).json()["access_token"]
    assert graph.post(f"/subscriptions/{subscription['id']}/reauthorize").status_code == 204
    ms.advance(30 * 60)
    ms.flush()
    assert len(receiver.items(lifecycle=True)) == 1

    # When nobody answers the next challenges, they repeat every 15 minutes
    ms.advance(60 * 60)
    ms.flush()
    ms.advance(15 * 60)
    ms.flush()
    assert [e["lifecycleEvent"] for e in receiver.items(lifecycle=True)] == ["reauthorizationRequired"] * 3


def test_subscription_removed_and_missed_lifecycle_events(ms, graph, receiver):
    # Given a subscription
    subscription = graph.post("/subscriptions", _request(receiver, ms)).json()

    # When Graph reports missed notifications, then removes the subscription
    ms.send_lifecycle(subscription["id"], "missed")
    ms.send_lifecycle(subscription["id"], "subscriptionRemoved")
    ms.flush()

    # Then both events arrived in the stored shape and the subscription is gone
    assert [e["lifecycleEvent"] for e in receiver.items(lifecycle=True)] == ["missed", "subscriptionRemoved"]
    assert graph.get(f"/subscriptions/{subscription['id']}").status_code == 404


def test_a_dropped_notification_never_arrives(ms, graph, receiver):
    # Given a subscription and a push that will be lost
    graph.post("/subscriptions", _request(receiver, ms, lifecycle=False))
    ms.drop_notifications(1)

    # When two messages arrive
    ms.deliver(USER, rfc5322(subject="lost"))
    ms.deliver(USER, rfc5322(subject="kept"))
    ms.flush()

    # Then only the second one was notified
    assert len(receiver.items()) == 1


def test_forged_notifications_are_distinguishable_from_real_ones(ms, graph, receiver):
    # Given a real subscription and a real notification
    subscription = ms.subscription(graph.post("/subscriptions", _request(receiver, ms)).json()["id"])
    ms.deliver(USER, rfc5322())
    ms.flush()
    real = receiver.items()[0]

    # When forgeries are minted
    wrong_state = ms.forge_notification(subscription.id, "wrong_client_state").json()["value"][0]
    unknown = ms.forge_notification(None, "unknown_subscription", url=receiver.url).json()["value"][0]
    lifecycle = ms.forge_notification(subscription.id, "wrong_client_state", lifecycle_event="missed")

    # Then each has the real shape but fails the check a webhook makes
    assert set(wrong_state) == set(real)
    assert wrong_state["subscriptionId"] == real["subscriptionId"]
    assert wrong_state["clientState"] != subscription.client_state == real["clientState"]
    assert unknown["subscriptionId"] not in {s.id for s in ms.subscriptions_of(USER)}
    assert lifecycle.url == subscription.notification_url
    assert lifecycle.json()["value"][0]["lifecycleEvent"] == "missed"
    # and a forged request can be POSTed as is
    posted = httpx.post(receiver.url, content=json.dumps({"value": [wrong_state]}), headers=lifecycle.headers)
    assert posted.status_code == 202


def test_validation_requests_carry_a_token_that_needs_decoding(ms, receiver):
    # Given the validation request Graph would send
    request, token = ms.validation_request(receiver.url)

    # When it is sent to the receiver
    response = httpx.post(request.url, content=request.body, headers=request.headers)

    # Then the query holds the token URL-encoded, and the right answer is the decoded token
    assert "validationToken=Validation%3A%20Testing" in request.url
    assert response.text == token
    assert response.headers["content-type"].startswith("text/plain")


def test_subscription_request_errors(ms, graph, receiver):
    # Given requests with a bad changeType, a past expiration, an https-less public URL and an unknown folder
    bad = [
        _request(receiver, ms) | {"changeType": "created,exploded"},
        _request(receiver, ms) | {"expirationDateTime": "2000-01-01T00:00:00Z"},
        _request(receiver, ms) | {"notificationUrl": "http://hooks.example.com/graph"},
        _request(receiver, ms) | {"resource": "/me/mailfolders('nope')/messages"},
    ]

    # When they are posted
    statuses = [graph.post("/subscriptions", body).status_code for body in bad]

    # Then each is refused without a validation request
    assert statuses == [400, 400, 400, 404]
    assert receiver.validations == []


def test_unanswered_reauthorization_pauses_delivery_and_changes_made_meanwhile_are_lost(
    ms, graph, tokens, receiver
):
    # Given a subscription whose token expired over an hour ago without a reauthorization
    subscription = graph.post("/subscriptions", _request(receiver, ms, minutes=2 * 24 * 60)).json()
    ms.advance(tokens["expires_in"] + 3600)

    # When mail arrives
    ms.deliver(USER, rfc5322(subject="while paused"))
    ms.flush()

    # Then no change notification was delivered (only reauthorization challenges)
    assert receiver.items() == []
    assert {e["lifecycleEvent"] for e in receiver.items(lifecycle=True)} == {"reauthorizationRequired"}
    assert ms.subscription(subscription["id"]).paused is True


def test_notifications_failing_for_four_hours_are_dropped_and_a_missed_event_follows(ms, graph, receiver):
    # Given a subscription whose notification URL keeps failing (its lifecycle URL works)
    graph.post("/subscriptions", _request(receiver, ms, minutes=2 * 24 * 60))
    receiver.statuses = [503] * 1000
    ms.deliver(USER, rfc5322())

    # When four hours of retries pass
    ms.flush()
    for _ in range(4 * 6 + 2):
        ms.advance(600)
        ms.flush()

    # Then the notification was retried, then dropped, and a `missed` lifecycle event was sent
    attempts = [d for d in ms.deliveries() if d.kind == "notification"]
    assert len(attempts) > 5
    assert ms.subscriptions.pending() == 0
    assert "missed" in [e["lifecycleEvent"] for e in receiver.items(lifecycle=True)]


def test_two_prefer_headers_are_both_honoured(ms, graph):
    # Given three messages
    for i in range(3):
        ms.deliver(USER, rfc5322(subject=f"m{i}"))

    # When delta is asked with the page size and the id type in two separate Prefer headers
    response = graph.http.get(
        graph.base + "/me/mailFolders/inbox/messages/delta",
        headers=[
            ("Authorization", f"Bearer {graph.token}"),
            ("Prefer", "odata.maxpagesize=2"),
            ("Prefer", 'IdType="ImmutableId"'),
        ],
    )

    # Then both applied: two items, with immutable ids
    body = response.json()
    assert len(body["value"]) == 2
    immutable = {m.immutable_id for m in ms.folder_contents(USER, "inbox")}
    assert {item["id"] for item in body["value"]} <= immutable
    assert response.headers["preference-applied"] == 'odata.maxpagesize=2, IdType="ImmutableId"'
