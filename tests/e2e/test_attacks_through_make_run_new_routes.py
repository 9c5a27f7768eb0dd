"""Issue 8's attacks on the routes added after it, through `make run` over real HTTP.

CRM tasks and activities, the calendar, automations, OAuth and the Gmail push webhook get every
probe test_attacks_through_make_run.py sends to issue 8's routes (control characters in every
text field, out-of-range numbers, nesting, tampered and foreign cursors, a viewer's invalid
bodies, nothing sent in the output), generated from the running API's `/openapi.json`, and then
the attacks specific to them: hostile iCalendar files, JSON-Logic and cron expressions, action
URLs at private hosts, forged OAuth callbacks and junk pushes. Every answer is below 500 with our
`error.code` (or the documented 2xx/3xx), and what is refused leaves nothing behind.

This module starts a `make run` of its own, so pytest-xdist runs it beside the issue 8 module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.template import ACCOUNT_ID, REGION
from tests.e2e import test_attacks_through_make_run as issue8
from tests.e2e.make_run import start_make_run
from tests.e2e.test_attacks_through_make_run import (
    CANARY,
    TENANT,
    Document,
    World,
    is_new_route,
    run_all,
    wait_for,
)
from tests.fixtures.smtp import SmtpSink
from tests.integration.dovecot import DovecotServer

pytestmark = pytest.mark.dovecot

ORGANIZER = f"dan-{CANARY.lower()}@supplier.example"


def invitation(me: str, n: int) -> bytes:
    """An iTIP REQUEST (RFC 6047) from Dan to `me`, as a calendar client sends it."""
    calendar = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Probe//EN",
            "METHOD:REQUEST",
            "BEGIN:VEVENT",
            f"UID:invite-{n}-{CANARY.lower()}@supplier.example",
            "DTSTAMP:20261117T090000Z",
            f"DTSTART:2030011{n}T100000Z",
            f"DTEND:2030011{n}T110000Z",
            f"SUMMARY:Review {n} {CANARY}",
            f"ORGANIZER;CN=Dan:mailto:{ORGANIZER}",
            f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{me}",
            "SEQUENCE:0",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    lines = [
        f"From: Dan <{ORGANIZER}>",
        f"To: {me}",
        f"Subject: Invitation: Review {n} {CANARY}",
        f"Message-ID: <invite-{n}@supplier.example>",
        f"Date: Tue, 17 Nov 2026 1{n}:00:00 +0000",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="b2"',
        "",
        "--b2",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Dan invites you to review {n}.",
        "--b2",
        "Content-Type: text/calendar; charset=utf-8; method=REQUEST",
        "",
        calendar,
        "--b2--",
        "",
    ]
    return "\r\n".join(lines).encode()


@dataclass
class NewWorld(World):
    """What the new routes need besides a mailbox: tasks, activities, events, invitations, rules,
    versions and runs (two of each listing's items)."""

    number_routes = frozenset(
        {"PATCH /crm/tasks/{task_id}", "PUT /calendar/events/{event_id}", "PUT /automations/{rule_id}"}
    )
    ids: dict[str, str] = field(default_factory=dict)  # path parameter -> id

    def concrete(self, route: str) -> str:
        ids = dict(self.ids)
        if route.endswith("/respond"):
            ids["event_id"] = self.ids["invitation_event_id"]
        return re.sub(r"\{(\w+)\}", lambda m: ids[m[1]], route.split(" ", 1)[1])

    def rule_version(self) -> int:
        version: int = self.call("GET", f"/automations/{self.ids['rule_id']}").json()["version"]
        return version

    def base_bodies(self) -> dict[str, list[Callable[[], dict[str, Any]]]]:
        n = iter(range(10**6))
        now = datetime.now(UTC)

        def unique(kind: str) -> str:
            return f"{kind}-{CANARY.lower()}-{next(n)}"

        def links() -> dict[str, Any]:
            return {
                "contact_id": self.records["contact"],
                "company_id": self.records["company"],
                "deal_id": self.records["deal"],
            }

        def task() -> dict[str, Any]:
            return {
                "title": f"Call {CANARY}",
                "description": f"Ask {CANARY}",
                "due": "2030-01-10T09:00:00Z",
                "priority": "high",
                "assignee": f"owner-{CANARY}",
                "email_id": self.emails["invite1"],
                **links(),
            }

        def person(kind: str) -> dict[str, Any]:
            return {
                "address": f"{kind}-{CANARY.lower()}@people.example",
                "name": f"{kind.title()} {CANARY}",
                "partstat": "accepted",
                "role": "opt-participant",
            }

        def timed() -> dict[str, Any]:
            def at(day: int, hour: int) -> dict[str, str]:
                return {"date_time": f"2030-01-{day:02d}T{hour:02d}:00:00", "time_zone": "Europe/Berlin"}

            return {
                "title": f"Meeting {CANARY}",
                "description": f"Agenda {CANARY}",
                "location": f"Room {CANARY}",
                "start": at(7, 10),
                "end": at(7, 11),
                "status": "confirmed",
                "organizer": {"address": self.address, "name": f"Me {CANARY}"},
                "attendees": [person("guest")],
                "recurrence": {
                    "rrule": ["FREQ=WEEKLY;COUNT=5"],
                    "rdate": ["2030-02-20T10:00:00"],
                    "exdate": ["2030-01-14T10:00:00"],
                },
                "overrides": [
                    {
                        "recurrence_id": "2030-01-21T10:00:00",
                        "title": f"Moved {CANARY}",
                        "description": f"Moved {CANARY}",
                        "location": f"Hall {CANARY}",
                        "start": at(22, 10),
                        "end": at(22, 11),
                        "status": "confirmed",
                        "attendees": [person("other")],
                    }
                ],
                "contact_ids": [self.records["contact"]],
                **{k: v for k, v in links().items() if k != "contact_id"},
            }

        def all_day() -> dict[str, Any]:
            return {
                "title": f"Offsite {CANARY}",
                "start": {"date": "2030-03-04"},
                "end": {"date": "2030-03-05"},
                "organizer": {"address": self.address, "name": f"Me {CANARY}"},
                "attendees": [person("guest")],
                "recurrence": {
                    "rrule": ["FREQ=DAILY;COUNT=3"],
                    "rdate": ["2030-03-10"],
                    "exdate": ["2030-03-05"],
                },
                "overrides": [
                    {
                        "recurrence_id": "2030-03-06",
                        "start": {"date": "2030-03-07"},
                        "end": {"date": "2030-03-08"},
                    }
                ],
            }

        def event_rule() -> dict[str, Any]:
            return {
                "name": f"Rule {CANARY}",
                "description": f"About {CANARY}",
                "trigger": {"event": "contact.created"},
                "actions": [{"type": "analytics.track", "metric": "contacts"}],
            }

        def cron_rule() -> dict[str, Any]:
            return {
                "name": f"Cron {CANARY}",
                "trigger": {"cron": "cron(0 9 ? * MON-FRI *)", "timezone": "Europe/Berlin"},
                "actions": [{"type": "analytics.track", "metric": "ticks"}],
                "enabled": False,
            }

        def queue() -> dict[str, Any]:
            name = unique("q")
            return {"name": name, "queue_url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"}

        def openapi() -> dict[str, Any]:
            return {
                "document_id": unique("doc"),
                "document": {
                    "openapi": "3.0.3",
                    "info": {"title": "Billing", "version": "1"},
                    "servers": [{"url": "https://billing.example.com/v1"}],
                    "paths": {"/customers": {"post": {"operationId": "createCustomer"}}},
                },
            }

        window = {
            "version": 1,
            "from": (now - timedelta(hours=1)).isoformat(),
            "to": (now + timedelta(minutes=5)).isoformat(),
        }
        return {
            "POST /crm/tasks": [task],
            "PATCH /crm/tasks/{task_id}": [lambda: {**task(), "status": "open"}],
            "POST /crm/activities": [
                lambda: {
                    "kind": "call",
                    "body": f"Called {CANARY}",
                    "occurred_at": "2026-11-20T10:00:00Z",
                    **links(),
                }
            ],
            "POST /calendar/events": [timed, all_day],
            "PUT /calendar/events/{event_id}": [timed, all_day],
            "POST /calendar/events/{event_id}/invite": [
                lambda: {"account_id": self.account_id, "message": f"Join {CANARY}"}
            ],
            "POST /calendar/events/{event_id}/respond": [
                lambda: {"status": "accepted", "comment": f"Fine {CANARY}"}
            ],
            "POST /automations": [event_rule, cron_rule],
            "PUT /automations/{rule_id}": [
                lambda: {**event_rule(), "version": self.rule_version()},
                lambda: {**cron_rule(), "enabled": True, "version": self.rule_version()},
            ],
            "POST /automations/{rule_id}/test": [
                lambda: {"event_type": "contact.created", "data": {"contact": {"name": f"Ada {CANARY}"}}}
            ],
            "POST /automations/{rule_id}/replay": [lambda: dict(window)],
            "POST /automations/evaluate": [
                lambda: {
                    "logic": {"==": [{"var": "contact.name"}, "Ada"]},
                    "data": {"contact": {"name": "Ada"}},
                }
            ],
            "POST /automations/secrets": [lambda: {"name": unique("secret")}],
            "POST /automations/queues": [queue],
            "PUT /automations/outbound-hosts": [
                lambda: {"allowed_hosts": ["hooks.example.com", ".example.org"]}
            ],
            "POST /automations/openapi": [openapi],
        }


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, dovecot_server: DovecotServer, smtp_sink: SmtpSink
) -> Iterator[NewWorld]:
    run = start_make_run(tmp_path_factory.mktemp("make-run-new-routes"))
    try:
        doc = Document(run.request("GET", "/openapi.json").json(), is_new_route)
        user = dovecot_server.add_user(f"{CANARY.lower()}-new", f"{CANARY}-new-password")
        w = NewWorld(run, doc, dovecot_server, smtp_sink, user, run.token(TENANT, "owner"), "", "")
        _fill(w)
        yield w
    finally:
        run.stop()


