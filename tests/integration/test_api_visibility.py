"""Mailbox ownership and visibility (issue 19 point 2), through the api function on moto.

Two members of one tenant, Ada (A) and Bea (B), each with a mailbox; B's mail is a thread of two
messages (one with a PDF) linked to a contact and a deal, with a follow-up. The generated test
calls every GET operation of /openapi.json as A with B's ids (account, email, thread, attachment,
contact, deal, the contact's address) while B's mailbox is `private`, and checks that nothing of
B's mail (subject, body text, snippet, addresses, ids, the attachment's name) is in any answer.
The others check what each level shows, the owner's and the admins' view, writes, search, the
tenant default, a disconnected mailbox, the audit hook, and the pushes and notifications.
"""

# ruff: noqa: F401, F811 - `stub`, `realtime` and `notifier` are test_realtime's fixtures, requested by name

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.access import Visibility
from mailbridge.crypto import Envelope
from mailbridge.models.account import Account, PublicServerSettings
from mailbridge.observability import logger
from mailbridge.providers.imap.settings import Security
from mailbridge.store.accounts import AccountStore
from tests.events import load_event
from tests.fixtures.accounts import seed_account
from tests.fixtures.aws import Stack, module_api, module_stack
from tests.integration.test_api_boundary import Invoke
from tests.integration.test_api_emails import PDF, Seeder, body, rfc
from tests.integration.test_notifications import emit
from tests.integration.test_realtime import (
    IssuerAndConnections,
    connect_event,
    notifier,
    realtime,
    stub,
)
from tests.integration.test_realtime import _queue_event as queue_event

TENANT = "acme"
ADA, BEA, ADMIN = "ada-0a0a0a0a", "bea-0b0b0b0b", "admin-0c0c0c0c"
ACC_ADA, ACC_BEA = "acc_ada0ada0ada0ada0ada0", "acc_bea0bea0bea0bea0bea0"
CAROL = "carol@secretcorp.example"
ERIN = "erin@partner.example"  # the contact's own address (a CRM record, not mail)
# What must never reach A while B's mailbox is private (compared in lower case).
SECRET_WORDS = ("zanzibar", "quokkasecret", CAROL, "secretcorp", "terms.pdf", "bea@acme.example")

# Path parameters the generated test does not take from B's mail (see test_api_roles).
PATH_VALUES = {
    "address": ERIN,
    "provider": "gmail",
    "token": "t0k3n-0123456789abcdef",
    "version": "1",
    "job_id": "cb_0123456789abcdef01234567",
}


