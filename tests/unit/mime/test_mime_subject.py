"""Base subject for threading (RFC 5256 plus localized prefixes)."""

from __future__ import annotations

import pytest

from mailbridge.mime import base_subject
from mailbridge.mime.subject import is_reply_or_forward


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Release plan", "Release plan"),
        ("RE: Fwd: re: Release plan", "Release plan"),
        ("[dev-list] Re: AW: Release plan", "Release plan"),
        ("Re[2]: Release plan", "Release plan"),
        ("SV: VS: Tilbud", "Tilbud"),
        ("WG: Antw: Angebot", "Angebot"),
        ("Release plan (fwd)", "Release plan"),
        ("[Fwd: Release plan]", "Release plan"),
        ("Re:   Release    plan  ", "Release plan"),
        ("[dev-list]", "[dev-list]"),
        ("Réunion: ordre du jour", "Réunion: ordre du jour"),
        ("Regarding the plan", "Regarding the plan"),
        ("", ""),
        (None, ""),
    ],
)
def test_base_subject(subject, expected):
    assert base_subject(subject) == expected


@pytest.mark.parametrize(
    "prefix",
    [
        # Outlook / Thunderbird localizations: reply, then forward, per language
        *("AW", "WG"),  # German
        *("Antw", "Doorst"),  # Dutch
        *("SV", "VB"),  # Swedish
        *("VS", "VL"),  # Finnish
        *("SV", "VS"),  # Norwegian / Danish
        *("RE", "TR"),  # French
        *("RE", "RV"),  # Spanish
        *("R", "I"),  # Italian
        *("RES", "ENC"),  # Portuguese
        *("Odp", "PD"),  # Polish
        *("YNT", "İLT"),  # Turkish
        *("ΑΠ", "ΣΧΕΤ", "ΠΡΘ"),  # Greek
        *("השב", "הועבר"),  # Hebrew
        *("回复", "答复", "转发"),  # Chinese
        *("返信", "転送"),  # Japanese
        *("회신", "전달"),  # Korean
        *("SV", "FS"),  # Icelandic
        *("VÁ", "TOV"),  # Hungarian
        *("Odp", "PŘ"),  # Czech
        *("Atb", "Pārs"),  # Latvian
        *("Ats", "Pers"),  # Lithuanian
        *("Vs", "Edasi"),  # Estonian
        *("Отв", "Пересл"),  # Russian
        "Від",  # Ukrainian
    ],
)
def test_localized_prefixes_are_stripped_and_mark_a_reply(prefix: str) -> None:
    # Given a subject with a localized reply/forward prefix (ASCII or full-width colon)
    # ("İLT".lower() is "i̇lt" with a combining dot, which no client writes: Turkish lower case is "ilt")
    lower = prefix.lower() if len(prefix.lower()) == len(prefix) else "ilt"
    for subject in (f"{prefix}: Angebot 42", f"{prefix}\uff1aAngebot 42", f"{lower}: Angebot 42"):
        # When the base subject is taken, then the prefix is gone and the subject counts as a reply
        assert base_subject(subject) == "Angebot 42"
        assert is_reply_or_forward(subject)


def test_real_world_case_12_korean_outlook_reply_prefix() -> None:
    # Given the base subject of the case's reply ("회신:" is Korean Outlook's "Re:")
    # Then it is the original's subject (the threading half is in tests/integration)
    assert base_subject("회신: 견적 요청") == "견적 요청"


@pytest.mark.parametrize(
    ("subject", "marked"),
    [
        ("Re: Lunch", True),
        ("[team] Re: Lunch", True),
        ("Lunch (fwd)", True),
        ("[Fwd: Lunch]", True),
        ("[team] Lunch", False),  # a list tag alone is not a reply
        ("Lunch", False),
        ("Review: Lunch", False),
        ("Réunion: ordre du jour", False),
        ("", False),
        (None, False),
    ],
)
def test_only_explicit_prefixes_make_a_reply(subject: str | None, marked: bool) -> None:
    assert is_reply_or_forward(subject) is marked
