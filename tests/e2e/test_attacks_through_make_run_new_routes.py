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

import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from local.template import ACCOUNT_ID, REGION
from mailbridge.store.oauth_states import state_pk
from tests.e2e import test_attacks_through_make_run as issue8
from tests.e2e.make_run import Answer, start_make_run
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
        # The api function's first sandbox may miss the runner's 30 s init limit on a machine
        # running the whole suite (Runtime.InitTimeout, answered 500): the next one starts warm.
        document = wait_for("the API document", lambda: issue8._document(run), timeout=180)
        doc = Document(document, is_new_route)
        user = dovecot_server.add_user(f"{CANARY.lower()}-new", f"{CANARY}-new-password")
        w = NewWorld(run, doc, dovecot_server, smtp_sink, user, run.token(TENANT, "owner"), "", "")
        _fill(w)
        yield w
    finally:
        run.stop()


def _fill(w: NewWorld) -> None:
    me = f"{CANARY.lower()}-new@example.com"
    # Given three invitations from Dan in the mailbox, and the tenant's automations switched on
    for n in (1, 2, 3):
        w.server.append(w.user, "INBOX", invitation(me, n))
    features = w.call("PUT", "/features", {"automations": True, "campaigns": True})
    assert features.status == 200, features.body
    limits = w.call("PUT", "/settings/rate-limits", issue8.PROBE_RATE_LIMITS)
    assert limits.status == 200, limits.body
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
        return items if len(items) == 3 else None

    pending = wait_for("three invitations", invitations)
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
        invitation_event_id=pending[0]["event_id"],  # answered by the probes: two stay pending
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


def test_another_tenant_writing_with_our_ids_on_every_new_route_reaches_nothing(world: NewWorld) -> None:
    # When another tenant's owner sends every write of the new routes with our ids in its path
    wrong = issue8.another_tenant_cannot_reach_our_ids(world, frozenset({"POST", "PUT", "PATCH", "DELETE"}))
    # Then each is refused with a code and nothing of ours changed (the reads: the test above)
    assert wrong == [], "\n".join(map(str, wrong))


# ----------------------------------------------------------------------------- ICS import


def ics(*lines: str) -> bytes:
    return "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Probe//EN", *lines, "END:VCALENDAR", ""]
    ).encode()


def vevent(uid: str, *props: str) -> list[str]:
    return ["BEGIN:VEVENT", f"UID:{uid}-{CANARY.lower()}", "DTSTAMP:20261117T090000Z", *props, "END:VEVENT"]


def _import(world: NewWorld, tenant: str, body: bytes, content_type: str) -> Answer:
    token = world.run.token(tenant, "owner")
    return world.call("POST", "/calendar/import", token=token, raw=body, content_type=content_type)


def _events(
    world: NewWorld, tenant: str, query: str = "from=2030-01-01T00:00:00Z&to=2031-01-01T00:00:00Z"
) -> Answer:
    return world.call("GET", f"/calendar/events?{query}&limit=100", token=world.run.token(tenant, "owner"))


