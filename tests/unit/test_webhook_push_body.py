"""The Gmail push body parser: what Pub/Sub sends is read, anything else is 400 invalid_push."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.errors import Invalid
from mailbridge.webhooks.gmail import parse
from tests.events import load_event

SAMPLE = json.loads(load_event("webhooks/gmail-push.json")["body"])


def test_the_sample_push_is_read() -> None:
    notice = parse(json.dumps(SAMPLE))
    assert (notice.message_id, notice.email_address, notice.history_id) == (
        "2070443601311540",
        "ada@example.com",
        "1234567890",
    )


def test_googles_documented_example_is_read() -> None:
    # providers/gmail/push_notification_request.json (its data decodes to historyId 1234567890)
    body = {
        "message": {
            "data": "eyJlbWFpbEFkZHJlc3MiOiAidXNlckBleGFtcGxlLmNvbSIsICJoaXN0b3J5SWQiOiAiMTIzNDU2Nzg5MCJ9",
            "messageId": "2070443601311540",
            "publishTime": "2021-02-26T19:13:55.749Z",
        },
        "subscription": "projects/myproject/subscriptions/mysubscription",
    }
    assert parse(json.dumps(body)).email_address == "user@example.com"


def test_base64url_data_is_read_too() -> None:
    data = base64.urlsafe_b64encode(json.dumps({"emailAddress": "a?b@example.com", "historyId": 7}).encode())
    body = {"message": {"data": data.decode().rstrip("="), "messageId": "1"}}
    assert parse(json.dumps(body)).history_id == "7"


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
@settings(max_examples=300, deadline=None)
def test_any_other_body_is_invalid_push(body: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse(body)
    assert refused.value.code == "invalid_push"
