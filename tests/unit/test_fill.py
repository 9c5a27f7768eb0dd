"""store.fill: full pages from filtered reads, bounded requests, cursors that never skip or repeat."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mailbridge.store.fill import PAGE_BUDGET, Budget, fill


class Source:
    """A fake index: `values` in order; a cursor is the position to read from; `Limit` counts
    items read, like DynamoDB's (a filter applies after it)."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.items = [{"pos": i, "value": v} for i, v in enumerate(values)]
        self.reads: list[int] = []

    def read(self, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        self.reads.append(limit)
        start = int(cursor or 0)
        page = self.items[start : start + limit]
        end = start + len(page)
        return page, (str(end) if end < len(self.items) else None)

    @staticmethod
    def cursor_at(item: dict[str, Any]) -> str:
        return str(item["pos"] + 1)


def keep_if(test: Callable[[Any], bool]) -> Callable[[list[dict[str, Any]], int], list[Any]]:
    return lambda items, _wanted: [i["value"] if test(i["value"]) else None for i in items]


def walk(
    source: Source,
    resolve: Callable[[list[dict[str, Any]], int], Sequence[Any]],
    *,
    limit: int,
    budget: int = PAGE_BUDGET,
    repeats: Any = None,
) -> list[tuple[list[Any], int]]:
    """Every page (its results and the reads it made) until the cursor runs out."""
    pages: list[tuple[list[Any], int]] = []
    cursor: str | None = None
    while True:
        before = len(source.reads)
        spent = Budget(budget)
        page, cursor = fill(
            source.read,
            resolve,
            source.cursor_at,
            limit=limit,
            cursor=cursor,
            budget=spent,
            max_read=100,
            repeats=repeats,
        )
        assert spent.spent == len(source.reads) - before
        pages.append((page, spent.spent))
        if cursor is None:
            return pages
        assert len(pages) < 500


def test_pages_are_full_while_matches_remain_and_chain_without_gaps_or_repeats() -> None:
    # Given 1,000 items of which every 37th matches
    source = Source(range(1000))
    # When they are walked three per page
    pages = walk(source, keep_if(lambda v: v % 37 == 0), limit=3)
    # Then every page but the last holds exactly three, and together they hold each match once
    sizes = [len(page) for page, _ in pages]
    assert all(size == 3 for size in sizes[:-1])
    assert 1 <= sizes[-1] <= 3
    assert [v for page, _ in pages for v in page] == list(range(0, 1000, 37))
    # And no page made more requests than its budget
    assert max(requests for _, requests in pages) <= PAGE_BUDGET


def test_many_misses_before_the_first_match_still_fill_the_first_page() -> None:
    # Given 500 items that do not match, then five that do
    source = Source(["miss"] * 500 + ["hit"] * 5)
    # When the first page of two is asked for
    page, cursor = fill(
        source.read,
        keep_if(lambda v: v == "hit"),
        source.cursor_at,
        limit=2,
        cursor=None,
        budget=Budget(),
        max_read=100,
    )
    # Then it holds two matches, reached in growing reads within the budget
    assert page == ["hit", "hit"]
    assert cursor == "502"
    assert source.reads[:4] == [2, 8, 32, 100]
    assert len(source.reads) <= PAGE_BUDGET


def test_an_index_that_serves_the_filter_fills_a_page_in_one_read() -> None:
    source = Source(range(50))
    page, cursor = fill(
        source.read,
        keep_if(lambda _: True),
        source.cursor_at,
        limit=10,
        cursor=None,
        budget=Budget(),
        max_read=100,
    )
    assert page == list(range(10))
    assert (cursor, source.reads) == ("10", [10])


def test_a_spent_budget_ends_the_page_early_with_a_cursor_that_loses_nothing() -> None:
    # Given matches far apart: more misses between them than a budget of three reads can pass
    values = ["miss"] * 300 + ["hit-1"] + ["miss"] * 300 + ["hit-2"] + ["miss"] * 50
    source = Source(values)
    # When walked with a budget of three requests per page
    pages = walk(source, keep_if(lambda v: v.startswith("hit")), limit=2, budget=3)
    # Then some pages come back short or empty, but none made more than three requests
    assert all(requests <= 3 for _, requests in pages)
    assert any(len(page) < 2 for page, _ in pages[:-1])
    # And the walk still holds each match exactly once, in order
    assert [v for page, _ in pages for v in page] == ["hit-1", "hit-2"]


def test_what_was_read_past_a_full_page_is_not_read_again() -> None:
    # Given two matches among misses, the last read reaching the end of the source
    source = Source(["miss"] * 3 + ["hit-1", "hit-2"] + ["miss"] * 3)
    # When a page of two is asked for
    page, cursor = fill(
        source.read,
        keep_if(lambda v: v != "miss"),
        source.cursor_at,
        limit=2,
        cursor=None,
        budget=Budget(),
        max_read=100,
    )
    # Then it holds both, and since nothing after them in that read matched, there is no next page
    assert (page, cursor) == (["hit-1", "hit-2"], None)


def test_a_page_never_ends_between_two_reads_of_the_same_thing() -> None:
    # Given a listing where each email appears at two positions side by side (two folders),
    # the second copy falling just past the end of a read
    values = ["a", "a", "b", "b", "c", "c", "d"]
    source = Source(values)
    seen_on_page: set[str] = set()

    def resolve(items: list[dict[str, Any]], _wanted: int) -> list[str | None]:
        out: list[str | None] = []
        for item in items:
            value = str(item["value"])
            out.append(None if value in seen_on_page else value)
            seen_on_page.add(value)
        return out

    def repeats(item: dict[str, Any], page: list[str]) -> bool:
        return item["value"] in page

    shown: list[str] = []
    cursor: str | None = None
    while True:
        seen_on_page.clear()
        page, cursor = fill(
            source.read,
            resolve,
            source.cursor_at,
            limit=1,
            cursor=cursor,
            budget=Budget(),
            max_read=100,
            repeats=repeats,
        )
        shown += page
        if cursor is None:
            break
    # Then each shows once
    assert shown == ["a", "b", "c", "d"]


def test_a_resolver_that_stops_early_resumes_after_what_it_looked_at() -> None:
    # Given a resolver that looks at no more than two items per call (its own budget)
    source = Source(range(10))

    def resolve(items: list[dict[str, Any]], _wanted: int) -> list[int | None]:
        return [i["value"] if i["value"] % 2 == 0 else None for i in items[:2]]

    pages = walk(source, resolve, limit=4)
    # Then pages are short, but together hold every match once
    assert [v for page, _ in pages for v in page] == [0, 2, 4, 6, 8]