def call(
    invoke: Invoke,
    method: str,
    route: str,
    *,
    sub: str,
    role: str = "member",
    params: dict[str, str] | None = None,
    payload: Any = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`method route` (`<name>` parameters filled from `params`) as the user `sub` with `role`,
    through the api function."""
    params = params or {}
    event = load_event("api/get-me.json", tenant=TENANT, role=role, sub=sub)
    names = re.findall(r"<(\w+)>", route)
    concrete = re.sub(r"<(\w+)>", lambda m: params[m.group(1)], route)
    template = re.sub(r"<(\w+)>", r"{\1}", route)
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {template}"
    event["requestContext"]["http"]["method"] = method
    event["rawPath"] = event["requestContext"]["http"]["path"] = concrete
    event["pathParameters"] = {name: params[name] for name in names}
    event["queryStringParameters"] = dict(query) if query else None
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    if payload is not None or method in {"POST", "PUT", "PATCH"}:
        event["body"] = json.dumps(payload)
        event["headers"]["content-type"] = "application/json"
    return invoke(event)


def ok(response: dict[str, Any]) -> Any:
    assert response["statusCode"] in {200, 201, 202}, response
    return body(response)


def code(response: dict[str, Any]) -> tuple[int, str | None]:
    answer = body(response) if response.get("body") else {}
    return response["statusCode"], (answer.get("error") or {}).get("code") if isinstance(
        answer, dict
    ) else None


def _account(
    stack: Stack, account_id: str, owner: str, visibility: Visibility | None, address: str | None = None
) -> None:
    # An IMAP mailbox: disconnecting it says goodbye to no OAuth provider.
    seed_account(
        stack.deployed.tables["AccountsTable"],
        stack.env("ApiFunction")["DATA_KEY_ID"],
        tenant=TENANT,
        owner=owner,
        account_id=account_id,
        address=address or f"{owner.split('-', maxsplit=1)[0]}@acme.example",
        imap=PublicServerSettings(
            host="mail.acme.example", port=993, security=Security.SSL, username=account_id
        ),
        with_smtp=False,
        visibility=visibility,
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    yield from module_stack()


@pytest.fixture(scope="module")
def invoke_api(stack: Stack) -> Invoke:
    invoke = module_api()
    flags = {"campaigns": True, "automations": True, "ai": True, "crm": True}
    event = load_event("api/put-features.json", tenant=TENANT, role="admin", body=flags)
    assert invoke(event)["statusCode"] == 200
    return invoke


@pytest.fixture(scope="module")
def world(stack: Stack, invoke_api: Invoke) -> dict[str, str]:
    """A's mailbox with one email of hers; B's private mailbox with a thread of two (the first
    with a PDF) linked by B to a contact and a deal, a follow-up B set on it, and a draft."""
    _account(stack, ACC_ADA, ADA, None)
    _account(stack, ACC_BEA, BEA, Visibility.PRIVATE)
    seed = Seeder(stack)
    own = seed.add(
        rfc(
            msgid="lunch@acme.example",
            sender="Dave <dave@acme.example>",
            to="ada@acme.example",
            subject="Lunch plans",
            date="Mon, 02 Feb 2026 09:00:00 +0000",
            text="Noodles at noon?",
        ),
        account=ACC_ADA,
    )
    first = seed.add(
        rfc(
            msgid="terms@secretcorp.example",
            sender=f"Carol <{CAROL}>",
            to="Bea <bea@acme.example>",
            subject="Zanzibar merger terms",
            date="Tue, 03 Feb 2026 09:00:00 +0000",
            text="The quokkasecret figure is 42 million.",
            attachment=("terms.pdf", PDF),
        ),
        account=ACC_BEA,
    )
    reply = seed.add(
        rfc(
            msgid="re-terms@acme.example",
            sender="Bea <bea@acme.example>",
            to=f"Carol <{CAROL}>",
            subject="Re: Zanzibar merger terms",
            date="Tue, 03 Feb 2026 10:00:00 +0000",
            text="Agreed on the quokkasecret figure.",
            in_reply_to="terms@secretcorp.example",
            references="<terms@secretcorp.example>",
        ),
        account=ACC_BEA,
    )
    stored = ok(call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": first}, sub=BEA))
    thread, [attachment] = stored["thread_id"], [a["id"] for a in stored["attachments"]]
    contact = ok(
        call(
            invoke_api,
            "POST",
            "/crm/contacts",
            sub=ADMIN,
            role="admin",
            payload={"name": "Erin Partner", "emails": [{"address": ERIN}]},
        )
    )["contact_id"]
    deal = ok(
        call(
            invoke_api,
            "POST",
            "/crm/deals",
            sub=ADMIN,
            role="admin",
            payload={"name": "Merger", "contact_ids": [contact]},
        )
    )["deal_id"]
    for kind, record_id in (("contact", contact), ("deal", deal)):
        ok(
            call(
                invoke_api,
                "POST",
                "/emails/<email_id>/links",
                params={"email_id": first},
                sub=BEA,
                payload={"kind": kind, "record_id": record_id},
            )
        )
    ok(
        call(
            invoke_api,
            "PUT",
            "/emails/<email_id>/follow-up",
            params={"email_id": first},
            sub=BEA,
            payload={"due_at": "2027-06-01T09:00:00+00:00", "priority": "high"},
        )
    )
    draft = ok(
        call(
            invoke_api,
            "POST",
            "/drafts",
            sub=BEA,
            payload={
                "account_id": ACC_BEA,
                "to": [{"address": CAROL}],
                "subject": "Zanzibar counter-offer",
                "text": "Our quokkasecret counter.",
            },
        )
    )["draft_id"]
    return {
        "draft": draft,
        "own": own,
        "first": first,
        "reply": reply,
        "thread": thread,
        "attachment": attachment,
        "contact": contact,
        "deal": deal,
    }


@pytest.fixture
def level(invoke_api: Invoke, world: dict[str, str]) -> Iterator[Any]:
    """Set B's mailbox to a visibility (as B) for one test; back to private after it."""

    def set_to(visibility: str | None) -> None:
        ok(
            call(
                invoke_api,
                "PATCH",
                "/accounts/<account_id>",
                params={"account_id": ACC_BEA},
                sub=BEA,
                payload={"visibility": visibility},
            )
        )

    yield set_to
    set_to("private")
    policy(invoke_api, default_visibility="metadata", admin_view="as_shared")


def policy(invoke_api: Invoke, **settings: str) -> dict[str, Any]:
    current = ok(call(invoke_api, "GET", "/settings/privacy", sub=ADMIN, role="admin"))
    answer: dict[str, Any] = ok(
        call(
            invoke_api,
            "PUT",
            "/settings/privacy",
            sub=ADMIN,
            role="admin",
            payload={**settings, "version": current["version"]},
        )
    )
    return answer


def leaks(response: dict[str, Any], world: dict[str, str]) -> list[str]:
    """What of B's mail the answer carries."""
    text = (response.get("body") or "").lower()
    markers = [*SECRET_WORDS, world["first"], world["reply"], world["thread"], world["draft"], ACC_BEA]
    return [m for m in markers if m.lower() in text]


# ------------------------------------------------------------------------------ every GET route


@pytest.fixture(scope="module")
def get_routes(invoke_api: Invoke) -> list[str]:
    document = json.loads(invoke_api(load_event("api/get-openapi.json"))["body"])
    return [
        re.sub(r"{(\w+)}", r"<\1>", path)
        for path, item in document["paths"].items()
        for method in item
        if method == "get"
    ]


def test_a_member_reads_nothing_of_another_members_private_mailbox_on_any_get_route(
    invoke_api: Invoke, world: dict[str, str], get_routes: list[str]
) -> None:
    # Given B's mailbox is private and every GET operation of the document, its path ids B's
    params = {
        **PATH_VALUES,
        "account_id": ACC_BEA,
        "email_id": world["first"],
        "thread_id": world["thread"],
        "attachment_id": world["attachment"],
        "contact_id": world["contact"],
        "deal_id": world["deal"],
        "draft_id": world["draft"],
    }
    assert len(get_routes) > 60
    # (the listings also with filters that name B's mail)
    filters: dict[str, list[dict[str, str]]] = {
        "/emails": [
            {"account_id": ACC_BEA},
            {"thread_id": world["thread"]},
            {"q": "quokkasecret"},
            {"from": CAROL},
            {"account_id": ACC_BEA, "folder": "INBOX"},
        ],
        "/threads": [{"account_id": ACC_BEA}, {"q": "zanzibar"}, {"from": CAROL}],
    }
    # When A (a member of the same tenant) calls each
    answers: dict[str, dict[str, Any]] = {}
    for route in get_routes:
        for query in [{}, *filters.get(route, [])]:
            values = {
                n: params.get(n) or f"{n[:2]}_{'0' * 14}0123456789ab" for n in re.findall(r"<(\w+)>", route)
            }
            answers[f"{route} {query}"] = call(invoke_api, "GET", route, params=values, sub=ADA, query=query)
    # Then no answer carries anything of B's mail, and none is a server error
    found = {key: leaks(r, world) for key, r in answers.items() if leaks(r, world)}
    assert found == {}
    assert {key: r["statusCode"] for key, r in answers.items() if r["statusCode"] >= 500} == {}
    # And the reads of B's mail by id answer 404, as for mail that does not exist
    by_id = {
        "/emails/<email_id> {}": "not_found",
        "/emails/<email_id>/raw {}": "not_found",
        "/emails/<email_id>/attachments/<attachment_id> {}": "not_found",
        "/emails/<email_id>/links {}": "email_not_found",
        "/threads/<thread_id> {}": "thread_not_found",
        "/accounts/<account_id> {}": "account_not_found",
        "/accounts/<account_id>/status {}": "account_not_found",
        "/drafts/<draft_id> {}": "draft_not_found",
    }
    assert {k: code(answers[k]) for k in by_id} == {k: (404, c) for k, c in by_id.items()}
    # And A's own mail is listed as before
    assert [e["email_id"] for e in body(answers["/emails {}"])["items"]] == [world["own"]]


# ------------------------------------------------------------------------------ levels


def test_metadata_shows_participants_and_dates_only(
    invoke_api: Invoke, world: dict[str, str], level: Any
) -> None:
    # Given B's mailbox shares metadata
    level("metadata")
    # When A reads B's email, the listing and the thread
    email = ok(call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["first"]}, sub=ADA))
    listed = ok(call(invoke_api, "GET", "/emails", sub=ADA, query={"account_id": ACC_BEA}))["items"]
    thread = ok(
        call(invoke_api, "GET", "/threads/<thread_id>", params={"thread_id": world["thread"]}, sub=ADA)
    )
    threads = ok(call(invoke_api, "GET", "/threads", sub=ADA, query={"account_id": ACC_BEA}))["items"]
    # Then the participants and dates are there
    assert [a["address"] for a in email["from"]] == [CAROL]
    assert [a["address"] for a in email["to"]] == ["bea@acme.example"]
    assert email["date"].startswith("2026-02-03T09:00:00")
    # And nothing of the subject, snippet, body, attachments or headers
    assert (email["subject"], email["snippet"], email["text_body"], email["html_body"]) == (
        None,
        "",
        None,
        None,
    )
    assert (email["attachments"], email["has_attachments"], email["message_id"]) == ([], False, None)
    assert "quokkasecret" not in json.dumps(email).lower()
    assert {e["email_id"]: (e["subject"], e["snippet"]) for e in listed} == {
        world["first"]: (None, ""),
        world["reply"]: (None, ""),
    }
    assert thread["subject"] is None
    assert [m["subject"] for m in thread["messages"]] == [None, None]
    assert [(t["subject"], t["snippet"], t["message_count"]) for t in threads] == [(None, "", 2)]
    # And the body routes stay closed
    assert code(
        call(invoke_api, "GET", "/emails/<email_id>/raw", params={"email_id": world["first"]}, sub=ADA)
    ) == (404, "not_found")
    assert code(
        call(
            invoke_api,
            "GET",
            "/emails/<email_id>/attachments/<attachment_id>",
            params={"email_id": world["first"], "attachment_id": world["attachment"]},
            sub=ADA,
        )
    ) == (404, "not_found")


