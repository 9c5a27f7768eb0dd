"""Lead extraction from the From header and the signature (issue 14 point 5): the layouts the
rules read, without AWS (the CRM writes are in tests/integration/test_ai_reply_lead.py)."""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.ai.lead import Lead, extract_lead
from mailbridge.ai.reply import split_reply
from mailbridge.models.mail import Email


def email(sender: dict[str, Any], text: str) -> Email:
    """An Email as `GET /emails/{id}` builds it: the signature split off the text body."""
    parts = split_reply(text)
    return Email.model_validate(
        {
            "email_id": "em_" + "1" * 26,
            "thread_id": "th_" + "2" * 24,
            "from": [sender],
            "to": [],
            "subject": "Re: hello",
            "date": "2026-03-03T10:00:00Z",
            "snippet": "",
            "read": True,
            "flagged": False,
            "answered": False,
            "has_attachments": False,
            "direction": "inbound",
            "accounts": [],
            "folders": [],
            "message_id": None,
            "in_reply_to": None,
            "references": [],
            "sender": None,
            "reply_to": [],
            "cc": [],
            "bcc": [],
            "date_source": "header",
            "text_body": text,
            "html_body": None,
            "reply_text": parts.reply_text,
            "signature": parts.signature,
            "attachments": [],
            "calendar": None,
            "bounce": None,
            "auto_submitted": None,
            "precedence": None,
            "size": len(text),
        }
    )


def values(lead: Lead) -> dict[str, str | None]:
    return {
        name: getattr(lead, name).value if getattr(lead, name) else None
        for name in ("name", "title", "company", "company_domain", "phone", "website")
    }


@pytest.mark.parametrize(
    ("sender", "text", "expected"),
    [
        pytest.param(
            {"name": None, "address": "k.lee@northwind.example"},
            "Please send the offer.\n-- \nKim Lee\nSales Director at Northwind Traders\n"
            "Mobile: (555) 010-2030\nnorthwind.example/contact\n",
            {
                "name": "Kim Lee",
                "title": "Sales Director",
                "company": "Northwind Traders",
                "company_domain": "northwind.example",
                "phone": "(555) 010-2030",
                "website": "https://northwind.example/contact",
            },
            id="title-at-company-name-from-signature",
        ),
        pytest.param(
            {"name": "Ola Nordmann", "address": "ola.nordmann@gmail.com"},
            "Yes.\n\nBest regards,\nOla Nordmann\nFounder, Fjord Analytics AS\nwww.fjord-analytics.example\n",
            {
                "name": "Ola Nordmann",
                "title": "Founder",
                "company": "Fjord Analytics AS",
                "company_domain": "fjord-analytics.example",
                "phone": None,
                "website": "https://www.fjord-analytics.example",
            },
            id="free-mail-sender-company-domain-from-website",
        ),
        pytest.param(
            {"name": None, "address": "maria.rossi@gmail.com"},
            "Grazie!\n",
            {
                "name": "Maria Rossi",
                "title": None,
                "company": None,
                "company_domain": None,
                "phone": None,
                "website": None,
            },
            id="no-signature-free-mail",
        ),
    ],
)
def test_signature_layouts_become_lead_fields(
    sender: dict[str, Any], text: str, expected: dict[str, str | None]
) -> None:
    # Given an email with a signature in one of the common layouts
    # When its lead is extracted
    lead = extract_lead(email(sender, text))
    # Then each field holds what the signature and header say
    assert values(lead) == expected


def test_confidence_says_where_a_field_came_from() -> None:
    # Given a named sender of a business domain without a signature
    lead = extract_lead(email({"name": "Ana Ruiz", "address": "ana@contoso.example"}, "Ok.\n"))
    # When nothing but the header and the address speak
    # Then the company is only guessed from the domain, with a low confidence
    assert lead.company is not None
    assert (lead.company.value, lead.company.source) == ("Contoso", "domain")
    assert lead.name is not None
    assert lead.company_domain is not None
    assert lead.company.confidence < lead.name.confidence
    assert lead.company.confidence < lead.company_domain.confidence


def test_control_characters_in_a_signature_never_reach_a_field() -> None:
    # Given a signature holding control characters
    text = "Hi.\n-- \nJo\x07e Blo\x1bggs\nCEO | Blo\x00ggs Ltd\n"
    # When its lead is extracted
    lead = extract_lead(email({"name": None, "address": "joe@bloggs.example"}, text))
    # Then no field value holds one
    assert all(v is None or v.isprintable() for v in values(lead).values())


def test_on_mail_our_user_sent_the_lead_is_the_recipient_not_our_signature() -> None:
    # Given an email our user sent to a prospect, signed with our user's own signature
    sent = email(
        {"name": "Bob Seller", "address": "bob@ourco.example"},
        "Here is the proposal.\n-- \nBob Seller\nAccount Executive | OurCo Ltd\nTel: +1 555 0100\n",
    )
    sent = Email.model_validate(
        {
            **sent.model_dump(by_alias=True),
            "direction": "outbound",
            "to": [{"name": "Ana Ruiz", "address": "Ana@Contoso.example"}],
        }
    )
    # When its lead is extracted
    lead = extract_lead(sent)
    # Then the lead is the recipient, from the To header; nothing of our signature is taken
    assert lead.email == "ana@contoso.example"
    assert values(lead) == {
        "name": "Ana Ruiz",
        "title": None,
        "company": "Contoso",
        "company_domain": "contoso.example",
        "phone": None,
        "website": None,
    }
