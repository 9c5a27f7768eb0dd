"""Invitations end to end in-process: the api, outbox, sync and calendar handlers on moto, a real
Dovecot mailbox and a real SMTP sink.

Organizer side: invite -> the sink receives an iTIP REQUEST per attendee with RSVP links; a link
-> PARTSTAT changes and the organizer gets a REPLY; the same click again changes and sends
nothing; tampered and expired links are 403; an update sends REQUEST with a higher SEQUENCE (and
CANCEL to a removed attendee), a delete CANCEL. Attendee side: a REPLY synced from the mailbox
updates the attendee; a REQUEST from someone else becomes a pending invitation, answered with a
REPLY; a CANCEL cancels it."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest

from mailbridge.calendar import ics
from mailbridge.calendar.wiring import signer
from mailbridge.sync.wiring import service_deps
from tests.fixtures.aws import BusReader, Stack
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER
from tests.integration.calendar_client import TENANT, Calendar, berlin
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.queue_harness import QueueConsumer
from tests.integration.sync_harness import SyncHarness

pytestmark = pytest.mark.dovecot

CAROL, DAN, ZOE = "carol@customer.example", "dan@supplier.example", "zoe@partner.example"


@pytest.fixture
def mail(
    stack: Stack, invoke_api: Any, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> SyncHarness:
    """A connected, synced mailbox that sends through the SMTP sink (the organizer's)."""
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
    status, body = h.connect(
        smtp={
            "host": smtp_sink.host,
            "port": smtp_sink.plain_port,
            "security": "none",
            "username": SINK_USER,
            "password": SINK_PASSWORD,
        }
    )
    assert status == 201, body
    h.drain()
    return h


class Flow:
    def __init__(self, mail: SyncHarness, stack: Stack, smtp_sink: Any) -> None:
        self.mail = mail
        self.cal = Calendar(mail.invoke_api)
        self.public = Calendar(mail.invoke_api)
        self.outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
        self.calendar_fn = QueueConsumer(stack, "calendar", "CalendarQueue")
        self.sink = smtp_sink
        self.me = f"{mail.user.name}@example.com"

    def sent(self) -> list[EmailMessage]:
        """What the SMTP sink received since the last call (after the outbox ran)."""
        self.outbox.drain(expect_success=True)
        messages = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in self.sink.messages]
        self.sink.messages.clear()
        return [m for m in messages if isinstance(m, EmailMessage)]

    def invite(self, event_id: str, status: int = 202) -> Any:
        return self.cal.call(
            "invite", status, path={"event_id": event_id}, body={"account_id": self.mail.account_id}
        )

    def click(self, link: str) -> dict[str, Any]:
        token, status = re.fullmatch(r".*/calendar/rsvp/([^?]+)\?status=(\w+)", link).groups()  # type: ignore[union-attr]
        return self.public.raw("rsvp", path={"token": token}, query={"status": status})

    def deliver(self, raw: bytes) -> None:
        """The message arrives in the mailbox; the sync stores it and the calendar function reads it."""
        self.mail.server.append(self.mail.user, "INBOX", raw)
        self.mail.api("sync-account.json", params={"account_id": self.mail.account_id})
        self.mail.drain()
        self.calendar_fn.drain(expect_success=True)


@pytest.fixture
def flow(mail: SyncHarness, stack: Stack, smtp_sink: Any) -> Flow:
    return Flow(mail, stack, smtp_sink)


def calendar_of(message: EmailMessage) -> tuple[str, ics.ParsedFile]:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    method = str(part.get_param("method"))
    return method, ics.parse_calendar(part.get_content())


def links_in(message: EmailMessage) -> dict[str, str]:
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
    text = text.replace("\r\n", "\n")  # the sink keeps the wire's CRLF
    return dict(re.findall(r"^\s+(Accept|Maybe|Decline): (\S+)$", text, re.MULTILINE))