def test_subject_adds_the_subject_and_body_free_headers(
    invoke_api: Invoke, world: dict[str, str], level: Any
) -> None:
    # Given B's mailbox shares subjects
    level("subject")
    # When A reads B's email and the thread listing
    email = ok(call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["reply"]}, sub=ADA))
    threads = ok(call(invoke_api, "GET", "/threads", sub=ADA, query={"account_id": ACC_BEA}))["items"]
    # Then the subject and the threading headers are there
    assert email["subject"] == "Re: Zanzibar merger terms"
    assert email["message_id"] == "re-terms@acme.example"
    assert email["in_reply_to"] == "terms@secretcorp.example"
    assert [t["subject"] for t in threads] == ["Zanzibar merger terms"]
    # And still no snippet, body or attachments
    assert (email["snippet"], email["text_body"], email["reply_text"], email["attachments"]) == (
        "",
        None,
        None,
        [],
    )
    assert [t["snippet"] for t in threads] == [""]
    assert "quokkasecret" not in json.dumps(email).lower()


def test_full_shows_everything_and_each_body_read_is_audited_with_ids_only(
    invoke_api: Invoke, stack: Stack, world: dict[str, str], level: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Given B's mailbox shares everything
    level("full")
    caplog.set_level(logging.INFO)
    # When A reads B's email and its attachment
    email = ok(call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["first"]}, sub=ADA))
    ok(
        call(
            invoke_api,
            "GET",
            "/emails/<email_id>/attachments/<attachment_id>",
            params={"email_id": world["first"], "attachment_id": world["attachment"]},
            sub=ADA,
        )
    )
    # Then she sees the body and the attachment
    assert "quokkasecret" in email["text_body"]
    assert [a["filename"] for a in email["attachments"]] == ["terms.pdf"]
    # And each read of B's body was logged as body_read_other_user, by ids alone
    lines = [json.loads(logger.registered_formatter.format(r)) for r in caplog.records]
    audited = [line for line in lines if line.get("message") == "body_read_other_user"]
    assert [(a["account_id"], a["email_id"], a["subject_id"]) for a in audited] == [
        (ACC_BEA, world["first"], ADA)
    ] * 2
    assert [a for a in audited if "@" in json.dumps(a) or "quokka" in json.dumps(a).lower()] == []
    # And each is an entry of the audit log: a read by A of B's email, by ids
    entries = [e for e in _audit_entries(stack) if e["action"] == "email.body_read_other_user"]
    assert [(e["actor"], e["kind"], e["resource_ids"]) for e in entries] == [
        (ADA, "read", {"account_id": ACC_BEA, "email_id": world["first"]})
    ] * 2
    assert len({e["sk"] for e in entries}) == 2


