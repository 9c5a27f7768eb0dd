"""Delta query state: rounds, pages, state tokens, replays, eviction and resets.

What Graph documents and this follows [D: graph/delta-query-overview, delta-query-messages,
api/message-delta]:
* a round is one or more GETs: pages carry `@odata.nextLink` (a `$skiptoken`), the last page an
  `@odata.deltaLink` (a `$deltatoken`), which starts the next round and returns only what changed
  since; a page can be empty and still carry a nextLink;
* the first round returns what exists now (items created and deleted before it are not returned);
* query options of the first request (`$select`, `$top`, `changeType`) are encoded in the tokens;
* removed items come back as `{"id", "@removed": {"reason": ...}}`;
* "Do not assume a specific sequence": pages come in no particular order (a seeded shuffle here);
  "the same item can show up anywhere in the nextLink sequence" and replays happen: an item that
  changes again during a round is returned again, and `inject_replays` repeats items on purpose;
* tokens of Outlook entities have no fixed lifetime, they are evicted from a cache; an evicted
  token answers a 40X error with code `syncStateNotFound`; a `410 Gone` with a `Location` holding
  an empty `$deltatoken` asks for a full resync.

What Outlook answers in practice [R: microsoft-graph-docs issues #2162/#2350/#2877 quote it]: an
evicted token is `410 Gone`, `{"error": {"code": "SyncStateNotFound", "message": "The sync state
generation is not found; generation=149;[highest=157][157][155][156]."}}`, and each response
starts a new generation of the sync state of which only the last three are kept, so replaying an
old nextLink (or deltaLink) after a few more pages answers that 410.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from local.microsoft.errors import GraphError
from local.microsoft.ids import Ids

GENERATIONS_KEPT = 3
DEFAULT_PAGE = 10  # [R] a message delta without a page size preference returns ten per page
MAX_PAGE = 1000  # [R]
CHANGE_TYPES = ("created", "updated", "deleted")


class Source(Protocol):
    """A tracked collection (a mail folder's messages, a contact folder)."""

    def current(self) -> dict[str, tuple[int, int]]:
        """key -> (sequence of its last change, sequence at which it entered the collection)."""
        ...

    def removed_since(self, watermark: int) -> dict[str, int]:
        """keys removed after `watermark` and not back since -> removal sequence."""
        ...

    def sequence(self) -> int: ...


class Book(Protocol):
    """One mailbox's items of a kind; `removals` is (sequence, item id) of each deletion."""

    removals: list[tuple[int, str]]


BookT = TypeVar("BookT", bound=Book)


class Books(Generic[BookT]):
    """Every mailbox's book of one kind of item (contacts, calendar events), keyed by address,
    changed on the mailbox double's one change sequence (`seq`, `next_seq`) as delta needs."""

    def __init__(
        self, ids: Ids, now: Callable[[], datetime], seq: Callable[[], int], next_seq: Callable[[], int]
    ) -> None:
        self.ids = ids
        self.now = now
        self.seq = seq
        self.next_seq = next_seq
        self.books: dict[str, BookT] = {}

    def new_book(self) -> BookT:
        raise NotImplementedError

    def book(self, address: str) -> BookT:
        key = address.lower()
        if key not in self.books:
            self.books[key] = self.new_book()
        return self.books[key]

    def record_removal(self, book: BookT, item_id: str) -> None:
        book.removals.append((self.next_seq(), item_id))


class BookSource(Generic[BookT]):
    """The removal and sequence half of a `Source` over one book; `current` is the kind's own."""

    def __init__(self, books: Books[BookT], book: BookT) -> None:
        self.books, self.book = books, book

    def removed_since(self, watermark: int) -> dict[str, int]:
        return {key: seq for seq, key in self.book.removals if seq > watermark}

    def sequence(self) -> int:
        return self.books.seq()


@dataclass
class Generation:
    number: int
    watermark: int  # a deltaLink generation: changes after this; a page generation: the round's start
    round_end: int
    pending: list[str] | None  # None: the round is complete (this is a deltaLink)
    last_page: list[str] = field(default_factory=list)


@dataclass
class Lineage:
    id: str
    owner: str  # mailbox address (lower case)
    collection: str  # folder id or "contacts"
    select: list[str] | None
    change_type: str | None
    top: int | None
    generations: dict[int, Generation] = field(default_factory=dict)
    highest: int = 0
    reset: bool = False

    def add(self, generation: Generation, kept: int) -> None:
        self.generations[generation.number] = generation
        self.highest = max(self.highest, generation.number)
        for number in [n for n in self.generations if n <= self.highest - kept]:
            del self.generations[number]


@dataclass
class Page:
    """One delta response: entries to render and the state token of the next link."""

    entries: list[tuple[str, bool]]  # (key, present in the collection now)
    token: str
    complete: bool  # True: the token is a $deltatoken


class DeltaState:
    """Every lineage of sync state the double remembers, and the tokens pointing into them."""

    def __init__(
        self, ids: Ids, generations_kept: int = GENERATIONS_KEPT, lineages_per_owner: int = 200
    ) -> None:
        self.ids = ids
        self.generations_kept = generations_kept
        self.lineages_per_owner = lineages_per_owner
        self.lineages: dict[str, Lineage] = {}
        self.tokens: dict[str, tuple[str, int]] = {}
        self.replays: dict[str, int] = {}  # owner -> pages still to get a replayed item

    # ------------------------------------------------------------------ rounds

    def start(
        self,
        owner: str,
        collection: str,
        select: list[str] | None,
        change_type: str | None,
        top: int | None,
        source: Source,
    ) -> tuple[Lineage, Generation]:
        """An initial request: everything that exists now, in no particular order."""
        if change_type is not None and change_type not in CHANGE_TYPES:
            raise GraphError(
                400,
                "BadRequest",
                f"Invalid changeType '{change_type}'. Supported values are created, updated or deleted.",
            )
        lineage = Lineage(self.ids.token(22), owner, collection, select, change_type, top)
        self._remember(lineage)
        keys = list(source.current())
        self.ids.shuffle(keys)
        if change_type == "deleted":
            keys = []
        return lineage, Generation(0, 0, source.sequence(), keys)

    def resume(
        self, token: str, owner: str, collection: str, source: Source, reset_location: Callable[[], str]
    ) -> tuple[Lineage, Generation]:
        """A `$skiptoken` or `$deltatoken`: the generation it names, or the documented 410."""
        found = self.tokens.get(token)
        lineage = self.lineages.get(found[0]) if found else None
        if found is None or lineage is None or lineage.owner != owner or lineage.collection != collection:
            raise _not_found(found[1] if found else 0, lineage)
        if lineage.reset:
            raise GraphError(
                410,
                "resyncRequired",
                "Resync required. The delta token is no longer valid and the sync state must be reset.",
                headers={"Location": reset_location()},
            )
        generation = lineage.generations.get(found[1])
        if generation is None:
            raise _not_found(found[1], lineage)
        if generation.pending is not None:
            return lineage, Generation(
                0, generation.watermark, generation.round_end, list(generation.pending), generation.last_page
            )
        # A deltaLink: a new round of what changed since its watermark.
        current = source.current()
        watermark = generation.watermark
        keys: list[str] = []
        if lineage.change_type in (None, "created", "updated"):
            for key, (seq, entered) in current.items():
                if seq <= watermark:
                    continue
                created = entered > watermark
                if lineage.change_type == "created" and not created:
                    continue
                if lineage.change_type == "updated" and created:
                    continue
                keys.append(key)
        if lineage.change_type in (None, "deleted"):
            keys += [key for key in source.removed_since(watermark) if key not in current]
        self.ids.shuffle(keys)
        return lineage, Generation(0, watermark, source.sequence(), keys)

    def page(self, lineage: Lineage, generation: Generation, page_size: int | None, source: Source) -> Page:
        size = min(max(page_size or lineage.top or DEFAULT_PAGE, 1), MAX_PAGE)
        pending = list(generation.pending or [])
        taken, rest = pending[:size], pending[size:]
        if self.replays.get(lineage.owner, 0) > 0 and generation.last_page:
            self.replays[lineage.owner] -= 1
            taken = [generation.last_page[-1], *taken]
        current = source.current()
        entries = [(key, key in current) for key in taken]
        number = lineage.highest + 1
        if rest:
            following = Generation(number, generation.watermark, generation.round_end, rest, taken)
        else:
            following = Generation(number, generation.round_end, generation.round_end, None, taken)
        lineage.add(following, self.generations_kept)
        token = self.ids.token(43)
        self.tokens[token] = (lineage.id, number)
        return Page(entries, token, complete=not rest)

    # ------------------------------------------------------------------ control

    def expire(self, owner: str, collection: str | None = None) -> int:
        """Evict every lineage of `owner` (in `collection`): their tokens answer 410 SyncStateNotFound."""
        doomed = [
            lid
            for lid, lin in self.lineages.items()
            if lin.owner == owner and (collection is None or lin.collection == collection)
        ]
        for lid in doomed:
            del self.lineages[lid]
        return len(doomed)

    def reset(self, owner: str, collection: str | None = None) -> int:
        """A synchronization reset: the next use of their tokens answers 410 Gone with a Location."""
        count = 0
        for lineage in self.lineages.values():
            if lineage.owner == owner and (collection is None or lineage.collection == collection):
                lineage.reset = True
                count += 1
        return count

    def inject_replays(self, owner: str, pages: int) -> None:
        """The next `pages` pages of `owner` each repeat the last item of the page before."""
        self.replays[owner] = self.replays.get(owner, 0) + pages

    def _remember(self, lineage: Lineage) -> None:
        self.lineages[lineage.id] = lineage
        mine = [lid for lid, lin in self.lineages.items() if lin.owner == lineage.owner]
        for lid in mine[: max(0, len(mine) - self.lineages_per_owner)]:
            del self.lineages[lid]


def _not_found(generation: int, lineage: Lineage | None) -> GraphError:
    if lineage is None:
        kept = ""
        highest = generation
    else:
        highest = lineage.highest
        kept = "".join(f"[{n}]" for n in sorted(lineage.generations, reverse=True))
    return GraphError(
        410,
        "SyncStateNotFound",
        f"The sync state generation is not found; generation={generation};[highest={highest}]{kept}.",
    )


def removed_entry(item_id: str, odata_type: str) -> dict[str, Any]:
    """How delta reports an item gone from the collection [D: delta-query-messages round 2 sample]."""
    return {"@odata.type": odata_type, "id": item_id, "@removed": {"reason": "deleted"}}
