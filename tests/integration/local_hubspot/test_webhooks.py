"""Webhooks from the HubSpot double: v3 signatures (the shared vectors), batching, retries, forgeries."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

import pytest

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from local.hubspot.webhooks import signature_v1, signature_v2, signature_v3
from tests.integration.local_hubspot.conftest import DATA, Api, Receiver

WINDOW_MS = 5 * 60 * 1000


def verify(secret: str, url: str, headers: dict[str, str], body: bytes, now_ms: int) -> bool:
    """What a receiver does: the 5-minute window, then a constant-time compare of the v3 signature."""
    stamp = headers.get("x-hubspot-request-timestamp", "")
    given = headers.get("x-hubspot-signature-v3", "")
    if not stamp.isdigit() or now_ms - int(stamp) > WINDOW_MS or not given:
        return False
    return hmac.compare_digest(signature_v3(secret, "POST", url, body, stamp), given)


def test_signatures_pass_the_shared_test_vectors():
    # Given HubSpot's SDK test vectors
    vectors = json.loads(Path(DATA, "signature_test_vectors.json").read_text())
    secret, body = vectors["client_secret"], vectors["request_body"].encode()
    # Then v1, v2 (POST and GET with no body) and v3 come out as HubSpot computes them
    assert signature_v1(secret, body) == vectors["v1"]["signature"]
    assert signature_v2(secret, "POST", vectors["url"], body) == vectors["v2"]["signature"]
    assert signature_v2(secret, "GET", vectors["url"], b"") == vectors["v2_GET_empty_body"]["signature"]
    v3 = signature_v3(secret, vectors["http_method"], vectors["url"], body, vectors["timestamp"])
    assert v3 == vectors["v3"]["signature"]


def test_contact_changes_arrive_signed_and_batched(
    hubspot: HubSpotDouble, app: App, api: Api, receiver: Receiver, clock: ManualClock
):
    # Given subscriptions to creations and email changes
    hubspot.set_webhook_target(receiver.url)
    created_sub = hubspot.subscribe("contact.creation")
    email_sub = hubspot.subscribe("contact.propertyChange", "email")
    # When the app creates a contact through the API and a user changes its email
    contact = api.post("/crm/v3/objects/contacts", {"properties": {"email": "ada@example.com"}}).json()["id"]
    hubspot.flush()
    hubspot.update("contacts", contact, email="ada@lovelace.example")
    deliveries = hubspot.flush()
    # Then each POST carries a JSON array of events with HubSpot's fields, signed with the app secret
    assert all(d.accepted for d in deliveries)
    events = [e for r in receiver.received for e in json.loads(r.body)]
    kinds = [(e["subscriptionType"], e.get("propertyValue"), e["changeSource"]) for e in events]
    assert kinds == [
        ("contact.creation", None, "INTEGRATION"),
        ("contact.propertyChange", "ada@example.com", "INTEGRATION"),
        ("contact.propertyChange", "ada@lovelace.example", "CRM_UI"),
    ]
    first = events[0]
    assert set(first) == {
        "objectId",
        "changeSource",
        "eventId",
        "subscriptionId",
        "portalId",
        "appId",
        "occurredAt",
        "subscriptionType",
        "attemptNumber",
    }
    assert (first["objectId"], first["portalId"], first["appId"], first["attemptNumber"]) == (
        int(contact),
        hubspot.portal_id,
        app.app_id,
        0,
    )
    assert first["subscriptionId"] == created_sub.id
    assert events[1]["subscriptionId"] == email_sub.id
    now_ms = int(clock.now().timestamp() * 1000)
    for request in receiver.received:
        assert verify(app.client_secret, receiver.url, request.headers, request.body, now_ms)
        assert request.headers["x-hubspot-signature"] == signature_v1(app.client_secret, request.body)
        assert request.headers["x-hubspot-signature-version"] == "v1"


def test_failed_deliveries_are_retried_but_4xx_are_not(
    hubspot: HubSpotDouble, app: App, receiver: Receiver, clock: ManualClock
):
    # Given a receiver that fails with a 503 once, then a contact whose delivery gets a 404
    hubspot.set_webhook_target(receiver.url)
    hubspot.subscribe("contact.creation")
    receiver.statuses = [503]
    hubspot.create("contacts", email="a@example.com")
    first = hubspot.flush()
    # When the backoff has passed
    clock.advance(84)
    retried = hubspot.flush()
    # Then the retry carries attemptNumber 1 and is accepted
    assert [(d.attempt, d.status, d.accepted) for d in retried] == [(1, 503, False), (2, 204, True)]
    assert json.loads(receiver.received[1].body)[0]["attemptNumber"] == 1
    assert len(first) == 1
    # When the next delivery gets a 404
    receiver.statuses = [404]
    hubspot.create("contacts", email="b@example.com")
    hubspot.flush()
    clock.advance(24 * 3600)
    after = hubspot.flush()
    # Then it is never tried again
    assert [d.status for d in after[2:]] == [404]


def test_forgeries_fail_verification_or_are_replays(
    hubspot: HubSpotDouble, app: App, receiver: Receiver, clock: ManualClock
):
    # Given one real delivery
    hubspot.set_webhook_target(receiver.url)
    hubspot.subscribe("contact.creation")
    hubspot.create("contacts", email="a@example.com")
    hubspot.flush()
    real = receiver.received[0]
    now_ms = int(clock.now().timestamp() * 1000)
    # Then forged requests fail the receiver's checks, each for its reason
    for forgery in ("bad_signature", "stale_timestamp", "tampered_body", "wrong_uri", "missing_signature"):
        forged = hubspot.forge_webhook(forgery)
        headers = {k.lower(): v for k, v in forged.headers.items()}
        assert not verify(app.client_secret, receiver.url, headers, forged.body, now_ms), forgery
    # And a replay is byte-identical to the real request: valid now, stale after five minutes, same eventIds
    replay = hubspot.forge_webhook("replay")
    headers = {k.lower(): v for k, v in replay.headers.items()}
    assert replay.body == real.body
    assert verify(app.client_secret, receiver.url, headers, replay.body, now_ms)
    assert not verify(app.client_secret, receiver.url, headers, replay.body, now_ms + WINDOW_MS + 1000)
    with pytest.raises(ValueError):
        hubspot.forge_webhook("nonsense")
