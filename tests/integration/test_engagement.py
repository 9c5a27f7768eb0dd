"""Engagement per contact, campaign and email through the api function on moto (issue 17 point 3):
human and machine hits counted apart, scanner clicks left out, replies counted once, a hit
stored twice counted once, bounces lowering the score, another tenant's ids 404."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.access import accounts_of
from mailbridge.store.emails import EmailStore
from mailbridge.store.tracking import DynamoTrackingStore
from mailbridge.tracking.models import Evidence, Hit
from tests.events import load_event
from tests.fixtures.aws import Stack
from tests.integration.test_tracking import (
    GMAIL_PROXY,
    TENANT,
    Invoke,
    _delivered,
    _hit,
    _part,
    _send,
    _tokens,
)

OTHER_TENANT = "globex"
BEA = "bea-5e6f7a8b"


def _call(
    invoke: Invoke,
    name: str,
    *,
    path: dict[str, str] | None = None,
    body: Any = None,
    role: str = "member",
    tenant: str = TENANT,
    sub: str | None = None,
) -> tuple[int, Any]:
    event = load_event(name, tenant=tenant, role=role, body=body, sub=sub)
    for key, value in (path or {}).items():
        old = event["pathParameters"][key]
        event["pathParameters"][key] = value
        event["rawPath"] = event["requestContext"]["http"]["path"] = event["rawPath"].replace(old, value)
    response = invoke(event)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def _contact(invoke: Invoke, address: str) -> str:
    status, contact = _call(
        invoke, "api/crm-create-contact.json", body={"name": "Carol", "emails": [{"address": address}]}
    )
    assert status == 201, contact
    return str(contact["contact_id"])


def _campaign(invoke: Invoke, tenant: str = TENANT) -> str:
    status, _ = _call(invoke, "api/put-features.json", body={"campaigns": True}, role="admin", tenant=tenant)
    assert status == 200
    status, campaign = _call(
        invoke, "api/crm-create-campaign.json", body={"name": "Spring launch"}, tenant=tenant
    )
    assert status == 201, campaign
    return str(campaign["campaign_id"])


def _link(invoke: Invoke, email_id: str, record_id: str) -> None:
    kind = "contact" if record_id.startswith("ct_") else "campaign"
    status, link = _call(
        invoke,
        "api/links-create.json",
        path={"email_id": email_id},
        body={"kind": kind, "record_id": record_id},
    )
    assert status == 201, link


def _contact_engagement(
    invoke: Invoke, contact_id: str, tenant: str = TENANT, sub: str | None = None
) -> tuple[int, Any]:
    return _call(
        invoke,
        "api/crm-get-contact-engagement.json",
        path={"contact_id": contact_id},
        role="viewer",
        tenant=tenant,
        sub=sub,
    )


def _campaign_engagement(
    invoke: Invoke, campaign_id: str, tenant: str = TENANT, sub: str | None = None
) -> tuple[int, Any]:
    return _call(
        invoke,
        "api/crm-get-campaign-engagement.json",
        path={"campaign_id": campaign_id},
        role="viewer",
        tenant=tenant,
        sub=sub,
    )


def _tracked_send(stack: Stack, invoke: Invoke, to: str) -> tuple[str, str, list[str]]:
    """A tracked email to `to`, delivered an hour ago: its id, open token and click tokens."""
    email_id, message = _send(stack, invoke, to=[{"address": to}], tracking={"opens": True, "clicks": True})
    open_token, clicks = _tokens(_part(message, "html"))
    _delivered(stack, email_id, timedelta(hours=1))
    return email_id, open_token, clicks


def _emails(stack: Stack) -> EmailStore:
    return EmailStore(stack.env("ApiFunction")["EMAILS_TABLE"])


def _stored(stack: Stack, email_id: str) -> dict[str, Any]:
    item = _emails(stack).get_email(TENANT, email_id)
    assert item is not None
    return item


def _in_thread(stack: Stack, sent_id: str, *, after: timedelta, **fields: Any) -> str:
    """An email stored in the sent email's thread `after` it (what the sync would store)."""
    sent = _stored(stack, sent_id)
    at = (datetime.fromisoformat(str(sent["date"])) + after).isoformat()
    item = {
        k: v for k, v in sent.items() if k not in ("pk", "sk", "version", "send_status", "gsi6pk", "gsi6sk")
    }
    email_id = "em_" + uuid.uuid4().hex[:26]
    item |= {
        "email_id": email_id,
        "direction": "inbound",
        "date": at,
        "gsi1sk": f"{at}#{email_id}",
        "gsi2sk": f"{at}#{email_id}",
        "message_id": f"{email_id}@customer.example",
    } | fields
    assert _emails(stack).create_email(TENANT, item)
    return email_id


