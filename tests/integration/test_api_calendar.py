"""/calendar events through the api handler on moto: CRUD, occurrences across DST, versions,
links to CRM records and their timelines, bus events, tenants apart."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.aws import BusReader
from tests.integration.calendar_client import OTHER, Calendar, Invoke, berlin


@pytest.fixture
def cal(invoke_api: Invoke) -> Calendar:
    return Calendar(invoke_api)


def weekly_meeting(**extra: Any) -> dict[str, Any]:
    return {
        "title": "Weekly sync",
        "start": berlin("2026-10-07T09:00:00"),
        "end": berlin("2026-10-07T10:00:00"),
        "recurrence": {"rrule": ["FREQ=WEEKLY;COUNT=6"]},
        **extra,
    }


def test_a_weekly_berlin_meeting_stays_at_nine_local_across_the_october_change(cal: Calendar) -> None:
    # Given a weekly 09:00 Europe/Berlin meeting from 7 October (CEST) for six weeks
    event = cal.create(**weekly_meeting())
    # When its occurrences in October and November are listed
    listed = cal.occurrences("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z")
    # Then all six are at 09:00 local: 07:00 UTC before 25 October, 08:00 UTC after it
    starts = [o["start"]["date_time"] for o in listed["items"]]
    assert starts == [
        "2026-10-07T09:00:00+02:00",
        "2026-10-14T09:00:00+02:00",
        "2026-10-21T09:00:00+02:00",
        "2026-10-28T09:00:00+01:00",
        "2026-11-04T09:00:00+01:00",
        "2026-11-11T09:00:00+01:00",
    ]
    assert {o["start"]["time_zone"] for o in listed["items"]} == {"Europe/Berlin"}
    assert {o["event_id"] for o in listed["items"]} == {event["event_id"]}
    assert listed["truncated"] is False


def test_exdates_and_overridden_occurrences_are_honoured(cal: Calendar) -> None:
    # Given the weekly meeting without 14 October, and 28 October moved to 11:00 with a new title
    cal.create(
        **weekly_meeting(
            recurrence={"rrule": ["FREQ=WEEKLY;COUNT=6"], "exdate": ["2026-10-14T09:00:00"]},
            overrides=[
                {
                    "recurrence_id": "2026-10-28T09:00:00",
                    "title": "Moved sync",
                    "start": berlin("2026-10-28T11:00:00"),
                }
            ],
        )
    )
    # When October is listed
    items = cal.occurrences("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")["items"]
    # Then 14 October is gone and 28 October is at 11:00 for an hour, marked overridden
    assert [(o["start"]["date_time"], o["title"], o["overridden"]) for o in items] == [
        ("2026-10-07T09:00:00+02:00", "Weekly sync", False),
        ("2026-10-21T09:00:00+02:00", "Weekly sync", False),
        ("2026-10-28T11:00:00+01:00", "Moved sync", True),
    ]
    assert items[2]["end"]["date_time"] == "2026-10-28T12:00:00+01:00"
    assert items[2]["recurrence_id"] == "2026-10-28T09:00:00+01:00"


def test_all_day_and_one_off_events_are_listed_where_they_meet_the_range(cal: Calendar) -> None:
    # Given an all-day event on 2 November and a one-off meeting on 3 November
    cal.create(title="Holiday", start={"date": "2026-11-02"})
    cal.create(
        title="Call", start={"date_time": "2026-11-03T15:00:00Z"}, end={"date_time": "2026-11-03T15:30:00Z"}
    )
    # When the range holds only the all-day event, then both
    first = cal.occurrences("2026-11-02T10:00:00Z", "2026-11-02T12:00:00Z")["items"]
    both = cal.occurrences("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z")["items"]
    # Then the all-day event spans its day (end = the next date) and the call keeps its UTC zone
    assert [(o["title"], o["all_day"]) for o in first] == [("Holiday", True)]
    assert first[0]["end"] == {"date": "2026-11-03"}
    assert [o["title"] for o in both] == ["Holiday", "Call"]
    assert both[1]["start"] == {"date_time": "2026-11-03T15:00:00Z", "time_zone": "UTC"}


def test_a_long_listing_is_truncated_with_where_to_go_on(cal: Calendar) -> None:
    # Given a daily event for a month
    cal.create(
        title="Stand-up", start=berlin("2026-03-01T09:30:00"), recurrence={"rrule": ["FREQ=DAILY;COUNT=31"]}
    )
    # When ten occurrences are asked for
    page = cal.occurrences("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", limit="10")
    # Then ten come, and the next one's start says where to continue (09:30 Berlin = 08:30 UTC)
    assert len(page["items"]) == 10
    assert page["truncated"] is True
    assert page["next_from"] == "2026-03-11T08:30:00Z"


def test_ranges_and_bodies_that_make_no_sense_are_4xx(cal: Calendar) -> None:
    assert (
        cal.occurrences("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z", 400)["error"]["code"]
        == "invalid_range"
    )
    assert (
        cal.occurrences("2026-01-01T00:00:00Z", "2027-06-01T00:00:00Z", 400)["error"]["code"]
        == "range_too_long"
    )
    assert cal.occurrences("yesterday", "2026-11-01T00:00:00Z", 422)["error"]["code"] == "validation_error"
    bad: list[dict[str, Any]] = [
        {"title": "x", "start": {"date_time": "2026-11-01T10:00:00", "time_zone": "Mars/Olympus"}},
        {"title": "x", "start": {"date": "2026-11-01"}, "end": {"date_time": "2026-11-01T10:00:00Z"}},
        {
            "title": "x",
            "start": {"date_time": "2026-11-01T10:00:00Z"},
            "end": {"date_time": "2026-11-01T09:00:00Z"},
        },
        {"title": "x", "start": {"date": "2026-11-01"}, "recurrence": {"rrule": ["FREQ=SECONDLY"]}},
        {"title": "x", "start": {"date": "2026-11-01"}, "recurrence": {"rrule": ["BYDAY=MO"]}},
        {"title": "line\nbreak", "start": {"date": "2026-11-01"}},
        {
            "title": "x",
            "start": {"date": "2026-11-01"},
            "attendees": [{"address": "a@x.example"}, {"address": "A@x.example"}],
        },
    ]
    for fields in bad:
        answer = cal.create(422, **fields)
        assert answer["error"]["code"] == "validation_error", fields
        assert "input" not in str(answer["error"]["details"])


def test_create_read_replace_delete_with_versions_and_sequence(cal: Calendar) -> None:
    # Given an event
    event = cal.create(**weekly_meeting(location="Room 4"))
    assert (event["version"], event["sequence"], event["uid"]) == (1, 0, f"{event['event_id']}@mailbridge")
    assert cal.get(event["event_id"]) == event
    # When only its title changes, then its time, then a stale version is sent
    renamed = cal.put(event["event_id"], **weekly_meeting(title="Renamed", location="Room 4"), version=1)
    moved = cal.put(
        event["event_id"],
        **weekly_meeting(
            title="Renamed", start=berlin("2026-10-08T09:00:00"), end=berlin("2026-10-08T10:00:00")
        ),
    )
    stale = cal.put(event["event_id"], 409, **weekly_meeting(), version=1)
    # Then the title change keeps SEQUENCE, the time change raises it, the stale write is refused
    assert (renamed["version"], renamed["sequence"]) == (2, 0)
    assert (moved["version"], moved["sequence"]) == (3, 1)
    assert stale["error"]["code"] == "version_conflict"
    # And a delete removes it
    cal.delete(event["event_id"])
    assert cal.get(event["event_id"], 404)["error"]["code"] == "event_not_found"
    assert cal.occurrences("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z")["items"] == []


def test_viewers_read_and_other_tenants_see_nothing(invoke_api: Invoke) -> None:
    member, viewer, other = (
        Calendar(invoke_api),
        Calendar(invoke_api, role="viewer"),
        Calendar(invoke_api, OTHER),
    )
    event = member.create(**weekly_meeting())
    assert viewer.create(403, **weekly_meeting())["error"]["code"] == "role_required"
    assert viewer.get(event["event_id"])["event_id"] == event["event_id"]
    assert other.get(event["event_id"], 404)["error"]["code"] == "event_not_found"
    assert other.occurrences("2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z")["items"] == []
    assert other.put(event["event_id"], 404, **weekly_meeting())["error"]["code"] == "event_not_found"
    assert other.delete(event["event_id"], 404)["error"]["code"] == "event_not_found"


def test_creating_announces_calendar_event_created(cal: Calendar, bus_probe: BusReader) -> None:
    event = cal.create(**weekly_meeting())
    announced = [e for e in bus_probe() if e["detail-type"] == "calendar.event_created"]
    assert [e["detail"]["data"]["event_id"] for e in announced] == [event["event_id"]]
    assert announced[0]["detail"]["idempotency_key"] == f"calendar.event_created:{event['event_id']}"


def _crm(invoke: Invoke, name: str, payload: dict[str, Any]) -> Any:
    import json

    from tests.events import load_event

    response = invoke(load_event(f"api/crm-{name}.json", tenant="acme", role="member", body=payload))
    assert response["statusCode"] == 201, response
    return json.loads(response["body"])


def _timeline(invoke: Invoke, name: str, key: str, record_id: str, **query: str) -> Any:
    import json

    from tests.events import load_event

    event = load_event(f"api/{name}.json", tenant="acme", role="viewer", query=query or {})
    raw = event["routeKey"].split(" ", 1)[1].replace("{" + key + "}", record_id)
    event["pathParameters"] = {key: record_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    response = invoke(event)
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])


def test_linked_events_appear_on_the_contact_and_deal_timelines(invoke_api: Invoke, cal: Calendar) -> None:
    # Given a contact, a deal of theirs, and two events: one linked to both, one to the contact only
    contact = _crm(
        invoke_api, "create-contact", {"name": "Carol", "emails": [{"address": "carol@customer.example"}]}
    )
    deal = _crm(invoke_api, "create-deal", {"name": "Renewal", "contact_ids": [contact["contact_id"]]})
    kickoff = cal.create(
        title="Kick-off",
        start=berlin("2026-10-07T09:00:00"),
        contact_ids=[contact["contact_id"]],
        deal_id=deal["deal_id"],
    )
    review = cal.create(title="Review", start={"date": "2026-12-01"}, contact_ids=[contact["contact_id"]])
    # When the timelines are read
    contact_items = _timeline(invoke_api, "crm-get-contact-timeline", "contact_id", contact["contact_id"])[
        "items"
    ]
    deal_items = _timeline(invoke_api, "deal-timeline", "deal_id", deal["deal_id"])["items"]
    # Then the contact shows both, latest first, and the deal shows its own
    assert [(i["type"], i["event_id"], i["title"]) for i in contact_items] == [
        ("event", review["event_id"], "Review"),
        ("event", kickoff["event_id"], "Kick-off"),
    ]
    assert contact_items[1]["date"] == "2026-10-07T07:00:00Z"
    assert [i["event_id"] for i in deal_items] == [kickoff["event_id"]]
    # And moving the review to the deal moves it between timelines
    cal.put(review["event_id"], title="Review", start={"date": "2026-12-01"}, deal_id=deal["deal_id"])
    contact_items = _timeline(invoke_api, "crm-get-contact-timeline", "contact_id", contact["contact_id"])[
        "items"
    ]
    deal_items = _timeline(invoke_api, "crm-get-deal-timeline", "deal_id", deal["deal_id"])["items"]
    assert [i["event_id"] for i in contact_items] == [kickoff["event_id"]]
    assert [i["event_id"] for i in deal_items] == [review["event_id"], kickoff["event_id"]]
    # And a deleted event leaves them
    cal.delete(kickoff["event_id"])
    assert (
        _timeline(invoke_api, "crm-get-contact-timeline", "contact_id", contact["contact_id"])["items"] == []
    )


def test_links_to_records_that_do_not_exist_are_refused(cal: Calendar) -> None:
    missing_contact = cal.create(
        400, title="x", start={"date": "2026-11-01"}, contact_ids=["ct_0000000000000000000000000a"]
    )
    missing_deal = cal.create(
        400, title="x", start={"date": "2026-11-01"}, deal_id="dl_0000000000000000000000000a"
    )
    assert missing_contact["error"]["code"] == "unknown_contact"
    assert missing_deal["error"]["code"] == "unknown_deal"


def test_emails_and_events_merge_newest_first_through_every_page_size(
    invoke_api: Invoke, cal: Calendar, stack: Any
) -> None:
    import json

    from tests.events import load_event
    from tests.integration.test_api_emails import Seeder, rfc

    # Given a contact with three linked emails (1, 3, 5 January) and three events (2, 4, 6 January)
    contact = _crm(invoke_api, "create-contact", {"name": "Ada", "emails": [{"address": "ada@example.com"}]})
    cid = contact["contact_id"]
    seed = Seeder(stack)
    for day in (1, 3, 5):
        email_id = seed.add(
            rfc(
                msgid=f"d{day}@example.com",
                sender="ada@example.com",
                to="me@acme.test",
                subject=f"Mail {day}",
                date=f"Thu, 0{day} Jan 2026 09:00:00 +0000",
            )
        )
        link = load_event(
            "api/links-create.json", tenant="acme", role="member", body={"kind": "contact", "record_id": cid}
        )
        link["pathParameters"] = {"email_id": email_id}
        link["rawPath"] = link["requestContext"]["http"]["path"] = f"/emails/{email_id}/links"
        assert invoke_api(link)["statusCode"] == 201
    for day in (2, 4, 6):
        cal.create(title=f"Event {day}", start={"date_time": f"2026-01-0{day}T09:00:00Z"}, contact_ids=[cid])
    expected = ["Event 6", "Mail 5", "Event 4", "Mail 3", "Event 2", "Mail 1"]
    whole = _timeline(invoke_api, "crm-get-contact-timeline", "contact_id", cid)
    assert [i.get("title") or i.get("subject") for i in whole["items"]] == expected
    assert whole["next_cursor"] is None
    # When the timeline is walked in pages of 1, 2, 4 and 5
    for size in (1, 2, 4, 5):
        walked: list[str] = []
        cursor: str | None = None
        for _ in range(10):
            query = {"limit": str(size), **({"cursor": cursor} if cursor else {})}
            page = _timeline(invoke_api, "contact-timeline", "contact_id", cid, **query)
            assert len(page["items"]) <= size
            walked += [i.get("title") or i.get("subject") for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        # Then every item comes once, in the same order
        assert walked == expected, size
    # And a cursor edited by hand is refused, never a 500
    first = _timeline(invoke_api, "crm-get-contact-timeline", "contact_id", cid, limit="2")["next_cursor"]
    tampered = first[:-2] + ("AA" if not first.endswith("AA") else "BB")
    event = load_event(
        "api/crm-get-contact-timeline.json", tenant="acme", role="viewer", query={"cursor": tampered}
    )
    event["pathParameters"] = {"contact_id": cid}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/crm/contacts/{cid}/timeline"
    refused = invoke_api(event)
    assert (refused["statusCode"], json.loads(refused["body"])["error"]["code"]) == (400, "invalid_cursor")
