"""Read paths without N+1 (issue 10 point 3): the DynamoDB requests one page of 50 costs, per route
and per filter, on ordinary data (filters that match most of the mail), counted with a botocore
`before-call` hook on the API's own client. A request count is what is billed; it is the point.

The mail is stored through the real batch ingest; the CRM records through the API; the links as
email matching writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from mailbridge import aws
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.links import LinkRecord, LinkStore
from mailbridge.sync.ingest import Mailbox, ingest_batch
from tests.fixtures.aws import Stack
from tests.integration.test_api_emails import ACC_A, TENANT, api, body, rfc

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
START = datetime(2026, 1, 5, 8, tzinfo=UTC)
ALICE = "alice@example.com"
PAGE = "50"
# The bound: a page of 50 costs at most this many DynamoDB requests, whatever the filter.
MAX_REQUESTS = 3
# GET /crm/contacts/by-email: the tenant's feature flags (the CRM gate), the address lookup, the
# ids of the contact's open deals and its newest links, then one read of the contact, company,
# deals and linked emails. Five, whatever the data: each read needs what an earlier one found.
BY_EMAIL_REQUESTS = 5


class Requests:
    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, **kwargs: Any) -> None:
        self.names.append(kwargs["model"].name)


@pytest.fixture
def requests(stack: Stack) -> Iterator[Requests]:
    counter = Requests()
    events = aws.dynamodb().meta.client.meta.events
    events.register("before-call.dynamodb.*", counter)
    yield counter
    events.unregister("before-call.dynamodb.*", counter)


@dataclass
class Mail:
    emails: list[str]
    thread_id: str
    contact_id: str
    deal_id: str


def _at(n: int) -> str:
    return format_datetime(START + timedelta(hours=n))


@pytest.fixture
def mail(stack: Stack, invoke_api: Invoke) -> Mail:
    """180 emails of one account, all mentioning "pricing", most unread (every tenth is read), most
    from Alice: newest, 20 three-message conversations (Alice, Bob, Alice); then 60 single emails
    from Alice, 55 of them sent through mailbridge (send status `sent`); oldest, a conversation of
    60 with Carol. A contact for Alice (with her company) and a deal, each linked to 55 emails."""
    raws: list[bytes] = []
    refs: list[str] = []
    for m in range(60):
        raws.append(
            rfc(
                msgid=f"long{m}@example.com",
                sender="Carol <carol@example.com>",
                to="me@acme.test",
                subject="Re: The long one" if m else "The long one",
                date=_at(m),
                text="Still about pricing.",
                in_reply_to=refs[-1] if refs else None,
                references=" ".join(f"<{r}>" for r in refs[-10:]) or None,
            )
        )
        refs.append(f"long{m}@example.com")
    for n in range(60):
        raws.append(
            rfc(
                msgid=f"a{n}@example.com",
                sender=f"Alice <{ALICE}>",
                to="me@acme.test",
                subject=f"Update {n}",
                date=_at(100 + n),
                text=f"Our pricing, week {n}.",
            )
        )
    for c in range(20):
        previous: str | None = None
        for m in range(3):
            raws.append(
                rfc(
                    msgid=f"b{c}-{m}@example.com",
                    sender="Bob <bob@example.com>" if m == 1 else f"Alice <{ALICE}>",
                    to="me@acme.test",
                    subject=("Re: " if m else "") + f"Topic {c}",
                    date=_at(200 + 3 * c + m),
                    text="About the pricing.",
                    in_reply_to=previous,
                    references=f"<{previous}>" if previous else None,
                )
            )
            previous = f"b{c}-{m}@example.com"
    emails = EmailStore(stack.deployed.tables["EmailsTable"])
    blobs = BlobStore(stack.deployed.buckets["MailBucket"])
    mailbox = Mailbox(TENANT, ACC_A, "me@acme.test", "INBOX", 7)
    ids: list[str] = []
    for start in range(0, len(raws), 50):
        batch = [
            FetchedMessage(
                uid=start + i + 1,
                flags=("\\Seen",) if (start + i) % 10 == 0 else (),
                internal_date=START,
                modseq=None,
                size=len(raw),
                raw=raw,
            )
            for i, raw in enumerate(raws[start : start + 50])
        ]
        ids += [str(r.email_id) for r in ingest_batch(mailbox, batch, emails, blobs)]
    long_thread = str(stored(emails, ids[0])["thread_id"])
    singles = ids[60:120]
    table = stack.table("EmailsTable")
    for email_id in singles[:55]:
        table.update_item(
            Key={"pk": f"TENANT#{TENANT}", "sk": f"EMAIL#{email_id}"},
            UpdateExpression="SET send_status = :s, gsi6pk = :p",
            ExpressionAttributeValues={":s": "sent", ":p": f"TENANT#{TENANT}#STATUS#sent"},
        )

    def create(name: str, payload: dict[str, Any], key: str) -> str:
        response = invoke_api(api(name, body=payload))
        assert response["statusCode"] == 201, response
        return str(body(response)[key])

    company = create("crm-create-company", {"name": "Example", "domains": ["example.com"]}, "company_id")
    contact = create(
        "crm-create-contact",
        {"name": "Alice", "emails": [{"address": ALICE, "primary": True}], "company_id": company},
        "contact_id",
    )
    deal = create(
        "crm-create-deal",
        {"name": "Example: 50 seats", "contact_ids": [contact], "company_id": company},
        "deal_id",
    )
    LinkStore(stack.deployed.tables["LinksTable"]).put_auto_links(
        TENANT,
        [
            LinkRecord(
                email_id=e,
                kind=kind,
                record_id=record,
                reason="participant",
                via=ALICE,
                date=(START + timedelta(hours=100 + n)).isoformat(),
                direction="inbound",
                created_at=START.isoformat(),
                created_by="matching",
            )
            for n, e in enumerate(singles[:55])
            for kind, record in (("contact", contact), ("deal", deal))
        ],
    )
    return Mail(ids, long_thread, contact, deal)


def stored(emails: EmailStore, email_id: str) -> dict[str, Any]:
    item = emails.get_email(TENANT, email_id)
    assert item is not None
    return item


def page(
    invoke_api: Invoke,
    requests: Requests,
    name: str,
    *,
    path: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[dict[str, Any], int]:
    """One call of a route: its answer and the DynamoDB requests it made."""
    event = api(name, path=path, query=query) if query else api(name, path=path)
    requests.names.clear()
    response = invoke_api(event)
    assert response["statusCode"] == 200, response
    return body(response), len(requests.names)


EMAIL_FILTERS: list[dict[str, str]] = [
    {},
    {"unread": "true"},
    {"from": ALICE},
    {"from": "alice"},
    {"q": "pricing"},
    {"since": "2026-01-05T00:00:00Z", "until": "2026-02-01T00:00:00Z"},
    {"account_id": ACC_A},
    {"account_id": ACC_A, "folder": "INBOX"},
    {"status": "sent"},
    {"include_deleted": "true"},
]


def test_every_read_route_costs_a_few_requests_for_a_page_of_50(
    invoke_api: Invoke, requests: Requests, mail: Mail
) -> None:
    costs: dict[str, int] = {}
    # GET /emails, with each filter (the thread filter below)
    for query in EMAIL_FILTERS:
        listed, costs[f"GET /emails {query}"] = page(
            invoke_api, requests, "list-emails", query={"limit": PAGE, **query}
        )
        assert len(listed["items"]) == 50, query
    # A thread of 60: GET /emails?thread_id=, GET /threads/{id} and its second page
    listed, costs["GET /emails thread_id"] = page(
        invoke_api, requests, "list-emails", query={"limit": PAGE, "thread_id": mail.thread_id}
    )
    assert len(listed["items"]) == 50
    path = {"thread_id": mail.thread_id}
    thread, costs["GET /threads/{id}"] = page(
        invoke_api, requests, "get-thread", path=path, query={"limit": PAGE}
    )
    assert len(thread["messages"]) == 50
    rest, costs["GET /threads/{id} page 2"] = page(
        invoke_api, requests, "get-thread", path=path, query={"limit": PAGE, "cursor": thread["next_cursor"]}
    )
    assert len(rest["messages"]) == 10
    # GET /threads: the 20 conversations (whole, whatever the filter) and 30 single emails
    for query in ({}, {"q": "pricing"}, {"unread": "true"}, {"from": ALICE}):
        listed, costs[f"GET /threads {query}"] = page(
            invoke_api, requests, "list-threads", query={"limit": PAGE, **query}
        )
        assert [t["message_count"] for t in listed["items"]] == [3] * 20 + [1] * 30, query
    # The timelines and their aliases
    for route, key, record in (
        ("crm-get-contact-timeline", "contact_id", mail.contact_id),
        ("contact-timeline", "contact_id", mail.contact_id),
        ("crm-get-deal-timeline", "deal_id", mail.deal_id),
        ("deal-timeline", "deal_id", mail.deal_id),
    ):
        listed, costs[route] = page(invoke_api, requests, route, path={key: record}, query={"limit": PAGE})
        assert len(listed["items"]) == 50, route
    # Then none of them made more than three DynamoDB requests
    assert {name: cost for name, cost in costs.items() if cost > MAX_REQUESTS} == {}


def test_the_by_email_view_costs_a_fixed_number_of_requests(
    invoke_api: Invoke, requests: Requests, mail: Mail
) -> None:
    view, count = page(invoke_api, requests, "crm-get-contact-by-email", path={"address": ALICE})
    assert view["contact"]["contact_id"] == mail.contact_id
    assert view["company"]["name"] == "Example"
    assert [d["deal_id"] for d in view["open_deals"]] == [mail.deal_id]
    assert len(view["last_emails"]) == 5
    assert count <= BY_EMAIL_REQUESTS, requests.names
