"""The suppression list and RFC 8058 one-click unsubscribe through the api function on moto; hard
bounces and complaints through the match function (mail stored as ingest stores it)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

from mailbridge.calendar.tokens import Signer
from mailbridge.campaigns import suppression
from mailbridge.campaigns.suppression import SuppressionDeps
from mailbridge.campaigns.wiring import suppression_deps
from mailbridge.compose.build import _POLICY
from mailbridge.tracking import tokens as tracking_tokens
from tests.events import load_event
from tests.fixtures.aws import Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.sync_harness import SyncHarness
from tests.integration.test_matching import ME, Matching
from tests.integration.test_outbox import email_view, mail, send

__all__ = ["mail"]  # the connected mailbox fixture of test_outbox, used here

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
TENANT, OTHER = "acme", "globex"
CAROL = "carol@customer.example"
CAMPAIGN = "cmp_spring"
HOST = "https://abc123def4.execute-api.eu-west-1.amazonaws.com"


def _deps() -> SuppressionDeps:
    return suppression_deps(HOST)


def _token(tenant: str = TENANT, address: str = CAROL, campaign: str = CAMPAIGN) -> str:
    header = suppression.unsubscribe_headers(_deps(), tenant, campaign, address)["List-Unsubscribe"]
    assert header.startswith(f"<{HOST}/u/")
    assert header.endswith(">")
    return header[len(f"<{HOST}/u/") : -1]


def _public(
    invoke: Invoke,
    method: str,
    token: str,
    *,
    body: str | None = "List-Unsubscribe=One-Click",
    content_type: str = "application/x-www-form-urlencoded",
    base64_body: bool = False,
) -> dict[str, Any]:
    name = "api/unsubscribe-one-click.json" if method == "POST" else "api/unsubscribe-page.json"
    event = load_event(name)
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/u/{token}"
    event["pathParameters"] = {"token": token}
    if method == "POST":
        event["headers"]["content-type"] = content_type
        event["body"] = base64.b64encode((body or "").encode()).decode() if base64_body else body
        event["isBase64Encoded"] = base64_body
    assert "authorizer" not in event["requestContext"]  # no JWT at all
    assert "authorization" not in event["headers"]
    return invoke(event)


def _api(
    invoke: Invoke,
    name: str,
    *,
    tenant: str = TENANT,
    role: str = "member",
    body: Any = None,
    query: dict[str, str] | None = None,
    address: str | None = None,
) -> tuple[int, Any]:
    event = load_event(f"api/{name}.json", tenant=tenant, role=role, body=body, query=query or {})
    if address is not None:
        event["pathParameters"] = {"address": address}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/crm/suppressions/{address}"
    response = invoke(event)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def _stored(stack: Stack) -> list[dict[str, Any]]:
    """Every suppression entry of every tenant, as stored."""
    items = stack.table("CrmTable").scan()["Items"]
    return sorted(
        (i for i in items if str(i["sk"]).startswith("SUPPRESS#")), key=lambda i: (i["pk"], i["sk"])
    )


# ------------------------------------------------------------------------------ one-click


def test_one_click_without_a_session_lists_the_address_once(stack: Stack, invoke_api: Invoke) -> None:
    # Given the unsubscribe link of Carol's campaign message
    token = _token()
    # When her mail provider POSTs the RFC 8058 body, without any Authorization, twice
    first = _public(invoke_api, "POST", token)
    second = _public(invoke_api, "POST", token)
    # Then both answer 200 with a page that says nothing about who she is
    for response in (first, second):
        assert response["statusCode"] == 200
        assert response["headers"]["Content-Type"].startswith("text/html")
        assert response["headers"]["Cache-Control"] == "no-store, private"
        assert "carol" not in response["body"].lower()
        assert "Unsubscribed" in response["body"]
    # And a later unsubscribe from another campaign changes nothing either
    assert _public(invoke_api, "POST", _token(campaign="cmp_autumn"))["statusCode"] == 200
    # And she is listed once, as unsubscribed from the first campaign
    (entry,) = _stored(stack)
    assert entry["pk"] == f"TENANT#{TENANT}"
    assert (entry["address"], entry["reason"], entry["source"]) == (CAROL, "unsubscribed", CAMPAIGN)
    # And the list and campaign sending see her
    status, page = _api(invoke_api, "crm-list-suppressions", role="viewer")
    assert status == 200
    assert [(i["address"], i["reason"], i["source"]) for i in page["items"]] == [
        (CAROL, "unsubscribed", CAMPAIGN)
    ]
    assert suppression.suppressed(_deps(), TENANT, ["Carol@Customer.Example", "dave@customer.example"]) == {
        CAROL
    }
    assert suppression.suppressed(_deps(), OTHER, [CAROL]) == set()


def test_a_base64_or_multipart_one_click_body_is_accepted(stack: Stack, invoke_api: Invoke) -> None:
    # When the body comes base64-encoded (API Gateway does that to form bodies) or as form-data
    encoded = _public(invoke_api, "POST", _token(address="a@customer.example"), base64_body=True)
    multipart = _public(
        invoke_api,
        "POST",
        _token(address="b@customer.example"),
        content_type="multipart/form-data; boundary=XyZ",
        body='--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        "One-Click\r\n--XyZ--\r\n",
    )
    # Then both unsubscribe
    assert (encoded["statusCode"], multipart["statusCode"]) == (200, 200)
    assert [i["address"] for i in _stored(stack)] == ["a@customer.example", "b@customer.example"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("", "application/x-www-form-urlencoded"),
        ("List-Unsubscribe=Yes", "application/x-www-form-urlencoded"),
        ('{"List-Unsubscribe": "One-Click"}', "application/json"),
        (
            "--b\r\nContent-Disposition: form-data; name=x\r\n\r\nOne-Click\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
    ],
)
def test_a_post_without_the_one_click_body_is_400_and_stores_nothing(
    stack: Stack, invoke_api: Invoke, body: str, content_type: str
) -> None:
    response = _public(invoke_api, "POST", _token(), body=body, content_type=content_type)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "one_click_required"
    assert _stored(stack) == []


def test_get_shows_a_form_that_posts_and_never_unsubscribes(stack: Stack, invoke_api: Invoke) -> None:
    # When a link scanner (or the recipient) GETs the link, several times
    responses = [_public(invoke_api, "GET", _token()) for _ in range(3)]
    # Then it gets a page whose only form POSTs the RFC 8058 body back to the same URL
    for response in responses:
        assert response["statusCode"] == 200
        page = response["body"]
        assert '<form method="post">' in page
        assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
        assert "carol" not in page.lower()
        assert "form-action 'self'" in response["headers"]["Content-Security-Policy"]
    # And nobody is unsubscribed
    assert _stored(stack) == []


def _flip(token: str, at: int) -> str:
    char = "A" if token[at] != "A" else "B"
    return token[:at] + char + token[at + 1 :]


def test_forged_tampered_and_foreign_tokens_are_404_and_store_nothing(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given a good token and tokens made or changed by someone without the key
    good = _token()
    other_key = SuppressionDeps(store=_deps().store, key=lambda: b"not-the-secret", base_url=HOST)
    forged = suppression.unsubscribe_token(other_key, OTHER, CAMPAIGN, "mallory@evil.example")
    tracking = tracking_tokens.open_token(Signer(_deps().key or (lambda: b"")), TENANT, "em_1")
    bad = [
        _flip(good, 0),  # the version byte
        _flip(good, 5),  # the nonce
        _flip(good, len(good) // 2),  # the ciphertext
        _flip(good, len(good) - 2),  # the tag
        good[:-4],  # truncated
        good + "AAAA",  # extended
        forged,  # another key, another tenant and address
        tracking,  # a tracking pixel token: another purpose
        base64.urlsafe_b64encode(json.dumps({"t": TENANT, "a": CAROL, "c": CAMPAIGN}).encode()).decode(),
    ]
    for token in bad:
        for method in ("POST", "GET"):
            # When each is used
            response = _public(invoke_api, method, token)
            # Then it is 404 link_not_found
            assert response["statusCode"] == 404, (token, method)
            assert json.loads(response["body"])["error"]["code"] == "link_not_found"
    # And nothing was listed, for any tenant
    assert _stored(stack) == []


def test_a_token_unsubscribes_only_its_own_tenant_and_address(stack: Stack, invoke_api: Invoke) -> None:
    # Given tokens of two tenants for the same address, and of one tenant for two addresses
    _public(invoke_api, "POST", _token(OTHER, CAROL))
    _public(invoke_api, "POST", _token(TENANT, "dave@customer.example"))
    # Then each token listed exactly what it names: Carol only at globex, Dave only at acme
    assert suppression.suppressed(_deps(), TENANT, [CAROL, "dave@customer.example"]) == {
        "dave@customer.example"
    }
    assert suppression.suppressed(_deps(), OTHER, [CAROL, "dave@customer.example"]) == {CAROL}


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "A" * 2000,
        "%00%0d%0a",
        "..%2f..%2fetc%2fpasswd",
        "ÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿÿ",
        "AQ" + "A" * 60,  # version 1 with a nonce but no ciphertext worth the name
        "AQ" + "A" * 39,  # 41 base64 characters: no whole number of bytes
        base64.urlsafe_b64encode(b"\x01" + b"\x00" * 40).decode().rstrip("="),
    ],
)
def test_no_token_makes_a_5xx(stack: Stack, invoke_api: Invoke, token: str) -> None:
    for method in ("POST", "GET"):
        response = _public(invoke_api, method, token)
        assert response["statusCode"] in (400, 404), (method, response)
    assert _stored(stack) == []


# ------------------------------------------------------------------------------ headers


def test_unsubscribe_headers_reach_the_message_bytes_as_one_unencoded_line(stack: Stack) -> None:
    # Given the fields for Carol's campaign message
    fields = suppression.unsubscribe_headers(_deps(), TENANT, CAMPAIGN, "  Carol@Customer.EXAMPLE ")
    # When they are written into a message with compose's policy, as the outbox generates it
    message = EmailMessage(policy=_POLICY)
    for name, value in fields.items():
        message[name] = value
    message.set_content("Hi")
    raw = message.as_bytes()
    # Then each is one line: the URL in angle brackets (RFC 2369), never RFC 2047-encoded
    lines = raw.split(b"\r\n")
    (unsubscribe,) = [line for line in lines if line.startswith(b"List-Unsubscribe:")]
    assert unsubscribe == f"List-Unsubscribe: {fields['List-Unsubscribe']}".encode("ascii")
    assert unsubscribe.startswith(f"List-Unsubscribe: <{HOST}/u/".encode())
    assert unsubscribe.endswith(b">")
    assert b"=?" not in raw
    assert len(unsubscribe) < 998  # RFC 5322 section 2.1.1
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    # And the token names the normalized address, readable by nobody without the key
    token = unsubscribe.decode()[len(f"List-Unsubscribe: <{HOST}/u/") : -1]
    claims = suppression.token_claims(_deps(), token)
    assert (claims.tenant_id, claims.campaign_id, claims.address) == (TENANT, CAMPAIGN, CAROL)
    assert b"carol" not in base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).lower()
    # And without an absolute base URL no link is made at all (a relative one is useless in mail)
    with pytest.raises(ValueError, match="PUBLIC_API_URL"):
        suppression.unsubscribe_headers(
            SuppressionDeps(store=_deps().store, key=_deps().key), TENANT, CAMPAIGN, CAROL
        )


# ------------------------------------------------------------------------------ routes


def test_members_add_admins_remove_viewers_read_and_tenants_are_apart(
    stack: Stack, invoke_api: Invoke
) -> None:
    # When a member adds an address (any case) twice
    status, added = _api(invoke_api, "crm-add-suppression", body={"address": "Eve@Customer.Example"})
    again_status, again = _api(invoke_api, "crm-add-suppression", body={"address": "eve@customer.example"})
    # Then the first call lists it, the second changes nothing
    assert (status, again_status) == (201, 201)
    assert added["created"] is True
    assert again["created"] is False
    assert added["suppression"]["address"] == "eve@customer.example"
    assert added["suppression"]["reason"] == "manual"
    assert again["suppression"]["at"] == added["suppression"]["at"]
    # And a viewer may read but not add; a member may not remove
    assert _api(invoke_api, "crm-add-suppression", role="viewer", body={"address": CAROL})[0] == 403
    assert _api(invoke_api, "crm-remove-suppression", address="eve%40customer.example")[0] == 403
    # And another tenant sees nothing of it and cannot remove it
    assert _api(invoke_api, "crm-list-suppressions", tenant=OTHER, role="viewer")[1]["items"] == []
    other = _api(
        invoke_api, "crm-remove-suppression", tenant=OTHER, role="admin", address="eve%40customer.example"
    )
    assert other[0] == 404
    assert other[1]["error"]["code"] == "suppression_not_found"
    # When an admin re-subscribes it
    status, removed = _api(
        invoke_api, "crm-remove-suppression", role="admin", address="EVE%40customer.example"
    )
    # Then it is off the list, and removing it again is 404
    assert (status, removed) == (200, {"address": "eve@customer.example", "removed": True})
    assert _stored(stack) == []
    assert (
        _api(invoke_api, "crm-remove-suppression", role="admin", address="eve%40customer.example")[0] == 404
    )


def test_a_bad_address_is_a_422_and_the_list_pages_with_a_signed_cursor(
    stack: Stack, invoke_api: Invoke
) -> None:
    assert _api(invoke_api, "crm-add-suppression", body={"address": "not an address"})[0] == 422
    assert _api(invoke_api, "crm-add-suppression", body={"address": CAROL, "reason": "x"})[0] == 422
    for address in ("a@x.example", "b@x.example", "c@x.example"):
        assert _api(invoke_api, "crm-add-suppression", body={"address": address})[0] == 201
    # When the list is read one at a time
    seen: list[str] = []
    query = {"limit": "1"}
    while True:
        status, page = _api(invoke_api, "crm-list-suppressions", role="viewer", query=query)
        assert status == 200
        seen += [i["address"] for i in page["items"]]
        if not page["next_cursor"]:
            break
        query = {"limit": "1", "cursor": page["next_cursor"]}
    # Then every entry comes once, in address order; a cursor from another tenant is refused
    assert seen == ["a@x.example", "b@x.example", "c@x.example"]
    _, first = _api(invoke_api, "crm-list-suppressions", role="viewer", query={"limit": "1"})
    foreign = _api(
        invoke_api,
        "crm-list-suppressions",
        tenant=OTHER,
        role="viewer",
        query={"cursor": first["next_cursor"]},
    )
    assert foreign[0] == 400
    assert foreign[1]["error"]["code"] == "invalid_cursor"


# ------------------------------------------------------------------------------ campaign sending


def test_suppressed_asks_one_batch_get_per_hundred_addresses(stack: Stack) -> None:
    # Given three listed addresses
    deps = _deps()
    for address in ("u7@customer.example", "u150@customer.example", "u249@customer.example"):
        suppression.add(deps, TENANT, address, "manual", None)
    requests: list[int] = []
    client = deps.store.table.meta.client  # type: ignore[attr-defined]
    client.meta.events.register(
        "before-parameter-build.dynamodb.BatchGetItem",
        lambda params, **_: requests.append(len(params["RequestItems"][deps.store.table_name]["Keys"])),  # type: ignore[attr-defined]
    )
    # When campaign sending asks about 250 addresses (in any case)
    found = suppression.suppressed(deps, TENANT, [f"U{n}@Customer.Example" for n in range(250)])
    # Then three BatchGetItem requests of 100, 100 and 50 keys answer it, with the normalized hits
    assert requests == [100, 100, 50]
    assert found == {"u7@customer.example", "u150@customer.example", "u249@customer.example"}


# ------------------------------------------------------------------------------ bounces and complaints


def _dsn(status: str, recipient: str) -> bytes:
    """An RFC 3464 report as Postfix writes it, for one recipient."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
        f"To: {ME}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n"
        f"Message-ID: <dsn-{status}-{recipient}@mx.customer.example>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822; {recipient}\r\n"
        "Action: failed\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} mailbox problem\r\n"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {ME}\r\nTo: {recipient}\r\nSubject: Spring offer\r\nMessage-ID: <offer-1@acme-corp.io>\r\n"
        "\r\n--B--\r\n"
    ).encode()


