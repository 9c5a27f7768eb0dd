"""Ordinary mail for the read paths (issue 10 point 3), shared by `test_read_requests` (which
asserts the DynamoDB request bound per route) and `benchmarks/bench_reads.py` (which prints the
requests and the latency of the same calls).

The mail is stored through the real batch ingest; the CRM records through the API; the links as
email matching writes them. `READ_CALLS` names each route and filter read with a page of 50.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.links import LinkRecord, LinkStore
from mailbridge.sync.ingest import Mailbox, ingest_batch
from tests.fixtures.aws import Stack, is_rate_limit_request
from tests.integration.test_api_emails import ACC_A, TENANT, api, body, rfc

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
START = datetime(2026, 1, 5, 8, tzinfo=UTC)
ALICE = "alice@example.com"
PAGE = "50"
# The oldest emails, from Dave, are snoozed: hidden from every listing but `snoozed=true`.
SNOOZED = 50


class Requests:
    """A botocore `before-call.dynamodb.*` handler: the operation name of every request made."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, **kwargs: Any) -> None:
        if not is_rate_limit_request(**kwargs):
            self.names.append(kwargs["model"].name)


@dataclass
class Mail:
    emails: list[str]
    thread_id: str
    contact_id: str
    deal_id: str


def _at(n: int) -> str:
    return format_datetime(START + timedelta(hours=n))


def _raw_mail() -> list[bytes]:
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
    for s in range(SNOOZED):
        raws.append(
            rfc(
                msgid=f"later{s}@example.net",
                sender="Dave <dave@example.net>",
                to="me@acme.test",
                subject=f"Later {s}",
                date=_at(-100 - s),
                text="Snoozed until next week.",
            )
        )
    return raws


def seed_mail(stack: Stack, invoke_api: Invoke) -> Mail:
    """230 emails of one account. 180 mention "pricing", most unread (every tenth is read), most
    from Alice: newest, 20 three-message conversations (Alice, Bob, Alice), categorized `support`;
    then 60 single emails from Alice, 55 of them sent through mailbridge (send status `sent`); then
    a conversation of 60 with Carol, these 120 categorized `sales`. Oldest, 50 snoozed emails from Dave
    (`SNOOZED`). A contact for Alice (with her company) and a deal, each linked to 55 emails and
    with three calendar events and three notes among the newest of them (their timelines mix all
    three sources on the first page)."""
    raws = _raw_mail()
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
    first = emails.get_email(TENANT, ids[0])
    assert first is not None
    long_thread = str(first["thread_id"])
    singles = ids[60:120]
    table = stack.table("EmailsTable")
    for n, email_id in enumerate(ids[:180]):
        category = "support" if n >= 120 else "sales"
        assert emails.set_categorization(
            TENANT, email_id, f"seed{n}", category=category, category_source="model"
        )
    for email_id in ids[180:]:
        assert emails.set_snooze(TENANT, email_id, "2026-03-02T08:00:00+00:00", email_id)
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
    # Among the newest of those emails, on both records: three calendar events and three notes
    for n in range(3):
        at = START + timedelta(hours=150 + n, minutes=30)
        event = {"title": f"Call {n}", "start": {"date_time": at.isoformat()}}
        create("calendar-create-event", {**event, "contact_ids": [contact], "deal_id": deal}, "event_id")
        note = {"kind": "note", "body": f"Note {n}", "occurred_at": (at + timedelta(minutes=10)).isoformat()}
        create("crm-create-activity", {**note, "contact_id": contact, "deal_id": deal}, "activity_id")
    return Mail(ids, long_thread, contact, deal)


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
    {"category": "sales"},
    {"snoozed": "true"},
]
THREAD_FILTERS: list[dict[str, str]] = [
    {},
    {"q": "pricing"},
    {"unread": "true"},
    {"from": ALICE},
    {"snoozed": "true"},
]
TIMELINES = (
    ("crm-get-contact-timeline", "contact_id"),
    ("contact-timeline", "contact_id"),
    ("crm-get-deal-timeline", "deal_id"),
    ("deal-timeline", "deal_id"),
)


@dataclass(frozen=True)
class ReadCall:
    """One API call of a read route: a label, the sample event's name, path and query."""

    label: str
    name: str
    path: dict[str, str] | None = None
    query: dict[str, str] | None = None

    def event(self) -> dict[str, Any]:
        return (
            api(self.name, path=self.path, query=self.query) if self.query else api(self.name, path=self.path)
        )


def read_calls(mail: Mail, thread_cursor: str | None = None) -> list[ReadCall]:
    """A page of 50 of every read route of point 3, each filter of GET /emails and GET /threads
    on its own; with `thread_cursor`, GET /threads/{id} page 2 as well."""
    calls = [ReadCall(f"GET /emails {q}", "list-emails", query={"limit": PAGE, **q}) for q in EMAIL_FILTERS]
    calls.append(
        ReadCall("GET /emails thread_id", "list-emails", query={"limit": PAGE, "thread_id": mail.thread_id})
    )
    path = {"thread_id": mail.thread_id}
    calls.append(ReadCall("GET /threads/{id}", "get-thread", path=path, query={"limit": PAGE}))
    if thread_cursor:
        calls.append(
            ReadCall(
                "GET /threads/{id} page 2",
                "get-thread",
                path=path,
                query={"limit": PAGE, "cursor": thread_cursor},
            )
        )
    calls += [
        ReadCall(f"GET /threads {q}", "list-threads", query={"limit": PAGE, **q}) for q in THREAD_FILTERS
    ]
    for name, key in TIMELINES:
        record = mail.contact_id if key == "contact_id" else mail.deal_id
        calls.append(ReadCall(name, name, path={key: record}, query={"limit": PAGE}))
    calls.append(ReadCall("GET /crm/contacts/by-email", "crm-get-contact-by-email", path={"address": ALICE}))
    return calls
