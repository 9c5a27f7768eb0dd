"""reply_subject / forward_subject on the one prefix table shared with threading."""

from __future__ import annotations

import pytest

from mailbridge.compose import forward_subject, reply_subject
from mailbridge.mime import base_subject
from mailbridge.mime.subject import FORWARD_PREFIXES, REPLY_PREFIXES


def test_real_world_case_12_korean_outlook_prefixes() -> None:
    # Given subjects written by Korean Outlook ("회신:" reply, "전달:" forward)
    # When answering or forwarding them, then the localized prefix becomes ours, once
    assert reply_subject("회신: x") == "Re: x"
    assert reply_subject("회신: 회신: 견적 요청") == "Re: 견적 요청"
    assert forward_subject("전달: x") == "Fwd: x"
    # And a forward answered stays marked as a forward
    assert reply_subject("전달: x") == "Re: 전달: x"


@pytest.mark.parametrize("word", REPLY_PREFIXES)
def test_every_reply_prefix_of_the_shared_table_becomes_re(word: str) -> None:
    # Given a subject with one of the table's reply prefixes, upper-cased as Outlook writes them
    subject = f"{word.upper()}: Angebot"
    # When replying, then it is "Re:" once; and threading strips the same prefix
    assert reply_subject(subject) == "Re: Angebot"
    assert base_subject(subject) == "Angebot"


@pytest.mark.parametrize("word", FORWARD_PREFIXES)
def test_every_forward_prefix_of_the_shared_table_becomes_fwd(word: str) -> None:
    subject = f"{word.upper()}: Angebot"
    assert forward_subject(subject) == "Fwd: Angebot"
    assert base_subject(subject) == "Angebot"
    if word not in REPLY_PREFIXES:
        # A forward answered keeps its forward marker after "Re:"
        assert reply_subject(subject) == f"Re: {word.upper()}: Angebot"