def test_contact_engagement_counts_human_and_machine_apart_and_no_scanner_click(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a tracked email to Carol, linked to her contact
    contact_id = _contact(invoke_api, "carol@customer.example")
    email_id, open_token, clicks = _tracked_send(stack, invoke_api, "carol@customer.example")
    _link(invoke_api, email_id, contact_id)
    # When Gmail's image proxy and then Carol open it, a gateway checks a link and Carol clicks it
    _hit(invoke_api, "o", open_token, agent=GMAIL_PROXY)
    _hit(invoke_api, "o", open_token)
    _hit(invoke_api, "c", clicks[1], method="HEAD")
    _hit(invoke_api, "c", clicks[1])
    # Then her engagement shows one human and one machine open, one human click, the scanner's apart
    status, engagement = _contact_engagement(invoke_api, contact_id)
    assert status == 200, engagement
    counts = {k: v for k, v in engagement.items() if isinstance(v, int) and not isinstance(v, bool)}
    assert counts == {
        "emails_sent": 1,
        "delivered": 1,
        "bounces": 0,
        "human_opens": 1,
        "machine_opens": 1,
        "human_clicks": 1,
        "machine_clicks": 1,
        "replies": 0,
        "score": 24,  # 5 + 15 points: round(100 * (1 - 0.5 ** (20 / 50)))
    }
    assert engagement["contact_id"] == contact_id
    assert engagement["last_human_open_at"] is not None
    assert engagement["last_human_click_at"] is not None
    assert engagement["last_reply_at"] is None
    assert engagement["truncated"] is False
    # And her timeline shows the human open and click, newest first, and no machine hit
    status, timeline = _call(
        invoke_api, "api/crm-get-contact-timeline.json", path={"contact_id": contact_id}, role="viewer"
    )
    assert status == 200, timeline
    shown = [(i["kind"], i["email_id"], i["url"]) for i in timeline["items"] if i["type"] == "engagement"]
    assert shown == [("click", email_id, "https://shop.example.com/terms"), ("open", email_id, None)]


def test_a_reply_is_counted_once_and_an_out_of_office_not_at_all(stack: Stack, invoke_api: Invoke) -> None:
    # Given two emails sent to Dan in one thread, both linked to his contact
    contact_id = _contact(invoke_api, "dan@customer.example")
    first, _, _ = _tracked_send(stack, invoke_api, "dan@customer.example")
    second = _in_thread(stack, first, after=timedelta(minutes=10), direction="outbound", send_status="sent")
    _link(invoke_api, first, contact_id)
    _link(invoke_api, second, contact_id)
    # When Dan's out-of-office answers the first, and Dan himself answers after the second
    _in_thread(stack, first, after=timedelta(minutes=5), auto_submitted="auto-replied")
    reply = _in_thread(stack, first, after=timedelta(minutes=20))
    # Then the contact shows one reply, at the time of Dan's answer
    status, engagement = _contact_engagement(invoke_api, contact_id)
    assert status == 200, engagement
    assert (engagement["emails_sent"], engagement["replies"]) == (2, 1)
    answered_at = datetime.fromisoformat(engagement["last_reply_at"])
    assert answered_at == datetime.fromisoformat(str(_stored(stack, reply)["date"]))
    # And the second email shows it, the first does not
    replies = {}
    for email_id in (first, second):
        event = load_event("api/get-email.json", tenant=TENANT, role="viewer")
        event["pathParameters"] = {"email_id": email_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/emails/{email_id}"
        view = json.loads(invoke_api(event)["body"])
        replies[email_id] = (view["engagement"] or {}).get("replies")
    assert replies == {first: 0, second: None}  # the second was not sent through tracking


def _human_open(hit_id: str, email_id: str, at: datetime) -> Hit:
    return Hit(
        hit_id=hit_id,
        email_id=email_id,
        kind="open",
        at=at,
        evidence=Evidence(method="GET", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
        classification="human",
        reasons=["no_machine_signal"],
    )


def test_a_hit_stored_again_by_a_redelivery_counts_once(stack: Stack, invoke_api: Invoke) -> None:
    # Given a tracked email to Erin, linked to her contact
    contact_id = _contact(invoke_api, "erin@customer.example")
    email_id, _, _ = _tracked_send(stack, invoke_api, "erin@customer.example")
    _link(invoke_api, email_id, contact_id)
    # When the same human open is stored twice (a redelivered record, stamped a second later)
    store = DynamoTrackingStore(stack.env("ApiFunction")["TRACKING_TABLE"])
    now = datetime.now(UTC)
    for at in (now, now + timedelta(seconds=1)):
        store.put_hit(TENANT, _human_open("hit_redelivered", email_id, at), expires=now + timedelta(days=1))
    # Then it counts once
    status, engagement = _contact_engagement(invoke_api, contact_id)
    assert status == 200, engagement
    assert engagement["human_opens"] == 1


def test_a_bounce_lowers_the_score(stack: Stack, invoke_api: Invoke) -> None:
    # Given two contacts each sent a tracked email that a person opened
    reached, bounced = (
        _contact(invoke_api, "fay@customer.example"),
        _contact(invoke_api, "gus@customer.example"),
    )
    sent: dict[str, str] = {}
    for contact_id, address in ((reached, "fay@customer.example"), (bounced, "gus@customer.example")):
        email_id, open_token, _ = _tracked_send(stack, invoke_api, address)
        _link(invoke_api, email_id, contact_id)
        _hit(invoke_api, "o", open_token)
        sent[contact_id] = email_id
    # When a delivery status notification (RFC 3464) comes back for Gus's email
    message_id = _stored(stack, sent[bounced])["message_id"]
    report = {"reporting_mta": "mx.customer.example", "recipients": [], "original_message_id": message_id}
    _in_thread(stack, sent[bounced], after=timedelta(minutes=1), bounce=report, auto_submitted="auto-replied")
    # Then Gus's email counts as a bounce, not delivered and no reply, and his score is lower
    _, fay = _contact_engagement(invoke_api, reached)
    _, gus = _contact_engagement(invoke_api, bounced)
    assert (fay["delivered"], fay["bounces"], fay["replies"]) == (1, 0, 0)
    assert (gus["delivered"], gus["bounces"], gus["replies"]) == (0, 1, 0)
    assert gus["score"] < fay["score"]
    # And the email itself shows the bounce
    event = load_event("api/get-email.json", tenant=TENANT, role="viewer")
    event["pathParameters"] = {"email_id": sent[bounced]}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/emails/{sent[bounced]}"
    view = json.loads(invoke_api(event)["body"])["engagement"]
    assert (view["delivered"], view["bounces"]) == (False, 1)


def test_campaign_engagement_gives_totals_human_clicks_per_link_and_rates(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a campaign with two tracked emails, one to Hal and one to Ida
    campaign_id = _campaign(invoke_api)
    hal, hal_open, hal_clicks = _tracked_send(stack, invoke_api, "hal@customer.example")
    ida, _, ida_clicks = _tracked_send(stack, invoke_api, "ida@customer.example")
    for email_id in (hal, ida):
        _link(invoke_api, email_id, campaign_id)
    # When Hal opens his and clicks the terms, a scanner checks Ida's quote link, and Ida answers
    _hit(invoke_api, "o", hal_open)
    _hit(invoke_api, "c", hal_clicks[1])
    _hit(invoke_api, "c", ida_clicks[0], method="HEAD")
    _in_thread(stack, ida, after=timedelta(minutes=30))
    # Then the campaign shows the totals, the human clicks per URL and the rates
    status, engagement = _campaign_engagement(invoke_api, campaign_id)
    assert status == 200, engagement
    assert engagement["campaign_id"] == campaign_id
    got = {k: engagement[k] for k in ("emails_sent", "delivered", "human_opens", "human_clicks", "replies")}
    assert got == {"emails_sent": 2, "delivered": 2, "human_opens": 1, "human_clicks": 1, "replies": 1}
    assert engagement["machine_clicks"] == 1
    assert engagement["links"] == [
        {"url": "https://shop.example.com/terms", "human_clicks": 1},
        {"url": "https://shop.example.com/quote?id=7&v=2", "human_clicks": 0},
    ]
    assert engagement["rates"] == {
        "delivery_rate": 1.0,
        "bounce_rate": 0.0,
        "open_rate": 0.5,
        "click_rate": 0.5,
        "reply_rate": 0.5,
    }
    assert 0 < engagement["score"] <= 100


def test_another_tenants_contact_and_campaign_are_404(stack: Stack, invoke_api: Invoke) -> None:
    # Given a contact and a campaign of acme, and globex with campaigns on
    contact_id = _contact(invoke_api, "jo@customer.example")
    campaign_id = _campaign(invoke_api)
    _campaign(invoke_api, tenant=OTHER_TENANT)
    # When globex asks for their engagement
    contact_status, contact = _contact_engagement(invoke_api, contact_id, tenant=OTHER_TENANT)
    campaign_status, campaign = _campaign_engagement(invoke_api, campaign_id, tenant=OTHER_TENANT)
    # Then both are 404 with the record's code, and acme still sees its own
    assert (contact_status, contact["error"]["code"]) == (404, "contact_not_found")
    assert (campaign_status, campaign["error"]["code"]) == (404, "campaign_not_found")
    assert _contact_engagement(invoke_api, contact_id)[0] == 200
    assert _campaign_engagement(invoke_api, campaign_id)[0] == 200
    # And an id of no possible contact is a 404 too, never a 5xx
    assert _contact_engagement(invoke_api, "ct_%00")[0] == 404


def test_another_user_counts_only_mail_she_sees_and_clicked_urls_only_of_mail_seen_in_full(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a tracked email from the caller's mailbox to Jo, linked to her contact and a campaign,
    # and Jo's click on its terms link
    contact_id = _contact(invoke_api, "jo@customer.example")
    campaign_id = _campaign(invoke_api)
    sent, _, clicks = _tracked_send(stack, invoke_api, "jo@customer.example")
    for record_id in (contact_id, campaign_id):
        _link(invoke_api, sent, record_id)
    _hit(invoke_api, "c", clicks[1])
    [account_id] = accounts_of(_stored(stack, sent))

    def seen_by(sub: str | None) -> tuple[int, int, list[str]]:
        contact = _contact_engagement(invoke_api, contact_id, sub=sub)[1]
        campaign = _campaign_engagement(invoke_api, campaign_id, sub=sub)[1]
        return contact["emails_sent"], campaign["emails_sent"], [link["url"] for link in campaign["links"]]

    # When Bea, another member, reads the engagement while the mailbox shows metadata (the
    # tenant default), and again after its owner made it private
    shared = seen_by(BEA)
    status, _ = _call(
        invoke_api,
        "api/patch-account-visibility.json",
        path={"account_id": account_id},
        body={"visibility": "private"},
    )
    assert status == 200
    private = seen_by(BEA)
    # Then she counts the email while it is shared, without the URLs (they are its body), and
    # nothing once it is private; the owner sees it all
    assert shared == (1, 1, [])
    assert private == (0, 0, [])
    assert seen_by(None) == (
        1,
        1,
        ["https://shop.example.com/terms", "https://shop.example.com/quote?id=7&v=2"],
    )