def test_hostile_icalendar_files_are_refused_with_a_code_and_store_nothing(world: NewWorld) -> None:
    at = "DTSTART:20300105T100000Z"
    deep = "BEGIN:VCALENDAR\r\n" + "BEGIN:VEVENT\r\n" * 1000 + "END:VEVENT\r\n" * 1000 + "END:VCALENDAR\r\n"
    form = b'--x\r\nContent-Disposition: form-data; name="other"\r\n\r\nhi\r\n--x--\r\n'
    files: dict[str, tuple[str, bytes, tuple[int, str | None]]] = {
        "nested_1000": ("text/calendar", deep.encode(), (400, "too_deep")),
        "over_api_gateways_10_mb": ("text/calendar", b"A" * (10 * 1024 * 1024 + 1), (413, None)),
        "over_the_2_mb_limit": (
            "text/calendar",
            ics(*vevent("big", at, "SUMMARY:" + "a" * 70)) + b" " * (3 * 1024 * 1024),
            (413, "payload_too_large"),
        ),
        "not_icalendar": ("text/calendar", f"{CANARY} hello".encode(), (400, "not_icalendar")),
        "json": ("application/json", ics(*vevent("json", at)), (415, "unsupported_media_type")),
        "form_without_file": ("multipart/form-data; boundary=x", form, (400, "no_file")),
        "events_1001": (
            "text/calendar",
            ics(*[line for i in range(1001) for line in vevent(f"many{i}", at)]),
            (400, "too_many_events"),
        ),
    }
    # When each file is imported by a tenant of its own (5 imports a minute per tenant)
    answers = run_all(
        [partial(_import, world, f"ics-{t}", b, c) for t, (c, b, _) in enumerate(files.values())]
    )
    # Then each is refused with its code (API Gateway's own 413 has its `message`)
    outcomes = {label: (a.status, a.code) for label, a in zip(files, answers, strict=True)}
    assert outcomes == {label: expected for label, (_, _, expected) in files.items()}
    # And none of them stored an event
    listed = [_events(world, f"ics-{t}") for t in range(len(files))]
    assert [(a.status, a.json()["items"]) for a in listed] == [(200, [])] * len(files)


def test_icalendar_events_with_bad_rules_zones_and_text_are_skipped_or_adapted_never_a_5xx(
    world: NewWorld,
) -> None:
    at = "DTSTART:20300105T100000Z"
    # Given one file holding a bad RRULE, a billion-occurrence RRULE, a made-up TZID and control
    # characters in SUMMARY, DESCRIPTION and LOCATION
    data = ics(
        *vevent("bad-rrule", at, "RRULE:FREQ=SOMETIMES;COUNT=x", f"SUMMARY:bad rule {CANARY}"),
        *vevent("secondly", at, "RRULE:FREQ=SECONDLY", f"SUMMARY:secondly {CANARY}"),
        *vevent("billion", at, "RRULE:FREQ=DAILY;COUNT=1000000000", f"SUMMARY:billion {CANARY}"),
        *vevent("until-9999", at, "RRULE:FREQ=DAILY;UNTIL=99991231T000000Z", f"SUMMARY:forever {CANARY}"),
        *vevent("mars", "DTSTART;TZID=Mars/Olympus_Mons:20300105T100000", f"SUMMARY:mars {CANARY}"),
        *vevent(
            "controls",
            at,
            f"SUMMARY:a\x00b\x07c\u2028Bcc: x@evil.example {CANARY}",
            f"DESCRIPTION:line\\nbreak\x00{CANARY}",
            f"LOCATION:room\x1b[31m{CANARY}",
        ),
    )
    tenant = "ics-mixed"
    # When it is imported
    answer = _import(world, tenant, data, "text/calendar; charset=utf-8")
    # Then 200: each event imported, adapted or skipped with a reason code
    assert answer.status == 200, answer.body[:500]
    by_uid = {e["uid"].split("-" + CANARY.lower())[0]: e for e in answer.json()["events"]}
    assert (by_uid["bad-rrule"]["result"], by_uid["bad-rrule"]["reason"]) == ("skipped", "invalid_rrule")
    assert (by_uid["secondly"]["result"], by_uid["secondly"]["reason"]) == ("skipped", "invalid_rrule")
    assert by_uid["mars"]["result"] in ("imported", "skipped"), by_uid["mars"]
    # And what was stored holds no control character, and reads, lists and exports without a 5xx
    reads = [
        _events(world, tenant),
        _events(world, tenant, "from=2030-01-01T00:00:00Z&to=2031-02-05T00:00:00Z"),
        world.call("GET", "/calendar/export.ics", token=world.run.token(tenant, "owner")),
    ]
    assert [a.status for a in reads] == [200, 200, 200], [a.body[:300] for a in reads]
    stored = [e for e in by_uid.values() if e["event_id"]]
    token = world.run.token(tenant, "owner")
    for event in stored:
        got = world.call("GET", f"/calendar/events/{event['event_id']}", token=token)
        assert got.status == 200, got.body[:300]
        text = json.dumps([got.json().get(k) for k in ("title", "location")], ensure_ascii=False)
        assert not re.search("[\x00-\x1f\x7f\u2028\u2029]", text), text
    assert "bad-rrule" not in reads[2].body.decode()


