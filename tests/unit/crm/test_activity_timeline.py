"""The activity log as a timeline source: the paging contract `crm/timeline.py`'s merge relies on
(items newest first under `{ISO date}#{id}`, its own cursor, every item once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailbridge.crm.activities import ActivityTimeline, source_factory
from mailbridge.crm.models import Activity, ActivityTimelineItem
from mailbridge.store.crm import CrmStore
from tests.fixtures.aws import Stack

TENANT = "acme"
CONTACT = "ct_018f2a6b3c4d5e6f7a8b9c0d1e"
START = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _activity(n: int, minutes: int, contact_id: str = CONTACT) -> Activity:
    return Activity(
        activity_id=f"ac_{n:026x}",
        kind="note",
        body=f"note {n}",
        occurred_at=START + timedelta(minutes=minutes),
        contact_id=contact_id,
        created_at=START,
        created_by="sub-1",
    )


def test_source_pages_newest_first_with_date_id_keys(stack: Stack) -> None:
    # Given seven activities of a contact written out of order (two at the same minute) and one
    # of another contact
    store = CrmStore(stack.deployed.tables["CrmTable"])
    minutes = [30, 5, 50, 5, 20, 40, 10]
    for n, minute in enumerate(minutes):
        store.create_activity(TENANT, _activity(n, minute))
    store.create_activity(TENANT, _activity(99, 60, contact_id="ct_018f2a6b3c4d5e6f7a8b9c0d1f"))
    source = source_factory(store)(TENANT, "contact", CONTACT)
    # When the source is read three at a time, following its own cursor
    keys: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        entries, cursor = source.page(cursor, 3)
        pages += 1
        for entry in entries:
            assert isinstance(entry.item, ActivityTimelineItem)
            # Then each key is `{UTC ISO date}#{id}` of its item, and the item is typed `activity`
            assert entry.key == f"{entry.item.date.isoformat()}#{entry.item.activity_id}"
            assert entry.item.type == "activity"
            keys.append(entry.key)
        if cursor is None:
            break
    # Then every activity of the contact came exactly once, newest first, and the name is its own
    assert keys == sorted(keys, reverse=True)
    assert len(keys) == len(set(keys)) == len(minutes)
    assert pages == 3
    assert isinstance(source, ActivityTimeline)
    assert source.name == "activity"