def _audit_entries(stack: Stack) -> list[dict[str, Any]]:
    items = stack.table("AuditTable").query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"TENANT#{TENANT}"}
    )["Items"]
    return list(items)


def test_the_owner_sees_her_private_mailbox_in_full_unaudited(
    invoke_api: Invoke, stack: Stack, world: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given B's mailbox is private
    caplog.set_level(logging.INFO)
    # When B reads her own email
    email = ok(call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["first"]}, sub=BEA))
    # Then she sees all of it, and reading her own mail is not an audited read
    assert email["subject"] == "Zanzibar merger terms"
    assert "quokkasecret" in email["text_body"]
    assert [r for r in caplog.records if r.getMessage() == "body_read_other_user"] == []
    assert [
        e for e in _audit_entries(stack) if e["action"] == "email.body_read_other_user" and e["actor"] == BEA
    ] == []


def test_admins_see_others_mailboxes_as_the_tenant_policy_says(
    invoke_api: Invoke, world: dict[str, str], level: Any
) -> None:
    # Given B's mailbox is private and the policy shows admins what is shared
    policy(invoke_api, default_visibility="metadata", admin_view="as_shared")
    # When an admin and a tenant owner read B's email
    for role in ("admin", "owner"):
        answer = call(
            invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["first"]}, sub=ADMIN, role=role
        )
        # Then they get what any member gets: nothing
        assert code(answer) == (404, "not_found"), role
    # When the policy gives admins and owners the full view
    policy(invoke_api, default_visibility="metadata", admin_view="full")
    # Then they read it in full; a member still does not
    for role in ("admin", "owner"):
        email = ok(
            call(
                invoke_api,
                "GET",
                "/emails/<email_id>",
                params={"email_id": world["first"]},
                sub=ADMIN,
                role=role,
            )
        )
        assert "quokkasecret" in email["text_body"]
    assert code(
        call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["first"]}, sub=ADA)
    ) == (404, "not_found")


