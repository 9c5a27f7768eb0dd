"""Google Calendar pull (issue 16 point 6) against the Google double: the adapter's pages, sync
tokens, deletions and 410; the pull into the calendar store (recurrence, exceptions, attendees'
PARTSTAT), incremental changes and deletes, the full resync after a 410, and etag echo
suppression."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from mailbridge.calendar import expand
from mailbridge.calendar.models import Event
from mailbridge.calendar.provider_sync import PullReport, pull_google, push_google
from mailbridge.calendar.wiring import calendar_deps, calendar_store
from mailbridge.config import get_settings
from mailbridge.models.account import Account
from mailbridge.oauth.tokens import token_source
from mailbridge.providers.google_calendar.client import (
    GoogleCalendarClient,
    ProviderEventGone,
    SyncTokenExpired,
)
from mailbridge.store.calendar import CalendarStore
from mailbridge.sync.messages import PushCalendar
from tests.events import load_event
from tests.integration.gmail_harness import TENANT, USER, GmailStack
from tests.integration.test_gmail_contact_import import run_sync

BERLIN = "Europe/Berlin"


def timed(at: str, zone: str = BERLIN) -> dict[str, str]:
    return {"dateTime": at, "timeZone": zone}


def connect(gs: GmailStack, *, calendar: bool = True) -> Account:
    if calendar:
        on = gs.api("put-features", role="admin", body={"calendar": True})
        assert on["statusCode"] == 200, on
    return gs.account(gs.connect())


def client_for(account: Account, page_size: int = 2500) -> GoogleCalendarClient:
    return GoogleCalendarClient(
        get_settings().google.calendar_api_url, token_source(account), page_size=page_size
    )


def pull(account: Account, page_size: int = 2500) -> PullReport:
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    return pull_google(account, client_for(account, page_size), calendar_deps(), enabled=True)


def stored(uid: str) -> Event | None:
    return calendar_store().events_by_uid(TENANT, [uid]).get(uid)


def weekly(gs: GmailStack) -> dict[str, Any]:
    """A weekly series on Mondays 09:00 Berlin, one Monday excluded, with an attendee."""
    return gs.google.calendars.put(
        USER,
        {
            "summary": "Weekly sync",
            "start": timed("2026-10-05T09:00:00+02:00"),
            "end": timed("2026-10-05T09:30:00+02:00"),
            "recurrence": [
                "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10",
                "EXDATE;TZID=Europe/Berlin:20261012T090000",
            ],
            "attendees": [
                {"email": "bob@partner.example", "responseStatus": "accepted"},
                {"email": "eve@partner.example", "responseStatus": "needsAction", "optional": True},
            ],
        },
    )


def test_the_adapter_pages_ends_with_a_sync_token_and_reports_changes_and_deletions(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google.calendars
    # Given three events in Google and a client reading two per page
    account = connect(gmail_stack)
    ids = [
        google.put(
            USER,
            {
                "summary": f"E{i}",
                "start": {"date": "2026-10-0" + str(i + 1)},
                "end": {"date": "2026-10-0" + str(i + 2)},
            },
        )["id"]
        for i in range(3)
    ]
    client = client_for(account, page_size=2)

    # When the full listing is read page by page
    first = client.list_events(None)
    second = client.list_events(None, first.next_page_token)

    # Then the first page has a page token and no sync token; the last the reverse
    assert [e.id for e in first.items + second.items] == ids
    assert (first.next_page_token is not None, first.next_sync_token) == (True, None)
    assert (second.next_page_token, second.next_sync_token is not None) == (None, True)

    # When one event changes and another is deleted, then the changes are read with the token
    google.put(
        USER,
        {"id": ids[0], "summary": "E0 moved", "start": {"date": "2026-10-09"}, "end": {"date": "2026-10-10"}},
    )
    google.delete(USER, ids[1])
    changes = client.list_events(second.next_sync_token)

    # Then only those two come, the deleted one as `cancelled` with nothing but its id
    assert [(e.id, e.status, e.summary) for e in changes.items] == [
        (ids[0], "confirmed", "E0 moved"),
        (ids[1], "cancelled", None),
    ]
    assert changes.next_sync_token is not None


def test_an_expired_sync_token_is_sync_token_expired(gmail_stack: GmailStack) -> None:
    # Given a sync token that Google no longer accepts
    account = connect(gmail_stack)
    client = client_for(account)
    token = client.list_events(None).next_sync_token
    gmail_stack.google.calendars.expire_sync_tokens()
    # When it is used, then the adapter raises SyncTokenExpired (Google's 410 fullSyncRequired)
    with pytest.raises(SyncTokenExpired):
        client.list_events(token)


def test_a_pull_stores_series_exceptions_and_attendee_partstat(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google.calendars
    # Given a weekly series with an excluded Monday, a moved occurrence and a cancelled one
    account = connect(gmail_stack)
    series = weekly(gmail_stack)
    google.put_exception(
        USER,
        series["id"],
        timed("2026-10-19T09:00:00+02:00"),
        summary="Weekly sync (moved)",
        start=timed("2026-10-19T11:00:00+02:00"),
        end=timed("2026-10-19T11:30:00+02:00"),
    )
    cancelled = google.put_exception(USER, series["id"], timed("2026-10-26T09:00:00+01:00"))
    google.delete(USER, cancelled["id"])

    # When the account's calendar is pulled
    report = pull(account)

    # Then one event holds the series: its rule, the EXDATE, both overrides, and the attendees
    assert (report.status, report.full, report.imported) == ("synced", True, 1)
    event = stored(series["iCalUID"])
    assert event is not None
    assert (event.source, event.title, event.start.time_zone) == ("google", "Weekly sync", BERLIN)
    assert event.recurrence is not None
    assert event.recurrence.rrule == ["FREQ=WEEKLY;COUNT=10;BYDAY=MO"]
    assert [str(d) for d in event.recurrence.exdate] == ["2026-10-12 09:00:00+02:00"]
    overrides = {str(o.recurrence_id): o for o in event.overrides}
    moved = overrides["2026-10-19 09:00:00+02:00"]
    assert (moved.title, str(moved.start.value if moved.start else None)) == (
        "Weekly sync (moved)",
        "2026-10-19 11:00:00+02:00",
    )
    assert overrides["2026-10-26 09:00:00+01:00"].status == "cancelled"
    assert [(a.address, a.partstat, a.role) for a in event.attendees] == [
        ("bob@partner.example", "accepted", "req-participant"),
        ("eve@partner.example", "needs-action", "opt-participant"),
    ]


def test_an_incremental_pull_applies_changes_deletions_and_new_exceptions(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled series (with one moved occurrence) and a single all-day event
    account = connect(gmail_stack)
    series = weekly(gmail_stack)
    google.put_exception(USER, series["id"], timed("2026-10-19T09:00:00+02:00"), summary="Moved")
    single = google.put(
        USER, {"summary": "Offsite", "start": {"date": "2026-11-02"}, "end": {"date": "2026-11-04"}}
    )
    assert pull(account).imported == 2
    assert stored(single["iCalUID"]) is not None

    # When Google gets a new exception of the series, Bob declines, and the offsite is deleted
    google.put_exception(USER, series["id"], timed("2026-11-02T09:00:00+01:00"), summary="Remote")
    google.patch(
        USER,
        series["id"],
        {"attendees": [{"email": "bob@partner.example", "responseStatus": "declined"}]},
        {},
    )
    google.delete(USER, single["id"])
    report = pull(account)

    # Then the pull was incremental: the offsite is gone, the series keeps its first override
    # and gains the second, and Bob's PARTSTAT is declined
    assert (report.full, report.removed, report.updated) == (False, 1, 1)
    assert stored(single["iCalUID"]) is None
    event = stored(series["iCalUID"])
    assert event is not None
    assert sorted((str(o.recurrence_id), o.title) for o in event.overrides) == [
        ("2026-10-19 09:00:00+02:00", "Moved"),
        ("2026-11-02 09:00:00+01:00", "Remote"),
    ]
    assert [(a.address, a.partstat) for a in event.attendees] == [("bob@partner.example", "declined")]


def test_a_410_starts_a_full_resync_and_known_etags_are_not_written_again(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled calendar whose sync token Google then expires, and one event changed since
    account = connect(gmail_stack)
    weekly(gmail_stack)
    lunch = google.put(
        USER,
        {
            "summary": "Lunch",
            "start": timed("2026-10-07T12:00:00+02:00"),
            "end": timed("2026-10-07T13:00:00+02:00"),
        },
    )
    assert pull(account).imported == 2
    google.expire_sync_tokens()
    google.put(
        USER,
        {
            "id": lunch["id"],
            "summary": "Long lunch",
            "start": lunch["start"],
            "end": timed("2026-10-07T14:00:00+02:00"),
        },
    )
    token_before = calendar_store().calendar_sync_token(TENANT, account.account_id)

    # When the next pull runs
    report = pull(account)

    # Then it listed everything again with a new token; the unchanged series was recognised by
    # its etag (no write), the changed event was updated
    assert (report.full, report.echoes, report.updated, report.unchanged) == (True, 1, 1, 0)
    assert calendar_store().calendar_sync_token(TENANT, account.account_id) not in (None, token_before)
    saved = stored(lunch["iCalUID"])
    assert saved is not None
    assert saved.title == "Long lunch"


def test_an_account_connected_without_the_calendar_scope_is_reconnect_required(
    gmail_stack: GmailStack,
) -> None:
    # Given an account connected while the calendar flag was off, and an event in Google
    account = connect(gmail_stack, calendar=False)
    event = weekly(gmail_stack)
    # When its calendar is pulled
    report = pull(account)
    # Then nothing is read or stored, and the report says a reconnect is needed
    assert (report.status, report.pages) == ("reconnect_required", 0)
    assert stored(event["iCalUID"]) is None


def test_connecting_queues_a_pull_that_the_sync_function_runs_and_the_schedule_fans_out(
    gmail_stack: GmailStack,
) -> None:
    # Given an event in Google and a tenant with the calendar flag on
    event = weekly(gmail_stack)
    account = connect(gmail_stack)

    # When the connect's queued messages run in the sync function
    queued = gmail_stack.sync_messages()
    pulls = [m for m in queued if m["kind"] == "sync_calendar"]
    assert pulls == [
        {"kind": "sync_calendar", "provider": "gmail", "tenant_id": TENANT, "account_id": account.account_id}
    ]
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    assert run_sync(gmail_stack, pulls) == {"batchItemFailures": []}

    # Then the Google event is stored
    assert stored(event["iCalUID"]) is not None

    # And the schedule's message (no account) queues one pull per active Gmail account
    schedule = load_event("scheduler/google-calendar-sync.json")
    assert run_sync(gmail_stack, [schedule]) == {"batchItemFailures": []}
    assert [m for m in gmail_stack.sync_messages() if m["kind"] == "sync_calendar"] == pulls


def api_put(gs: GmailStack, event: Event, **changes: Any) -> dict[str, Any]:
    """PUT /calendar/events/{id} through the api function: the stored event with `changes`."""
    body = event.fields().model_dump(mode="json") | event.links().model_dump(mode="json") | changes
    request = load_event("api/calendar-put-event.json", tenant=TENANT, role="member", body=body)
    sample = request["pathParameters"]["event_id"]
    request["pathParameters"]["event_id"] = event.event_id
    request["rawPath"] = request["rawPath"].replace(sample, event.event_id)
    request["requestContext"]["http"]["path"] = request["rawPath"]
    return gs.invoke("api", request)


def test_an_api_change_is_pushed_with_if_match_and_not_pulled_back_as_a_change(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled weekly series
    account = connect(gmail_stack)
    series = weekly(gmail_stack)
    gmail_stack.sync_messages()
    assert pull(account).imported == 1
    event = stored(series["iCalUID"])
    assert event is not None

    # When a member renames it and moves it to 10:00 through the API, and the sync function runs
    # what that queued
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    start = {"date_time": "2026-10-05T10:00:00", "time_zone": BERLIN}
    end = {"date_time": "2026-10-05T10:30:00", "time_zone": BERLIN}
    answer = api_put(gmail_stack, event, title="Weekly sync (new time)", start=start, end=end)
    assert answer["statusCode"] == 200, answer
    pushes = [m for m in gmail_stack.sync_messages() if m["kind"] == "push_calendar"]
    assert [(m["account_id"], m["provider_id"], m["deleted"]) for m in pushes] == [
        (account.account_id, series["id"], False)
    ]
    assert run_sync(gmail_stack, pushes) == {"batchItemFailures": []}

    # Then Google's event has the new title and time, and the patch carried the etag we had read
    theirs = google.get(USER, series["id"])
    assert (theirs["summary"], theirs["start"]) == (
        "Weekly sync (new time)",
        {"dateTime": "2026-10-05T10:00:00+02:00", "timeZone": BERLIN},
    )
    assert theirs["recurrence"] == [
        "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO",
        "EXDATE;TZID=Europe/Berlin:20261012T090000",
    ]
    ((method, provider_id, headers),) = google.calls
    assert (method, provider_id, headers["if-match"]) == ("events.patch", series["id"], series["etag"])

    # And the next pull sees its own change as an echo: nothing is written
    report = pull(account)
    assert (report.echoes, report.updated, report.unchanged) == (1, 0, 0)


def test_an_api_delete_deletes_the_google_event(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled single event
    account = connect(gmail_stack)
    lunch = google.put(
        USER, {"summary": "Lunch", "start": {"date": "2026-10-07"}, "end": {"date": "2026-10-08"}}
    )
    gmail_stack.sync_messages()
    pull(account)
    event = stored(lunch["iCalUID"])
    assert event is not None

    # When a member deletes it through the API and the queued push runs
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    request = load_event("api/calendar-delete-event.json", tenant=TENANT, role="member")
    sample = request["pathParameters"]["event_id"]
    request["pathParameters"]["event_id"] = event.event_id
    request["rawPath"] = request["rawPath"].replace(sample, event.event_id)
    request["requestContext"]["http"]["path"] = request["rawPath"]
    assert gmail_stack.invoke("api", request)["statusCode"] in (200, 204)
    pushes = [m for m in gmail_stack.sync_messages() if m["kind"] == "push_calendar"]
    assert run_sync(gmail_stack, pushes) == {"batchItemFailures": []}

    # Then it is deleted in Google, and the next pull does not bring it back
    assert lunch["id"] not in google.live(USER)
    report = pull(account)
    assert stored(lunch["iCalUID"]) is None
    assert report.imported == 0


def test_a_412_is_decided_by_the_last_writer(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled event that is then renamed in Google (so the etag we hold is stale)
    account = connect(gmail_stack)
    lunch = google.put(
        USER, {"summary": "Lunch", "start": {"date": "2026-10-07"}, "end": {"date": "2026-10-08"}}
    )
    pull(account)
    event = stored(lunch["iCalUID"])
    assert event is not None
    google.put(
        USER, {"id": lunch["id"], "summary": "Lunch (Google)", "start": lunch["start"], "end": lunch["end"]}
    )
    google_time = gmail_stack.clock.now()
    ours = event.model_copy(update={"title": "Lunch (ours)"})
    calendar_store().replace_event(TENANT, ours, event, expand.span(ours.uid, ours))

    def push(at: datetime) -> str:
        message = PushCalendar(
            tenant_id=TENANT,
            account_id=account.account_id,
            provider_id=lunch["id"],
            event_id=event.event_id,
            at=at,
        )
        return push_google(message, client_for(account), calendar_deps())

    # When our change was made before Google's: Google's stays and nothing is sent
    assert push(google_time - timedelta(minutes=1)) == "provider_newer"
    assert google.get(USER, lunch["id"])["summary"] == "Lunch (Google)"
    # When ours was made after Google's: ours is sent again with the etag just read
    assert push(google_time + timedelta(minutes=1)) == "patched"
    assert google.get(USER, lunch["id"])["summary"] == "Lunch (ours)"
    assert [m for m, _, _ in google.calls] == ["events.patch"]


def test_after_a_410_events_google_no_longer_lists_are_deleted_here(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled series with a moved occurrence and a single event, then Google expires the
    # sync token and, while it is dead, the single event is deleted, and it and the occurrence's
    # exception are purged (no listing returns them any more, not even as cancelled)
    account = connect(gmail_stack)
    series = weekly(gmail_stack)
    moved = google.put_exception(
        USER, series["id"], timed("2026-10-19T09:00:00+02:00"), summary="Moved",
        start=timed("2026-10-19T11:00:00+02:00"), end=timed("2026-10-19T11:30:00+02:00"),
    )  # fmt: skip
    lunch = google.put(
        USER,
        {
            "summary": "Lunch",
            "start": timed("2026-10-07T12:00:00+02:00"),
            "end": timed("2026-10-07T13:00:00+02:00"),
        },
    )
    assert pull(account).imported == 2
    google.expire_sync_tokens()
    google.delete(USER, lunch["id"])
    google.purge(USER, lunch["id"])
    google.purge(USER, moved["id"])

    # When the next pull runs
    report = pull(account)

    # Then the full listing removed the event Google no longer lists, and kept the series (still
    # listed) although its exception's id is gone
    assert (report.full, report.removed) == (True, 1)
    assert stored(lunch["iCalUID"]) is None
    assert stored(series["iCalUID"]) is not None


def api_create(gs: GmailStack, organizer: str, sub: str = "user-1") -> dict[str, Any]:
    """POST /calendar/events through the api function as user `sub` (user-1 connected the
    harness's account): a single event organized by `organizer`."""
    body = {
        "title": "Kick-off",
        "start": {"date_time": "2026-10-14T09:00:00", "time_zone": BERLIN},
        "end": {"date_time": "2026-10-14T10:00:00", "time_zone": BERLIN},
        "organizer": {"address": organizer},
        "attendees": [{"address": "carol@customer.example", "name": "Carol"}],
    }
    request = load_event("api/calendar-create-event.json", tenant=TENANT, role="member", sub=sub, body=body)
    answer = gs.invoke("api", request)
    assert answer["statusCode"] == 201, answer
    created: dict[str, Any] = json.loads(answer["body"])
    return created


def test_an_event_created_here_is_inserted_in_the_organizers_google_calendar_once(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google.calendars
    # Given a connected Gmail account with the calendar granted
    account = connect(gmail_stack)
    gmail_stack.sync_messages()
    calendar_deps.cache_clear()
    calendar_store.cache_clear()

    # When a member creates an event organized by that mailbox, and the sync function runs what
    # that queued
    created = api_create(gmail_stack, USER.upper())
    pushes = [m for m in gmail_stack.sync_messages() if m["kind"] == "push_calendar"]
    assert [(m["account_id"], m["provider_id"], m["deleted"]) for m in pushes] == [
        (account.account_id, None, False)
    ]
    assert run_sync(gmail_stack, pushes) == {"batchItemFailures": []}

    # Then Google has the event under our UID, created by one events.insert
    (theirs,) = google.live(USER).values()
    assert (theirs["iCalUID"], theirs["summary"], theirs["start"]) == (
        created["uid"],
        "Kick-off",
        {"dateTime": "2026-10-14T09:00:00+02:00", "timeZone": BERLIN},
    )
    assert [(method, event_id) for method, event_id, _ in google.calls] == [("events.insert", theirs["id"])]

    # And the same message delivered again creates nothing more
    assert run_sync(gmail_stack, pushes) == {"batchItemFailures": []}
    assert len(google.live(USER)) == 1
    assert [method for method, _, _ in google.calls] == ["events.insert", "events.patch"]

    # And the next pull sees its own echo: nothing imported, the one event kept
    report = pull(account)
    assert (report.echoes, report.imported, report.updated) == (1, 0, 0)
    kept = stored(created["uid"])
    assert kept is not None
    assert kept.event_id == created["event_id"]


def test_a_retried_insert_after_a_lost_link_write_links_the_event_google_holds(
    gmail_stack: GmailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    google = gmail_stack.google.calendars
    # Given a connected Gmail account with the calendar granted, and a link write that fails once
    # (the events.insert before it succeeded), and another event in that calendar
    account = connect(gmail_stack)
    other = google.put(
        USER, {"summary": "Other", "start": timed("2026-10-13T09:00:00"), "end": timed("2026-10-13T10:00:00")}
    )
    gmail_stack.sync_messages()
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    real_save = CalendarStore.save_provider_link
    failures = [RuntimeError("DynamoDB write lost")]

    def failing_once(self: CalendarStore, *args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(CalendarStore, "save_provider_link", failing_once)
    created = api_create(gmail_stack, USER)
    pushes = [m for m in gmail_stack.sync_messages() if m["kind"] == "push_calendar"]
    with pytest.raises(BatchProcessingError):  # the one record failed: SQS delivers it again
        run_sync(gmail_stack, pushes)
    (theirs,) = (e for e in google.live(USER).values() if e["id"] != other["id"])

    # When the queue delivers the message again (Google answers its events.insert 409 duplicate)
    retried = run_sync(gmail_stack, pushes)

    # Then it succeeds, Google still holds the one event, and the event found by its iCalUID is
    # linked: the next pull sees its own echo instead of importing it (only the other is new)
    assert retried == {"batchItemFailures": []}
    assert sorted(google.live(USER)) == sorted([other["id"], theirs["id"]])
    report = pull(account)
    assert (report.echoes, report.imported, report.updated) == (1, 1, 0)
    kept = stored(created["uid"])
    assert kept is not None
    assert kept.event_id == created["event_id"]

    # And a later change here patches that event (the link names it)
    edited = api_put(gmail_stack, kept, title="Kick-off (moved)")
    assert edited["statusCode"] == 200, edited
    assert [m["provider_id"] for m in gmail_stack.sync_messages() if m["kind"] == "push_calendar"] == [
        theirs["id"]
    ]


@pytest.mark.parametrize(
    ("organizer", "sub"),
    [("someone@else.example", "user-1"), (USER, "user-2")],
    ids=["another_address", "another_users_mailbox"],
)
def test_an_event_whose_organizer_has_no_calendar_account_of_its_creator_stays_local(
    gmail_stack: GmailStack, organizer: str, sub: str
) -> None:
    # Given a connected Gmail account with the calendar granted
    connect(gmail_stack)
    gmail_stack.sync_messages()
    calendar_deps.cache_clear()
    calendar_store.cache_clear()

    # When a member creates an event organized by another address, or by that mailbox while it
    # is not the member's own
    created = api_create(gmail_stack, organizer, sub)

    # Then nothing is queued for a provider and Google holds no event; the event is stored here
    assert [m for m in gmail_stack.sync_messages() if m["kind"] == "push_calendar"] == []
    assert gmail_stack.google.calendars.live(USER) == {}
    assert stored(created["uid"]) is not None


def pushes_of(gs: GmailStack) -> list[dict[str, Any]]:
    return [m for m in gs.sync_messages() if m["kind"] == "push_calendar"]


def pulled_weekly_with_a_moved_occurrence(
    gs: GmailStack,
) -> tuple[Account, dict[str, Any], dict[str, Any], Event]:
    """A pulled weekly series (Mondays 09:00 Berlin) whose 19 October occurrence Google holds as
    a renamed exception: (account, series, exception, stored event)."""
    account = connect(gs)
    series = weekly(gs)
    moved = gs.google.calendars.put_exception(
        USER, series["id"], timed("2026-10-19T09:00:00+02:00"), summary="Moved"
    )
    gs.sync_messages()
    assert pull(account).imported == 1
    event = stored(series["iCalUID"])
    assert event is not None
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    return account, series, moved, event


def test_occurrence_edits_are_pushed_to_their_instance_ids_and_pulled_back_as_ours(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled weekly series with one renamed occurrence (an exception in Google)
    account, series, moved, event = pulled_weekly_with_a_moved_occurrence(gmail_stack)
    sid = series["id"]
    (renamed,) = [o.model_dump(mode="json") for o in event.overrides]

    # When a member, through the API, renames that occurrence again, moves the 2 November one to
    # 11:00 (Google has no exception for it yet) and cancels the 9 November one, and the sync
    # function runs the push that queued
    moved_here = {
        "recurrence_id": "2026-11-02T09:00:00+01:00",
        "start": {"date_time": "2026-11-02T11:00:00", "time_zone": BERLIN},
        "end": {"date_time": "2026-11-02T11:30:00", "time_zone": BERLIN},
    }
    cancelled_here = {"recurrence_id": "2026-11-09T09:00:00+01:00", "status": "cancelled"}
    answer = api_put(
        gmail_stack, event, overrides=[renamed | {"title": "Renamed here"}, moved_here, cancelled_here]
    )
    assert answer["statusCode"] == 200, answer
    pushes = pushes_of(gmail_stack)
    assert [(m["provider_id"], m["series"], m["occurrences"]) for m in pushes] == [
        (sid, False, ["2026-10-19T07:00:00+00:00", "2026-11-02T08:00:00+00:00", "2026-11-09T08:00:00+00:00"])
    ]
    assert run_sync(gmail_stack, pushes) == {"batchItemFailures": []}

    # Then each occurrence went to its instance id ({series id}_{original start, UTC}) and nothing
    # to the series: the existing exception patched with the etag we had read, the new one
    # patched without, the cancelled one deleted
    assert [(m, i, h.get("if-match")) for m, i, h in google.calls] == [
        ("events.patch", f"{sid}_20261019T070000Z", moved["etag"]),
        ("events.patch", f"{sid}_20261102T080000Z", None),
        ("events.delete", f"{sid}_20261109T080000Z", None),
    ]
    assert google.get(USER, f"{sid}_20261019T070000Z")["summary"] == "Renamed here"
    new = google.get(USER, f"{sid}_20261102T080000Z")
    assert (new["recurringEventId"], new["originalStartTime"], new["start"], new["summary"]) == (
        sid,
        {"dateTime": "2026-11-02T09:00:00+01:00", "timeZone": BERLIN},
        {"dateTime": "2026-11-02T11:00:00+01:00", "timeZone": BERLIN},
        "Weekly sync",
    )
    gone = google.book(USER).events[f"{sid}_20261109T080000Z"]
    assert (gone.deleted, gone.resource["recurringEventId"]) == (True, sid)
    assert google.get(USER, sid)["summary"] == "Weekly sync"

    # And the next pull lists the three exceptions and recognises each as ours: nothing is
    # imported or written, the event keeps its three overrides
    report = pull(account)
    assert (report.echoes, report.imported, report.updated) == (3, 0, 0)
    kept = stored(series["iCalUID"])
    assert kept is not None
    assert [(str(o.recurrence_id), o.title, o.status) for o in kept.overrides] == [
        ("2026-10-19 09:00:00+02:00", "Renamed here", None),
        ("2026-11-02 09:00:00+01:00", None, None),
        ("2026-11-09 09:00:00+01:00", None, "cancelled"),
    ]

    # And when Google then renames the moved occurrence, the pull matches that exception to our
    # override by its RECURRENCE-ID: the override changes, no event or override is added
    google.patch(USER, f"{sid}_20261102T080000Z", {"summary": "Remote"}, {})
    report = pull(account)
    assert (report.imported, report.updated) == (0, 1)
    kept = stored(series["iCalUID"])
    assert kept is not None
    assert [(str(o.recurrence_id), o.title) for o in kept.overrides] == [
        ("2026-10-19 09:00:00+02:00", "Renamed here"),
        ("2026-11-02 09:00:00+01:00", "Remote"),
        ("2026-11-09 09:00:00+01:00", None),
    ]

    # And a rename of the series afterwards still goes to the series' own id
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    answer = api_put(gmail_stack, kept, title="Weekly sync (renamed)")
    assert answer["statusCode"] == 200, answer
    assert [(m["provider_id"], m["series"], m["occurrences"]) for m in pushes_of(gmail_stack)] == [
        (sid, True, [])
    ]


def test_an_all_day_occurrence_cancelled_here_is_deleted_by_its_date_instance_id(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled all-day series of three days
    account = connect(gmail_stack)
    series = google.put(
        USER,
        {
            "summary": "Trade fair",
            "start": {"date": "2026-10-01"},
            "end": {"date": "2026-10-02"},
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"],
        },
    )
    gmail_stack.sync_messages()
    assert pull(account).imported == 1
    event = stored(series["iCalUID"])
    assert event is not None
    calendar_deps.cache_clear()
    calendar_store.cache_clear()

    # When a member cancels its second day through the API and the push runs
    answer = api_put(gmail_stack, event, overrides=[{"recurrence_id": "2026-10-02", "status": "cancelled"}])
    assert answer["statusCode"] == 200, answer
    assert run_sync(gmail_stack, pushes_of(gmail_stack)) == {"batchItemFailures": []}

    # Then Google's instance {series id}_20261002 is deleted, and the next pull sees it as ours
    instance = f"{series['id']}_20261002"
    assert [(m, i) for m, i, _ in google.calls] == [("events.delete", instance)]
    cancelled = google.get(USER, instance)
    assert (cancelled["status"], cancelled["originalStartTime"]) == ("cancelled", {"date": "2026-10-02"})
    report = pull(account)
    assert (report.echoes, report.imported, report.updated) == (1, 0, 0)


def test_occurrence_edits_google_cannot_take_are_refused_not_kept_here_only(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google.calendars
    # Given a pulled weekly series with one renamed and one cancelled occurrence
    account, series, _, _ = pulled_weekly_with_a_moved_occurrence(gmail_stack)
    cancelled = google.put_exception(USER, series["id"], timed("2026-10-26T09:00:00+01:00"))
    google.delete(USER, cancelled["id"])
    assert pull(account).updated == 1
    event = stored(series["iCalUID"])
    assert event is not None
    calendar_deps.cache_clear()
    calendar_store.cache_clear()
    moved, dropped = [o.model_dump(mode="json") for o in event.overrides]
    assert dropped["status"] == "cancelled"

    # When a member removes the renamed occurrence's override, restores the cancelled one, or
    # overrides a time that is no occurrence (the Monday the series excludes, a Tuesday)
    refused = [
        api_put(gmail_stack, event, overrides=[dropped]),
        api_put(gmail_stack, event, overrides=[moved, dropped | {"status": "confirmed"}]),
        *(
            api_put(gmail_stack, event, overrides=[moved, dropped, {"recurrence_id": when, "title": "x"}])
            for when in ("2026-10-12T09:00:00+02:00", "2026-10-20T09:00:00+02:00")
        ),
    ]

    # Then the API refuses each with a code and the reason, nothing changes here and nothing is
    # queued
    assert [r["statusCode"] for r in refused] == [422] * 4, refused
    assert [json.loads(r["body"])["error"]["code"] for r in refused] == ["provider_override_unsupported"] * 4
    assert [json.loads(r["body"])["error"]["details"]["reason"] for r in refused] == [
        "override_removed",
        "occurrence_cancelled",
        "not_an_occurrence",
        "not_an_occurrence",
    ]
    kept = stored(series["iCalUID"])
    assert kept is not None
    assert ([o.status for o in kept.overrides], kept.version) == ([None, "cancelled"], event.version)
    assert pushes_of(gmail_stack) == []

    # And a change of the series that sends the occurrences back as read is accepted and pushed
    # as a change of the series alone
    renamed = api_put(gmail_stack, event, title="Weekly sync (renamed)", overrides=[moved, dropped])
    assert renamed["statusCode"] == 200, renamed
    assert [(m["provider_id"], m["series"], m["occurrences"]) for m in pushes_of(gmail_stack)] == [
        (series["id"], True, [])
    ]


def test_a_change_of_crm_links_only_pushes_nothing(gmail_stack: GmailStack) -> None:
    # Given a pulled series and a contact
    _, _, _, event = pulled_weekly_with_a_moved_occurrence(gmail_stack)
    contact = gmail_stack.api(
        "crm-create-contact",
        role="member",
        body={"name": "Bob", "emails": [{"address": "bob@partner.example"}]},
    )
    assert contact["statusCode"] == 201, contact

    # When a member links the event to the contact (nothing Google holds changes)
    answer = api_put(gmail_stack, event, contact_ids=[json.loads(contact["body"])["contact_id"]])

    # Then the change is stored and nothing is queued for Google
    assert answer["statusCode"] == 200, answer
    assert pushes_of(gmail_stack) == []


def test_the_double_answers_instance_ids_as_google_does(gmail_stack: GmailStack) -> None:
    # Given a weekly series (one Monday excluded) read to the end of its listing
    account = connect(gmail_stack)
    series = weekly(gmail_stack)
    client = client_for(account)
    token = client.list_events(None).next_sync_token
    sid = series["id"]

    # When an unchanged occurrence is read by its instance id
    instance = client.get_event(f"{sid}_20261026T080000Z")

    # Then it is that occurrence (after the DST change: 09:00 CET) of the series, and reading it
    # changed nothing in the calendar's listing
    assert (instance.recurring_event_id, instance.summary, instance.ical_uid) == (
        sid,
        "Weekly sync",
        series["iCalUID"],
    )
    assert instance.original_start_time is not None
    assert instance.original_start_time.date_time == datetime.fromisoformat("2026-10-26T09:00:00+01:00")
    assert client.list_events(token).items == []

    # And ids whose time is not an occurrence (excluded by EXDATE, off the rule's day or hour,
    # a date for a timed series) answer 404, read or written
    for wrong in ("20261012T070000Z", "20261020T070000Z", "20261019T080000Z", "20261019"):
        with pytest.raises(ProviderEventGone):
            client.get_event(f"{sid}_{wrong}")
        with pytest.raises(ProviderEventGone):
            client.patch_event(f"{sid}_{wrong}", {"summary": "x"}, None)

    # And a patch of an occurrence makes it an exception the sync token then lists
    client.patch_event(f"{sid}_20261026T080000Z", {"summary": "Changed"}, None)
    (changed,) = client.list_events(token).items
    assert (changed.id, changed.recurring_event_id, changed.summary) == (
        f"{sid}_20261026T080000Z",
        sid,
        "Changed",
    )