def _fill(w: NewWorld) -> None:
    me = f"{CANARY.lower()}-new@example.com"
    # Given two invitations from Dan in the mailbox, and the tenant's automations switched on
    for n in (1, 2):
        w.server.append(w.user, "INBOX", invitation(me, n))
    features = w.call("PUT", "/features", {"automations": True, "campaigns": True})
    assert features.status == 200, features.body
    # And a rule on new contacts, saved twice (two versions), before any contact exists
    rule = w.call(
        "POST",
        "/automations",
        {
            "name": f"Count {CANARY}",
            "trigger": {"event": "contact.created"},
            "actions": [{"type": "analytics.track", "metric": "contacts"}],
        },
    )
    assert rule.status == 201, rule.body
    rule_id = rule.json()["rule_id"]
    second = w.call(
        "POST",
        "/automations",
        {
            "name": f"Other {CANARY}",
            "trigger": {"event": "deal.created"},
            "actions": [{"type": "analytics.track", "metric": "deals"}],
        },
    )
    assert second.status == 201, second.body
    again = w.call(
        "PUT",
        f"/automations/{rule_id}",
        {
            "name": f"Count {CANARY}",
            "trigger": {"event": "contact.created"},
            "actions": [{"type": "analytics.track", "metric": "contacts"}],
            "version": 1,
        },
    )
    assert again.status == 200, again.body
    # And the mailbox connected (with SMTP, to send invitations and answers) and synced
    body = {**w.account_body(w.user, me), "display_name": f"Me {CANARY}"}
    created = w.call("POST", "/accounts", body)
    assert created.status == 201, created.body
    w.account_id, w.address = created.json()["account_id"], me

    def invitations() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = w.call("GET", "/calendar/invitations?limit=10").json()["items"]
        return items if len(items) == 2 else None

    pending = wait_for("two invitations", invitations)
    mail = w.call("GET", f"/emails?account_id={w.account_id}&limit=10").json()["items"]
    w.emails = {
        f"invite{n}": m["email_id"] for n, m in enumerate(sorted(mail, key=lambda m: m["subject"]), 1)
    }
    # And CRM records: two contacts (two runs of the rule), a company, a deal
    records: dict[str, tuple[str, dict[str, Any]]] = {
        "company": ("/crm/companies", {"name": f"Acme {CANARY}"}),
        "contact": (
            "/crm/contacts",
            {"name": f"Carol {CANARY}", "emails": [{"address": "carol@new.example"}]},
        ),
        "contact2": (
            "/crm/contacts",
            {"name": f"Erin {CANARY}", "emails": [{"address": "erin@new.example"}]},
        ),
        "deal": ("/crm/deals", {"name": f"Deal {CANARY}"}),
    }
    for name, (path, record) in records.items():
        answer = w.call("POST", path, record)
        assert answer.status == 201, (name, answer.body)
        w.records[name] = answer.json()[f"{name.rstrip('2')}_id"]
    # And two tasks, two activities on the contact and the deal, and an event of ours with a guest
    links = {"contact_id": w.records["contact"], "deal_id": w.records["deal"]}
    for n in (1, 2):
        task = w.call("POST", "/crm/tasks", {"title": f"Task {n} {CANARY}", **links})
        assert task.status == 201, task.body
        w.ids["task_id"] = task.json()["task_id"]
        activity = w.call("POST", "/crm/activities", {"kind": "note", "body": f"Note {n} {CANARY}", **links})
        assert activity.status == 201, activity.body
    event = w.call(
        "POST",
        "/calendar/events",
        {
            "title": f"Sync {CANARY}",
            "start": {"date_time": "2030-01-07T10:00:00", "time_zone": "Europe/Berlin"},
            "organizer": {"address": me},
            "attendees": [{"address": f"guest-{CANARY.lower()}@people.example"}],
        },
    )
    assert event.status == 201, event.body
    w.ids.update(
        contact_id=w.records["contact"],
        deal_id=w.records["deal"],
        event_id=event.json()["event_id"],
        invitation_event_id=pending[0]["event_id"],
        rule_id=rule_id,
        version="1",
    )

    # And two runs of the rule (one per new contact)
    def runs() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = w.call("GET", f"/automations/{rule_id}/runs").json()["items"]
        return items if len(items) >= 2 else None

    w.ids["run_id"] = wait_for("two runs of the rule", runs)[0]["run_id"]
    # And the SQS queue a queue.enqueue action names exists in this deployment's account
    w.run.boto3_client("sqs").create_queue(QueueName=f"leads-{CANARY.lower()}")


