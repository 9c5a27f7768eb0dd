"""MediaType and ContentId: one rule for the send request and for compose."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mailbridge.compose import OutgoingAttachment
from mailbridge.outbox.models import InlineAttachment


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("image/png", "image/png"),
        ("Application/PDF", "application/pdf"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", None),
        ("message/rfc822", None),
        ("text/calendar", None),
    ],
)
def test_concrete_media_types_are_accepted_lower_cased(given: str, kept: str | None) -> None:
    # Given a concrete type/subtype, when the request and compose read it, then both keep it
    request = InlineAttachment(filename="a", content_type=given, content_base64="")
    attachment = OutgoingAttachment(filename="a", content_type=given, data=b"")
    assert request.content_type == attachment.content_type == (kept or given.lower())


@pytest.mark.parametrize(
    "value",
    [
        "multipart/mixed",
        "Multipart/Related",
        "message/partial",
        "message/external-body",
        "text/plain; charset=utf-8",
        "text/plain\r\n",
        " text/plain",
        "text/*",
        "text",
        "x" * 128 + "/y",
        "",
    ],
)
def test_other_media_types_are_refused_the_same_way_on_both_sides(value: str) -> None:
    with pytest.raises(ValidationError) as request:
        InlineAttachment(filename="a", content_type=value, content_base64="")
    with pytest.raises(ValidationError) as compose:
        OutgoingAttachment(filename="a", content_type=value, data=b"")
    assert {e["type"] for e in request.value.errors()} == {"invalid_content_type"}
    assert {e["type"] for e in compose.value.errors()} == {"invalid_content_type"}


@pytest.mark.parametrize(
    ("given", "kept"),
    [("logo@x", "logo@x"), ("<logo@x>", "logo@x"), ("image001.png@01D9A1B2.C3D4E5F0", None), ("part1", None)],
)
def test_content_ids_are_kept_without_brackets(given: str, kept: str | None) -> None:
    request = InlineAttachment(filename="a", content_id=given, content_base64="")
    attachment = OutgoingAttachment(filename="a", content_id=given, data=b"")
    assert request.content_id == attachment.content_id == (kept or given)


@pytest.mark.parametrize(
    "value", ["a>b", "<a", "a>", "a\r\nX: 1", "a b", 'a"b', "a(b)", "a,b", "", "x" * 251, "<>", "é@x"]
)
def test_content_ids_that_would_break_the_header_are_refused(value: str) -> None:
    with pytest.raises(ValidationError) as request:
        InlineAttachment(filename="a", content_id=value, content_base64="")
    with pytest.raises(ValidationError) as compose:
        OutgoingAttachment(filename="a", content_id=value, data=b"")
    assert {e["type"] for e in request.value.errors()} == {"invalid_content_id"}
    assert {e["type"] for e in compose.value.errors()} == {"invalid_content_id"}