def test_the_tenant_default_decides_for_a_mailbox_without_a_visibility(
    invoke_api: Invoke, world: dict[str, str], level: Any
) -> None:
    # Given B's mailbox has no visibility of its own
    level(None)
    # When the tenant default is metadata, then private
    seen_as_metadata = ok(
        call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["first"]}, sub=ADA)
    )
    policy(invoke_api, default_visibility="private", admin_view="as_shared")
    as_private = call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": world["first"]}, sub=ADA)
    accounts = ok(call(invoke_api, "GET", "/accounts", sub=ADA))["items"]
    # Then A first sees the participants only, then nothing (and not the account either)
    assert (seen_as_metadata["subject"], [a["address"] for a in seen_as_metadata["from"]]) == (None, [CAROL])
    assert code(as_private) == (404, "not_found")
    assert [a["account_id"] for a in accounts] == [ACC_ADA]


# ------------------------------------------------------------------------------ writes and search


def test_writes_on_another_users_mail_need_full_visibility(
    invoke_api: Invoke, world: dict[str, str], level: Any
) -> None:
    email_id = world["reply"]
    writes = [
        ("PATCH", "/emails/<email_id>", {"flagged": True}),
        ("PUT", "/emails/<email_id>/snooze", {"until": "2027-06-01T09:00:00+00:00"}),
        ("PUT", "/emails/<email_id>/follow-up", {"due_at": "2027-06-01T09:00:00+00:00"}),
        ("POST", "/emails/<email_id>/links", {"kind": "contact", "record_id": world["contact"]}),
    ]
    for visibility in ("private", "metadata", "subject"):
        # Given B's mailbox shares less than everything
        level(visibility)
        # When A writes to B's email
        answers = {
            (m, p): code(call(invoke_api, m, p, params={"email_id": email_id}, sub=ADA, payload=b))
            for m, p, b in writes
        }
        # Then each answers 404, as for mail that does not exist
        assert set(answers.values()) <= {(404, "not_found"), (404, "email_not_found")}, (visibility, answers)
    # Given B shares everything, when A flags it, then it is flagged
    level("full")
    assert ok(
        call(
            invoke_api,
            "PATCH",
            "/emails/<email_id>",
            params={"email_id": email_id},
            sub=ADA,
            payload={"flagged": True},
        )
    )["flagged"]
    ok(
        call(
            invoke_api,
            "PATCH",
            "/emails/<email_id>",
            params={"email_id": email_id},
            sub=BEA,
            payload={"flagged": False},
        )
    )