# ------------------------------------------------------------------------------- automations


def test_hostile_json_logic_and_cron_rules_are_refused_with_a_code_and_not_saved(world: NewWorld) -> None:
    def nested(depth: int) -> str:
        return '{"!": [' * depth + '{"var": "contact.name"}' + "]}" * depth

    def with_logic(body: dict[str, Any], logic: str) -> bytes:
        return json.dumps({**body, "logic": "__logic__"}).replace('"__logic__"', logic).encode()

    action = [{"type": "analytics.track", "metric": "probe"}]
    logic_cases = {  # JSON text (Python's json cannot write 1,000 levels)
        "deep_1000": nested(1000),
        "deep_30": nested(30),  # 61 JSON levels: under the body's limit of 64
        "unknown_operator": json.dumps({"frobnicate": [{"var": "a"}, 1]}),
        "unknown_nested": json.dumps({"and": [True, {"exec": ["rm -rf /"]}]}),
        "huge_in": json.dumps({"in": [{"var": "contact.name"}, [f"{CANARY}-{i}" for i in range(60_000)]]}),
        "not_logic": json.dumps([1, {"==": []}]),
    }
    cron_cases = {
        "minute_60": "cron(60 9 * * ? *)",
        "hour_24": "cron(0 24 * * ? *)",
        "day_32": "cron(0 9 32 * ? *)",
        "month_13": "cron(0 9 ? 13 MON *)",
        "year_1969": "cron(0 9 * * ? 1969)",
        "both_days": "cron(0 9 1 * MON *)",
        "rate_0": "rate(0 minutes)",
        "junk": f"cron({CANARY})",
        "control": "cron(0 9 *\r\n * ? *)",  # inside: outer white space is trimmed
    }
    rule = {"trigger": {"event": "contact.created"}, "actions": action}
    bodies = {
        **{
            f"logic_{label}": with_logic({"name": f"logic {label} {CANARY}", **rule}, logic)
            for label, logic in logic_cases.items()
        },
        **{
            f"cron_{label}": json.dumps(
                {"name": f"cron {label} {CANARY}", "trigger": {"cron": cron}, "actions": action}
            ).encode()
            for label, cron in cron_cases.items()
        },
        "timezone_mars": json.dumps(
            {
                "name": f"mars {CANARY}",
                "trigger": {"cron": "cron(0 9 * * ? *)", "timezone": "Mars/Olympus_Mons"},
                "actions": action,
            }
        ).encode(),
    }
    before = _rule_names(world)
    # When each is evaluated (the logic) and saved as a rule
    evaluations = run_all(
        [
            partial(world.call, "POST", "/automations/evaluate", raw=with_logic({"data": {}}, lg))
            for lg in logic_cases.values()
        ]
    )
    saves = run_all([partial(world.call, "POST", "/automations", raw=b) for b in bodies.values()])
    # Then every answer is a 4xx with a code (a huge `in` list may evaluate: it is the caller's data)
    wrong = [
        (label, a.status, a.code)
        for label, a in [
            *zip([f"evaluate_{k}" for k in logic_cases], evaluations, strict=True),
            *zip(bodies, saves, strict=True),
        ]
        if not (400 <= a.status < 500 and a.code) and not (label == "evaluate_huge_in" and a.status == 200)
    ]
    assert wrong == [], "\n".join(map(str, wrong))
    # And no rule was saved
    assert _rule_names(world) == before


def _rule_names(world: NewWorld) -> set[str]:
    names: set[str] = set()
    cursor = ""
    while True:
        page = world.call("GET", f"/automations?limit=100{cursor}").json()
        names |= {rule["name"] for rule in page["items"]}
        if not page.get("next_cursor"):
            return names
        cursor = "&cursor=" + page["next_cursor"]


