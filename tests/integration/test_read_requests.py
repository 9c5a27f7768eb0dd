"""Read paths without N+1 (issue 10 point 3): the DynamoDB requests one page of 50 costs, per route
and per filter, on ordinary data (filters that match most of the mail), counted with a botocore
`before-call` hook on the API's own client. A request count is what is billed; it is the point.

The mail and the calls: tests/integration/read_mail.py (benchmarks/bench_reads.py prints the same
calls' requests and latency).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from mailbridge import aws
from tests.fixtures import moto_transactions
from tests.fixtures.aws import Stack, module_api, module_stack
from tests.integration.read_mail import (
    ALICE,
    EMAIL_FILTERS,
    PAGE,
    SNOOZED,
    THREAD_FILTERS,
    TIMELINES,
    Invoke,
    Mail,
    ReadCall,
    Requests,
    read_calls,
    seed_mail,
)
from tests.integration.test_api_emails import body

# The bound: a page of 50 costs at most this many DynamoDB requests, whatever the filter.
MAX_REQUESTS = 3
# GET /crm/contacts/by-email: the tenant's feature flags (the CRM gate), the address lookup, the
# ids of the contact's open deals and its newest links, then one read of the contact, company,
# deals and linked emails. Five, whatever the data: each read needs what an earlier one found.
BY_EMAIL_REQUESTS = 5
# A contact's or deal's timeline is within MAX_REQUESTS too: the tenant's feature flags (the CRM
# gate), one Query of the timeline index (its emails, events and activities in time order), one
# BatchGetItem of the record and the page's emails (crm/timeline.py).
# GET /emails?snoozed=true: one Query of the sparse snoozed index (emails gsi7), whatever other mail
# the tenant has (SNOOZED of the 230 emails, the oldest: a filtered walk of the tenant's mail would
# read the 180 newer ones first).
SNOOZED_REQUESTS = 1
# Every request that reads mail first reads the caller's mailbox access, once (mailbridge.access):
# the tenant's privacy policy (one GetItem, settings table) and every mailbox's owner and
# visibility (two Queries of small projections, accounts table), whatever the page holds.
ACCESS_REQUESTS = 3


@pytest.fixture
def requests(stack: Stack) -> Iterator[Requests]:
    counter = Requests()
    for client in aws.dynamodb_clients():
        client.meta.events.register("before-call.dynamodb.*", counter)
    yield counter
    for client in aws.dynamodb_clients():
        client.meta.events.unregister("before-call.dynamodb.*", counter)


# The tests only read: the stack, the api's cold start and the mail are shared by the module.
@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    yield from module_stack()


@pytest.fixture(scope="module")
def invoke_api(stack: Stack) -> Invoke:
    return module_api()


@pytest.fixture(scope="module")
def mail(stack: Stack, invoke_api: Invoke) -> Mail:
    with pytest.MonkeyPatch.context() as patch:
        # Seeding writes 180 emails in transactions of 50: moto's own rollback copies the whole
        # table per action (tests/fixtures/moto_transactions.py); request counts are unchanged.
        moto_transactions.install(partial(patch.setattr, raising=False))
        return seed_mail(stack, invoke_api)


def page(invoke_api: Invoke, requests: Requests, call: ReadCall) -> tuple[dict[str, Any], int]:
    """One call of a route: its answer and the DynamoDB requests it made."""
    event = call.event()
    requests.names.clear()
    response = invoke_api(event)
    assert response["statusCode"] == 200, response
    return body(response), len(requests.names)


def test_every_read_route_costs_a_few_requests_for_a_page_of_50(
    invoke_api: Invoke, requests: Requests, mail: Mail
) -> None:
    # Given the mail (fixture) and the cursor of the second page of the thread of 60
    first, _ = page(
        invoke_api, requests, ReadCall("", "get-thread", {"thread_id": mail.thread_id}, {"limit": PAGE})
    )
    calls = [c for c in read_calls(mail, first["next_cursor"]) if c.name != "crm-get-contact-by-email"]
    # When each route and filter is asked for a page of 50
    costs: dict[str, int] = {}
    answers: dict[str, dict[str, Any]] = {}
    for call in calls:
        answers[call.label], costs[call.label] = page(invoke_api, requests, call)
    # Then every call was one of point 3's (each filter of /emails and of /threads, category and
    # snoozed included, the thread and its second page, the timelines and their aliases)
    assert len(calls) == len(EMAIL_FILTERS) + 1 + 2 + len(THREAD_FILTERS) + len(TIMELINES)
    # And each page is full: 50 emails, the thread of 60 in 50 + 10, and for /threads the 20
    # conversations (whole, whatever the filter) and 30 single emails
    for label, answer in answers.items():
        if label.startswith("GET /threads/{id}"):
            assert len(answer["messages"]) == (10 if label.endswith("page 2") else 50), label
        elif label == "GET /threads {'snoozed': 'true'}":
            assert [t["message_count"] for t in answer["items"]] == [1] * SNOOZED, label
        elif label.startswith("GET /threads"):
            assert [t["message_count"] for t in answer["items"]] == [3] * 20 + [1] * 30, label
        else:
            assert len(answer["items"]) == 50, label
    # And the timeline pages mix the record's emails, calendar events and activities
    for name, _ in TIMELINES:
        assert {i["type"] for i in answers[name]["items"]} == {"email", "event", "activity"}, name
    # And the category and snoozed pages hold only what their filter selects
    assert {e["category"] for e in answers["GET /emails {'category': 'sales'}"]["items"]} == {"sales"}
    assert all(e["snoozed_until"] for e in answers["GET /emails {'snoozed': 'true'}"]["items"])
    # And the snoozed page reads the snoozed index alone: one request, however much mail is newer
    assert costs["GET /emails {'snoozed': 'true'}"] == SNOOZED_REQUESTS + ACCESS_REQUESTS
    # And none of them made more than three DynamoDB requests besides the access read, the
    # timelines included
    assert set(costs) >= {name for name, _ in TIMELINES}
    assert {label: cost for label, cost in costs.items() if cost > MAX_REQUESTS + ACCESS_REQUESTS} == {}


def test_the_by_email_view_costs_a_fixed_number_of_requests(
    invoke_api: Invoke, requests: Requests, mail: Mail
) -> None:
    # Given the mail (fixture): Alice's contact, company, open deal and 55 linked emails
    # When her address is looked up
    view, count = page(
        invoke_api, requests, ReadCall("by-email", "crm-get-contact-by-email", {"address": ALICE})
    )
    # Then the view is whole
    assert view["contact"]["contact_id"] == mail.contact_id
    assert view["company"]["name"] == "Example"
    assert [d["deal_id"] for d in view["open_deals"]] == [mail.deal_id]
    assert len(view["last_emails"]) == 5
    # And it made a fixed number of requests (no read per deal or per email)
    assert count <= BY_EMAIL_REQUESTS + ACCESS_REQUESTS, requests.names