def test_search_and_category_only_match_mail_seen_in_full(
    invoke_api: Invoke, world: dict[str, str], level: Any
) -> None:
    # Given B's mailbox shares subjects (its words are searchable in B's own listing)
    level("subject")
    assert ok(call(invoke_api, "GET", "/emails", sub=BEA, query={"q": "quokkasecret"}))["items"]
    # When A searches for a word of B's body, and for a word of its subject
    by_body = ok(call(invoke_api, "GET", "/emails", sub=ADA, query={"q": "quokkasecret"}))["items"]
    by_subject = ok(call(invoke_api, "GET", "/threads", sub=ADA, query={"q": "zanzibar"}))["items"]
    # Then nothing matches (the word list is made from the body)
    assert (by_body, by_subject) == ([], [])
    # And once B shares everything, the same search finds both emails
    level("full")
    found = ok(call(invoke_api, "GET", "/emails", sub=ADA, query={"q": "quokkasecret"}))["items"]
    assert sorted(e["email_id"] for e in found) == sorted([world["first"], world["reply"]])


def test_only_the_owner_or_an_admin_sets_a_mailboxs_visibility(
    invoke_api: Invoke, world: dict[str, str], level: Any
) -> None:
    # Given B's mailbox shares metadata (A sees the account)
    level("metadata")
    # When A tries to open it up
    answer = call(
        invoke_api,
        "PATCH",
        "/accounts/<account_id>",
        params={"account_id": ACC_BEA},
        sub=ADA,
        payload={"visibility": "full"},
    )
    # Then she is refused, and it is unchanged
    assert code(answer) == (403, "not_mailbox_owner")
    assert (
        ok(call(invoke_api, "GET", "/accounts/<account_id>", params={"account_id": ACC_BEA}, sub=BEA))[
            "visibility"
        ]
        == "metadata"
    )
    # When an admin sets it
    changed = ok(
        call(
            invoke_api,
            "PATCH",
            "/accounts/<account_id>",
            params={"account_id": ACC_BEA},
            sub=ADMIN,
            role="admin",
            payload={"visibility": "subject"},
        )
    )
    # Then it is set, and the account shows its owner
    assert (changed["visibility"], changed["owner"]) == ("subject", BEA)


