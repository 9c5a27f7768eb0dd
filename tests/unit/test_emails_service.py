"""The emails service without AWS: item -> model mapping, filters, page filling, flag pushes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest

from local.template import load_template
from mailbridge import emails
from mailbridge.emails import EmailPatch, EmailQuery
from mailbridge.errors import Forbidden, Invalid, NotFound
from mailbridge.models.email import EmailAddress
from mailbridge.queues import SyncQueue
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import SUMMARY_ATTRIBUTES, EmailStore, email_filter
from mailbridge.tenancy import Role, TenantContext

CTX = TenantContext(tenant_id="acme", role=Role.MEMBER, subject="u-1")
EM = "em_" + "a" * 26


def stored(email_id: str = EM, **overrides: Any) -> dict[str, Any]:
    """An email item as DynamoDB hands it back (Decimals, sets, `from`)."""
    item: dict[str, Any] = {
        "pk": "TENANT#acme",
        "sk": f"EMAIL#{email_id}",
        "email_id": email_id,
        "thread_id": "th_" + "b" * 24,
        "message_id": "<m1@example.com>",
        "in_reply_to": None,
        "references": [],
        "date": "2026-01-02T09:00:00+00:00",
        "date_source": "header",
        "subject": "Quarterly numbers",
        "from": [{"name": "Alice Doe", "address": "Alice@example.com"}],
        "sender": None,
        "reply_to": [],
        "to": [{"name": None, "address": "bob@acme.test"}],
        "cc": [{"name": "Carol", "address": "carol@acme.test"}],
        "bcc": [],
        "snippet": "Numbers attached",
        "size": Decimal(2048),
        "attachments": [
            {
                "id": "att-0",
                "filename": "q.pdf",
                "content_type": "application/pdf",
                "size": Decimal(10),
                "content_id": None,
                "inline": False,
                "sha256": "0" * 64,
                "from_tnef": False,
            }
        ],
        "has_attachments": True,
        "bounce": None,
        "auto_submitted": None,
        "precedence": None,
        "list": {"list_id": "news.example.com", "list_unsubscribe": ["mailto:u@example.com"]},
        "direction": "inbound",
        "deleted": False,
        "raw_key": f"raw/acme/acc_a/{email_id}.eml",
        "search": " quarterly numbers alice doe example com",
        "read": False,
        "flagged": True,
        "answered": False,
        "accounts": {"acc_b", "acc_a"},
        "folders": {"acc_b:INBOX", "acc_a:INBOX"},
        "loc_keys": {"LOC#acc_b#INBOX#7#0000000002", "LOC#acc_a#INBOX#7#0000000001"},
        "text_body": "Numbers attached.",
        "html_body": None,
        "calendar": None,
    }
    item.update(overrides)
    return item


# ------------------------------------------------------------------------------------ mapping


def test_an_item_maps_to_a_summary_with_plain_types() -> None:
    summary = emails.to_summary(stored())
    assert summary.from_ == [EmailAddress(name="Alice Doe", address="Alice@example.com")]
    assert summary.accounts == ["acc_a", "acc_b"]
    assert summary.folders == ["acc_a:INBOX", "acc_b:INBOX"]
    assert summary.date == datetime(2026, 1, 2, 9, tzinfo=UTC)
    assert (summary.read, summary.flagged, summary.answered) == (False, True, False)
    assert summary.model_dump(by_alias=True)["from"][0]["address"] == "Alice@example.com"


def test_an_item_maps_to_the_full_email() -> None:
    locations = [
        {
            "sk": "LOC#acc_b#INBOX#7#0000000002",
            "account_id": "acc_b",
            "folder": "INBOX",
            "uidvalidity": Decimal(7),
            "uid": Decimal(2),
            "flags": ["\\Seen"],
            "modseq": Decimal(99),
        },
        {
            "sk": "LOC#acc_a#INBOX#7#0000000001",
            "account_id": "acc_a",
            "folder": "INBOX",
            "uidvalidity": Decimal(7),
            "uid": Decimal(1),
            "flags": [],
            "modseq": None,
        },
    ]
    item = stored()
    email = emails.to_email(item, item, locations)
    assert email.size == 2048
    assert email.attachments[0].size == 10
    assert email.cc == [EmailAddress(name="Carol", address="carol@acme.test")]
    assert email.list_ is not None
    assert email.list_.list_id == "news.example.com"
    assert email.text_body == "Numbers attached."
    assert [(loc.account_id, loc.uid, loc.modseq) for loc in email.locations] == [
        ("acc_a", 1, None),
        ("acc_b", 2, 99),
    ]


def test_bodies_can_come_from_elsewhere_than_the_item() -> None:
    item = stored(text_body=None, body_key="body/acme/x.json")
    email = emails.to_email(
        item,
        {
            "text_body": "from S3",
            "html_body": "<p>from S3</p>",
            "calendar": {"method": "REQUEST", "ics": "X"},
        },
        [],
    )
    assert (email.text_body, email.html_body) == ("from S3", "<p>from S3</p>")
    assert email.calendar is not None
    assert email.calendar.method == "REQUEST"


def test_participants_are_unique_by_address_and_keep_the_first_name() -> None:
    people = emails.participants(
        [
            [EmailAddress(address="alice@example.com")],
            [
                EmailAddress(name="Bob", address="bob@acme.test"),
                EmailAddress(name="Alice", address="ALICE@example.com"),
            ],
            [
                EmailAddress(name="Alice Other", address="alice@example.com"),
                EmailAddress(name="B", address="Bob@acme.test"),
            ],
        ]
    )
    assert people == [
        EmailAddress(name="Alice", address="alice@example.com"),
        EmailAddress(name="Bob", address="bob@acme.test"),
    ]


# ------------------------------------------------------------------------------------ filters


def test_query_rules() -> None:
    with pytest.raises(Invalid) as folder:
        emails.normalize_query(EmailQuery(folder="INBOX"))
    assert folder.value.code == "folder_needs_account"
    since = datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(Invalid) as dates:
        emails.normalize_query(EmailQuery(since=since, until=since - timedelta(seconds=1)))
    assert dates.value.code == "invalid_date_range"
    # Equal bounds are one instant, which is fine
    emails.normalize_query(EmailQuery(since=since, until=since))


def test_query_normalization() -> None:
    query = emails.normalize_query(
        EmailQuery(
            q="  ",
            sender="",
            folder=" ",
            since=datetime(2026, 1, 2, 9),
            until=datetime(2026, 1, 2, 12, tzinfo=timezone(timedelta(hours=2))),
        )
    )
    assert (query.q, query.sender, query.folder) == (None, None, None)
    assert query.since == datetime(2026, 1, 2, 9, tzinfo=UTC)
    assert query.until == datetime(2026, 1, 2, 10, tzinfo=UTC)
    assert query.until.tzinfo == UTC


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (EmailQuery(), True),
        (EmailQuery(unread=True), True),
        (EmailQuery(unread=False), False),
        (EmailQuery(sender="alice"), True),
        (EmailQuery(sender="DOE"), True),
        (EmailQuery(sender="bob"), False),
        (EmailQuery(q="QUARTERLY"), True),
        (EmailQuery(q="bob"), False),
        (EmailQuery(account_id="acc_a"), True),
        (EmailQuery(account_id="acc_c"), False),
        (EmailQuery(account_id="acc_a", folder="INBOX"), True),
        (EmailQuery(account_id="acc_a", folder="Archive"), False),
        (EmailQuery(thread_id="th_" + "b" * 24), True),
        (EmailQuery(thread_id="th_" + "c" * 24), False),
        (EmailQuery(since=datetime(2026, 1, 2, 9, tzinfo=UTC)), True),
        (EmailQuery(since=datetime(2026, 1, 2, 9, 0, 1, tzinfo=UTC)), False),
        (EmailQuery(until=datetime(2026, 1, 2, 9, tzinfo=UTC)), True),
        (EmailQuery(until=datetime(2026, 1, 2, 8, 59, tzinfo=UTC)), False),
    ],
)
def test_matches(query: EmailQuery, expected: bool) -> None:
    assert emails.matches(stored(), emails.normalize_query(query)) is expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # q: every word, in any order and case, anywhere in subject, sender, snippet or body words
        (EmailQuery(q="numbers QUARTERLY"), True),
        (EmailQuery(q="attached alice"), True),
        (EmailQuery(q="ttached"), False),
        (EmailQuery(q="quarterly bob"), False),
        # from: a whole address is the first From address exactly, any case
        (EmailQuery(sender="alice@EXAMPLE.com"), True),
        (EmailQuery(sender="lice@example.com"), False),
        (EmailQuery(sender="lice@example"), True),
        # status: outbound mail only
        (EmailQuery(status="sent"), False),
    ],
)
def test_matches_words_addresses_and_status(query: EmailQuery, expected: bool) -> None:
    item = stored(search=" quarterly numbers alice doe example com attached")
    assert emails.matches(item, emails.normalize_query(query)) is expected


def test_status_matches_outbound_mail_in_that_state() -> None:
    item = stored(send_status="cancelled", direction="outbound")
    assert emails.matches(item, EmailQuery(status="cancelled")) is True
    assert emails.matches(item, EmailQuery(status="scheduled")) is False


@pytest.mark.parametrize(
    ("query", "partition"),
    [
        (EmailQuery(), "TENANT#acme"),
        (EmailQuery(thread_id="th_" + "b" * 24, unread=True), "TENANT#acme#THREAD#th_" + "b" * 24),
        (EmailQuery(status="scheduled", unread=True), "TENANT#acme#STATUS#scheduled"),
        (EmailQuery(sender="Alice@Example.com", account_id="acc_a"), None),
        (EmailQuery(sender="alice", unread=True), "TENANT#acme#UNREAD"),
        (EmailQuery(unread=True, account_id="acc_a"), "TENANT#acme#UNREAD"),
        (EmailQuery(unread=True, include_deleted=True, account_id="acc_a"), "TENANT#acme#ACC#acc_a"),
        (EmailQuery(unread=False), "TENANT#acme"),
        (EmailQuery(account_id="acc_a", q="x"), "TENANT#acme#ACC#acc_a"),
        (EmailQuery(snoozed=True, status="sent", unread=True), "TENANT#acme#SNOOZED"),
        (EmailQuery(snoozed=True, account_id="acc_a", include_deleted=True), "TENANT#acme#SNOOZED"),
        (EmailQuery(snoozed=True, thread_id="th_" + "b" * 24), "TENANT#acme#THREAD#th_" + "b" * 24),
    ],
)
def test_a_listing_reads_the_smallest_index_partition_that_holds_its_emails(
    query: EmailQuery, partition: str | None
) -> None:
    source = emails.choose_source("acme", query)
    if partition is None:  # the sender index is keyed by a digest of the lower-cased address
        assert source.index == "gsi5"
        assert (
            source.partition == emails.choose_source("acme", EmailQuery(sender="alice@example.com")).partition
        )
    else:
        assert source.partition == partition


def test_too_many_search_words_are_refused() -> None:
    with pytest.raises(Invalid) as raised:
        emails.normalize_query(EmailQuery(q=" ".join(f"w{n}" for n in range(11))))
    assert raised.value.code == "too_many_search_words"


def test_the_listing_indexes_project_what_summaries_and_filters_read() -> None:
    # Given the template's listing indexes (gsi4-7 project some attributes only)
    template = load_template([Path(__file__).resolve().parents[2] / "template.yaml"])
    template.physical_ids["DataKey"] = "00000000-0000-4000-8000-000000000000"  # any id will do
    indexes = {i["IndexName"]: i for i in template.properties("EmailsTable")["GlobalSecondaryIndexes"]}
    for name in ("gsi4", "gsi5", "gsi6", "gsi7"):
        assert set(indexes[name]["Projection"]["NonKeyAttributes"]) == set(SUMMARY_ATTRIBUTES), name
    # When an item is read through one of them
    item = stored(send_status="sent", send_at="2026-01-02T09:00:00+00:00", failure=None)
    projected = {k: v for k, v in item.items() if k in SUMMARY_ATTRIBUTES}
    # Then its summary and every filter come out as from the whole item
    assert emails.to_summary(projected) == emails.to_summary(item)
    for query in (
        EmailQuery(unread=True, q="numbers", sender="alice", account_id="acc_a", folder="INBOX"),
        EmailQuery(status="sent", thread_id="th_" + "b" * 24, since=datetime(2026, 1, 1, tzinfo=UTC)),
        EmailQuery(sender="alice@example.com", include_deleted=True),
    ):
        normalized = emails.normalize_query(query)
        assert emails.matches(projected, normalized) == emails.matches(item, normalized) is True


def test_deleted_emails_only_match_when_asked_for() -> None:
    item = stored(deleted=True)
    assert emails.matches(item, EmailQuery()) is False
    assert emails.matches(item, EmailQuery(include_deleted=True)) is True


def test_the_dynamodb_filter_covers_what_it_can() -> None:
    assert email_filter(include_deleted=True) is None
    expression = email_filter(read=False, search=["kickoff"], account_id="acc_a", folder="INBOX")
    # boto3 conditions render to an expression string with placeholders
    from boto3.dynamodb.conditions import ConditionExpressionBuilder

    built = ConditionExpressionBuilder().build_expression(expression)
    assert set(built.attribute_name_placeholders.values()) == {
        "deleted",
        "read",
        "search",
        "accounts",
        "folders",
    }
    assert set(built.attribute_value_placeholders.values()) == {
        True,
        False,
        "kickoff",
        "acc_a",
        "acc_a:INBOX",
    }


# ------------------------------------------------------------------------------------ paging


class FakeStore:
    """Just enough of EmailStore for the account listing and PATCH: a read's cursor is the position
    to read from, as a DynamoDB key would be."""

    def __init__(
        self, locations: list[tuple[str, str]] | None = None, items: list[dict[str, Any]] | None = None
    ):
        self.locations = [{"email_id": e, "folder": f, "pos": i} for i, (e, f) in enumerate(locations or [])]
        self.items = {i["email_id"]: i for i in items or []}
        self.updates: list[tuple[str, dict[str, Any]]] = []

    def read_source(
        self, tenant_id: str, source: Any, *, cursor: str | None, limit: int, **_: Any
    ) -> tuple[list[Any], str | None]:
        assert source.partition == "TENANT#acme#ACC#acc_a"
        start = int(cursor or 0)
        page = self.locations[start : start + limit]
        end = start + len(page)
        return page, (str(end) if end < len(self.locations) else None)

    def cursor_after(
        self, tenant_id: str, source: Any, item: dict[str, Any], *, since: Any = None, until: Any = None
    ) -> str:
        return str(item["pos"] + 1)

    def batch_get_emails(
        self, tenant_id: str, email_ids: list[str], budget: Any = None, *, projection: Any = None
    ) -> dict[str, Any]:
        return {e: self.items[e] for e in email_ids if e in self.items}

    def get_email(self, tenant_id: str, email_id: str) -> dict[str, Any] | None:
        return self.items.get(email_id)

    def update_email(self, tenant_id: str, email_id: str, **values: Any) -> None:
        self.updates.append((email_id, values))

    def batch_get_sks(self, tenant_id: str, keys: Any) -> list[Any]:
        return []


def as_store(fake: FakeStore) -> EmailStore:
    return cast("EmailStore", fake)


def as_queue(fake: FakeQueue) -> SyncQueue:
    return cast("SyncQueue", fake)


NO_BLOBS = cast("BlobStore", None)  # no email here has a body in S3


def _id(n: int) -> str:
    return f"em_{n:026x}"


def test_account_listing_shows_an_email_in_two_folders_once_across_pages() -> None:
    # Given locations (newest first) where emails 1 and 3 sit in two folders each
    locations = [
        (_id(1), "INBOX"),
        (_id(1), "Archive"),
        (_id(2), "INBOX"),
        (_id(3), "INBOX"),
        (_id(3), "Work"),
    ]
    store = FakeStore(
        locations, [stored(_id(n), accounts={"acc_a"}, folders={"acc_a:INBOX"}) for n in (1, 2, 3)]
    )
    # When the account is walked one email per page
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = emails.list_emails(
            CTX, EmailQuery(account_id="acc_a", limit=1, cursor=cursor), as_store(store)
        )
        seen += [e.email_id for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    # Then each email shows exactly once
    assert seen == [_id(1), _id(2), _id(3)]


def test_account_listing_checks_the_folder_of_the_location() -> None:
    locations = [(_id(1), "Archive"), (_id(1), "INBOX"), (_id(2), "Archive")]
    items = [
        stored(_id(1), accounts={"acc_a"}, folders={"acc_a:INBOX", "acc_a:Archive"}),
        stored(_id(2), accounts={"acc_a"}, folders={"acc_a:Archive"}),
    ]
    page = emails.list_emails(
        CTX, EmailQuery(account_id="acc_a", folder="INBOX", limit=1), as_store(FakeStore(locations, items))
    )
    assert [e.email_id for e in page.items] == [_id(1)]


# ------------------------------------------------------------------------------------ PATCH


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_many(self, messages: list[Any], dedupe_ids: Any = None) -> None:
        self.sent.extend(messages)


def test_patch_pushes_flag_names_per_account() -> None:
    store, queue = FakeStore(items=[stored()]), FakeQueue()
    email = emails.update_email(
        CTX, EM, EmailPatch(read=True, flagged=False), as_store(store), NO_BLOBS, as_queue(queue)
    )
    assert store.updates == [(EM, {"read": True, "flagged": False})]
    assert (email.read, email.flagged) == (True, False)
    assert [(m.account_id, m.add, m.remove) for m in queue.sent] == [
        ("acc_a", ["\\Seen"], ["\\Flagged"]),
        ("acc_b", ["\\Seen"], ["\\Flagged"]),
    ]


def test_patch_rules() -> None:
    store, queue = FakeStore(items=[stored()]), FakeQueue()
    with pytest.raises(Invalid) as empty:
        emails.update_email(CTX, EM, EmailPatch(), as_store(store), NO_BLOBS, as_queue(queue))
    assert empty.value.code == "empty_patch"
    viewer = CTX.model_copy(update={"role": Role.VIEWER})
    with pytest.raises(Forbidden):
        emails.update_email(viewer, EM, EmailPatch(read=True), as_store(store), NO_BLOBS, as_queue(queue))
    with pytest.raises(NotFound):
        emails.update_email(
            CTX, "em_" + "f" * 26, EmailPatch(read=True), as_store(store), NO_BLOBS, as_queue(queue)
        )
    assert store.updates == []
    assert queue.sent == []


@pytest.mark.parametrize("email_id", ["", "em_", "EMAIL#em_" + "a" * 26, "em_" + "A" * 26, "em_" + "a" * 27])
def test_malformed_ids_are_not_found_without_a_lookup(email_id: str) -> None:
    class Exploding(FakeStore):
        def get_email(self, tenant_id: str, email_id: str) -> dict[str, Any] | None:
            raise AssertionError("looked up")

    with pytest.raises(NotFound):
        emails.get_email(CTX, email_id, as_store(Exploding()), NO_BLOBS)
