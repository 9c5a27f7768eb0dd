"""The shared field types refuse control characters, header injection and bad folder names."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field, TypeAdapter, ValidationError

from mailbridge.models.fields import FolderName, HeaderText, MultiLine, SingleLine, decoded_header_value

HEADER = TypeAdapter(Annotated[HeaderText, Field(max_length=100)])
SINGLE = TypeAdapter(Annotated[SingleLine, Field(max_length=100)])
MULTI = TypeAdapter(Annotated[MultiLine, Field(max_length=100)])
FOLDER = TypeAdapter(FolderName)


def _error_type(adapter: TypeAdapter[str], value: str) -> str:
    with pytest.raises(ValidationError) as info:
        adapter.validate_python(value)
    return str(info.value.errors()[0]["type"])


@pytest.mark.parametrize(
    "value",
    [
        "=?utf-8?b?SGkNCkJjYzogeEBldmlsLmV4YW1wbGU=?=",  # Hi CR LF Bcc: x@evil.example
        "Quote =?utf-8?q?a=0D=0ABcc:_x@evil.example?= now",
        # An encoded word whose decoded text is itself an encoded word with a CR LF inside.
        "=?utf-8?b?PT91dGYtOD9iP1NHa05Da0pqWXpvZ2VFQmxkbWxzTG1WNFlXMXdiR1U9Pz0=?=",
        "=?utf-8?q?a=00b?=",
    ],
)
def test_header_text_refuses_values_that_decode_to_line_breaks(value: str) -> None:
    assert _error_type(HEADER, value) == "header_injection"


@pytest.mark.parametrize(
    "value", ["a\r\nBcc: x", "tab\there", "nul\x00", "del\x7f", "c1\x85x", "ls\u2028x", "rlo\u202e"]
)
def test_single_line_and_header_text_refuse_control_characters(value: str) -> None:
    assert _error_type(SINGLE, value) == "control_characters"
    assert _error_type(HEADER, value) == "control_characters"


def test_header_text_keeps_plain_and_harmless_encoded_values() -> None:
    assert HEADER.validate_python("  Quote for Q3 ") == "Quote for Q3"
    assert HEADER.validate_python("=?utf-8?q?Gr=C3=BC=C3=9Fe?=") == "=?utf-8?q?Gr=C3=BC=C3=9Fe?="
    assert decoded_header_value("=?utf-8?q?Gr=C3=BC=C3=9Fe?=") == "Grüße"


def test_multi_line_allows_line_breaks_and_tabs_only() -> None:
    assert MULTI.validate_python("line one\r\n\tline two\n") == "line one\r\n\tline two\n"
    assert _error_type(MULTI, "bell\x07") == "control_characters"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "string_too_short"),
        ("a" * 201, "string_too_long"),
        ("In\rbox", "control_characters"),
        ("nul\x00", "control_characters"),
        (" Inbox", "invalid_folder_name"),
        ("./", "invalid_folder_name"),
    ],
)
def test_folder_names(value: str, expected: str) -> None:
    assert _error_type(FOLDER, value) == expected


def test_folder_names_keep_hierarchy_and_unicode() -> None:
    assert FOLDER.validate_python("Projects/2026/Q1") == "Projects/2026/Q1"
    assert FOLDER.validate_python("Entwürfe") == "Entwürfe"
