"""Microsoft calendar pull and push-back (issue 16 point 6) against the Microsoft double: the
adapter's calendarView/delta pages, delta links and @removed entries; the pull into the calendar
store (occurrences as their own events, attendees' PARTSTAT), incremental changes and removals,
the full resync after a 410 with the deletion of events that vanished meanwhile, and the push of
API changes with If-Match, a 412 decided by the later change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.calendar import expand
from mailbridge.calendar.models import Event
from mailbridge.calendar.provider_sync import PullReport, pull_graph, push_graph
from mailbridge.calendar.wiring import calendar_deps, calendar_store
from mailbridge.config import get_settings
from mailbridge.models.account import Account
from mailbridge.oauth.tokens import token_source
from mailbridge.providers.graph.calendar import DeltaReset, GraphCalendarClient, window
from mailbridge.sync.messages import PushCalendar
from tests.events import load_event
from tests.integration.graph_harness import TENANT, USER, GraphStack

BERLIN = "Europe/Berlin"


def at(gs: GraphStack, days: int, hour: int = 9) -> datetime:
    """A time `days` after the double's today (inside the pulled window), at `hour` UTC."""
    return gs.clock.now().astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(
        days=days
    )


def graph_time(value: datetime) -> dict[str, str]:
    return {"dateTime": value.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def meeting(gs: GraphStack, subject: str, days: int, **more: Any) -> dict[str, Any]:
    start = at(gs, days)
    return {
        "subject": subject,
        "start": graph_time(start),
        "end": graph_time(start + timedelta(minutes=30)),
        **more,
    }


def connect(gs: GraphStack, *, calendar: bool = True) -> Account:
    if calendar:
        on = gs.invoke(
            "api", load_event("api/put-features.json", tenant=TENANT, role="admin", body={"calendar": True})
        )
        assert on["statusCode"] == 200, on
    return gs.account(gs.connect())


def client_for(account: Account, page_size: int = 100) -> GraphCalendarClient:
    settings = get_settings().microsoft
    return GraphCalendarClient(
        token_source(account),
        base_url=settings.graph_url,
        ca_file=settings.ca_bundle or None,
        page_size=page_size,
    )


def pull(gs: GraphStack, account: Account, page_size: int = 100) -> PullReport:
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    return pull_graph(
        account, client_for(account, page_size), calendar_deps(), enabled=True, now=gs.clock.now()
    )


def stored(uid: str) -> Event | None:
    return calendar_store().events_by_uid(TENANT, [uid]).get(uid)


def run_sync(gs: GraphStack, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Hand `bodies` to the sync function as SQS records of the FIFO SyncQueue."""
    template = load_event("sqs/sync-renew-watches.json")["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"m-{i}"
        record["body"] = json.dumps(body)
        records.append(record)
    return gs.invoke("sync", {"Records": records})


ATTENDEES = [
    {
        "type": "required",
        "status": {"response": "accepted"},
        "emailAddress": {"name": "Bob", "address": "bob@partner.example"},
    },
    {
        "type": "optional",
        "status": {"response": "tentativelyAccepted"},
        "emailAddress": {"address": "eve@partner.example"},
    },
]


def test_the_adapter_pages_to_a_delta_link_then_reads_changes_and_removals(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given three events in Outlook and a client reading two per page
    account = connect(graph_stack)
    ids = [ms.put_event(USER, meeting(graph_stack, f"E{i}", i + 1))["id"] for i in range(3)]
    client = client_for(account, page_size=2)
    span = window(graph_stack.clock.now())

    # When a full round is read
    pages = list(client.calendar_delta(span))

    # Then the pages end with a delta link and hold every event once
    assert [(p.next_link is not None, p.delta_link is not None) for p in pages] == [
        (True, False),
        (False, True),
    ]
    assert sorted(e.id for p in pages for e in p.events) == sorted(ids)

    # When one event changes and another is deleted, and the delta link is followed
    ms.put_event(USER, {"subject": "E0 moved"}, ids[0])
    ms.delete_event(USER, ids[1])
    (changes,) = list(client.calendar_delta(span, pages[-1].delta_link))

    # Then only those two come, the deleted one as @removed with nothing but its id
    assert sorted((e.id, e.subject, e.removed is not None) for e in changes.events) == sorted(
        [(ids[0], "E0 moved", False), (ids[1], None, True)]
    )
    assert changes.delta_link is not None


def test_an_evicted_delta_link_is_delta_reset(graph_stack: GraphStack) -> None:
    # Given a delta link that Outlook no longer holds the state of
    account = connect(graph_stack)
    client = client_for(account)
    span = window(graph_stack.clock.now())
    link = list(client.calendar_delta(span))[-1].delta_link
    assert graph_stack.ms.expire_calendar_delta(USER) == 1
    # When it is followed, then the adapter raises DeltaReset (410 SyncStateNotFound)
    with pytest.raises(DeltaReset):
        list(client.calendar_delta(span, link))


def test_a_pull_stores_each_occurrence_with_its_time_attendees_and_partstat(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given a weekly series of three occurrences shown in Berlin time, with two attendees
    account = connect(graph_stack)
    fields = meeting(graph_stack, "Weekly sync", 2, attendees=ATTENDEES, originalStartTimeZone=BERLIN)
    master, occurrences = ms.put_series(USER, fields, 3)

    # When the account's calendar is pulled
    report = pull(graph_stack, account)

    # Then each occurrence is one event (calendarView holds no series master), in Berlin time
    assert (report.status, report.full, report.imported) == ("synced", True, 3)
    for n, occurrence in enumerate(occurrences):
        event = stored(occurrence["iCalUId"])
        assert event is not None
        assert (event.source, event.title, event.recurrence) == ("microsoft", "Weekly sync", None)
        assert event.start.time_zone == BERLIN
        assert event.start.date_time == at(graph_stack, 2 + 7 * n)  # the same instant
        assert [(a.address, a.partstat, a.role) for a in event.attendees] == [
            ("bob@partner.example", "accepted", "req-participant"),
            ("eve@partner.example", "tentative", "opt-participant"),
        ]
    assert all(o["seriesMasterId"] == master for o in occurrences)


def test_an_incremental_pull_applies_changes_and_removals(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given a pulled single event and a pulled all-day event
    account = connect(graph_stack)
    review = ms.put_event(USER, meeting(graph_stack, "Review", 3))
    day = at(graph_stack, 5, hour=0)
    offsite = ms.put_event(
        USER,
        {
            "subject": "Offsite",
            "isAllDay": True,
            "start": graph_time(day),
            "end": graph_time(day + timedelta(days=1)),
        },
    )
    assert pull(graph_stack, account).imported == 2
    saved = stored(offsite["iCalUId"])
    assert saved is not None
    assert (saved.start.date, saved.end.date if saved.end else None) == (
        day.date(),
        day.date() + timedelta(days=1),
    )

    # When the review is renamed and the offsite deleted in Outlook
    ms.put_event(USER, {"subject": "Review (moved)"}, review["id"])
    ms.delete_event(USER, offsite["id"])
    report = pull(graph_stack, account)

    # Then the pull was incremental: the offsite is gone, the review renamed
    assert (report.full, report.removed, report.updated, report.imported) == (False, 1, 1, 0)
    assert stored(offsite["iCalUId"]) is None
    renamed = stored(review["iCalUId"])
    assert renamed is not None
    assert renamed.title == "Review (moved)"


def test_a_410_resyncs_in_full_and_deletes_the_events_that_vanished_meanwhile(
    graph_stack: GraphStack,
) -> None:
    ms = graph_stack.ms
    # Given three pulled events; then the delta state is evicted, one event is deleted and one
    # changed in Outlook while the link is dead
    account = connect(graph_stack)
    keep, change, vanish = (
        ms.put_event(USER, meeting(graph_stack, name, n + 1)) for n, name in enumerate("KCV")
    )
    assert pull(graph_stack, account).imported == 3
    link_before = calendar_store().calendar_sync_token(TENANT, account.account_id)
    ms.expire_calendar_delta(USER)
    ms.put_event(USER, {"subject": "C changed"}, change["id"])
    ms.delete_event(USER, vanish["id"])

    # When the next pull runs
    report = pull(graph_stack, account)

    # Then it listed everything again with a new link: the unchanged event was recognised by its
    # etag, the changed one updated, and the one missing from the full round deleted here
    assert (report.full, report.echoes, report.updated, report.removed) == (True, 1, 1, 1)
    assert calendar_store().calendar_sync_token(TENANT, account.account_id) not in (None, link_before)
    assert stored(vanish["iCalUId"]) is None
    assert stored(keep["iCalUId"]) is not None
    changed = stored(change["iCalUId"])
    assert changed is not None
    assert changed.title == "C changed"


def test_without_the_calendar_scope_nothing_is_read(graph_stack: GraphStack) -> None:
    # Given an account connected while the calendar flag was off, and an event in Outlook
    account = connect(graph_stack, calendar=False)
    event = graph_stack.ms.put_event(USER, meeting(graph_stack, "Private", 1))
    # When its calendar is pulled
    report = pull(graph_stack, account)
    # Then nothing is read or stored, and the report says a reconnect is needed
    assert (report.status, report.pages) == ("reconnect_required", 0)
    assert stored(event["iCalUId"]) is None


def test_connecting_queues_a_graph_pull_and_the_schedule_fans_out_to_graph_accounts(
    graph_stack: GraphStack,
) -> None:
    # Given an event in Outlook and a tenant with the calendar flag on
    event = graph_stack.ms.put_event(USER, meeting(graph_stack, "Kickoff", 1))
    account = connect(graph_stack)

    # When the connect's queued calendar pull runs in the sync function
    pulls = [m for m in graph_stack.sync_messages() if m["kind"] == "sync_calendar"]
    assert pulls == [
        {"kind": "sync_calendar", "provider": "graph", "tenant_id": TENANT, "account_id": account.account_id}
    ]
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    assert run_sync(graph_stack, pulls) == {"batchItemFailures": []}

    # Then the Outlook event is stored
    assert stored(event["iCalUId"]) is not None

    # And the schedule's message (no account, no provider) queues one pull per Graph account too
    assert run_sync(graph_stack, [load_event("scheduler/calendar-sync.json")]) == {"batchItemFailures": []}
    assert [m for m in graph_stack.sync_messages() if m["kind"] == "sync_calendar"] == pulls


def api_put(gs: GraphStack, event: Event, **changes: Any) -> dict[str, Any]:
    """PUT /calendar/events/{id} through the api function: the stored event with `changes`."""
    body = event.fields().model_dump(mode="json") | event.links().model_dump(mode="json") | changes
    request = load_event("api/calendar-put-event.json", tenant=TENANT, role="member", body=body)
    sample = request["pathParameters"]["event_id"]
    request["pathParameters"]["event_id"] = event.event_id
    request["rawPath"] = request["rawPath"].replace(sample, event.event_id)
    request["requestContext"]["http"]["path"] = request["rawPath"]
    return gs.invoke("api", request)


def test_an_api_change_is_pushed_with_if_match_and_not_pulled_back(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given a pulled event
    account = connect(graph_stack)
    review = ms.put_event(USER, meeting(graph_stack, "Review", 3))
    graph_stack.sync_messages()
    assert pull(graph_stack, account).imported == 1
    event = stored(review["iCalUId"])
    assert event is not None

    # When a member renames it and moves it an hour later through the API, and the sync
    # function runs the push that queued
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    later = at(graph_stack, 3, hour=10)
    start = {"date_time": later.isoformat(), "time_zone": BERLIN}
    end = {"date_time": (later + timedelta(minutes=30)).isoformat(), "time_zone": BERLIN}
    answer = api_put(graph_stack, event, title="Review (new time)", start=start, end=end)
    assert answer["statusCode"] == 200, answer
    pushes = [m for m in graph_stack.sync_messages() if m["kind"] == "push_calendar"]
    assert [(m["account_id"], m["provider_id"], m["deleted"]) for m in pushes] == [
        (account.account_id, review["id"], False)
    ]
    assert run_sync(graph_stack, pushes) == {"batchItemFailures": []}

    # Then Outlook's event has the new subject and time, and the PATCH carried the etag we had read
    theirs = ms.event(USER, review["id"])
    assert (theirs["subject"], theirs["start"]) == (
        "Review (new time)",
        {"dateTime": later.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
    )
    assert ms.calendars.calls == [("PATCH", review["id"], review["@odata.etag"])]

    # And the next pull sees its own change as an echo: nothing is written
    report = pull(graph_stack, account)
    assert (report.echoes, report.updated, report.unchanged) == (1, 0, 0)


def test_an_api_delete_deletes_the_outlook_event_with_if_match(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given a pulled event
    account = connect(graph_stack)
    lunch = ms.put_event(USER, meeting(graph_stack, "Lunch", 2))
    graph_stack.sync_messages()
    pull(graph_stack, account)
    event = stored(lunch["iCalUId"])
    assert event is not None

    # When a member deletes it through the API and the queued push runs
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    request = load_event("api/calendar-delete-event.json", tenant=TENANT, role="member")
    sample = request["pathParameters"]["event_id"]
    request["pathParameters"]["event_id"] = event.event_id
    request["rawPath"] = request["rawPath"].replace(sample, event.event_id)
    request["requestContext"]["http"]["path"] = request["rawPath"]
    assert graph_stack.invoke("api", request)["statusCode"] in (200, 204)
    pushes = [m for m in graph_stack.sync_messages() if m["kind"] == "push_calendar"]
    assert run_sync(graph_stack, pushes) == {"batchItemFailures": []}

    # Then it is deleted in Outlook (with the etag we read), and the next pull does not bring it back
    assert ms.calendars.calls == [("DELETE", lunch["id"], lunch["@odata.etag"])]
    with pytest.raises(KeyError):
        ms.calendars.book(USER).events[lunch["id"]]
    report = pull(graph_stack, account)
    assert stored(lunch["iCalUId"]) is None
    assert report.imported == 0


def test_a_412_is_decided_by_the_later_change(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given a pulled event that is then renamed in Outlook (so the etag we hold is stale)
    account = connect(graph_stack)
    lunch = ms.put_event(USER, meeting(graph_stack, "Lunch", 2))
    pull(graph_stack, account)
    event = stored(lunch["iCalUId"])
    assert event is not None
    ms.put_event(USER, {"subject": "Lunch (Outlook)"}, lunch["id"])
    outlook_time = graph_stack.clock.now()
    ours = event.model_copy(update={"title": "Lunch (ours)"})
    calendar_store().replace_event(TENANT, ours, event, expand.span(ours.uid, ours))

    def push(when: datetime) -> str:
        message = PushCalendar(
            provider="graph",
            tenant_id=TENANT,
            account_id=account.account_id,
            provider_id=lunch["id"],
            event_id=event.event_id,
            at=when,
        )
        return push_graph(message, client_for(account), calendar_deps())

    # When our change was made before Outlook's: Outlook's stays (412, then nothing is sent)
    assert push(outlook_time - timedelta(minutes=1)) == "provider_newer"
    assert ms.event(USER, lunch["id"])["subject"] == "Lunch (Outlook)"
    # When ours was made after Outlook's: ours is sent again with the etag just read
    assert push(outlook_time + timedelta(minutes=1)) == "patched"
    assert ms.event(USER, lunch["id"])["subject"] == "Lunch (ours)"
    calls = ms.calendars.calls
    assert [(m, etag == lunch["@odata.etag"]) for m, _, etag in calls] == [
        ("PATCH", True),
        ("PATCH", True),
        ("PATCH", False),
    ]


def api_create(gs: GraphStack, organizer: str) -> dict[str, Any]:
    """POST /calendar/events through the api function as user-1 (who connected the harness's
    account): a single event in three days organized by `organizer`."""
    start = at(gs, 3)
    body = {
        "title": "Kick-off",
        "start": {"date_time": start.isoformat(), "time_zone": "UTC"},
        "end": {"date_time": (start + timedelta(hours=1)).isoformat(), "time_zone": "UTC"},
        "organizer": {"address": organizer},
        "attendees": [{"address": "carol@customer.example", "name": "Carol"}],
    }
    request = load_event(
        "api/calendar-create-event.json", tenant=TENANT, role="member", sub="user-1", body=body
    )
    answer = gs.invoke("api", request)
    assert answer["statusCode"] == 201, answer
    created: dict[str, Any] = json.loads(answer["body"])
    return created


def test_an_event_created_here_is_created_in_outlook_and_its_remote_edit_updates_it(
    graph_stack: GraphStack,
) -> None:
    ms = graph_stack.ms
    # Given a connected Microsoft account with Calendars.ReadWrite granted, pulled once
    account = connect(graph_stack)
    graph_stack.sync_messages()
    assert pull(graph_stack, account).imported == 0
    calendar_deps.cache_clear()
    calendar_store.cache_clear()

    # When a member creates an event organized by that mailbox, and the sync function runs the
    # push that queued
    created = api_create(graph_stack, USER.upper())
    pushes = [m for m in graph_stack.sync_messages() if m["kind"] == "push_calendar"]
    assert [(m["account_id"], m["provider_id"], m["deleted"]) for m in pushes] == [
        (account.account_id, None, False)
    ]
    assert run_sync(graph_stack, pushes) == {"batchItemFailures": []}

    # Then Outlook holds it, created by one POST /me/events, under an iCalUId of its own
    ((method, event_id, _),) = ms.calendars.calls
    theirs = ms.event(USER, event_id)
    assert (method, theirs["subject"], theirs["start"]) == (
        "POST",
        "Kick-off",
        {"dateTime": at(graph_stack, 3).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
    )
    assert theirs["iCalUId"] != created["uid"]

    # And the next pull sees its echo
    report = pull(graph_stack, account)
    assert (report.echoes, report.imported, report.updated) == (1, 0, 0)

    # And an edit made in Outlook updates our event (matched by the link, not the iCalUId):
    # no second event is imported
    ms.put_event(USER, {"subject": "Kick-off (Outlook)"}, event_id)
    report = pull(graph_stack, account)
    assert (report.imported, report.updated) == (0, 1)
    kept = stored(created["uid"])
    assert kept is not None
    assert (kept.event_id, kept.title) == (created["event_id"], "Kick-off (Outlook)")
    assert stored(theirs["iCalUId"]) is None


def test_an_edit_of_one_pulled_occurrence_is_pushed_to_that_occurrence_only(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given a pulled weekly series of three occurrences (each its own event here)
    account = connect(graph_stack)
    master, occurrences = ms.put_series(USER, meeting(graph_stack, "Weekly sync", 2), 3)
    graph_stack.sync_messages()
    assert pull(graph_stack, account).imported == 3
    second = stored(occurrences[1]["iCalUId"])
    assert second is not None
    calendar_deps.cache_clear()
    calendar_store.cache_clear()

    # When a member renames the second occurrence through the API and the push runs
    answer = api_put(graph_stack, second, title="Weekly sync (moved room)")
    assert answer["statusCode"] == 200, answer
    pushes = [m for m in graph_stack.sync_messages() if m["kind"] == "push_calendar"]
    assert run_sync(graph_stack, pushes) == {"batchItemFailures": []}

    # Then exactly that occurrence is patched in Outlook (it becomes an exception of the series),
    # the others keep their subject
    assert ms.calendars.calls == [("PATCH", occurrences[1]["id"], occurrences[1]["@odata.etag"])]
    after = [ms.event(USER, o["id"]) for o in occurrences]
    assert [(e["subject"], e["type"], e["seriesMasterId"]) for e in after] == [
        ("Weekly sync", "occurrence", master),
        ("Weekly sync (moved room)", "exception", master),
        ("Weekly sync", "occurrence", master),
    ]

    # And the next pull sees its own change as an echo
    report = pull(graph_stack, account)
    assert (report.echoes, report.updated, report.imported) == (1, 0, 0)


def test_occurrence_overrides_on_an_outlook_event_are_refused(graph_stack: GraphStack) -> None:
    ms = graph_stack.ms
    # Given a pulled Outlook event (each Outlook occurrence is its own event here)
    account = connect(graph_stack)
    review = ms.put_event(USER, meeting(graph_stack, "Review", 3))
    graph_stack.sync_messages()
    assert pull(graph_stack, account).imported == 1
    event = stored(review["iCalUId"])
    assert event is not None
    calendar_deps.cache_clear()
    calendar_store.cache_clear()

    # When a member makes it a daily series with its second occurrence renamed
    second = (at(graph_stack, 4)).isoformat()
    answer = api_put(
        graph_stack,
        event,
        recurrence={"rrule": ["FREQ=DAILY;COUNT=3"]},
        overrides=[{"recurrence_id": second, "title": "Review (moved room)"}],
    )

    # Then the API refuses it (Outlook has no counterpart for that override), nothing changes
    # here and nothing is queued
    assert answer["statusCode"] == 422, answer
    error = json.loads(answer["body"])["error"]
    assert (error["code"], error["details"]["reason"]) == ("provider_override_unsupported", "provider")
    kept = stored(review["iCalUId"])
    assert kept is not None
    assert (kept.version, kept.overrides) == (event.version, [])
    assert [m for m in graph_stack.sync_messages() if m["kind"] == "push_calendar"] == []