def _arf(original_rcpt_to: str | None, to: str) -> bytes:
    """An RFC 5965 abuse report (its section 3.3 example, about our message)."""
    rcpt = f"Original-Rcpt-To: <{original_rcpt_to}>\r\n" if original_rcpt_to else ""
    return (
        "From: <abusedesk@mailbox-provider.example>\r\n"
        f"To: <{ME}>\r\n"
        "Subject: FW: Spring offer\r\n"
        "Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n"
        f"Message-ID: <arf-{to}@mailbox-provider.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--B\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: <{ME}>\r\n{rcpt}"
        "Arrival-Date: Mon, 30 Nov 2026 08:00:00 +0000\r\n"
        "\r\n--B\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
        f"From: <{ME}>\r\nTo: <{to}>\r\nSubject: Spring offer\r\nMessage-ID: <offer-2@acme-corp.io>\r\n"
        "\r\nBuy now.\r\n--B--\r\n"
    ).encode()


@pytest.fixture
def m(stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch) -> Matching:
    return Matching(stack, invoke_api, monkeypatch)


def _reasons(stack: Stack) -> dict[str, tuple[str, str]]:
    return {str(i["address"]): (str(i["reason"]), str(i["source"])) for i in _stored(stack)}


def test_a_5xx_dsn_suppresses_its_recipient_and_a_4xx_one_does_not(m: Matching, stack: Stack) -> None:
    # Given a DSN saying a mailbox does not exist (5.1.1) and one saying a mailbox is full (4.2.2)
    hard = m.store(_dsn("5.1.1", "Gone@Customer.Example"))
    m.store(_dsn("4.2.2", "full@customer.example"))
    # When the match function handles their email.received
    m.drain()
    # Then only the hard bounce is listed, with the DSN as its source
    assert _reasons(stack) == {"gone@customer.example": ("hard_bounce", hard)}


