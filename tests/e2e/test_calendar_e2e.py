"""Issue 16 acceptance through the local runner: an event with an attendee, invited from a connected
mailbox; the SMTP sink receives the iTIP REQUEST; its RSVP link, followed over HTTP without a
bearer token, accepts; the organizer receives the REPLY; the export re-imports unchanged."""

from __future__ import annotations

import email
import email.policy
import json
import re
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

import pytest

from local.runner import Runner
from mailbridge.calendar import ics
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot

DAN = "dan@supplier.example"


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def _received(sink: Any) -> list[EmailMessage]:
    found = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in sink.messages]
    sink.messages.clear()
    return [m for m in found if isinstance(m, EmailMessage)]


def _calendar(message: EmailMessage) -> tuple[str, ics.ParsedFile]:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    return str(part.get_param("method")), ics.parse_calendar(part.get_content())


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _export(runner: Runner, token: str) -> bytes:
    request = urllib.request.Request(
        runner.url + "/calendar/export.ics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def _import(runner: Runner, token: str, data: bytes) -> Any:
    request = urllib.request.Request(
        runner.url + "/calendar/import",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/calendar"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_invite_rsvp_reply_and_export_round_trip_through_the_runner(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser, smtp_sink: Any
) -> None:
    from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER

    token = runner.token(tenant="calendar-e2e", role="member")
    smtp = {
        "host": smtp_sink.host,
        "port": smtp_sink.plain_port,
        "security": "none",
        "username": SINK_USER,
        "password": SINK_PASSWORD,
    }
    account_id = connect_mailbox(runner, token, dovecot_server, dovecot_user, smtp)
    runner.drain()
    me = f"{dovecot_user.name}@example.com"
    # Given an event with an attendee
    status, event = call(
        runner,
        "POST",
        "/calendar/events",
        token,
        {
            "title": "Supplier sync",
            "start": {"date_time": "2026-10-14T10:00:00", "time_zone": "Europe/Berlin"},
            "end": {"date_time": "2026-10-14T10:30:00", "time_zone": "Europe/Berlin"},
            "attendees": [{"address": DAN, "name": "Dan"}],
        },
    )
    assert status == 201, event
    smtp_sink.messages.clear()
    # When the organizer invites from the connected mailbox
    status, invited = call(
        runner, "POST", f"/calendar/events/{event['event_id']}/invite", token, {"account_id": account_id}
    )
    assert status == 202, invited
    runner.drain()
    # Then the sink receives a valid iTIP REQUEST for Dan
    (request,) = _received(smtp_sink)
    method, parsed = _calendar(request)
    assert (request["To"].addresses[0].addr_spec, method, parsed.method) == (DAN, "REQUEST", "REQUEST")
    assert [e.uid for e in parsed.events] == [event["uid"]]
    # When Dan follows his accept link (no bearer token)
    text = next(p for p in request.walk() if p.get_content_type() == "text/plain").get_content()
    link = re.search(r"Accept: (\S+)", text).group(1)  # type: ignore[union-attr]
    assert link.startswith(runner.url + "/calendar/rsvp/")
    status, answer = _get(link)
    assert (status, answer["status"], answer["changed"]) == (200, "accepted", True)
    runner.drain()
    # Then the organizer receives the REPLY, and Dan is accepted
    (reply,) = _received(smtp_sink)
    method, parsed = _calendar(reply)
    assert (reply["To"].addresses[0].addr_spec, method) == (me, "REPLY")
    assert [(a.address, a.partstat) for a in parsed.events[0].fields.attendees] == [(DAN, "accepted")]
    status, stored = call(runner, "GET", f"/calendar/events/{event['event_id']}", token)
    assert [(a["address"], a["partstat"]) for a in stored["attendees"]] == [(DAN, "accepted")]
    # And the export re-imports to the same events
    again = _import(runner, token, _export(runner, token))
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 1)
