"""Base subject for threading (RFC 5256 plus localized prefixes)."""

from __future__ import annotations

import pytest

from mailbridge.mime import base_subject


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