# ------------------------------------------------------------------------------ disconnected


def test_mail_kept_after_a_disconnect_stays_as_private_as_its_mailbox_was(
    stack: Stack, invoke_api: Invoke, world: dict[str, str]
) -> None:
    # Given a private mailbox of B's with one email, disconnected without purging its mail
    account_id = "acc_bea1bea1bea1bea1bea1"
    _account(stack, account_id, BEA, Visibility.PRIVATE, "bea.old@acme.example")
    email_id = Seeder(stack).add(
        rfc(
            msgid="kept@secretcorp.example",
            sender=f"Carol <{CAROL}>",
            to="bea@acme.example",
            subject="Zanzibar closing",
            date="Wed, 04 Feb 2026 09:00:00 +0000",
            text="Kept quokkasecret.",
        ),
        account=account_id,
    )
    ok(call(invoke_api, "DELETE", "/accounts/<account_id>", params={"account_id": account_id}, sub=BEA))
    # When A and B read it
    as_ada = call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": email_id}, sub=ADA)
    listed = ok(call(invoke_api, "GET", "/emails", sub=ADA))["items"]
    as_bea = ok(call(invoke_api, "GET", "/emails/<email_id>", params={"email_id": email_id}, sub=BEA))
    # Then A still sees nothing of it, and B all of it
    assert code(as_ada) == (404, "not_found")
    assert email_id not in json.dumps(listed)
    assert as_bea["subject"] == "Zanzibar closing"


# ------------------------------------------------------------------------------ pushes


def test_a_push_about_bs_private_mail_reaches_bs_connections_only(
    invoke_api: Invoke,
    world: dict[str, str],
    stub: IssuerAndConnections,
    realtime: Callable[[dict[str, Any]], dict[str, Any]],
    notifier: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    # Given A and B of the tenant each have a WebSocket connection open
    for sub, connection_id in ((ADA, "c-ada"), (BEA, "c-bea")):
        token = stub.issuer.token(tenant=TENANT, role="member", sub=sub)
        assert realtime(connect_event(connection_id, query=token))["statusCode"] == 200
    # When the notifier gets the email.received and the email.updated of B's private mailbox
    events = []
    for sample in ("email-received", "email-updated"):
        event = load_event(f"eventbridge/{sample}.json")
        event["detail"]["tenant_id"] = TENANT
        event["detail"]["data"] |= {
            "account_id": ACC_BEA,
            "email_id": world["first"],
            "thread_id": world["thread"],
        }
        events.append(event)
    assert notifier(queue_event(*events)) == {"batchItemFailures": []}
    # Then both frames went to B's connection, none to A's
    assert [connection_id for connection_id, _ in stub.posts] == ["c-bea", "c-bea"]


def test_a_notification_about_bs_private_mail_is_bs_alone(
    stack: Stack, invoke_api: Invoke, world: dict[str, str]
) -> None:
    # Given B's mailbox is private
    # When a nudge and a failed send about B's email are announced
    emit(stack, "nudge-created", email_id=world["first"])
    emit(stack, "email-send-failed", email_id=world["reply"])
    # Then B has both notifications and A none
    assert sorted(n["type"] for n in notifications(invoke_api, BEA)) == ["nudge", "send_failed"]
    assert notifications(invoke_api, ADA) == []


def notifications(invoke_api: Invoke, sub: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(call(invoke_api, "GET", "/notifications", sub=sub))["items"]
    return items
