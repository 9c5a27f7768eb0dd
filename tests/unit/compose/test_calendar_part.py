"""An iTIP message in a composed mail (iMIP, RFC 6047 section 2.4): text/calendar with its method,
the last alternative of the body, read back by mailbridge.mime.normalize as the calendar part."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest
from pydantic import ValidationError

from mailbridge.compose import CalendarBody, Draft, OutgoingAttachment, compose_and_normalize
from mailbridge.models.email import EmailAddress

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
    "UID:abc@example.com\r\nDTSTAMP:20261001T080000Z\r\nDTSTART:20261014T070000Z\r\n"
    "SUMMARY:Réunion\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def invitation(**overrides: object) -> Draft:
    values: dict[str, object] = {
        "from_": EmailAddress(name="Ada", address="ada@example.com"),
        "to": [EmailAddress(address="bob@example.org")],
        "subject": "Invitation: Réunion",
        "text": "You are invited.\n",
        "calendar": CalendarBody(method="REQUEST", ics=ICS),
        "attachments": [
            OutgoingAttachment(filename="invite.ics", content_type="application/ics", data=ICS.encode())
        ],
    }
    values.update(overrides)
    return Draft.model_validate(values)


def test_the_calendar_is_the_last_alternative_with_its_method_and_an_ics_attachment() -> None:
    # Given an invitation draft with an HTML body too
    composed, read = compose_and_normalize(invitation(html="<p>You are invited.</p>"))
    # When the bytes are parsed by the stdlib
    message = email.message_from_bytes(composed.raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    alternative = next(p for p in message.walk() if p.get_content_type() == "multipart/alternative")
    kinds = [p.get_content_type() for p in alternative.iter_parts()]
    # Then text, HTML and text/calendar; method=REQUEST are alternatives, in that order
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    calendar = list(alternative.iter_parts())[2]
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_content().replace("\r\n", "\n") == ICS.replace("\r\n", "\n")
    # And the same calendar is attached as invite.ics
    attachment = next(iter(message.iter_attachments()))
    assert (attachment.get_filename(), attachment.get_content_type()) == ("invite.ics", "application/ics")
    # And the normalizer reads it as the message's calendar part, method included
    assert read.message.calendar is not None
    assert read.message.calendar.method == "REQUEST"
    assert "UID:abc@example.com" in read.message.calendar.ics


def test_a_text_only_invitation_becomes_an_alternative_of_two() -> None:
    composed, _ = compose_and_normalize(invitation(attachments=[]))
    message = email.message_from_bytes(composed.raw, policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/calendar"]


def test_only_itip_methods_are_accepted() -> None:
    with pytest.raises(ValidationError):
        CalendarBody(method="INVITE", ics=ICS)  # type: ignore[arg-type]
