"""CRM listings fill their pages (issue 8 point 10): a search or filter with many records that do not
match before the ones that do still gets full pages, chained without gaps or repeats, within a
bounded number of DynamoDB requests (counted with a botocore hook on the API's client)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailbridge import aws
from mailbridge.store import crm as crm_store
from mailbridge.store.fill import PAGE_BUDGET
from tests.fixtures.aws import is_rate_limit_request
from tests.integration.test_api_crm import Crm, api, body

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture
def queries(stack: Any) -> Iterator[list[str]]:
    """Names of the DynamoDB operations the API makes, recorded while the test runs."""
    names: list[str] = []

    def record(**kwargs: Any) -> None:
        if not is_rate_limit_request(**kwargs):
            names.append(kwargs["model"].name)

    for client in aws.dynamodb_clients():
        client.meta.events.register("before-call.dynamodb.*", record)
    yield names
    for client in aws.dynamodb_clients():
        client.meta.events.unregister("before-call.dynamodb.*", record)


@pytest.fixture
def crm(invoke_api: Invoke) -> Crm:
    return Crm(invoke_api)


def pages(crm: Crm, calls: list[str], name: str, **query: str) -> list[tuple[list[str], int]]:
    """Every page: the ids it holds and the Query requests it made."""
    out: list[tuple[list[str], int]] = []
    cursor: str | None = None
    while True:
        calls.clear()
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = crm.invoke(api(name, query=params))
        assert response["statusCode"] == 200, response
        data = body(response)
        key = {"list-contacts": "contact_id", "list-deals": "deal_id", "list-companies": "company_id"}[name]
        out.append(([item[key] for item in data["items"]], calls.count("Query")))
        cursor = data["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 40


def test_a_contact_search_fills_its_first_page_past_many_misses(crm: Crm, queries: list[str]) -> None:
    # Given 40 contacts that do not match, created before the 3 that do
    for n in range(40):
        crm.contact(f"Filler {n}", f"filler{n}@example.com")
    zeds = [crm.contact(f"Zed {n}", f"zed{n}@example.com")["contact_id"] for n in range(3)]
    # When they are searched two per page
    walked = pages(crm, queries, "list-contacts", q="zed", limit="2")
    # Then the first page is full, the pages chain without gaps or repeats, within the budget
    assert [ids for ids, _ in walked] == [zeds[:2], zeds[2:]]
    assert all(count <= PAGE_BUDGET for _, count in walked)


def test_a_companys_contacts_come_from_its_index(crm: Crm, queries: list[str]) -> None:
    # Given 30 contacts without a company, then 3 at a company, one of which moves away
    company = crm.company("Example", "example.com")["company_id"]
    for n in range(30):
        crm.contact(f"Other {n}", f"other{n}@example.net")
    staff = [
        crm.contact(f"Staff {n}", f"staff{n}@example.com", company_id=company)["contact_id"] for n in range(4)
    ]
    crm.call("patch-contact", path={"contact_id": staff[3]}, body={"company_id": None})
    # When the company's contacts are listed two per page
    walked = pages(crm, queries, "list-contacts", company_id=company, limit="2")
    # Then full pages in creation order, each one query of the company's partition
    assert [ids for ids, _ in walked] == [staff[:2], staff[2:3]]
    assert [count for _, count in walked] == [1, 1]
    # And other filters combine with it
    assert pages(crm, queries, "list-contacts", company_id=company, q="staff 1")[0][0] == [staff[1]]


def test_a_deal_filter_fills_its_pages(crm: Crm, queries: list[str]) -> None:
    # Given 30 deals in the first stage, created before 3 in proposal
    for n in range(30):
        crm.deal(f"lead {n}")
    proposals = [crm.deal(f"proposal {n}", stage="proposal")["deal_id"] for n in range(3)]
    walked = pages(crm, queries, "list-deals", stage="proposal", limit="2")
    assert [ids for ids, _ in walked] == [proposals[:2], proposals[2:]]
    assert all(count <= PAGE_BUDGET for _, count in walked)


def test_a_spent_budget_shortens_contact_pages_without_losing_any(
    crm: Crm, queries: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given matches between long runs of contacts that do not match, and two requests per page
    expected = []
    for block in range(3):
        expected.append(crm.contact(f"Zed {block}", f"zed{block}@example.com")["contact_id"])
        for n in range(12):
            crm.contact(f"Filler {block}-{n}", f"filler{block}.{n}@example.com")
    monkeypatch.setattr(crm_store, "PAGE_BUDGET", 2)
    # When they are walked
    walked = pages(crm, queries, "list-contacts", q="zed", limit="2")
    # Then pages stop at the budget, some short, and together hold every match once
    assert all(count <= 2 for _, count in walked)
    assert any(len(ids) < 2 for ids, _ in walked[:-1])
    assert [i for ids, _ in walked for i in ids] == expected
