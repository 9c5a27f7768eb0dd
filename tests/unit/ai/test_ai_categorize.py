"""categorize(): the committed fixtures get their category, flags follow the evidence."""

from __future__ import annotations

import pytest

from mailbridge.ai.categorize import categorize
from mailbridge.ai.models import SenderHistory

EXPECTED = [
    # file, category, is_spam, is_bulk, is_automated
    ("newsletter.eml", "newsletter", False, True, False),
    ("marketing.eml", "marketing", False, True, False),
    ("bounce.eml", "notification", False, False, True),
    ("auto_reply.eml", "automated", False, False, True),
    ("invite.eml", "calendar", False, False, False),
    ("support_question.eml", "support", False, False, False),
    ("sales_inquiry.eml", "sales", False, False, False),
    ("invoice.eml", "finance", False, False, False),
    ("personal.eml", "personal", False, False, False),
    ("spam.eml", "spam", True, True, False),
]


@pytest.mark.parametrize(("name", "category", "is_spam", "is_bulk", "is_automated"), EXPECTED)
def test_fixture_gets_its_category(fixture_message, name, category, is_spam, is_bulk, is_automated):
    # Given a hand-written message of a known kind
    message = fixture_message(name)
    # When it is categorized
    result = categorize(message)
    # Then the category and the flags are the expected ones, with a confidence and reasons
    assert (result.category, result.is_spam, result.is_bulk, result.is_automated) == (
        category,
        is_spam,
        is_bulk,
        is_automated,
    )
    assert 0.0 <= result.confidence <= 1.0
    assert result.reasons


def test_customer_question_needs_a_reply(fixture_message):
    # Given a customer asking for help
    result = categorize(fixture_message("support_question.eml"))
    # Then it requests an action, needs a reply, and the action model is named as a reason
    assert result.action_requested
    assert result.needs_reply
    assert any(reason.startswith("model:action:") for reason in result.reasons)


def test_bulk_and_automated_mail_never_need_a_reply(fixture_message):
    # Given a newsletter, a bounce and an auto-reply
    results = [categorize(fixture_message(n)) for n in ("newsletter.eml", "bounce.eml", "auto_reply.eml")]
    # Then none of them needs a reply and the automated ones request no action
    assert [r.needs_reply for r in results] == [False, False, False]
    assert [r.action_requested for r in results[1:]] == [False, False]


def test_sales_inquiry_from_a_stranger_is_a_lead(fixture_message):
    # Given a pricing request from a sender with no history
    result = categorize(fixture_message("sales_inquiry.eml"), SenderHistory())
    # Then it is a lead, and the reasons say why
    assert result.is_lead
    assert "rule:lead" in result.reasons
    assert "history:first-contact" in result.reasons


def test_sales_inquiry_from_a_known_contact_is_not_a_lead(fixture_message):
    # Given the same request from a contact the tenant has written to
    history = SenderHistory(received=3, sent=2, known_contact=True)
    result = categorize(fixture_message("sales_inquiry.eml"), history)
    # Then it is still sales but not a lead
    assert result.category == "sales"
    assert not result.is_lead
    assert {"history:known-contact", "history:replied"} <= set(result.reasons)


def test_invitation_request_needs_a_reply(fixture_message):
    # Given a calendar REQUEST (RFC 5546)
    result = categorize(fixture_message("invite.eml"))
    # Then it needs an answer
    assert result.needs_reply
    assert "calendar:request" in result.reasons


def test_spam_reasons_name_the_model_and_its_features(fixture_message):
    # Given obvious spam
    result = categorize(fixture_message("spam.eml"))
    # Then the reasons give the model's probability and the features that pushed it
    assert result.reasons[0].startswith("model:spam:")
    assert float(result.reasons[0].rsplit(":", 1)[1]) >= 0.5
    assert any(reason.startswith("feature:") for reason in result.reasons)


def test_trusted_sender_needs_a_near_certain_spam_score(fixture_message, monkeypatch):
    # Given spam-looking mail that scores between the normal and the trusted threshold
    import mailbridge.ai.categorize as module

    message = fixture_message("spam.eml")
    monkeypatch.setattr(module, "TRUSTED_SPAM_THRESHOLD", 1.01)
    # When the sender is someone the tenant has written to
    trusted = categorize(message, SenderHistory(sent=1))
    stranger = categorize(message, SenderHistory())
    # Then only the stranger's copy is spam
    assert stranger.is_spam
    assert not trusted.is_spam
    assert trusted.category != "spam"


def test_categorize_is_deterministic(fixture_message):
    # Given the same message twice
    first = categorize(fixture_message("sales_inquiry.eml"))
    second = categorize(fixture_message("sales_inquiry.eml"))
    # Then the answers are identical
    assert first == second