# ------------------------------------------------------------------- issue 8's probes, on these routes


def test_control_characters_in_every_text_field_of_every_new_body_route_are_refused(world: NewWorld) -> None:
    issue8.test_control_characters_in_every_text_field_of_every_body_route_are_refused(world)


def test_json_nested_1000_and_100000_levels_deep_is_a_400_on_every_new_body_route(world: NewWorld) -> None:
    issue8.test_json_nested_1000_and_100000_levels_deep_is_a_400_on_every_body_route(world)


def test_numbers_out_of_range_are_refused_on_every_number_field_of_the_new_routes(world: NewWorld) -> None:
    issue8.test_numbers_out_of_dynamodbs_range_and_not_finite_are_refused_on_every_number_field(world)


def test_edited_forged_and_foreign_cursors_are_a_400_on_every_new_paged_listing(world: NewWorld) -> None:
    issue8.test_edited_forged_and_foreign_cursors_are_a_400_on_every_paged_listing(world)


def test_a_viewer_is_refused_before_a_new_routes_body_is_looked_at(world: NewWorld) -> None:
    issue8.test_a_viewer_is_refused_before_the_body_is_looked_at(world)


def test_unknown_and_other_tenants_ids_in_the_new_routes_paths_are_a_404(world: NewWorld) -> None:
    other = world.run.token("other-tenant", "owner")
    assert world.call("PUT", "/features", {"automations": True}, token=other).status == 200
    unknown = {
        "task_id": "tk_" + "0" * 26,
        "event_id": "ev_" + "0" * 26,
        "rule_id": "au_" + "0" * 20,
        "run_id": "run_" + "0" * 26,
        "version": "999",
        "contact_id": "ct_" + "0" * 26,
        "deal_id": "dl_" + "0" * 26,
    }
    reads = [
        route
        for route, _ in world.doc.operations()
        if world.doc.probed(route)
        and route.startswith("GET ")
        and "{" in route
        and "{token}" not in route
        and "{provider}" not in route
    ]
    probes = []
    for route in reads:
        path = route.split(" ", 1)[1]
        mine = world.concrete(route)
        probes.append((route, "other_tenant", lambda p=mine: world.call("GET", p, token=other)))
        made_up = re.sub(r"\{(\w+)\}", lambda m: unknown[m[1]], path)
        probes.append((route, "unknown", lambda p=made_up: world.call("GET", p)))
        bad = re.sub(r"\{(\w+)\}", f"{CANARY}%0A", path, count=1)
        probes.append((route, "not_an_id", lambda p=bad: world.call("GET", p)))
    # When another tenant reads our ids, and we read made-up and malformed ones
    answers = run_all([p[2] for p in probes])
    # Then 404 with a code (a malformed id: 404 or 422), never our data, never a 5xx
    wrong = [
        (route, label, a.status, a.code)
        for (route, label, _), a in zip(probes, answers, strict=True)
        if not (a.code and (a.status == 404 or (label == "not_an_id" and a.status in (400, 422))))
    ]
    assert wrong == [], "\n".join(map(str, wrong))


def test_no_line_make_run_printed_holds_a_value_sent_to_the_new_routes(world: NewWorld) -> None:
    issue8.test_no_line_make_run_printed_holds_a_value_that_was_sent(world)