def meeting(**extra: Any) -> dict[str, Any]:
    return {
        "title": "Quarterly review",
        "start": berlin("2026-10-14T09:00:00"),
        "end": berlin("2026-10-14T10:00:00"),
        "attendees": [{"address": CAROL, "name": "Carol"}, {"address": DAN}],
        **extra,
    }


def partstats(flow: Flow, event_id: str) -> dict[str, str]:
    return {a["address"]: a["partstat"] for a in flow.cal.get(event_id)["attendees"]}


def test_invite_then_rsvp_link_accepts_and_the_organizer_gets_a_reply(
    flow: Flow, bus_probe: BusReader
) -> None:
    event = flow.cal.create(**meeting())
    # When the organizer invites from the connected mailbox
    result = flow.invite(event["event_id"])
    assert sorted(s["address"] for s in result["sent"]) == [CAROL, DAN]
    # Then the sink receives one iTIP REQUEST per attendee, with the .ics attached
    requests = {m["To"].addresses[0].addr_spec: m for m in flow.sent()}
    assert set(requests) == {CAROL, DAN}
    carol_mail = requests[CAROL]
    assert carol_mail["From"].addresses[0].addr_spec == flow.me
    assert carol_mail["Subject"] == "Invitation: Quarterly review"
    method, parsed = calendar_of(carol_mail)
    assert (method, parsed.method) == ("REQUEST", "REQUEST")
    (invited,) = parsed.events
    assert invited.uid == event["uid"]
    assert invited.fields.organizer is not None
    assert invited.fields.organizer.address == flow.me
    assert invited.fields.start.date_time == datetime.fromisoformat("2026-10-14T09:00:00+02:00")
    assert [p.get_filename() for p in carol_mail.iter_attachments()] == ["invite.ics"]
    # And each attendee's links are their own
    carol_links, dan_links = links_in(carol_mail), links_in(requests[DAN])
    assert set(carol_links) == {"Accept", "Maybe", "Decline"}
    assert carol_links["Accept"] != dan_links["Accept"]
    bus_probe()
    # When Carol follows her accept link (no bearer token)
    clicked = flow.click(carol_links["Accept"])
    # Then her PARTSTAT is accepted, Dan's untouched, and the change is announced
    assert clicked["statusCode"] == 200, clicked
    assert json.loads(clicked["body"])["changed"] is True
    assert partstats(flow, event["event_id"]) == {CAROL: "accepted", DAN: "needs-action"}
    changed = [e["detail"]["data"] for e in bus_probe() if e["detail-type"] == "calendar.rsvp_changed"]
    assert [(d["attendee"], d["partstat"], d["previous"]) for d in changed] == [
        (CAROL, "accepted", "needs-action")
    ]
    # And the organizer receives an iTIP REPLY with Carol's answer
    (reply,) = flow.sent()
    assert reply["To"].addresses[0].addr_spec == flow.me
    assert reply["Subject"].startswith("Accepted: Quarterly review")
    method, parsed = calendar_of(reply)
    assert method == "REPLY"
    assert [(a.address, a.partstat) for a in parsed.events[0].fields.attendees] == [(CAROL, "accepted")]
    # When she clicks the same link again: nothing changes, nothing is sent or announced
    again = flow.click(carol_links["Accept"])
    assert (again["statusCode"], json.loads(again["body"])["changed"]) == (200, False)
    assert flow.sent() == []
    assert [e for e in bus_probe() if e["detail-type"] == "calendar.rsvp_changed"] == []
    # And she can still change her mind
    assert json.loads(flow.click(carol_links["Decline"])["body"])["status"] == "declined"
    assert partstats(flow, event["event_id"])[CAROL] == "declined"


