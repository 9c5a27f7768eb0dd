"""Notification preferences and ids (mailbridge.notifications.service): defaults, what a stored
item keeps, and the per-event, per-user id that makes notifications idempotent."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mailbridge.notifications.models import (
    NOTIFICATION_ID,
    NOTIFICATION_TYPES,
    NotificationPreferencesRequest,
)
from mailbridge.notifications.service import notification_id, preferences_of, title


def test_without_a_stored_item_every_type_is_in_app_and_the_digest_daily() -> None:
    # Given a user who never saved preferences
    # When they are read
    prefs = preferences_of(None)
    # Then every type is in_app, the digest daily
    assert prefs.types == dict.fromkeys(NOTIFICATION_TYPES, "in_app")
    assert prefs.digest_frequency == "daily"


def test_a_stored_item_keeps_its_channels_and_the_rest_default() -> None:
    # Given an item with two types set (one of them a type a later release dropped) and weekly digests
    item = {
        "types": {"nudge": "off", "send_failed": "email_digest", "gone_type": "off"},
        "digest_frequency": "weekly",
    }
    # When it is read
    prefs = preferences_of(item)
    # Then those two keep their channels, the dropped type is not shown, the others are in_app
    assert prefs.types["nudge"] == "off"
    assert prefs.types["send_failed"] == "email_digest"
    assert "gone_type" not in prefs.types
    assert {prefs.types[t] for t in NOTIFICATION_TYPES if t not in ("nudge", "send_failed")} == {"in_app"}
    assert prefs.digest_frequency == "weekly"


@pytest.mark.parametrize(
    "payload",
    [
        {"types": {"nudges": "off"}},
        {"types": {"nudge": "push"}},
        {"digest_frequency": "monthly"},
        {"other": 1},
    ],
)
def test_a_request_with_an_unknown_type_channel_frequency_or_field_is_refused(
    payload: dict[str, object],
) -> None:
    with pytest.raises(ValidationError):
        NotificationPreferencesRequest.model_validate(payload)


def test_the_id_is_the_same_for_the_same_event_and_user_and_differs_otherwise() -> None:
    # Given one source event's key
    key = "nudge.created:em_3f9a1c0b7d2e4f6a8b9c0d1e2f"
    # When ids are derived for it
    same = notification_id("acme", "ada", "nudge", key)
    # Then a redelivery gets the same id, well-formed
    assert notification_id("acme", "ada", "nudge", key) == same
    assert NOTIFICATION_ID.fullmatch(same)
    # And another user, tenant, type or event gets another
    others = {
        notification_id("acme", "bob", "nudge", key),
        notification_id("globex", "ada", "nudge", key),
        notification_id("acme", "ada", "follow_up_due", key),
        notification_id("acme", "ada", "nudge", key + "x"),
    }
    assert same not in others
    assert len(others) == 4


def test_titles_are_fixed_text_per_type() -> None:
    # Given source data that carries text (which no producer sends, but a title must never show)
    data = {"kind": "awaiting_reply", "subject": "Secret deal", "from": "carol@customer.test"}
    # When titles are made
    titles = [title(t, data) for t in NOTIFICATION_TYPES]
    # Then none holds the data's text, and the two nudge kinds read differently
    assert not any("Secret" in t or "@" in t for t in titles)
    assert title("nudge", {"kind": "awaiting_reply"}) != title("nudge", {"kind": "needs_reply"})