PRIVATE_URLS = {
    "private_10": "https://10.0.0.1/hook",
    "private_192": "https://192.168.1.10/hook",
    "metadata": "https://169.254.169.254/latest/meta-data/",
    "metadata_v6": "https://[fd00:ec2::254]/latest/meta-data/",
    "mapped_v6": "https://[::ffff:10.0.0.1]/hook",
    "zero": "https://0.0.0.0/hook",
    "shared_100_64": "https://100.64.0.1/hook",
    "decimal_ip": "https://167772161/hook",
}


def test_actions_aimed_at_private_and_link_local_hosts_are_refused_by_the_ssrf_guard(world: NewWorld) -> None:
    tenant = "ssrf"
    token = world.run.token(tenant, "owner")
    assert world.call("PUT", "/features", {"automations": True}, token=token).status == 200
    # Given one rule per private, link-local or otherwise non-public target, on new contacts
    rules: dict[str, str] = {}
    for label, url in PRIVATE_URLS.items():
        body = {
            "name": f"ssrf {label}",
            "trigger": {"event": "contact.created"},
            "actions": [{"type": "message.post", "url": url, "text": f"hi {CANARY}"}],
        }
        saved = world.call("POST", "/automations", body, token=token)
        # (a URL the save already refuses is refused with a code)
        assert (saved.status == 201) or (400 <= saved.status < 500 and saved.code), (label, saved.body)
        if saved.status == 201:
            rules[label] = saved.json()["rule_id"]
    # When a contact is created
    contact = {"name": f"Ssrf {CANARY}", "emails": [{"address": "ssrf@new.example"}]}
    assert world.call("POST", "/crm/contacts", contact, token=token).status == 201

    # Then every rule ran, and its action failed with host_not_allowed before any connection
    def finished() -> dict[str, dict[str, Any]] | None:
        runs = {}
        for label, rule_id in rules.items():
            items = world.call("GET", f"/automations/{rule_id}/runs", token=token).json()["items"]
            if not items or items[0]["status"] in ("running", "pending"):
                return None
            runs[label] = items[0]
        return runs

    runs = wait_for("the rules to run", finished)
    codes = {
        label: [(s["status"], (s.get("error") or {}).get("code")) for s in run["steps"]]
        for label, run in runs.items()
    }
    assert codes == {label: [("failed", "host_not_allowed")] for label in rules}, codes


# ------------------------------------------------------------------------------------- OAuth


