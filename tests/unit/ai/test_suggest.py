"""Local reply suggestions and summaries of one email (mailbridge.ai.suggest)."""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.ai.suggest import MAX_SUMMARY_CHARS, replies_for, summary_of
from mailbridge.models.email import EmailAddress
from mailbridge.models.mail import Email


def email(**values: Any) -> Email:
    """An Email with only the fields the suggestions read (the rest is not needed here)."""
    fields: dict[str, Any] = {
        "subject": "Login fails",
        "from_": [EmailAddress(name="Priya Raman", address="priya@customer.example")],
        "category": "support",
        "is_automated": False,
        "is_bulk": False,
        "action_requested": False,
        "reply_text": None,
        "text_body": None,
        "snippet": "",
        **values,
    }
    return Email.model_construct(**fields)


def test_support_mail_gets_three_support_replies_to_the_first_name() -> None:
    replies = replies_for(email())
    assert len(replies) == 3
    assert (
        replies[0]
        == "Thanks for reaching out, Priya. I'm looking into this now and will get back to you shortly."
    )
    assert all(", Priya" in r for r in replies)


def test_the_category_chooses_the_replies() -> None:
    assert replies_for(email(category="sales"))[0].startswith("Thanks for your interest, Priya!")
    assert (
        replies_for(email(category=None))[0] == "Thanks for your message, Priya. I'll get back to you soon."
    )


def test_a_request_is_acknowledged_first() -> None:
    replies = replies_for(email(action_requested=True))
    assert replies[0] == "Will do, Priya. I'll take care of this and confirm once it's done."
    assert len(replies) == 3


def test_without_a_display_name_no_name_is_made_up() -> None:
    replies = replies_for(email(from_=[EmailAddress(address="priya@customer.example")]))
    assert (
        replies[0] == "Thanks for reaching out. I'm looking into this now and will get back to you shortly."
    )


@pytest.mark.parametrize(
    "values",
    [{"category": "newsletter"}, {"category": "spam"}, {"category": "notification"}, {"is_bulk": True}],
)
def test_mail_nobody_answers_gets_no_suggestion(values: dict[str, Any]) -> None:
    assert replies_for(email(**values)) == []


def test_the_summary_names_sender_and_subject_and_keeps_two_sentences_of_the_new_text() -> None:
    text = "I cannot log in since Monday.  The page says my token expired!\nCan you help? Thanks."
    summary = summary_of(email(reply_text=text, text_body=text + "\n> old quoted text"))
    assert summary == (
        "Priya Raman wrote about \u201cLogin fails\u201d: "
        "I cannot log in since Monday. The page says my token expired!"
    )


def test_a_long_summary_is_cut() -> None:
    summary = summary_of(email(reply_text="word " * 500))
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert summary.endswith("\u2026")


def test_an_empty_email_still_has_a_summary() -> None:
    assert summary_of(email(subject=None, from_=[])) == "Someone wrote."
