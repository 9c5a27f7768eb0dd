"""GET/PATCH /emails and GET /threads end to end in-process: sample events -> handler -> moto.

Mail is seeded through the real ingest path (raw RFC 5322 -> normalize -> S3 + DynamoDB), so the
items the API reads have exactly the stored shape.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest

from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import location_sk
from mailbridge.sync.ingest import Mailbox, ingest
from tests.events import load_event
from tests.fixtures.aws import Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

TENANT, OTHER = "acme", "globex"
ACC_A, ACC_B = "acc_aaaaaaaaaaaaaaaaaaaa", "acc_bbbbbbbbbbbbbbbbbbbb"
PDF = b"%PDF-1.4\n% tiny test file\n%%EOF\n"


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def rfc(
    *,
    msgid: str,
    sender: str,
    to: str,
    subject: str,
    date: str,
    text: str = "Hello there.",
    cc: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    headers = [
        f"Message-ID: <{msgid}>",
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {date}",
        "MIME-Version: 1.0",
    ]
    if cc:
        headers.append(f"Cc: {cc}")
    if in_reply_to:
        headers.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        headers.append(f"References: {references}")
    if attachment is None:
        headers.append("Content-Type: text/plain; charset=utf-8")
        return ("\r\n".join(headers) + "\r\n\r\n" + text + "\r\n").encode()
    name, data = attachment
    encoded = base64.b64encode(data).decode()
    headers.append('Content-Type: multipart/mixed; boundary="b1"')
    parts = [
        "--b1",
        "Content-Type: text/plain; charset=utf-8",
        "",
        text,
        "--b1",
        f'Content-Type: application/pdf; name="{name}"',
        f'Content-Disposition: attachment; filename="{name}"',
        "Content-Transfer-Encoding: base64",
        "",
        encoded,
        "--b1--",
        "",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(parts)).encode()


@dataclass
class Seeder:
    stack: Stack
    uid: int = 0

    @property
    def emails(self) -> EmailStore:
        return EmailStore(self.stack.deployed.tables["EmailsTable"])

    @property
    def blobs(self) -> BlobStore:
        return BlobStore(self.stack.deployed.buckets["MailBucket"])

    def add(
        self,
        raw: bytes,
        *,
        tenant: str = TENANT,
        account: str = ACC_A,
        folder: str = "INBOX",
        flags: tuple[str, ...] = ("\\Seen",),
    ) -> str:
        self.uid += 1
        mailbox = Mailbox(tenant, account, f"me@{account}.test", folder, uidvalidity=7)
        fetched = FetchedMessage(
            uid=self.uid,
            flags=flags,
            internal_date=datetime(2026, 2, 1, tzinfo=UTC),
            modseq=None,
            size=len(raw),
            raw=raw,
        )
        result = ingest(mailbox, fetched, self.emails, self.blobs)
        assert result.email_id is not None, result
        return result.email_id

    def expunge(self, email_id: str, *, account: str = ACC_A, folder: str = "INBOX", uid: int) -> None:
        """What the sync engine does when the mailbox no longer holds the message."""
        sk = location_sk(account, folder, 7, uid)
        self.emails.delete_location(TENANT, sk)
        self.emails.detach_location(TENANT, email_id, sk)


@pytest.fixture
def mail(stack: Stack) -> dict[str, str]:
    """Tenant acme: a thread of three, one with a PDF, one unread, one in another account, one
    deleted; m1 is in two folders of account A, m2 in both accounts. Tenant globex: one email."""
    seed = Seeder(stack)
    ids = {
        "m1": seed.add(
            rfc(
                msgid="t1@example.com",
                sender="alice@example.com",
                to="Bob <bob@acme.test>",
                subject="Project kickoff",
                date="Thu, 01 Jan 2026 09:00:00 +0000",
                text="Kickoff on Monday.",
            )
        ),
        "m2": seed.add(
            rfc(
                msgid="t2@acme.test",
                sender="Bob <bob@acme.test>",
                to="alice@example.com",
                cc="Carol <carol@acme.test>",
                subject="Re: Project kickoff",
                date="Fri, 02 Jan 2026 09:00:00 +0000",
                in_reply_to="t1@example.com",
                references="<t1@example.com>",
            )
        ),
        "m3": seed.add(
            rfc(
                msgid="t3@example.com",
                sender="Alice Doe <ALICE@example.com>",
                to="bob@acme.test",
                subject="Re: Project kickoff",
                date="Sat, 03 Jan 2026 09:00:00 +0000",
                in_reply_to="t2@acme.test",
                references="<t1@example.com> <t2@acme.test>",
            )
        ),
        "m4": seed.add(
            rfc(
                msgid="pdf@vendor.test",
                sender="Dana <dana@vendor.test>",
                to="bob@acme.test",
                subject="Invoice 42",
                date="Sun, 04 Jan 2026 09:00:00 +0000",
                text="Invoice attached.",
                attachment=("report.pdf", PDF),
            ),
            flags=("\\Seen", "\\Flagged"),
        ),
        "m5": seed.add(
            rfc(
                msgid="news@shop.test",
                sender="Eve Newsletter <news@shop.test>",
                to="bob@acme.test",
                subject="Weekly deals",
                date="Mon, 05 Jan 2026 09:00:00 +0000",
            ),
            flags=(),
        ),
        "m6": seed.add(
            rfc(
                msgid="frank@corp.test",
                sender="frank@corp.test",
                to="me@acc-b.test",
                subject="Quarterly numbers",
                date="Tue, 06 Jan 2026 09:00:00 +0000",
            ),
            account=ACC_B,
        ),
        "m8": seed.add(
            rfc(
                msgid="old@archive.test",
                sender="old@archive.test",
                to="bob@acme.test",
                subject="Gone",
                date="Wed, 31 Dec 2025 09:00:00 +0000",
            )
        ),
        "b1": seed.add(
            rfc(
                msgid="secret@globex.test",
                sender="spy@globex.test",
                to="ceo@globex.test",
                subject="Project kickoff",
                date="Wed, 07 Jan 2026 09:00:00 +0000",
            ),
            tenant=OTHER,
            account="acc_globex",
        ),
    }
    deleted_uid = seed.uid - 1
    # m1 also sits in Archive of account A; m2 also reached account B's mailbox.
    seed.add(
        rfc(
            msgid="t1@example.com",
            sender="alice@example.com",
            to="Bob <bob@acme.test>",
            subject="Project kickoff",
            date="Thu, 01 Jan 2026 09:00:00 +0000",
            text="Kickoff on Monday.",
        ),
        folder="Archive",
    )
    seed.add(
        rfc(
            msgid="t2@acme.test",
            sender="Bob <bob@acme.test>",
            to="alice@example.com",
            cc="Carol <carol@acme.test>",
            subject="Re: Project kickoff",
            date="Fri, 02 Jan 2026 09:00:00 +0000",
            in_reply_to="t1@example.com",
            references="<t1@example.com>",
        ),
        account=ACC_B,
    )
    seed.expunge(ids["m8"], uid=deleted_uid)
    return ids


def api(
    name: str,
    *,
    tenant: str = TENANT,
    role: str = "member",
    path: dict[str, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """A sample event for `name` with its path parameters (and rawPath) replaced."""
    event = load_event(f"api/{name}.json", tenant=tenant, role=role, **kwargs)
    if path:
        raw = event["routeKey"].split(" ", 1)[1]
        for key, value in path.items():
            raw = raw.replace("{" + key + "}", value)
        event["pathParameters"] = dict(path)
        event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    if "query" not in kwargs:
        event.pop("queryStringParameters", None)
        event["rawQueryString"] = ""
    return event


def listing(invoke_api: Invoke, tenant: str = TENANT, **query: str) -> list[str]:
    response = invoke_api(api("list-emails", tenant=tenant, query=query))
    assert response["statusCode"] == 200, response
    return [e["email_id"] for e in body(response)["items"]]


def walk(invoke_api: Invoke, **query: str) -> tuple[list[str], int]:
    """Every email id over all pages, and the number of pages."""
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = invoke_api(api("list-emails", query=params))
        assert response["statusCode"] == 200, response
        data = body(response)
        assert len(data["items"]) <= int(query.get("limit", 25))
        seen += [e["email_id"] for e in data["items"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            return seen, pages
        assert pages < 20


def ids(mail: dict[str, str], *names: str) -> list[str]:
    return [mail[n] for n in names]


def s3_key(url: str, bucket: str) -> str:
    path = unquote(urlsplit(url).path).lstrip("/")
    return path.removeprefix(f"{bucket}/")


# ------------------------------------------------------------------------------------ listing


def test_list_is_newest_first_and_hides_deleted(invoke_api: Invoke, mail: dict[str, str]) -> None:
    # When acme lists its emails without filters
    response = invoke_api(api("list-emails"))
    # Then every live email shows once, newest first, as a summary
    assert response["statusCode"] == 200
    data = body(response)
    assert [e["email_id"] for e in data["items"]] == ids(mail, "m6", "m5", "m4", "m3", "m2", "m1")
    assert data["next_cursor"] is None
    first = data["items"][0]
    assert first["from"] == [{"name": None, "address": "frank@corp.test"}]
    assert first["accounts"] == [ACC_B]
    assert first["folders"] == [f"{ACC_B}:INBOX"]
    assert first["deleted"] is False
    m2 = next(e for e in data["items"] if e["email_id"] == mail["m2"])
    assert m2["accounts"] == sorted([ACC_A, ACC_B])


def test_pages_of_two_walk_every_email_exactly_once(invoke_api: Invoke, mail: dict[str, str]) -> None:
    seen, pages = walk(invoke_api, limit="2")
    assert seen == ids(mail, "m6", "m5", "m4", "m3", "m2", "m1")
    assert pages >= 3
    # And with deleted ones included, the deleted email comes last (it is the oldest)
    seen, _ = walk(invoke_api, limit="2", include_deleted="true")
    assert seen == ids(mail, "m6", "m5", "m4", "m3", "m2", "m1", "m8")


def test_filtered_pages_never_lose_or_repeat_an_email(invoke_api: Invoke, mail: dict[str, str]) -> None:
    for query, expected in [
        ({"q": "kickoff"}, ("m3", "m2", "m1")),
        ({"account_id": ACC_A}, ("m5", "m4", "m3", "m2", "m1")),
        ({"unread": "false"}, ("m6", "m4", "m3", "m2", "m1")),
    ]:
        for limit in ("1", "2"):
            seen, _ = walk(invoke_api, limit=limit, **query)
            assert seen == ids(mail, *expected), (query, limit)


def test_each_filter(invoke_api: Invoke, mail: dict[str, str]) -> None:
    cases: list[tuple[dict[str, str], tuple[str, ...]]] = [
        ({"unread": "true"}, ("m5",)),
        ({"unread": "false"}, ("m6", "m4", "m3", "m2", "m1")),
        ({"from": "ALICE"}, ("m3", "m1")),
        ({"from": "doe"}, ("m3",)),
        ({"from": "vendor.test"}, ("m4",)),
        ({"q": "KICKOFF"}, ("m3", "m2", "m1")),
        ({"q": "eve newsletter"}, ("m5",)),
        ({"since": "2026-01-03T00:00:00Z", "until": "2026-01-04T09:00:00Z"}, ("m4", "m3")),
        ({"since": "2026-01-05T10:00:00+01:00"}, ("m6", "m5")),
        ({"until": "2026-01-01T23:00:00"}, ("m1",)),
        ({"thread_id": "__thread__"}, ("m3", "m2", "m1")),
        ({"account_id": ACC_A}, ("m5", "m4", "m3", "m2", "m1")),
        ({"account_id": ACC_A, "folder": "Archive"}, ("m1",)),
        ({"account_id": ACC_A, "unread": "true"}, ("m5",)),
        ({"account_id": ACC_B}, ("m6", "m2")),
        ({"account_id": ACC_B, "from": "bob"}, ("m2",)),
        ({"account_id": "acc_nobody"}, ()),
        ({"include_deleted": "true", "q": "gone"}, ("m8",)),
        ({"q": "gone"}, ()),
        # An account lists what its mailboxes hold: an expunged email has no location left there.
        ({"account_id": ACC_A, "include_deleted": "true", "until": "2025-12-31T23:59:59Z"}, ()),
    ]
    thread = body(invoke_api(api("get-email", path={"email_id": mail["m1"]})))["thread_id"]
    for case, expected in cases:
        query = {k: (thread if v == "__thread__" else v) for k, v in case.items()}
        assert listing(invoke_api, **query) == ids(mail, *expected), query


def test_thread_filter_combines_with_account(invoke_api: Invoke, mail: dict[str, str]) -> None:
    thread = body(invoke_api(api("get-email", path={"email_id": mail["m1"]})))["thread_id"]
    assert listing(invoke_api, thread_id=thread, account_id=ACC_B) == ids(mail, "m2")
    assert listing(invoke_api, thread_id=thread, account_id=ACC_A, folder="Archive") == ids(mail, "m1")


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"folder": "INBOX"}, 400, "folder_needs_account"),
        ({"since": "2026-01-05T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 400, "invalid_date_range"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"limit": "0"}, 422, "validation_error"),
        ({"limit": "101"}, 422, "validation_error"),
        ({"limit": "many"}, 422, "validation_error"),
        ({"since": "last tuesday"}, 422, "validation_error"),
        ({"unread": "perhaps"}, 422, "validation_error"),
        ({"include_deleted": "2"}, 422, "validation_error"),
        ({"thread_id": "th_NOPE"}, 422, "validation_error"),
        ({"account_id": "acc#x"}, 422, "validation_error"),
    ],
)
def test_bad_query_parameters_are_clear_4xx(
    invoke_api: Invoke, stack: Stack, query: dict[str, str], status: int, code: str
) -> None:
    response = invoke_api(api("list-emails", query=query))
    assert response["statusCode"] == status, response
    assert body(response)["error"]["code"] == code


# ------------------------------------------------------------------------------------ tenancy


def test_another_tenant_sees_none_of_it(invoke_api: Invoke, stack: Stack, mail: dict[str, str]) -> None:
    # Given globex's token
    email, thread = mail["m4"], body(invoke_api(api("get-email", path={"email_id": mail["m1"]})))["thread_id"]
    # Then its listings only hold its own email, whatever the filters
    assert listing(invoke_api, tenant=OTHER) == [mail["b1"]]
    assert listing(invoke_api, tenant=OTHER, q="kickoff") == [mail["b1"]]
    assert listing(invoke_api, tenant=OTHER, account_id=ACC_A) == []
    assert listing(invoke_api, tenant=OTHER, thread_id=thread) == []
    # And every acme id answers 404, exactly like an id that does not exist
    for name, path in [
        ("get-email", {"email_id": email}),
        ("get-email-raw", {"email_id": email}),
        ("get-attachment", {"email_id": email, "attachment_id": "att-1"}),
        ("get-thread", {"thread_id": thread}),
    ]:
        response = invoke_api(api(name, tenant=OTHER, path=path))
        assert response["statusCode"] == 404, (name, response)
    patch = invoke_api(api("patch-email", tenant=OTHER, path={"email_id": email}, body={"read": False}))
    assert patch["statusCode"] == 404
    assert (
        stack.table("EmailsTable").get_item(Key={"pk": f"TENANT#{TENANT}", "sk": f"EMAIL#{email}"})["Item"][
            "read"
        ]
        is True
    )
    # And acme's cursors are refused for globex
    cursor = body(invoke_api(api("list-emails", query={"limit": "1"})))["next_cursor"]
    refused = invoke_api(api("list-emails", tenant=OTHER, query={"cursor": cursor}))
    assert refused["statusCode"] == 400
    assert body(refused)["error"]["code"] == "invalid_cursor"


# ------------------------------------------------------------------------------------ one email


def test_get_email_has_bodies_attachments_and_locations(invoke_api: Invoke, mail: dict[str, str]) -> None:
    response = invoke_api(api("get-email", path={"email_id": mail["m4"]}))
    assert response["statusCode"] == 200, response
    email = body(response)
    assert email["subject"] == "Invoice 42"
    assert email["from"] == [{"name": "Dana", "address": "dana@vendor.test"}]
    assert email["message_id"] == "pdf@vendor.test"
    assert "Invoice attached." in email["text_body"]
    assert email["flagged"] is True
    assert email["read"] is True
    assert email["has_attachments"] is True
    [attachment] = email["attachments"]
    assert attachment["filename"] == "report.pdf"
    assert attachment["size"] == len(PDF)
    assert email["locations"] == [
        {
            "account_id": ACC_A,
            "folder": "INBOX",
            "uidvalidity": 7,
            "uid": 4,
            "flags": ["\\Flagged", "\\Seen"],
            "modseq": None,
        }
    ]
    # And an email held in two folders lists both
    m1 = body(invoke_api(api("get-email", path={"email_id": mail["m1"]})))
    assert sorted(loc["folder"] for loc in m1["locations"]) == ["Archive", "INBOX"]
    assert m1["folders"] == [f"{ACC_A}:Archive", f"{ACC_A}:INBOX"]
    # And the cc of a reply is there
    m2 = body(invoke_api(api("get-email", path={"email_id": mail["m2"]})))
    assert m2["cc"] == [{"name": "Carol", "address": "carol@acme.test"}]
    assert m2["thread_id"] == m1["thread_id"]


def test_a_deleted_email_is_still_readable(invoke_api: Invoke, mail: dict[str, str]) -> None:
    response = invoke_api(api("get-email", path={"email_id": mail["m8"]}))
    assert response["statusCode"] == 200
    assert body(response)["deleted"] is True
    assert body(response)["locations"] == []


def test_a_large_body_is_read_from_s3(invoke_api: Invoke, stack: Stack) -> None:
    # Given an email whose body was too large for the item
    text = "lorem ipsum " * 10_000
    email_id = Seeder(stack).add(
        rfc(
            msgid="big@example.com",
            sender="big@example.com",
            to="bob@acme.test",
            subject="Big",
            date="Thu, 01 Jan 2026 09:00:00 +0000",
            text=text,
        )
    )
    item = stack.table("EmailsTable").get_item(Key={"pk": f"TENANT#{TENANT}", "sk": f"EMAIL#{email_id}"})[
        "Item"
    ]
    assert "body_key" in item
    assert "text_body" not in item
    # When it is read
    email = body(invoke_api(api("get-email", path={"email_id": email_id})))
    # Then the body comes from the S3 document
    assert email["text_body"].strip() == text.strip()


@pytest.mark.parametrize("email_id", ["em_" + "0" * 26, "nonsense", "em_ABC", "EMAIL#x"])
def test_unknown_or_malformed_email_ids_are_404(invoke_api: Invoke, stack: Stack, email_id: str) -> None:
    for name in ("get-email", "get-email-raw"):
        response = invoke_api(api(name, path={"email_id": email_id}))
        assert response["statusCode"] == 404, (name, response)
        assert body(response)["error"]["code"] == "not_found"
    response = invoke_api(api("patch-email", path={"email_id": email_id}, body={"read": True}))
    assert response["statusCode"] == 404


def test_raw_url_points_at_the_original_message(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str]
) -> None:
    response = invoke_api(api("get-email-raw", path={"email_id": mail["m1"]}))
    assert response["statusCode"] == 200, response
    data = body(response)
    assert data["expires_in"] == 300
    assert data["content_type"] == "message/rfc822"
    assert data["filename"] == f"{mail['m1']}.eml"
    bucket = stack.deployed.buckets["MailBucket"]
    key = s3_key(data["url"], bucket)
    assert key == f"raw/{TENANT}/{ACC_A}/{mail['m1']}.eml"
    params = parse_qs(urlsplit(data["url"]).query)
    assert params["response-content-type"] == ["message/rfc822"]
    raw = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert b"Message-ID: <t1@example.com>" in raw


def test_presigned_urls_use_sigv4(invoke_api: Invoke, mail: dict[str, str]) -> None:
    # S3 refuses SigV2 presigned GETs for SSE-KMS objects (the mail bucket's default encryption).
    url = body(invoke_api(api("get-email-raw", path={"email_id": mail["m1"]})))["url"]
    params = parse_qs(urlsplit(url).query)
    assert params["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert params["X-Amz-Expires"] == ["300"]


def test_attachment_url_serves_the_attachment(invoke_api: Invoke, stack: Stack, mail: dict[str, str]) -> None:
    attachment_id = body(invoke_api(api("get-email", path={"email_id": mail["m4"]})))["attachments"][0]["id"]
    response = invoke_api(
        api("get-attachment", path={"email_id": mail["m4"], "attachment_id": attachment_id})
    )
    assert response["statusCode"] == 200, response
    data = body(response)
    assert data["filename"] == "report.pdf"
    assert data["content_type"] == "application/pdf"
    bucket = stack.deployed.buckets["MailBucket"]
    key = s3_key(data["url"], bucket)
    assert key == f"att/{TENANT}/{mail['m4']}/{attachment_id}"
    assert 'filename="report.pdf"' in parse_qs(urlsplit(data["url"]).query)["response-content-disposition"][0]
    assert boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == PDF
    # And an attachment the email does not have is a 404 with its own reason
    missing = invoke_api(api("get-attachment", path={"email_id": mail["m4"], "attachment_id": "att-99"}))
    assert missing["statusCode"] == 404
    assert body(missing)["error"]["code"] == "attachment_not_found"
    other = invoke_api(api("get-attachment", path={"email_id": mail["m1"], "attachment_id": attachment_id}))
    assert body(other)["error"]["code"] == "attachment_not_found"


# ------------------------------------------------------------------------------------ PATCH


def _drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return out


def test_patch_sets_flags_and_pushes_them_to_every_account(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str]
) -> None:
    # Given m2, held by accounts A and B, read and not flagged
    email_id = mail["m2"]
    # When a member marks it unread and flagged
    response = invoke_api(
        api("patch-email", path={"email_id": email_id}, body={"read": False, "flagged": True})
    )
    # Then the answer and the item carry the new flags
    assert response["statusCode"] == 200, response
    data = body(response)
    assert (data["read"], data["flagged"]) == (False, True)
    assert data["text_body"]
    item = stack.table("EmailsTable").get_item(Key={"pk": f"TENANT#{TENANT}", "sk": f"EMAIL#{email_id}"})[
        "Item"
    ]
    assert (item["read"], item["flagged"]) == (False, True)
    # And one PushFlags per account went to the SyncQueue
    pushes = _drain(stack.deployed.queue_urls["SyncQueue"])
    assert sorted(p["account_id"] for p in pushes) == [ACC_A, ACC_B]
    for push in pushes:
        assert push["kind"] == "push_flags"
        assert push["tenant_id"] == TENANT
        assert push["email_id"] == email_id
        assert push["add"] == ["\\Flagged"]
        assert push["remove"] == ["\\Seen"]
    # And the listing sees it unread now
    assert email_id in listing(invoke_api, unread="true")


def test_patch_of_one_field_keeps_the_other(invoke_api: Invoke, stack: Stack, mail: dict[str, str]) -> None:
    response = invoke_api(
        api("patch-email", role="admin", path={"email_id": mail["m4"]}, body={"read": False})
    )
    assert response["statusCode"] == 200
    assert (body(response)["read"], body(response)["flagged"]) == (False, True)
    [push] = _drain(stack.deployed.queue_urls["SyncQueue"])
    assert (push["account_id"], push["add"], push["remove"]) == (ACC_A, [], ["\\Seen"])


def test_viewer_cannot_patch(invoke_api: Invoke, stack: Stack, mail: dict[str, str]) -> None:
    response = invoke_api(
        api("patch-email", role="viewer", path={"email_id": mail["m5"]}, body={"read": True})
    )
    assert response["statusCode"] == 403
    assert body(response)["error"]["code"] == "role_required"
    assert _drain(stack.deployed.queue_urls["SyncQueue"]) == []
    assert listing(invoke_api, unread="true") == [mail["m5"]]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({}, 400, "empty_patch"),
        ({"read": None}, 400, "empty_patch"),
        ({"read": True, "deleted": True}, 422, "validation_error"),
        ({"flagged": "very"}, 422, "validation_error"),
        ({"archived": True, "trashed": True}, 400, "conflicting_changes"),
        ({"trashed": "soon"}, 422, "validation_error"),
        ("{nope", 400, "invalid_json"),
    ],
)
def test_bad_patches_are_rejected(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], payload: Any, status: int, code: str
) -> None:
    response = invoke_api(api("patch-email", path={"email_id": mail["m5"]}, body=payload))
    assert response["statusCode"] == status, response
    assert body(response)["error"]["code"] == code
    assert _drain(stack.deployed.queue_urls["SyncQueue"]) == []


# ------------------------------------------------------------------------------------ threads


def test_thread_view_oldest_first_with_participants(invoke_api: Invoke, mail: dict[str, str]) -> None:
    thread = body(invoke_api(api("get-email", path={"email_id": mail["m3"]})))["thread_id"]
    response = invoke_api(api("get-thread", path={"thread_id": thread}))
    assert response["statusCode"] == 200, response
    view = body(response)
    assert view["thread_id"] == thread
    assert view["subject"] == "Project kickoff"
    assert [m["email_id"] for m in view["messages"]] == ids(mail, "m1", "m2", "m3")
    assert view["participants"] == [
        {"name": "Alice Doe", "address": "alice@example.com"},
        {"name": "Bob", "address": "bob@acme.test"},
        {"name": "Carol", "address": "carol@acme.test"},
    ]
    assert view["next_cursor"] is None


def test_thread_pages(invoke_api: Invoke, mail: dict[str, str]) -> None:
    thread = body(invoke_api(api("get-email", path={"email_id": mail["m3"]})))["thread_id"]
    first = body(invoke_api(api("get-thread", path={"thread_id": thread}, query={"limit": "2"})))
    assert [m["email_id"] for m in first["messages"]] == ids(mail, "m1", "m2")
    assert first["next_cursor"]
    second = body(
        invoke_api(
            api(
                "get-thread", path={"thread_id": thread}, query={"limit": "2", "cursor": first["next_cursor"]}
            )
        )
    )
    assert [m["email_id"] for m in second["messages"]] == ids(mail, "m3")
    # The subject stays the thread's first message's, not the page's
    assert second["subject"] == "Project kickoff"
    assert second["participants"][0] == {"name": "Alice Doe", "address": "ALICE@example.com"}


@pytest.mark.parametrize("thread_id", ["th_" + "0" * 24, "th_nope", "x"])
def test_unknown_threads_are_404(invoke_api: Invoke, stack: Stack, thread_id: str) -> None:
    response = invoke_api(api("get-thread", path={"thread_id": thread_id}))
    assert response["statusCode"] == 404
    assert body(response)["error"]["code"] == "thread_not_found"


def test_thread_limit_is_validated(invoke_api: Invoke, stack: Stack) -> None:
    response = invoke_api(api("get-thread", path={"thread_id": "th_" + "0" * 24}, query={"limit": "500"}))
    assert response["statusCode"] == 422


# ------------------------------------------------------------------------------------ docs


def test_openapi_documents_the_routes_and_their_errors(invoke_api: Invoke) -> None:
    spec = body(invoke_api(load_event("api/get-openapi.json")))
    paths = spec["paths"]
    assert {
        "/emails",
        "/emails/{email_id}",
        "/emails/{email_id}/raw",
        "/emails/{email_id}/attachments/{attachment_id}",
        "/threads",
        "/threads/{thread_id}",
    } <= set(paths)
    assert set(paths["/emails/{email_id}"]) == {"get", "patch"}
    assert {"400", "403", "404", "503"} <= set(paths["/emails/{email_id}"]["patch"]["responses"])
    assert "404" in paths["/threads/{thread_id}"]["get"]["responses"]
    params = {p["name"] for p in paths["/emails"]["get"]["parameters"]}
    assert params == {
        "account_id",
        "folder",
        "thread_id",
        "from",
        "since",
        "until",
        "unread",
        "q",
        "status",
        "category",
        "include_deleted",
        "snoozed",
        "limit",
        "cursor",
    }
    assert paths["/emails"]["get"]["security"] == [{"bearerAuth": []}]
    thread_params = {p["name"] for p in paths["/threads"]["get"]["parameters"]}
    assert thread_params == params - {"thread_id", "status"}
    assert "400" in paths["/threads"]["get"]["responses"]