def test_oauth_start_and_callback_with_unknown_providers_and_forged_reused_or_expired_state(
    world: NewWorld,
) -> None:
    def start_state() -> str:
        started = world.call("GET", "/oauth/gmail/start")
        assert started.status == 200, started.body
        query = urllib.parse.urlsplit(started.json()["authorization_url"]).query
        return str(dict(urllib.parse.parse_qsl(query))["state"])

    # Given a real start (its state) for Gmail, and a second one that expired (its stored expiry
    # moved back, as ten minutes would: make run's clock is the real one)
    state, expiring = start_state(), start_state()
    dynamodb = world.run.boto3_client("dynamodb")
    accounts_table = next(t for t in dynamodb.list_tables()["TableNames"] if "accounts" in t.lower())
    dynamodb.update_item(
        TableName=accounts_table,
        Key={"pk": {"S": state_pk(expiring)}, "sk": {"S": "STATE"}},
        UpdateExpression="SET #state.expires_at = :past",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues={":past": {"S": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}},
    )
    accounts_before = [a["account_id"] for a in world.call("GET", "/accounts?limit=100").json()["items"]]

    def callback(provider: str, **query: str) -> Answer:
        return world.run.request("GET", f"/oauth/{provider}/callback?{urllib.parse.urlencode(query)}")

    # When the start names unknown providers, and a login hint with a line break
    starts = {
        provider: world.call("GET", f"/oauth/{provider}/start")
        for provider in ("yahoo", f"{CANARY}%0A", "gmail%00", "..%2Fgmail", "GMAIL")
    }
    hint = world.call("GET", f"/oauth/gmail/start?login_hint=a%0D%0ABcc:{CANARY}@evil.example")
    # Then 404 provider_not_found (or 400 for the hint)
    assert {p: (a.status, a.code) for p, a in starts.items()} == dict.fromkeys(
        starts, (404, "provider_not_found")
    )
    assert (hint.status, hint.code) == (400, "invalid_login_hint")
    # When the callback is forged: no state, a made-up one, an unknown provider, control characters
    # in `code`, open-redirect parameters; then the real state with a bad code, then again
    forged = {
        "no_state": callback("gmail", code=f"{CANARY}"),
        "made_up_state": callback("gmail", state=f"{CANARY}-state", code="c"),
        "unknown_provider": callback("yahoo", state=state + "x", code="c"),
        "redirect": callback(
            "gmail", state=f"{CANARY}", code="c", redirect_uri="https://evil.example/", next="//evil.example"
        ),
        "error_param": callback("gmail", error=f"access_denied\r\nLocation: https://evil.example/{CANARY}"),
    }
    first = callback("gmail", state=state, code=f"{CANARY}\r\n\x00bad")
    reused = callback("gmail", state=state, code="c")
    expired = callback("gmail", state=expiring, code="c")
    # Then each answers 200 with an error outcome (no return URL on make run), never a 5xx or an
    # "internal" outcome, never a redirect elsewhere
    outcomes = {label: (a.status, a.json()["outcome"], a.json()["code"]) for label, a in forged.items()}
    assert outcomes == dict.fromkeys(forged, (200, "error", "invalid_state"))
    assert (first.status, first.json()["outcome"]) == (200, "error"), first.body
    assert first.json()["code"] in ("exchange_failed", "provider_unavailable"), first.body
    assert (reused.status, reused.json()["code"]) == (200, "invalid_state")
    assert (expired.status, expired.json()["code"]) == (200, "state_expired"), expired.body
    assert all(
        "location" not in {h.lower() for h in a.headers} for a in [*forged.values(), first, reused, expired]
    )
    # And no account was connected
    accounts = [a["account_id"] for a in world.call("GET", "/accounts?limit=100").json()["items"]]
    assert accounts == accounts_before


# ------------------------------------------------------------------------------------ webhooks


def test_gmail_pushes_without_a_valid_token_or_body_are_refused_with_a_code(world: NewWorld) -> None:
    def push(raw: bytes, content_type: str = "application/json", token: str | None = None) -> Answer:
        return world.run.request("POST", "/webhooks/gmail", token, raw=raw, content_type=content_type)

    good = json.dumps(
        {
            "message": {
                "data": issue8.b64(json.dumps({"emailAddress": world.address, "historyId": "1"})),
                "messageId": "m1",
            },
            "subscription": "s",
        }
    ).encode()
    forged = world.run.token(TENANT, "owner")  # a JWT, but not one Google signed for the push
    answers = {
        "no_token": push(good),
        "not_a_jwt": push(good, token=f"{CANARY}"),
        "forged_token": push(good, token=forged),
        "junk_json": push(f"{{{CANARY}".encode(), token=forged),
        "non_base64_data": push(
            json.dumps({"message": {"data": f"!!{CANARY}!!", "messageId": "m2"}}).encode(), token=forged
        ),
        "one_mb": push(b'{"message": {"data": "' + b"A" * (1024 * 1024) + b'"}}', token=forged),
        "form": push(b"a=b", content_type="application/x-www-form-urlencoded"),
        "nested": push(b"[" * 100_000 + b"]" * 100_000, token=forged),
    }
    # Then each is a 4xx with a code (401 for the token; never a 5xx Pub/Sub would retry)
    wrong = {
        label: (a.status, a.code) for label, a in answers.items() if not (400 <= a.status < 500 and a.code)
    }
    assert wrong == {}
    assert (answers["no_token"].status, answers["no_token"].code) == (401, "missing_token")
    assert (answers["forged_token"].status, answers["forged_token"].code) == (401, "invalid_token")


def test_no_line_make_run_printed_holds_a_value_sent_to_the_new_routes(world: NewWorld) -> None:
    issue8.test_no_line_make_run_printed_holds_a_value_that_was_sent(world)
