"""Backfill of the timeline index (links table gsi2) for data written before it existed.

Three steps, each a Scan of one table in pages, each write idempotent (running a step again, or
from its start after a crash, writes the same items):
- `links`: email links to contacts and deals without `gsi2pk` get their index key (an update
  conditional on the link still existing; a link deleted meanwhile stays deleted).
- `calendar`: every event's entries are put on its contacts' and deal's timelines, in one
  transaction with a check that the event is still at the version read (a concurrent change
  makes the step read the event again; a deleted event gets none); the legacy
  `TENANT#{tenant}#REL#{record_id}` items the timeline used to read are deleted.
- `crm`: every activity's entries are put (activities are immutable: a put writes what the
  activity's own transaction writes).

Resumable: `run_page(tables, position)` does one page and returns the position after it (None
when all three steps are done); the caller stores it (scripts/backfill_timeline.py keeps it in a
file) and passes it back to carry on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import Item, is_condition_failure
from mailbridge.store.conditions import Attr
from mailbridge.store.links import TIMELINE_KINDS, order_key, timeline_index_pk

if TYPE_CHECKING:
    from mailbridge.store.calendar import CalendarStore
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.links import LinkStore

STEPS = ("links", "calendar", "crm")
PAGE_SIZE = 100
EVENT_ATTEMPTS = 5
TENANT_PREFIX = "TENANT#"


@dataclass(frozen=True)
class Stores:
    links: LinkStore
    calendar: CalendarStore
    crm: CrmStore


@dataclass
class Counts:
    """What one run wrote: links indexed, events indexed, legacy items deleted, activities indexed."""

    links: int = 0
    events: int = 0
    legacy_deleted: int = 0
    activities: int = 0
    skipped: list[str] = field(default_factory=list)


def _tenant(pk: str) -> str:
    return pk.removeprefix(TENANT_PREFIX).split("#", 1)[0]


def _scan(store: Any, filter_expression: Any, start: Item | None) -> tuple[list[Item], Item | None]:
    kwargs: dict[str, Any] = {"FilterExpression": filter_expression, "Limit": PAGE_SIZE}
    if start:
        kwargs["ExclusiveStartKey"] = start
    response = store.table.scan(**kwargs)
    return response.get("Items", []), response.get("LastEvaluatedKey")


def _links(stores: Stores, start: Item | None, counts: Counts) -> Item | None:
    items, after = _scan(
        stores.links,
        Attr("sk").begins_with("LINK#")
        & Attr("kind").is_in(list(TIMELINE_KINDS.values()))
        & Attr("gsi2pk").not_exists(),
        start,
    )
    for item in items:
        tenant = _tenant(str(item["pk"]))
        try:
            stores.links.table.update_item(
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET gsi2pk = :p, gsi2sk = :s",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={
                    ":p": timeline_index_pk(tenant, str(item["kind"]), str(item["record_id"])),
                    ":s": order_key(str(item["date"]), str(item["email_id"])),
                },
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            continue
        counts.links += 1
    return after


def _calendar(stores: Stores, start: Item | None, counts: Counts) -> Item | None:
    items, after = _scan(
        stores.calendar, Attr("sk").begins_with("EVENT#") | Attr("pk").contains("#REL#"), start
    )
    for item in items:
        pk, sk = str(item["pk"]), str(item["sk"])
        if "#REL#" in pk:
            stores.calendar.table.delete_item(Key={"pk": pk, "sk": sk})
            counts.legacy_deleted += 1
            continue
        tenant, event_id = _tenant(pk), sk.removeprefix("EVENT#")
        for _ in range(EVENT_ATTEMPTS):
            event = stores.calendar.get_event(tenant, event_id)
            if event is None or stores.calendar.index_timeline(tenant, event):
                counts.events += event is not None
                break
        else:
            counts.skipped.append(f"event {event_id}: changed {EVENT_ATTEMPTS} times while indexed")
    return after


def _crm(stores: Stores, start: Item | None, counts: Counts) -> Item | None:
    from mailbridge.store.crm import to_activity

    items, after = _scan(stores.crm, Attr("sk").begins_with("ACTIVITY#"), start)
    for item in items:
        stores.crm.index_activity_timeline(_tenant(str(item["pk"])), to_activity(item))
        counts.activities += 1
    return after


def run_page(stores: Stores, position: dict[str, Any] | None, counts: Counts) -> dict[str, Any] | None:
    """One page of the current step (`position`: {"step", "start"}; None: from the beginning).
    Returns where the next page starts, None when every step is done."""
    position = position or {"step": STEPS[0], "start": None}
    step = str(position["step"])
    run = {"links": _links, "calendar": _calendar, "crm": _crm}[step]
    after = run(stores, position.get("start"), counts)
    if after:
        return {"step": step, "start": after}
    following = STEPS.index(step) + 1
    return {"step": STEPS[following], "start": None} if following < len(STEPS) else None
