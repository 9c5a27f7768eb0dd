"""The request body parser every route uses: bounded nesting, standard JSON only."""

from __future__ import annotations

import pytest

from mailbridge.api.app import MAX_JSON_DEPTH, json_too_deep, parse_json_body
from mailbridge.errors import Invalid


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, False),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), True),
        ('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1), True),
        ("[{" * 33 + "}]" * 33, True),  # 66 levels, arrays and objects mixed
        ("[" * 100_000, True),  # never closed: a recursive parser still descends
        ("[]" * 100_000, False),  # wide, not deep
        ('["' + "[" * 1_000 + '"]', False),  # brackets inside a string are text
        ('["\\"' + "[" * 1_000 + '"]', False),  # ... also after an escaped quote
        ('"\\\\"' + "[" * (MAX_JSON_DEPTH + 1), True),  # an escaped backslash ends the string
        ("[" * 40 + "]" * 40 + "[" * 40 + "]" * 40, False),  # two hills, each within the limit
    ],
    ids=[
        "at-limit",
        "one-over",
        "objects",
        "mixed",
        "unclosed",
        "wide",
        "in-string",
        "escaped-quote",
        "escaped-backslash",
        "two-hills",
    ],
)
def test_nesting_depth_is_measured_outside_strings(text: str, deep: bool) -> None:
    assert json_too_deep(text) is deep


def test_a_too_deep_body_is_refused_before_parsing() -> None:
    with pytest.raises(Invalid) as raised:
        parse_json_body("[" * 100_000 + "]" * 100_000)
    assert raised.value.code == "json_too_deep"


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"x": -Infinity}', "9" * 5_000, "{", ""])
def test_what_is_not_rfc_8259_json_is_invalid_json(text: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse_json_body(text)
    assert raised.value.code == "invalid_json"


def test_standard_json_parses_as_usual() -> None:
    assert parse_json_body('{"a": [1, 2.5, "x[", null, true]}') == {"a": [1, 2.5, "x[", None, True]}
