"""Listings that fill their pages (issue 8 points 10 and 11): GET /emails with indexes and a request
budget, search in bodies, and GET /threads; in-process on moto, mail seeded through the real ingest.

DynamoDB requests are counted with a botocore event hook on the API's own client, so the bounds
below are on what would be billed, not on loop rounds.
"""

# ruff: noqa: F811 - `mail` is the fixture imported from test_api_emails, requested by name

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from typing import Any

import pytest

from mailbridge import aws
from mailbridge import emails as emails_service
from mailbridge.store.fill import PAGE_BUDGET
from tests.fixtures import moto_transactions
from tests.fixtures.aws import Stack, is_rate_limit_request
from tests.integration.test_api_emails import (
    ACC_A,
    ACC_B,
    OTHER,
    TENANT,
    Seeder,
    api,
    body,
    ids,
    mail,  # noqa: F401 - the shared fixture (tests take it by name)
    rfc,
)

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
START = datetime(2026, 3, 1, 9, tzinfo=UTC)


class Requests:
    """DynamoDB requests the API's client makes (a botocore `before-call` hook), but those of the
    accounts and settings tables alone: every request reads the caller's mailbox access there
    once (mailbridge.access: the privacy policy and the mailboxes' owners), whatever it lists."""

    def __init__(self, ignored: frozenset[str] = frozenset()) -> None:
        self.names: list[str] = []
        self.ignored = ignored

    def __call__(self, **kwargs: Any) -> None:
        if is_rate_limit_request(**kwargs):
            return
        sent = json.loads(kwargs["params"].get("body") or b"{}")  # the serialized request
        tables = {sent["TableName"]} if "TableName" in sent else set(sent.get("RequestItems") or ())
        if tables and tables <= self.ignored:
            return
        self.names.append(kwargs["model"].name)

    def count_during(self, action: Callable[[], Any]) -> tuple[Any, int]:
        self.names.clear()
        result = action()
        return result, len(self.names)


@pytest.fixture
def requests(stack: Stack) -> Iterator[Requests]:
    tables = stack.deployed.tables
    counter = Requests(frozenset({tables["AccountsTable"], tables["SettingsTable"]}))
    for client in aws.dynamodb_clients():
        client.meta.events.register("before-call.dynamodb.*", counter)
    yield counter
    for client in aws.dynamodb_clients():
        client.meta.events.unregister("before-call.dynamodb.*", counter)


def seed_series(
    seed: Seeder,
    count: int,
    *,
    start: datetime,
    name: str,
    text: str = "Nothing to see here.",
    unread: bool = False,
    sender: str = "Newsletter <news@shop.test>",
) -> list[str]:
    """`count` emails one minute apart from `start` on (each its own thread), oldest first."""
    out = []
    for n in range(count):
        raw = rfc(
            msgid=f"{name}-{n}@example.com",
            sender=sender,
            to="bob@acme.test",
            subject=f"{name} {n}",
            date=format_datetime(start + timedelta(minutes=n)),
            text=text,
        )
        out.append(seed.add(raw, flags=() if unread else ("\\Seen",)))
    return out


