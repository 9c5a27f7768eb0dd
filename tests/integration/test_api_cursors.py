"""Pagination cursors on every paged listing: opaque, tamper-evident, bound to their tenant and
listing, signed with the key in Secrets Manager; any cursor that fails is 400 `invalid_cursor`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from mailbridge import aws
from mailbridge.api import deps
from mailbridge.store.pagination import signing_key
from tests.events import load_event
from tests.fixtures.aws import Stack
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.test_api_emails import Seeder, rfc

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

TENANT, OTHER = "acme", "globex"


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def call(
    invoke_api: Invoke,
    name: str,
    *,
    tenant: str = TENANT,
    role: str = "member",
    path: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    payload: Any = None,
) -> dict[str, Any]:
    """events/api/{name}.json with its path parameters, query and body replaced."""
    event = load_event(f"api/{name}.json", tenant=tenant, role=role, query=query or {}, body=payload)
    if not query:
        event.pop("queryStringParameters", None)
    raw = event["routeKey"].split(" ", 1)[1]
    for key, value in (path or {}).items():
        raw = raw.replace("{" + key + "}", value)
    event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    event["pathParameters"] = dict(path or {})
    return invoke_api(event)


@dataclass(frozen=True)
class Listing:
    name: str  # sample event
    path: dict[str, str]
    query: dict[str, str]


@pytest.fixture
def listings(
    invoke_api: Invoke,
    stack: Stack,
    dovecot_server: DovecotServer,
    make_dovecot_user: Callable[[], DovecotUser],
) -> dict[str, Listing]:
    """Tenant acme with two of everything each paged listing shows; the listings by name."""
    deps.crm_store.cache_clear()

    def ok(response: dict[str, Any], status: int = 201) -> Any:
        assert response["statusCode"] == status, response
        return body(response)

    # two mailboxes (a real login each), three emails in one thread
    for user in (make_dovecot_user(), make_dovecot_user()):
        imap = {
            "host": dovecot_server.host,
            "port": dovecot_server.imap_port,
            "security": "none",
            "username": user.name,
            "password": user.password,
        }
        account = {"provider": "imap", "address": f"{user.name}@example.com", "imap": imap}
        ok(call(invoke_api, "create-account", payload=account))
    seed = Seeder(stack)
    emails = [
        seed.add(
            rfc(
                msgid=f"m{i}@example.com",
                sender="ada@example.com",
                to="bob@acme.test",
                subject="Re: Kickoff" if i else "Kickoff",
                date=f"Thu, 0{i + 1} Jan 2026 09:00:00 +0000",
                in_reply_to="m0@example.com" if i else None,
                references="<m0@example.com>" if i else None,
            )
        )
        for i in range(3)
    ]
    thread_id = ok(call(invoke_api, "get-email", path={"email_id": emails[0]}), 200)["thread_id"]
    # the CRM: campaigns on, two contacts, companies, deals and campaigns
    for tenant in (TENANT, OTHER):
        ok(call(invoke_api, "put-features", tenant=tenant, role="admin", payload={"campaigns": True}), 200)
    company = ok(call(invoke_api, "crm-create-company", payload={"name": "Acme", "domains": ["acme.test"]}))
    ok(call(invoke_api, "crm-create-company", payload={"name": "Globex"}))
    contacts = [
        ok(
            call(
                invoke_api,
                "crm-create-contact",
                payload={
                    "name": n,
                    "emails": [{"address": f"{n}@example.com"}],
                    "company_id": company["company_id"],
                },
            )
        )
        for n in ("ada", "bob")
    ]
    deal_body = {"company_id": company["company_id"], "contact_ids": [c["contact_id"] for c in contacts]}
    deals = [ok(call(invoke_api, "crm-create-deal", payload={"name": n, **deal_body})) for n in ("d1", "d2")]
    for n in ("c1", "c2"):
        ok(call(invoke_api, "crm-create-campaign", payload={"name": n}))
    # the first contact and deal each linked to two emails (their timelines)
    for email_id in emails[:2]:
        for kind, record in (("contact", contacts[0]["contact_id"]), ("deal", deals[0]["deal_id"])):
            link = {"kind": kind, "record_id": record}
            ok(call(invoke_api, "links-create", path={"email_id": email_id}, payload=link))
    contact_id, deal_id = contacts[0]["contact_id"], deals[0]["deal_id"]
    return {
        "accounts": Listing("list-accounts", {}, {}),
        "emails": Listing("list-emails", {}, {}),
        "thread": Listing("get-thread", {"thread_id": thread_id}, {}),
        "contacts": Listing("crm-list-contacts", {}, {}),
        "companies": Listing("crm-list-companies", {}, {}),
        "deals": Listing("crm-list-deals", {}, {}),
        "deals by company": Listing("crm-list-deals", {}, {"company_id": company["company_id"]}),
        "deals by contact": Listing("crm-list-deals", {}, {"contact_id": contact_id}),
        "campaigns": Listing("crm-list-campaigns", {}, {}),
        "contact timeline": Listing("crm-get-contact-timeline", {"contact_id": contact_id}, {}),
        "deal timeline": Listing("crm-get-deal-timeline", {"deal_id": deal_id}, {}),
        "contact timeline (alias)": Listing("contact-timeline", {"contact_id": contact_id}, {}),
        "deal timeline (alias)": Listing("deal-timeline", {"deal_id": deal_id}, {}),
    }


def page(invoke_api: Invoke, listing: Listing, cursor: str | None = None, **kwargs: Any) -> dict[str, Any]:
    query = {**listing.query, "limit": "1", **({"cursor": cursor} if cursor is not None else {})}
    return call(invoke_api, listing.name, path=listing.path, query=query, **kwargs)


def first_cursor(invoke_api: Invoke, listing: Listing) -> str:
    response = page(invoke_api, listing)
    assert response["statusCode"] == 200, response
    cursor = body(response)["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


def items_of(data: dict[str, Any]) -> list[Any]:
    return list(data["items"] if "items" in data else data["messages"])


def refused(response: dict[str, Any]) -> bool:
    return bool(response["statusCode"] == 400 and body(response)["error"]["code"] == "invalid_cursor")


def test_pages_chain_through_every_listing(invoke_api: Invoke, listings: dict[str, Listing]) -> None:
    for name, listing in listings.items():
        # Given the whole listing in one page
        whole = items_of(body(call(invoke_api, listing.name, path=listing.path, query={**listing.query})))
        assert len(whole) >= 2, name
        # When it is walked one item per page
        walked: list[Any] = []
        cursor: str | None = None
        for _ in range(len(whole) + 2):
            data = body(page(invoke_api, listing, cursor))
            walked += items_of(data)
            cursor = data["next_cursor"]
            if cursor is None:
                break
        # Then every item comes once, in the same order
        assert walked == whole, name


def test_cursors_are_opaque(invoke_api: Invoke, listings: dict[str, Listing]) -> None:
    for listing in listings.values():
        cursor = first_cursor(invoke_api, listing)
        assert "TENANT" not in cursor
        assert b"TENANT" not in base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))[:33]


def test_one_changed_character_is_refused_on_every_listing(
    invoke_api: Invoke, listings: dict[str, Listing]
) -> None:
    # (Every position of cursors of each shape: tests/unit/test_pagination.py, without the API.)
    survivors: list[tuple[str, int]] = []
    for name, listing in listings.items():
        cursor = first_cursor(invoke_api, listing)
        # When characters spread over the whole cursor (the version, the tag, the key, the last
        # character) are replaced, one at a time, by another base64url character
        positions = sorted({*range(0, len(cursor), max(1, len(cursor) // 12)), len(cursor) - 1})
        for i in positions:
            edited = cursor[:i] + ("B" if cursor[i] == "A" else "A") + cursor[i + 1 :]
            if not refused(page(invoke_api, listing, edited)):
                survivors.append((name, i))
    # Then every edited cursor was refused (a 400, never a 500 or a page)
    assert survivors == []


def test_garbage_and_truncated_cursors_are_refused(invoke_api: Invoke, listings: dict[str, Listing]) -> None:
    listing = listings["emails"]
    cursor = first_cursor(invoke_api, listing)
    for bad in ("!!!", "e30", "W10", "AAAA", cursor[:-1], cursor[:40], cursor + "A", cursor + "=", "é" * 8):
        assert refused(page(invoke_api, listing, bad)), bad


def test_another_tenants_cursor_is_refused(invoke_api: Invoke, listings: dict[str, Listing]) -> None:
    for name, listing in listings.items():
        cursor = first_cursor(invoke_api, listing)
        response = page(invoke_api, listing, cursor, tenant=OTHER)
        if listing.path and "thread_id" not in listing.path:
            # A record's timeline: the other tenant cannot see the record, so it is 404 first.
            assert response["statusCode"] == 404, name
        else:
            assert refused(response), name


def test_a_cursor_of_another_listing_is_refused(invoke_api: Invoke, listings: dict[str, Listing]) -> None:
    cursors = {name: first_cursor(invoke_api, listing) for name, listing in listings.items()}
    accepted = [
        (source, target)
        for source, cursor in cursors.items()
        for target, listing in listings.items()
        if source != target and not refused(page(invoke_api, listing, cursor))
    ]
    # The timeline aliases are the same listing as their /crm routes: one cursor serves both.
    assert sorted(accepted) == sorted(
        [
            ("contact timeline", "contact timeline (alias)"),
            ("contact timeline (alias)", "contact timeline"),
            ("deal timeline", "deal timeline (alias)"),
            ("deal timeline (alias)", "deal timeline"),
        ]
    )


def _parts(cursor: str) -> tuple[bytes, bytes, bytes]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return raw[:1], raw[1:33], raw[33:]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_key_edited_and_re_encoded_without_the_signing_key_is_refused(
    invoke_api: Invoke, listings: dict[str, Listing]
) -> None:
    for name, listing in listings.items():
        cursor = first_cursor(invoke_api, listing)
        version, tag, payload = _parts(cursor)
        key = json.loads(payload)
        # Given the key read out of the cursor and moved back to the first item (a valid key!)
        edited = json.dumps({k: {t: v[:-1] + "0" for t, v in typed.items()} for k, typed in key.items()})
        for forged in (
            _encode(version + tag + edited.encode()),  # the old tag
            _encode(version + hmac.new(b"guess", edited.encode(), hashlib.sha256).digest() + edited.encode()),
            _encode(b"\x02" + tag + payload),  # another version
            _encode(version + tag),  # no key at all
        ):
            # Then DynamoDB never sees it: 400, whatever the key says
            assert refused(page(invoke_api, listing, forged)), name


def test_a_cursor_signed_with_a_rotated_key_is_refused(
    invoke_api: Invoke, listings: dict[str, Listing], stack: Stack
) -> None:
    # Given a cursor, then the signing secret gets a new value and containers start anew
    cursor = first_cursor(invoke_api, listings["contacts"])
    arn = stack.env("ApiFunction")["CURSOR_SECRET_ARN"]
    boto3.client("secretsmanager").put_secret_value(SecretId=arn, SecretString="a-new-signing-key")
    signing_key.cache_clear()
    # When the old cursor comes back
    response = page(invoke_api, listings["contacts"], cursor)
    # Then it is refused cleanly, and the listing starts again with a new cursor that works
    assert refused(response)
    fresh = first_cursor(invoke_api, listings["contacts"])
    assert page(invoke_api, listings["contacts"], fresh)["statusCode"] == 200


def test_the_signing_key_is_read_once_and_only_when_a_cursor_is_used(
    invoke_api: Invoke, listings: dict[str, Listing]
) -> None:
    reads: list[str] = []
    aws.secretsmanager().meta.events.register(
        "before-call.secrets-manager.GetSecretValue", lambda **_: reads.append("read")
    )
    signing_key.cache_clear()
    # Given a listing whose one page holds everything: no cursor is made, the key is not read
    assert body(call(invoke_api, "crm-list-companies", query={"limit": "100"}))["next_cursor"] is None
    assert reads == []
    # When cursors are made and checked many times
    for listing in listings.values():
        page(invoke_api, listing, first_cursor(invoke_api, listing))
    # Then the secret was read once
    assert reads == ["read"]
