"""PKCE (RFC 7636) and the OAuth state: the RFC's own test vector and the value rules."""

from __future__ import annotations

import re

from mailbridge.oauth.pkce import new_state, new_verifier, s256_challenge


def test_s256_matches_the_rfc_7636_appendix_b_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifiers_follow_section_4_1_and_never_repeat() -> None:
    verifiers = {new_verifier() for _ in range(200)}
    assert len(verifiers) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", v) for v in verifiers)


def test_states_are_unguessable_and_url_safe() -> None:
    states = {new_state() for _ in range(200)}
    assert len(states) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", s) for s in states)
