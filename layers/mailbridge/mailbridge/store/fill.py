"""Full pages from filtered DynamoDB queries, within a bounded number of requests.

A FilterExpression (or a check in Python) drops items after DynamoDB has read them, so one query
of `limit` items can return fewer, even none, while matches exist further on. `fill` keeps
reading until the page holds `limit` items or the query is exhausted, and stops early only when
the request budget is spent. Rules:

- The first read asks for `limit` items, each further one for `GROWTH` times the previous (up
  to `max_read`, and never less than what is missing): an index that serves the filter fills the
  page in one request, a sparse filter reaches far in a few.
- The page never ends in the middle of what was read without saying where: when it fills at item
  `i` of a read, the cursor is the key of the last item that is already accounted for (returned,
  or filtered out), so the next page starts right after it. Nothing is skipped, nothing repeated.
- Every request counts (queries and the batch reads `resolve` makes): `Budget`. When it runs out
  the page is returned as it is, with the cursor of the last item read.
- `repeats(item, page)` (optional): a read item that would show an item of the page again (one
  email held in two folders has two locations side by side). The page does not end between them:
  after the last item it peeks (at most `MAX_PEEKS` small reads) past such repeats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

Item = dict[str, Any]
T = TypeVar("T")

# One read: (cursor, how many to read) -> (items read, cursor after them or None at the end).
Read = Callable[[str | None, int], tuple[list[Item], str | None]]
# Read items -> what the page shows for each (None: filtered out). It may resolve only a prefix
# (at least one item) when `wanted` results are found or its own budget is spent.
Resolve = Callable[[list[Item], int], Sequence[T | None]]
# (read item, the page so far) -> True when the item would show something of the page again.
Repeats = Callable[[Item, list[T]], bool]

# Requests one page may make by default: with reads growing from `limit` (1, 4, 16, 64, then
# 100 at a time), enough to look through about 700 items for one sparse match.
PAGE_BUDGET = 10
GROWTH = 4
MAX_PEEKS = 3
PEEK_SIZE = 10


@dataclass
class Budget:
    """DynamoDB requests one page may still make."""

    requests: int = PAGE_BUDGET
    spent: int = 0

    def spend(self, count: int = 1) -> None:
        self.spent += count

    @property
    def left(self) -> int:
        return self.requests - self.spent


def fill(
    read: Read,
    resolve: Resolve[T],
    cursor_at: Callable[[Item], str | None],
    *,
    limit: int,
    cursor: str | None,
    budget: Budget,
    max_read: int,
    round_cost: int = 1,
    repeats: Repeats[T] | None = None,
) -> tuple[list[T], str | None]:
    """A page of at most `limit` results and the cursor of the next page (None: no more).

    `cursor_at(item)` is the cursor that resumes right after a read item; `round_cost` is what
    one read and its `resolve` cost in requests (checked before every read but the first).
    """
    kept: list[T] = []
    size = limit
    while True:
        items, next_cursor = read(cursor, size)
        budget.spend()
        wanted = limit - len(kept)
        results = list(resolve(items, wanted))[: len(items)] if items else []
        for index, result in enumerate(results):
            if result is None:
                continue
            kept.append(result)
            if len(kept) == limit:
                again = None if repeats is None else lambda item: repeats(item, kept)
                return kept, _resume(items, results, index, next_cursor, cursor_at, read, budget, again)
        if len(results) < len(items):
            # `resolve` stopped early (its budget): resume after the last item it looked at.
            return kept, cursor_at(items[len(results) - 1]) if results else cursor
        cursor = next_cursor
        if cursor is None or budget.left < round_cost:
            return kept, cursor
        size = min(max_read, max(limit - len(kept), size * GROWTH))


def _resume(
    items: list[Item],
    results: Sequence[Any],
    index: int,
    next_cursor: str | None,
    cursor_at: Callable[[Item], str | None],
    read: Read,
    budget: Budget,
    repeats: Callable[[Item], bool] | None,
) -> str | None:
    """Where the next page starts once this one filled at `items[index]`.

    Items after it that are already accounted for (resolved to None: filtered out or shown
    already) or that repeat this page are passed over, so the next page does not read them again.
    """
    last = index
    for later in range(index + 1, len(items)):
        settled = later < len(results) and results[later] is None
        if not (settled or (repeats is not None and repeats(items[later]))):
            return cursor_at(items[last])
        last = later
    # Everything read is accounted for: continue after the whole read, past any repeats beyond it.
    cursor = next_cursor
    if repeats is None:
        return cursor
    for _ in range(MAX_PEEKS):
        if cursor is None:
            return None
        peek, after = read(cursor, PEEK_SIZE)
        budget.spend()
        for position, item in enumerate(peek):
            if not repeats(item):
                return cursor_at(peek[position - 1]) if position else cursor
        cursor = after
    return cursor
