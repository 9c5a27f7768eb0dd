"""Reply text, signatures and lead extraction (issue 14 point 5) in-process on moto: mail stored
by the real ingest, read and acted on through the api function."""

from __future__ import annotations

from typing import Any

from tests.fixtures.aws import Stack
from tests.integration.test_api_emails import Seeder, api, body, rfc

Invoke = Any

SIGNED_REPLY = rfc(
    msgid="reply-1@acme-robotics.example",
    sender="Jane Doe <jane.doe@acme-robotics.example>",
    to="sam@shop.test",
    subject="Re: Pricing",
    date="Tue, 03 Mar 2026 10:00:00 +0000",
    text=(
        "Thanks Sam, we'd like a quote for 40 seats.\r\n\r\nBest regards,\r\nJane Doe\r\n"
        "Head of Procurement | Acme Robotics GmbH\r\nTel: +49 30 1234 5678\r\n"
        "www.acme-robotics.example\r\n\r\n"
        "On Mon, 2 Mar 2026 at 09:14, Sam <sam@shop.test> wrote:\r\n> Hi Jane, any news?\r\n"
    ),
)


def test_get_email_shows_reply_text_and_signature(stack: Stack, invoke_api: Invoke) -> None:
    # Given a stored reply with a signature above the quoted history
    email_id = Seeder(stack).add(SIGNED_REPLY)
    # When it is read
    response = invoke_api(api("get-email", path={"email_id": email_id}))
    # Then the new text and the signature are apart, the history is in neither
    assert response["statusCode"] == 200, response
    email = body(response)
    assert email["reply_text"] == "Thanks Sam, we'd like a quote for 40 seats.\n\nBest regards,"
    assert email["signature"] == (
        "Jane Doe\nHead of Procurement | Acme Robotics GmbH\nTel: +49 30 1234 5678\nwww.acme-robotics.example"
    )
    assert "Hi Jane" in email["text_body"]
