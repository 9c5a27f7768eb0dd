"""Reply text, signatures and lead extraction (issue 14 point 5) in-process on moto: mail stored
by the real ingest, read and acted on through the api function."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailbridge.ai import wiring
from tests.fixtures.aws import Stack
from tests.integration.test_ai_categorize import set_ai
from tests.integration.test_api_emails import Seeder, api, body, rfc

Invoke = Any

SIGNED_REPLY = rfc(
    msgid="reply-1@acme-robotics.example",
    sender="Jane Doe <jane.doe@acme-robotics.example>",
    to="sam@shop.test",
    subject="Re: Pricing",
    date="Tue, 03 Mar 2026 10:00:00 +0000",
    text=(
        "Thanks Sam, we'd like a quote for 40 seats.\r\n\r\nBest regards,\r\nJane Doe\r\n"
        "Head of Procurement | Acme Robotics GmbH\r\nTel: +49 30 1234 5678\r\n"
        "www.acme-robotics.example\r\n\r\n"
        "On Mon, 2 Mar 2026 at 09:14, Sam <sam@shop.test> wrote:\r\n> Hi Jane, any news?\r\n"
    ),
)


def test_get_email_shows_reply_text_and_signature(stack: Stack, invoke_api: Invoke) -> None:
    # Given a stored reply with a signature above the quoted history
    email_id = Seeder(stack).add(SIGNED_REPLY)
    # When it is read
    response = invoke_api(api("get-email", path={"email_id": email_id}))
    # Then the new text and the signature are apart, the history is in neither
    assert response["statusCode"] == 200, response
    email = body(response)
    assert email["reply_text"] == "Thanks Sam, we'd like a quote for 40 seats.\n\nBest regards,"
    assert email["signature"] == (
        "Jane Doe\nHead of Procurement | Acme Robotics GmbH\nTel: +49 30 1234 5678\nwww.acme-robotics.example"
    )
    assert "Hi Jane" in email["text_body"]


def extract(invoke_api: Invoke, email_id: str, *, apply: bool, role: str = "member") -> dict[str, Any]:
    return invoke_api(  # type: ignore[no-any-return]
        api("ai-extract-lead", role=role, body={"email_id": email_id, "apply": apply})
    )


def crm_get(invoke_api: Invoke, name: str, **path: str) -> Any:
    response = invoke_api(api(name, path=path))
    assert response["statusCode"] == 200, response
    return body(response)


def test_extract_lead_reads_the_signature_with_a_confidence_per_field(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a tenant with ai on and a stored reply signed with title, company, phone and website
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(SIGNED_REPLY)
    # When its lead is extracted without apply
    response = extract(invoke_api, email_id, apply=False)
    # Then each field holds what the header and the signature say, with a confidence
    assert response["statusCode"] == 200, response
    answer = body(response)
    lead = {name: (f or {}).get("value") for name, f in answer["lead"].items() if name != "email"}
    assert lead == {
        "name": "Jane Doe",
        "title": "Head of Procurement",
        "company": "Acme Robotics GmbH",
        "company_domain": "acme-robotics.example",
        "phone": "+49 30 1234 5678",
        "website": "https://www.acme-robotics.example",
    }
    assert all(0 < f["confidence"] <= 1 for f in answer["lead"].values() if isinstance(f, dict))
    assert answer["lead"]["email"] == "jane.doe@acme-robotics.example"
    # And nothing is written to the CRM
    assert answer["applied"] is None
    assert crm_get(invoke_api, "crm-list-contacts")["items"] == []


def test_apply_creates_the_contact_and_the_company(stack: Stack, invoke_api: Invoke) -> None:
    # Given a tenant with ai on and a signed reply from an unknown sender
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(SIGNED_REPLY)
    # When its lead is extracted with apply
    response = extract(invoke_api, email_id, apply=True)
    # Then the contact and its company exist in the CRM with the extracted values
    assert response["statusCode"] == 200, response
    applied = body(response)["applied"]
    assert applied["contact_created"] is True
    assert applied["company_created"] is True
    contact = crm_get(invoke_api, "crm-get-contact", contact_id=applied["contact_id"])
    assert contact["name"] == "Jane Doe"
    assert contact["title"] == "Head of Procurement"
    assert contact["phones"] == ["+49 30 1234 5678"]
    assert contact["emails"][0]["address"] == "jane.doe@acme-robotics.example"
    assert contact["company_id"] == applied["company_id"]
    company = crm_get(invoke_api, "crm-get-company", company_id=applied["company_id"])
    assert (company["name"], company["domains"]) == ("Acme Robotics GmbH", ["acme-robotics.example"])
    # And a second apply updates nothing new and creates no second record
    again = body(extract(invoke_api, email_id, apply=True))["applied"]
    assert again == {**applied, "contact_created": False, "company_created": False}


def test_apply_gives_an_existing_contact_only_what_it_lacks(stack: Stack, invoke_api: Invoke) -> None:
    # Given a contact of the sender's address with a name of its own and no title
    set_ai(invoke_api, True)
    created = invoke_api(
        api(
            "crm-create-contact",
            body={"name": "J. Doe", "emails": [{"address": "jane.doe@acme-robotics.example"}]},
        )
    )
    assert created["statusCode"] == 201, created
    contact_id = body(created)["contact_id"]
    email_id = Seeder(stack).add(SIGNED_REPLY)
    # When the lead of her email is applied
    applied = body(extract(invoke_api, email_id, apply=True))["applied"]
    # Then the same contact gains the title, the phone and the company; its name stays
    assert (applied["contact_id"], applied["contact_created"]) == (contact_id, False)
    contact = crm_get(invoke_api, "crm-get-contact", contact_id=contact_id)
    assert (contact["name"], contact["title"], contact["phones"]) == (
        "J. Doe",
        "Head of Procurement",
        ["+49 30 1234 5678"],
    )
    assert contact["company_id"] == applied["company_id"] is not None


FREEMAIL_REPLY = rfc(
    msgid="reply-2@mail.gmail.com",
    sender="Tom Berg <tom.berg@gmail.com>",
    to="sam@shop.test",
    subject="Re: Pricing",
    date="Tue, 03 Mar 2026 11:00:00 +0000",
    text="Sounds good.\r\n\r\nThanks,\r\nTom Berg\r\nFreelance designer\r\n",
)


def test_a_free_mail_sender_never_becomes_a_company(stack: Stack, invoke_api: Invoke) -> None:
    # Given a reply from a gmail.com address
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(FREEMAIL_REPLY)
    # When its lead is applied
    answer = body(extract(invoke_api, email_id, apply=True))
    # Then the contact is created, no company domain is named and no company exists
    assert answer["lead"]["company_domain"] is None
    assert answer["applied"]["contact_created"] is True
    assert answer["applied"]["company_id"] is None
    assert crm_get(invoke_api, "crm-list-companies")["items"] == []


def test_extract_lead_is_refused_to_viewers_unknown_mail_and_with_ai_off(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a stored email and a tenant with ai off
    email_id = Seeder(stack).add(SIGNED_REPLY)
    # When it is asked with ai off, then 404 feature_disabled
    off = extract(invoke_api, email_id, apply=False)
    assert (off["statusCode"], body(off)["error"]["code"]) == (404, "feature_disabled")
    # When a viewer asks with ai on, then 403 role_required, nothing created
    set_ai(invoke_api, True)
    for apply in (True, False):
        viewer = extract(invoke_api, email_id, apply=apply, role="viewer")
        assert (viewer["statusCode"], body(viewer)["error"]["code"]) == (403, "role_required"), apply
    assert crm_get(invoke_api, "crm-list-contacts")["items"] == []
    # When an email the tenant does not hold is named, then 404 not_found
    missing = extract(invoke_api, "em_" + "0" * 26, apply=True)
    assert (missing["statusCode"], body(missing)["error"]["code"]) == (404, "not_found")


def test_extract_lead_counts_towards_the_ai_rate_limit(stack: Stack, invoke_api: Invoke) -> None:
    # Given a tenant with ai on, its limiter's clock fixed inside one minute
    set_ai(invoke_api, True)
    email_id = Seeder(stack).add(FREEMAIL_REPLY)
    wiring.ai_limits().now = lambda: datetime(2026, 11, 2, 9, 0, 5, tzinfo=UTC)
    # When it asks for 11 extractions within that minute
    statuses = [extract(invoke_api, email_id, apply=False)["statusCode"] for _ in range(11)]
    # Then the 11th is 429 rate_limited
    assert statuses == [200] * 10 + [429]