def walk_pages(
    invoke_api: Invoke, requests: Requests, route: str, **query: str
) -> list[tuple[list[dict[str, Any]], int]]:
    """Every page of a listing (its items and the DynamoDB requests it made) until the end."""
    pages: list[tuple[list[dict[str, Any]], int]] = []
    cursor: str | None = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        event = api(route, query=params)
        response, count = requests.count_during(partial(invoke_api, event))
        assert response["statusCode"] == 200, response
        data = body(response)
        pages.append((data["items"], count))
        cursor = data["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50


def email_ids(pages: list[tuple[list[dict[str, Any]], int]]) -> list[str]:
    return [e["email_id"] for items, _ in pages for e in items]


# ------------------------------------------------------------------------------------ full pages


def test_unread_pages_are_full_and_come_from_the_unread_index(
    invoke_api: Invoke, stack: Stack, requests: Requests
) -> None:
    # Given 30 read emails, newer than 5 unread ones
    seed = Seeder(stack)
    unread = seed_series(seed, 5, start=START, name="unread", unread=True)
    seed_series(seed, 30, start=START + timedelta(hours=1), name="read")
    # When the unread mail is listed two per page
    pages = walk_pages(invoke_api, requests, "list-emails", unread="true", limit="2")
    # Then every page is full but the last, newest first, each email once
    assert [len(items) for items, _ in pages] == [2, 2, 1]
    assert email_ids(pages) == unread[::-1]
    # And each page is one query of the unread index: the 30 read emails are never read
    assert [count for _, count in pages] == [1, 1, 1]


def test_expunged_unread_mail_leaves_the_unread_index(
    invoke_api: Invoke, stack: Stack, requests: Requests
) -> None:
    # Given 2 unread emails, and 6 newer unread ones that the mailbox then expunged
    seed = Seeder(stack)
    kept = seed_series(seed, 2, start=START, name="kept", unread=True)
    first_uid = seed.uid + 1
    gone = seed_series(seed, 6, start=START + timedelta(hours=1), name="gone", unread=True)
    for uid, email_id in enumerate(gone, start=first_uid):
        seed.expunge(email_id, uid=uid)
    # When the unread mail is listed two per page
    pages = walk_pages(invoke_api, requests, "list-emails", unread="true", limit="2")
    # Then the page holds the two live ones, read in one request: the expunged ones are not in the index
    assert [(len(items), count) for items, count in pages] == [(2, 1)]
    assert email_ids(pages) == kept[::-1]


def test_a_filter_no_index_serves_still_fills_the_first_page_within_the_budget(
    invoke_api: Invoke, stack: Stack, requests: Requests
) -> None:
    # Given 3 emails that mention a word in their body, older than 60 that do not
    seed = Seeder(stack)
    body_text = "Dear Bob,\n\n" + "Some news about the roadmap. " * 20 + "\nThe zeppelin lands on Friday.\n"
    hits = seed_series(seed, 3, start=START, name="airship", text=body_text)
    seed_series(seed, 60, start=START + timedelta(hours=1), name="noise")
    # When the body word is searched one page of two at a time
    pages = walk_pages(invoke_api, requests, "list-emails", q="ZEPPELIN", limit="2")
    # Then the first page is full although 60 non-matching emails come first
    assert [len(items) for items, _ in pages] == [2, 1]
    assert email_ids(pages) == hits[::-1]
    # And no page made more DynamoDB requests than its budget
    assert max(count for _, count in pages) <= PAGE_BUDGET


def test_a_spent_budget_shortens_pages_but_the_walk_loses_and_repeats_nothing(
    invoke_api: Invoke, stack: Stack, requests: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (78 emails seeded one transaction each: moto's own rollback would copy the table per action)
    moto_transactions.install(partial(monkeypatch.setattr, raising=False))
    # Given matches spread between long runs of mail that does not match
    seed = Seeder(stack)
    expected: list[str] = []
    for block in range(3):
        start = START + timedelta(hours=block)
        expected += seed_series(seed, 1, start=start, name=f"hit{block}", text="The zeppelin report.")
        seed_series(seed, 25, start=start + timedelta(minutes=5), name=f"miss{block}")
    # And a budget of two requests per page
    monkeypatch.setattr(emails_service, "PAGE_BUDGET", 2)
    # When the matches are walked
    pages = walk_pages(invoke_api, requests, "list-emails", q="zeppelin", limit="2")
    # Then pages stop at the budget (some short or empty, each with a cursor) ...
    assert all(count <= 2 for _, count in pages)
    assert any(len(items) < 2 for items, _ in pages[:-1])
    # ... and together hold every match once, newest first
    assert email_ids(pages) == expected[::-1]


def test_the_unread_index_follows_the_flags_and_deletions(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str]
) -> None:
    def unread(**query: str) -> list[str]:
        response = invoke_api(api("list-emails", query={"unread": "true", **query}))
        return [e["email_id"] for e in body(response)["items"]]

    # Given m5 unread, everything else read
    assert unread() == [mail["m5"]]
    # When m5 is marked read and m4 unread
    for email_id, read in ((mail["m5"], True), (mail["m4"], False)):
        response = invoke_api(api("patch-email", path={"email_id": email_id}, body={"read": read}))
        assert response["statusCode"] == 200
    # Then the unread listing moved with them
    assert unread() == [mail["m4"]]
    # And when the mailbox expunges m4, it leaves the listing, but stays visible with deleted mail
    Seeder(stack).expunge(mail["m4"], uid=4)
    assert unread() == []
    assert unread(include_deleted="true") == [mail["m4"]]


def test_a_whole_address_lists_that_senders_mail_from_the_sender_index(
    invoke_api: Invoke, stack: Stack, requests: Requests
) -> None:
    # Given mail from alice, from malice (whose address contains alice's) and from others
    seed = Seeder(stack)
    alice = seed_series(seed, 2, start=START, name="a", sender="Alice <Alice@Example.com>")
    malice = seed_series(seed, 1, start=START + timedelta(hours=1), name="m", sender="malice@example.com")
    seed_series(seed, 20, start=START + timedelta(hours=2), name="n")
    # When listed by alice's whole address (another case)
    pages = walk_pages(invoke_api, requests, "list-emails", **{"from": "alice@example.COM", "limit": "5"})
    # Then only her mail, in one query of the sender index
    assert email_ids(pages) == alice[::-1]
    assert [count for _, count in pages] == [1]
    # And part of an address still finds every sender containing it
    pages = walk_pages(invoke_api, requests, "list-emails", **{"from": "alice@exa", "limit": "5"})
    assert email_ids(pages) == [*malice, *alice[::-1]]


# ------------------------------------------------------------------------------------ body search


def test_q_searches_subject_sender_snippet_and_body_text(invoke_api: Invoke, stack: Stack) -> None:
    seed = Seeder(stack)
    # Given a mail whose body mentions a word only after the snippet, one with an HTML-only body,
    # and one whose body is large enough to live in S3
    long_body = "Regards from the team. " * 40 + "The invoice number is QX-4471."
    deep = seed.add(
        rfc(
            msgid="deep@x.test",
            sender="a@x.test",
            to="b@acme.test",
            subject="Hello",
            date=_date(0),
            text=long_body,
        )
    )
    html = seed.add(
        (
            "Message-ID: <html@x.test>\r\nFrom: c@x.test\r\nTo: b@acme.test\r\nSubject: Menu\r\n"
            f"Date: {_date(1)}\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            "<html><body><p>Today: <b>Bouillabaisse</b> and salad.</p></body></html>\r\n"
        ).encode()
    )
    large = seed.add(
        rfc(
            msgid="large@x.test",
            sender="d@x.test",
            to="b@acme.test",
            subject="Minutes",
            date=_date(2),
            text="lorem ipsum " * 10_000 + "Decision: adopt the quokka plan.",
        )
    )
    item = stack.table("EmailsTable").get_item(Key={"pk": f"TENANT#{TENANT}", "sk": f"EMAIL#{large}"})["Item"]
    assert "body_key" in item  # the body is in S3, the words are on the item

    def search(q: str) -> list[str]:
        response = invoke_api(api("list-emails", query={"q": q}))
        assert response["statusCode"] == 200, response
        return [e["email_id"] for e in body(response)["items"]]

    # Then body words are found in any case and order, and every word must match
    assert search("qx-4471") == [deep]
    assert search("BOUILLABAISSE") == [html]
    assert search("plan quokka") == [large]
    assert search("quokka bouillabaisse") == []
    # And subject and sender still count
    assert search("menu") == [html]
    assert search("d@x.test") == [large]


def _date(n: int) -> str:
    return format_datetime(START + timedelta(days=n))


def test_more_than_ten_search_words_are_a_clear_400(invoke_api: Invoke, stack: Stack) -> None:
    response = invoke_api(api("list-emails", query={"q": " ".join(f"w{n}" for n in range(11))}))
    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "too_many_search_words"


# ------------------------------------------------------------------------------------ threads


def threads(invoke_api: Invoke, tenant: str = TENANT, **query: str) -> list[dict[str, Any]]:
    response = invoke_api(api("list-threads", tenant=tenant, query=query))
    assert response["statusCode"] == 200, response
    return list(body(response)["items"])


def thread_of(invoke_api: Invoke, email_id: str) -> str:
    return str(body(invoke_api(api("get-email", path={"email_id": email_id})))["thread_id"])


def test_threads_newest_activity_first_with_their_summary(invoke_api: Invoke, mail: dict[str, str]) -> None:
    # When acme lists its threads
    listed = threads(invoke_api)
    # Then each live thread shows once, by its newest email
    kickoff = thread_of(invoke_api, mail["m1"])
    assert [t["last_email_id"] for t in listed] == ids(mail, "m6", "m5", "m4", "m3")
    summary = listed[-1]
    assert summary == {
        "thread_id": kickoff,
        "subject": "Project kickoff",
        "participants": [
            {"name": "Alice Doe", "address": "alice@example.com"},
            {"name": "Bob", "address": "bob@acme.test"},
            {"name": "Carol", "address": "carol@acme.test"},
        ],
        "message_count": 3,
        "unread_count": 0,
        "last_email_id": mail["m3"],
        "last_message_date": "2026-01-03T09:00:00Z",
        "snippet": "Hello there.",
    }
    assert listed[1]["unread_count"] == 1


def test_thread_filters_place_a_thread_by_its_newest_matching_email(
    invoke_api: Invoke, mail: dict[str, str]
) -> None:
    cases: list[tuple[dict[str, str], tuple[str, ...]]] = [
        ({"unread": "true"}, ("m5",)),
        ({"account_id": ACC_B}, ("m6", "m2")),
        ({"account_id": ACC_A, "folder": "Archive"}, ("m1",)),
        ({"q": "kickoff"}, ("m3",)),
        ({"from": "bob"}, ("m2",)),
        ({"from": "alice@example.com"}, ("m3",)),
        ({"until": "2026-01-02T12:00:00Z"}, ("m2",)),
        ({"since": "2026-01-04T00:00:00Z", "until": "2026-01-05T12:00:00Z"}, ("m5", "m4")),
        ({"include_deleted": "true"}, ("m6", "m5", "m4", "m3", "m8")),
    ]
    for query, expected in cases:
        assert [t["last_email_id"] for t in threads(invoke_api, **query)] == ids(mail, *expected), query
    # And counts cover the whole thread, whatever the filter
    [kickoff] = threads(invoke_api, account_id=ACC_B, q="kickoff")
    assert (kickoff["message_count"], kickoff["last_email_id"]) == (3, mail["m2"])


def test_thread_pages_show_each_thread_once(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], requests: Requests
) -> None:
    for limit in ("1", "2"):
        pages = walk_pages(invoke_api, requests, "list-threads", limit=limit)
        shown = [t["last_email_id"] for items, _ in pages for t in items]
        assert shown == ids(mail, "m6", "m5", "m4", "m3"), limit
        assert all(len(items) == int(limit) for items, _ in pages[:-1])
        assert max(count for _, count in pages) <= PAGE_BUDGET + 2 * int(limit)


def test_a_thread_page_reads_only_the_threads_it_shows(
    invoke_api: Invoke, stack: Stack, requests: Requests
) -> None:
    # Given a conversation of three emails, newer than ten single emails
    seed = Seeder(stack)
    singles = seed_series(seed, 10, start=START, name="single")
    previous: str | None = None
    for n in range(3):
        raw = rfc(
            msgid=f"talk-{n}@example.com",
            sender="alice@example.com",
            to="bob@acme.test",
            subject="Re: talk" if n else "talk",
            date=format_datetime(START + timedelta(days=1, minutes=n)),
            in_reply_to=previous,
            references=f"<{previous}>" if previous else None,
        )
        talk = seed.add(raw)
        previous = f"talk-{n}@example.com"
    # When the first page of two threads is listed
    response, count = requests.count_during(lambda: invoke_api(api("list-threads", query={"limit": "2"})))
    # Then it holds the conversation (once) and the newest single email
    shown = [t["last_email_id"] for t in body(response)["items"]]
    assert shown == [talk, singles[-1]]
    # And it made one read of the email index (two emails per thread asked for) and one batched
    # read of both threads' member lists, no more: every member was in that read
    assert count == 2


def test_threads_of_another_tenant_stay_hidden(invoke_api: Invoke, mail: dict[str, str]) -> None:
    assert [t["last_email_id"] for t in threads(invoke_api, tenant=OTHER)] == [mail["b1"]]
    assert threads(invoke_api, tenant=OTHER, account_id=ACC_A) == []


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"folder": "INBOX"}, 400, "folder_needs_account"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"limit": "0"}, 422, "validation_error"),
        ({"unread": "perhaps"}, 422, "validation_error"),
    ],
)
def test_bad_thread_queries_are_clear_4xx(
    invoke_api: Invoke, stack: Stack, query: dict[str, str], status: int, code: str
) -> None:
    response = invoke_api(api("list-threads", query=query))
    assert response["statusCode"] == status, response
    assert body(response)["error"]["code"] == code