def test_tampered_expired_and_unknown_links_are_refused_never_a_500(flow: Flow) -> None:
    event = flow.cal.create(**meeting())
    flow.invite(event["event_id"])
    link = links_in(next(m for m in flow.sent() if m["To"].addresses[0].addr_spec == CAROL))["Accept"]
    token = re.search(r"/rsvp/([^?]+)", link).group(1)  # type: ignore[union-attr]
    payload, tag = token.split(".")
    cases = {
        "tampered payload": f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{tag}",
        "tampered tag": f"{payload}.{tag[:-1]}{'A' if tag[-1] != 'A' else 'B'}",
        "garbage": "not-a-token",
    }
    for name, bad in cases.items():
        response = flow.public.raw("rsvp", path={"token": bad}, query={"status": "accepted"})
        assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (
            403,
            "invalid_token",
        ), name
    expired = signer().rsvp_token(TENANT, event["event_id"], CAROL, datetime.now(UTC) - timedelta(minutes=1))
    response = flow.public.raw("rsvp", path={"token": expired}, query={"status": "accepted"})
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (403, "token_expired")
    stranger = signer().rsvp_token(
        TENANT, event["event_id"], "eve@example.net", datetime.now(UTC) + timedelta(days=1)
    )
    response = flow.public.raw("rsvp", path={"token": stranger}, query={"status": "accepted"})
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (
        404,
        "attendee_not_found",
    )
    wrong_answer = flow.public.raw("rsvp", path={"token": token}, query={"status": "maybe"})
    assert wrong_answer["statusCode"] == 422
    assert partstats(flow, event["event_id"]) == {CAROL: "needs-action", DAN: "needs-action"}


def test_updates_send_a_higher_sequence_removed_attendees_and_deletes_get_cancel(flow: Flow) -> None:
    event = flow.cal.create(**meeting())
    flow.invite(event["event_id"])
    flow.sent()
    # When the meeting moves an hour later and Dan is taken off
    moved = flow.cal.put(
        event["event_id"],
        **meeting(
            start=berlin("2026-10-14T10:00:00"),
            end=berlin("2026-10-14T11:00:00"),
            attendees=[{"address": CAROL}],
        ),
    )
    assert moved["sequence"] == 1
    messages = {m["To"].addresses[0].addr_spec: m for m in flow.sent()}
    # Then Carol gets a REQUEST with SEQUENCE 1 at the new time, Dan a CANCEL
    method, parsed = calendar_of(messages[CAROL])
    assert (method, parsed.events[0].sequence) == ("REQUEST", 1)
    assert parsed.events[0].fields.start.date_time == datetime.fromisoformat("2026-10-14T10:00:00+02:00")
    assert messages[CAROL]["Subject"] == "Updated invitation: Quarterly review"
    method, parsed = calendar_of(messages[DAN])
    assert (method, parsed.events[0].fields.status) == ("CANCEL", "cancelled")
    # When the event is deleted, Carol gets a CANCEL with a higher SEQUENCE still
    flow.cal.delete(event["event_id"])
    (cancel,) = flow.sent()
    method, parsed = calendar_of(cancel)
    assert (cancel["To"].addresses[0].addr_spec, method, parsed.events[0].sequence) == (CAROL, "CANCEL", 2)


def _itip_mail(method: str, body_ics: str, *, sender: str, to: str, msgid: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {method.title()}\r\nMessage-ID: <{msgid}>\r\n"
        "Date: Tue, 17 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the invitation.\r\n"
        f"--b1\r\nContent-Type: text/calendar; charset=utf-8; method={method}\r\n\r\n{body_ics}\r\n--b1--\r\n"
    ).encode()


def _vcalendar(method: str, *lines: str) -> str:
    return "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Other//EN", f"METHOD:{method}", "BEGIN:VEVENT", *lines,
         "END:VEVENT", "END:VCALENDAR"]
    )  # fmt: skip


