"""A CRM record's timeline: its emails and the items of other sources (calendar events, CRM
activities), merged newest first into one cursor-paged listing.

Each source lists its items newest first under a sort key `{ISO 8601 UTC date}#{id}` (mail: the
email's date; events: their start) and pages with its own cursor. A page asks every source for
`limit` items after its position, takes the newest `limit` of them all, and remembers per source
where it stopped: its cursor and how many items of that source page were used (`skip`). The
next page reads that source page again and skips those (at most MAX_PAGE_SIZE items), so every
item comes exactly once and in order, with one read per source per page. The position of all
sources is one cursor, signed like every other (`store.pagination`), bound to the tenant and the
record; a tampered cursor is 400 `invalid_cursor`.

Items carry `type`: `email` (the fields of `GET /emails` rows), `event` (`CalendarTimelineItem`)
or `activity` (`ActivityTimelineItem`: notes, calls, meetings, tasks done).

Adding a source (e.g. CRM activities): (1) an item model with a `type: Literal["..."]` field,
added to the `TimelineItem` union below (the API schema and the discriminator read it); (2) a
class meeting `TimelineSource` (a unique `name`: it names the source's part of the cursor, so it
must never change); (3) a `SourceFactory` for it in `LinkDeps.timeline_sources`
(`api/deps.link_deps`). Nothing here changes: the merge takes any number of sources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import ConfigDict, Field

from mailbridge.calendar.models import CalendarTimelineItem
from mailbridge.crm.models import ActivityTimelineItem
from mailbridge.models.mail import EmailSummary
from mailbridge.store.pagination import MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor


class TimelineEmail(EmailSummary):
    """An email on a timeline (a `GET /emails` row)."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["email"] = "email"


TimelineItem = Annotated[
    TimelineEmail | CalendarTimelineItem | ActivityTimelineItem, Field(discriminator="type")
]


@dataclass(frozen=True)
class Entry:
    """One item of a source: its sort key, and the item (None: gone since it was listed)."""

    key: str
    item: TimelineEmail | CalendarTimelineItem | ActivityTimelineItem | None


class TimelineSource(Protocol):
    """Items of one kind on one record's timeline, newest first, in cursor pages.

    `name`: short and stable (`email`, `calendar`); a key of the merged cursor.
    `page(cursor, limit)`: the entries after `cursor` (None: from the newest), in descending
    `key` order, and the cursor of the next page (None: no more). Contract the merge relies on:
    - keys are `{UTC ISO 8601 instant}#{id}` (`store.links.order_key` format), unique per source,
      so keys of different sources compare in time order;
    - a page holds exactly `limit` entries unless it is the last one (a short page with a next
      cursor would let older items of other sources overtake this source's next page);
    - the same `cursor` and `limit` give the same entries while nothing changes (a page is read
      again to skip what an earlier merged page already used);
    - an entry whose item is gone may carry `item=None`: it keeps its place and is not shown.
    The source's own cursor is opaque here and is carried inside the merged, signed cursor."""

    name: str

    def page(self, cursor: str | None, limit: int) -> tuple[list[Entry], str | None]: ...


SourceFactory = Callable[[str, str, str], TimelineSource]
"""(tenant_id, kind, record_id) -> the source's listing for that record."""


@dataclass
class _Position:
    cursor: str
    skip: int
    done: bool


def _positions(state: dict[str, Any] | None, names: Sequence[str]) -> dict[str, _Position]:
    state = state or {}
    return {
        name: _Position(
            cursor=str(state.get(f"{name}.c", "")),
            skip=int(state.get(f"{name}.s", 0)),
            done=bool(int(state.get(f"{name}.d", 0))),
        )
        for name in names
    }


def merged_page(
    tenant_id: str, listing: str, sources: Sequence[TimelineSource], *, cursor: str | None, limit: int
) -> Page[TimelineItem]:
    """One page of the sources merged newest first (see the module docstring)."""
    positions = _positions(decode_cursor(cursor, tenant_id, listing=listing), [s.name for s in sources])
    read: dict[str, tuple[list[Entry], str | None]] = {}
    for source in sources:
        position = positions[source.name]
        if position.done:
            read[source.name] = ([], None)
            continue
        skip = min(position.skip, MAX_PAGE_SIZE - 1)
        entries, next_cursor = source.page(position.cursor or None, min(MAX_PAGE_SIZE, skip + limit))
        read[source.name] = (entries[skip:], next_cursor)
        position.skip = skip
    candidates = sorted(
        (
            (entry.key, name, index)
            for name, (entries, _) in read.items()
            for index, entry in enumerate(entries)
        ),
        reverse=True,
    )[:limit]
    used = dict.fromkeys(read, 0)
    for _, name, _ in candidates:
        used[name] += 1
    items: list[Any] = []
    for _, name, index in candidates:
        item = read[name][0][index].item
        if item is not None:
            items.append(item)
    state: dict[str, Any] = {}
    for name, (entries, next_cursor) in read.items():
        position = positions[name]
        if not position.done:
            if used[name] < len(entries):
                position.skip += used[name]
            elif next_cursor:
                position.cursor, position.skip = next_cursor, 0
            else:
                position.done = True
        state.update(
            {f"{name}.c": position.cursor, f"{name}.s": position.skip, f"{name}.d": int(position.done)}
        )
    finished = all(p.done for p in positions.values())
    return Page[TimelineItem](
        items=items, next_cursor=None if finished else encode_cursor(state, tenant_id, listing=listing)
    )
