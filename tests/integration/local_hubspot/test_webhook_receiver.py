"""`mailbridge.crm.remote.hubspot_webhooks` against what the double signs and sends: its deliveries
verify and parse, its forgeries are refused, its replays bring nothing new and go stale."""

from __future__ import annotations

from datetime import timedelta

import pytest

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from mailbridge.crm.remote.hubspot_webhooks import HubSpotEvent, parse_events, unseen, verify_v3
from mailbridge.errors import Unauthorized
from tests.integration.local_hubspot.conftest import Receiver


def receive(
    app: App, clock: ManualClock, url: str, headers: dict[str, str], body: bytes, portal_id: int
) -> list[HubSpotEvent]:
    """What the webhooks function will do: verify against the app's secret, then parse."""
    verify_v3(
        client_secret=app.client_secret, method="POST", uri=url, body=body, headers=headers, now=clock.now()
    )
    return parse_events(body, portal_id=portal_id)


def test_the_double_s_deliveries_verify_and_parse(
    hubspot: HubSpotDouble, app: App, receiver: Receiver, clock: ManualClock
):
    # Given subscriptions to creations and email changes
    hubspot.set_webhook_target(receiver.url)
    hubspot.subscribe("contact.creation")
    hubspot.subscribe("contact.propertyChange", "email")
    # When a user creates a contact
    contact = hubspot.create("contacts", email="ada@example.com")
    hubspot.flush()
    # Then the delivery verifies with the app's secret and holds both events for that contact
    (delivered,) = receiver.received
    events = receive(app, clock, receiver.url, delivered.headers, delivered.body, hubspot.portal_id)
    assert sorted(e.subscription_type for e in events) == ["contact.creation", "contact.propertyChange"]
    assert {e.object_id for e in events} == {int(contact)}
    change = next(e for e in events if e.property_name)
    assert (change.property_name, change.property_value) == ("email", "ada@example.com")
    assert change.occurred_at == clock.now().replace(microsecond=0)


@pytest.mark.parametrize(
    ("forgery", "code"),
    [
        ("bad_signature", "invalid_signature"),
        ("tampered_body", "invalid_signature"),
        ("wrong_uri", "invalid_signature"),
        ("stale_timestamp", "stale_timestamp"),
        ("missing_signature", "missing_signature"),
    ],
)
def test_the_double_s_forgeries_are_refused(
    hubspot: HubSpotDouble, app: App, receiver: Receiver, clock: ManualClock, forgery: str, code: str
):
    # Given a webhook target
    hubspot.set_webhook_target(receiver.url)
    hubspot.subscribe("contact.creation")
    # When the double forges a request
    forged = hubspot.forge_webhook(forgery)
    # Then verification refuses it with its 401 code
    with pytest.raises(Unauthorized) as raised:
        receive(app, clock, forged.url, forged.headers, forged.body, hubspot.portal_id)
    assert raised.value.code == code


def test_a_replay_brings_nothing_new_and_is_refused_once_stale(
    hubspot: HubSpotDouble, app: App, receiver: Receiver, clock: ManualClock
):
    # Given a delivery taken
    hubspot.set_webhook_target(receiver.url)
    hubspot.subscribe("contact.creation")
    hubspot.create("contacts", email="ada@example.com")
    hubspot.flush()
    (delivered,) = receiver.received
    taken = [
        e.event_id
        for e in receive(app, clock, receiver.url, delivered.headers, delivered.body, hubspot.portal_id)
    ]
    # When the double replays it at once
    replay = hubspot.forge_webhook("replay")
    events = receive(app, clock, replay.url, replay.headers, replay.body, hubspot.portal_id)
    # Then it verifies but holds no unseen event
    assert unseen(events, taken) == []
    # And six minutes later the same bytes are refused
    clock.advance(timedelta(minutes=6).total_seconds())
    with pytest.raises(Unauthorized) as raised:
        receive(app, clock, replay.url, replay.headers, replay.body, hubspot.portal_id)
    assert raised.value.code == "stale_timestamp"