def test_an_arf_complaint_suppresses_the_recipient_it_names(m: Matching, stack: Stack) -> None:
    # Given an abuse report naming the recipient, and one that only returns our message to her
    named = m.store(_arf("frank@customer.example", "frank@customer.example"))
    returned = m.store(_arf(None, "grace@customer.example"))
    # When the match function handles them
    m.drain()
    # Then both complainants are listed as complaints
    assert _reasons(stack) == {
        "frank@customer.example": ("complaint", named),
        "grace@customer.example": ("complaint", returned),
    }


@pytest.mark.dovecot
def test_recipients_the_smtp_server_refuses_permanently_are_hard_bounces(
    mail: SyncHarness, stack: Stack, smtp_sink: Any
) -> None:
    # Given an SMTP server that refuses two addresses for good and one for now
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    smtp_sink.reject_recipient("gone@customer.example", reply="550 5.1.1 No such user")
    smtp_sink.reject_recipient("dead@customer.example", reply="550 5.1.1 No such user")
    smtp_sink.reject_recipient("busy@customer.example", reply="452 4.2.2 Mailbox full")
    # When a message to one refused for good, the busy one and Carol is sent (Carol gets it)
    _, partial = send(
        mail, to=[{"address": a} for a in ("gone@customer.example", "busy@customer.example", CAROL)]
    )
    outbox.invoke(outbox.receive())
    # And a message to the other refused address alone fails
    _, alone = send(mail, to=[{"address": "Dead@Customer.Example"}])
    outbox.invoke(outbox.receive())
    assert email_view(mail, alone["email_id"])["status"] == "failed"
    # Then both permanently refused addresses are hard bounces of their sends; nobody else is listed
    assert _reasons(stack) == {
        "gone@customer.example": ("hard_bounce", partial["email_id"]),
        "dead@customer.example": ("hard_bounce", alone["email_id"]),
    }