def test_a_reply_synced_from_the_mailbox_updates_the_attendee(flow: Flow, bus_probe: BusReader) -> None:
    event = flow.cal.create(**meeting())
    flow.invite(event["event_id"])
    flow.sent()
    bus_probe()
    reply = _vcalendar(
        "REPLY",
        f"UID:{event['uid']}",
        "SEQUENCE:0",
        "DTSTAMP:20261117T100000Z",
        f"ORGANIZER:mailto:{flow.me}",
        f"ATTENDEE;PARTSTAT=DECLINED:mailto:{DAN}",
    )
    # When Dan's client replies by mail, and the mail is synced
    flow.deliver(_itip_mail("REPLY", reply, sender=DAN, to=flow.me, msgid="reply-dan@supplier.example"))
    # Then Dan is declined, and the change announced once
    assert partstats(flow, event["event_id"]) == {CAROL: "needs-action", DAN: "declined"}
    changed = [e["detail"]["data"] for e in bus_probe() if e["detail-type"] == "calendar.rsvp_changed"]
    assert [(d["attendee"], d["partstat"], d["via"]) for d in changed] == [(DAN, "declined", "email_reply")]
    # And a reply for Dan sent by someone else changes nothing
    forged = reply.replace("PARTSTAT=DECLINED", "PARTSTAT=ACCEPTED")
    flow.deliver(_itip_mail("REPLY", forged, sender=ZOE, to=flow.me, msgid="forged@partner.example"))
    assert partstats(flow, event["event_id"])[DAN] == "declined"


def test_an_invitation_from_someone_else_is_pending_answered_and_cancelled(flow: Flow) -> None:
    request = _vcalendar(
        "REQUEST",
        "UID:launch@partner.example",
        "SEQUENCE:0",
        "DTSTAMP:20261117T100000Z",
        "DTSTART;TZID=Europe/Berlin:20261201T140000",
        "DTEND;TZID=Europe/Berlin:20261201T150000",
        "SUMMARY:Launch planning",
        f"ORGANIZER;CN=Zoe:mailto:{ZOE}",
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{flow.me}",
    )
    # When Zoe's invitation arrives in the mailbox
    flow.deliver(_itip_mail("REQUEST", request, sender=ZOE, to=flow.me, msgid="invite@partner.example"))
    # Then it waits for an answer
    pending = flow.cal.call("list-invitations")["items"]
    assert [(e["title"], e["invitation"]["status"], e["source"]) for e in pending] == [
        ("Launch planning", "pending", "invitation")
    ]
    event_id = pending[0]["event_id"]
    # When the user accepts it
    accepted = flow.cal.call("respond", path={"event_id": event_id}, body={"status": "accepted"})
    # Then it is accepted, no longer pending, and Zoe gets a REPLY from the mailbox
    assert accepted["invitation"]["status"] == "accepted"
    assert flow.cal.call("list-invitations")["items"] == []
    (reply,) = flow.sent()
    assert (reply["From"].addresses[0].addr_spec, reply["To"].addresses[0].addr_spec) == (flow.me, ZOE)
    method, parsed = calendar_of(reply)
    assert method == "REPLY"
    assert [(a.address, a.partstat) for a in parsed.events[0].fields.attendees] == [(flow.me, "accepted")]
    # And answering the same again sends nothing
    flow.cal.call("respond", path={"event_id": event_id}, body={"status": "accepted"})
    assert flow.sent() == []
    # When Zoe cancels it
    cancel = request.replace("METHOD:REQUEST", "METHOD:CANCEL").replace("SEQUENCE:0", "SEQUENCE:1")
    flow.deliver(_itip_mail("CANCEL", cancel, sender=ZOE, to=flow.me, msgid="cancel@partner.example"))
    # Then the event is cancelled and cannot be answered any more
    event = flow.cal.get(event_id)
    assert (event["status"], event["invitation"]["status"]) == ("cancelled", "cancelled")
    refused = flow.cal.call("respond", 409, path={"event_id": event_id}, body={"status": "declined"})
    assert refused["error"]["code"] == "invitation_cancelled"
