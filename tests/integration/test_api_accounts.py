"""Accounts through the API on moto, without a mail server: what the boundary refuses, the login
deadline, the private-host guard on every connection, and uniqueness kept by the store.

Where a login must succeed, the account's login check is a stand-in (`LoggedIn`); where the
behaviour is about connections, real loopback servers and a scripted resolver are used
(tests/integration/stub_servers.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge import accounts
from mailbridge.api import deps
from mailbridge.config import get_settings
from mailbridge.errors import Conflict
from mailbridge.models.account import Account, AccountCreate, PublicServerSettings, SyncStage, SyncState
from mailbridge.providers.imap.settings import ImapSettings, Security
from mailbridge.store.accounts import AccountStore
from mailbridge.tenancy import Role, TenantContext
from tests.fixtures import accounts as seeding
from tests.fixtures.aws import FakeLambdaContext, Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.stub_servers import Canary, StallingServer
from tests.integration.sync_harness import TENANT, call_api

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


class LoggedIn:
    """What a successful login check returns (a session without a Sent folder)."""

    def sent_folder(self) -> None:
        return None

    def __enter__(self) -> LoggedIn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def logged_in(settings: ImapSettings) -> Any:
    return LoggedIn()


def new_account(address: str = "alice@example.com", **imap: Any) -> dict[str, Any]:
    return {
        "provider": "imap",
        "address": address,
        "imap": {
            "host": "imap.example.com",
            "port": 993,
            "security": "ssl",
            "username": address,
            "password": "app-password",
        }
        | imap,
    }


def account_items(stack: Stack, prefix: str = "ACCOUNT#") -> list[dict[str, Any]]:
    """The accounts table's items whose sort key starts with `prefix`, without the api entry's
    rate-limit counters (`RATE#`: every request counts against its tenant)."""
    items: list[dict[str, Any]] = stack.table("AccountsTable").scan()["Items"]
    return [i for i in items if str(i["sk"]).startswith(prefix) and not str(i["sk"]).startswith("RATE#")]


def seed_account(
    *,
    host: str,
    port: int,
    address: str = "alice@example.com",
    smtp_host: str | None = None,
    account_id: str | None = None,
    security: Security = Security.SSL,
) -> Account:
    """An account as an earlier create left it (its host resolved to a public address then)."""
    server: dict[str, Any] = {"port": port, "security": security, "username": address}
    return seeding.seed_account(
        get_settings().tables.accounts,
        get_settings().data_key_id,
        tenant=TENANT,
        account_id=account_id,
        address=address,
        imap=PublicServerSettings(host=host, **server),
        smtp=PublicServerSettings(host=smtp_host, **server) if smtp_host else None,
        with_smtp=False,
        secrets={"imap_password": "app-password", "smtp_password": "app-password" if smtp_host else None},
    )


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = Canary()
    yield server
    server.close()


# ------------------------------------------------------------------------------ the boundary


@pytest.mark.parametrize(
    ("change", "error_type"),
    [
        ({"display_name": "Alice\r\nBcc: x@evil.example"}, "control_characters"),
        ({"display_name": "=?utf-8?b?SGkNCkJjYzogeEBldmlsLmV4YW1wbGU=?="}, "header_injection"),
        ({"folders": ["Pro\r\njects"]}, "control_characters"),
        ({"folders": ["Pro\x00jects"]}, "control_characters"),
        ({"folders": [""]}, "string_too_short"),
        ({"folders": ["x" * 5000]}, "string_too_long"),
        ({"folders": ["Projects", "Projects"]}, "duplicate_folder"),
        ({"imap": {"username": "alice\r\nA1 DELETE INBOX"}}, "control_characters"),
        ({"imap": {"password": "pw\r\nA1 DELETE INBOX"}}, "control_characters"),
        ({"imap": {"host": "imap.exa\nmple.com"}}, "string_pattern_mismatch"),
    ],
)
def test_values_that_would_break_sending_or_syncing_are_refused_and_nothing_is_stored(
    stack: Stack, invoke_api: Invoke, change: dict[str, Any], error_type: str
) -> None:
    # Given a request to connect a mailbox with one bad value
    body = new_account()
    body["imap"] |= change.pop("imap", {})
    body |= change
    # When it is sent
    status, answer = call_api(invoke_api, "create-account.json", body=body)
    # Then it is a 422 naming the rule, without echoing the value, and nothing is stored
    assert status == 422, answer
    assert answer["error"]["code"] == "validation_error"
    assert error_type in {d["type"] for d in answer["error"]["details"]}
    assert "evil" not in json.dumps(answer)
    assert "DELETE" not in json.dumps(answer)
    assert account_items(stack, "") == []


# ------------------------------------------------------------------------------ the deadline


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_connecting_to_a_server_that_stalls_answers_timeout_within_the_request(
    stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch, mode: Any
) -> None:
    # Given a server that accepts and then never finishes its greeting (silent, or one byte at a
    # time), and an API function with 4.6 s left, of which 4 s are kept for the response
    server = StallingServer("imap", mode)
    monkeypatch.setattr(FakeLambdaContext, "get_remaining_time_in_millis", lambda self: 4600)
    seen: list[ImapSettings] = []
    account_deps = deps.account_deps()
    real_connect = account_deps.connect

    def recording(settings: ImapSettings) -> Any:
        seen.append(settings)
        return real_connect(settings)

    account_deps.connect = recording
    body = new_account(host="127.0.0.1", port=server.port, security="none")
    # When the user connects it
    try:
        before = time.monotonic()
        status, answer = call_api(invoke_api, "create-account.json", body=body)
        after = time.monotonic()
        server.wait_accepted(1)
    finally:
        server.close()
    # Then the answer is 422 timeout from the IMAP login (not the server's eventual refusal,
    # which only a client that waited it out would see), and nothing is stored
    assert status == 422, answer
    assert answer["error"]["code"] == "timeout"
    assert answer["error"]["details"]["server"] == "imap"
    assert account_items(stack, "") == []
    # And the client was given a deadline 0.6 s after the request, from the Lambda's remaining
    # time: well inside the function's own timeout
    (settings,) = seen
    assert settings.deadline is not None
    assert before + 0.6 <= settings.deadline <= after + 0.6
    assert server.accepted == 1


def test_without_time_left_for_a_login_nothing_is_tried(
    stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch, canary: Canary
) -> None:
    # Given an API function with less time left than it keeps for its response
    monkeypatch.setattr(FakeLambdaContext, "get_remaining_time_in_millis", lambda self: 3000)
    body = new_account(host="127.0.0.1", port=canary.port, security="none")
    # When the user connects a mailbox
    status, answer = call_api(invoke_api, "create-account.json", body=body)
    # Then it is 422 timeout at once: no connection was opened
    assert status == 422, answer
    assert answer["error"]["code"] == "timeout"
    assert canary.accepted == 0


# ------------------------------------------------------------------------------ uniqueness


@pytest.fixture
def login_ok(stack: Stack) -> None:
    deps.account_deps().connect = logged_in


@pytest.mark.usefixtures("login_ok")
def test_an_address_held_by_an_account_on_the_second_page_is_not_connected_twice(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given 101 accounts, the one holding alice@example.com last in the listing (second page)
    store = AccountStore(get_settings().tables.accounts)
    with stack.table("AccountsTable").batch_writer() as batch:
        for i in range(100):  # written as they are stored, without KMS: they are only listed
            filler = Account(
                account_id=f"acc_{i:020x}",
                tenant_id=TENANT,
                provider="imap",
                address=f"user{i}@example.com",
                imap=PublicServerSettings(
                    host="imap.example.com", port=993, security=Security.SSL, username=f"u{i}"
                ),
                created_at=datetime.now(UTC),
                created_by=seeding.CALLER,
            )
            batch.put_item(
                Item={
                    "pk": f"TENANT#{TENANT}",
                    "sk": f"ACCOUNT#{filler.account_id}",
                    "account": filler.model_dump(mode="json"),
                    "version": 1,
                }
            )
    held = seed_account(
        host="imap.other.example", port=993, address="Alice@Example.com", account_id="acc_" + "f" * 20
    )
    status, first_page = call_api(invoke_api, "list-accounts.json", query={"limit": "100"}, role="viewer")
    assert status == 200
    assert held.account_id not in {a["account_id"] for a in first_page["items"]}
    assert first_page["next_cursor"]
    # When alice@example.com is connected again (another login, another case)
    status, answer = call_api(invoke_api, "create-account.json", body=new_account("alice@example.com"))
    # Then it is 409 account_exists, naming the address as the reason, and no account is added
    assert status == 409, answer
    assert answer["error"]["code"] == "account_exists"
    assert answer["error"]["details"] == {"field": "address"}
    assert len(account_items(stack)) == 101
    assert store.get_account(TENANT, held.account_id).address == "Alice@Example.com"


@pytest.mark.usefixtures("login_ok")
def test_one_imap_login_is_one_account_even_under_two_addresses(stack: Stack, invoke_api: Invoke) -> None:
    # Given a connected mailbox
    first = new_account("alice@example.com", username="alice")
    assert call_api(invoke_api, "create-account.json", body=first)[0] == 201
    # When the same login (host in another case) is connected under another address
    second = new_account("sales@example.com", username="alice", host="IMAP.example.com")
    status, answer = call_api(invoke_api, "create-account.json", body=second)
    # Then it is 409, naming the login (and nothing of the other account)
    assert status == 409, answer
    assert answer["error"]["details"] == {"field": "login"}
    assert "alice@example.com" not in json.dumps(answer)
    assert len(account_items(stack)) == 1


@pytest.mark.usefixtures("login_ok")
def test_deleting_an_account_releases_its_address_and_login(stack: Stack, invoke_api: Invoke) -> None:
    # Given a connected mailbox, then disconnected
    status, account = call_api(invoke_api, "create-account.json", body=new_account())
    assert status == 201, account
    params = {"account_id": account["account_id"]}
    assert call_api(invoke_api, "delete-account.json", params=params)[0] == 200
    assert account_items(stack, "UNIQUE#") == []
    # When it is connected again / Then that works
    status, again = call_api(invoke_api, "create-account.json", body=new_account())
    assert status == 201, again
    assert len(account_items(stack)) == 1


def test_two_creates_of_the_same_address_racing_end_with_exactly_one_account(stack: Stack) -> None:
    # Given two requests for the same address, the second arriving while the first logs in
    # (both pass any read-based check before either writes)
    ctx = TenantContext(tenant_id=TENANT, role=Role.MEMBER, subject="user-1")
    base = deps.account_deps()
    first = AccountCreate.model_validate(new_account("alice@example.com", username="alice"))
    second = AccountCreate.model_validate(new_account("alice@example.com", username="alice.sales"))
    outcome: dict[str, Any] = {}

    def login_while_the_other_request_completes(settings: ImapSettings) -> Any:
        racing = accounts.AccountDeps(base.store, base.queue, base.key_id, connect=logged_in)
        outcome["second"] = accounts.connect_account(ctx, second, racing)
        return LoggedIn()

    first_deps = accounts.AccountDeps(
        base.store, base.queue, base.key_id, connect=login_while_the_other_request_completes
    )
    # When both complete
    with pytest.raises(Conflict) as caught:
        accounts.connect_account(ctx, first, first_deps)
    # Then exactly one account exists: the one that wrote first; the other got account_exists
    assert caught.value.code == "account_exists"
    (item,) = account_items(stack)
    assert item["sk"] == f"ACCOUNT#{outcome['second'].account_id}"


# ------------------------------------------------------------------------------ back into the poll


def test_asking_for_a_sync_puts_an_account_failed_on_its_credentials_back_into_the_poll(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given an account whose sync failed on rejected credentials, which the 5-minute poll skips
    account = seed_account(host="imap.example.com", port=993)
    store = AccountStore(get_settings().tables.accounts)
    failed = SyncState(stage=SyncStage.FAILED, reason="auth_failed")
    store.set_sync_state(TENANT, account.account_id, failed, pollable=False)
    sync = QueueConsumer(stack, "sync", "SyncQueue")

    def poll() -> list[dict[str, Any]]:
        """Run the 5-minute poll; the syncs it queued."""
        sync.sqs.send_message(
            QueueUrl=sync.queue_url,
            MessageBody=json.dumps({"kind": "poll", "provider": "imap"}),
            MessageGroupId="poll",
            MessageDeduplicationId=uuid.uuid4().hex,
        )
        assert sync.invoke(sync.receive())["batchItemFailures"] == []
        return [json.loads(m["Body"]) for m in take()]

    def take() -> list[dict[str, Any]]:
        """Everything queued, removed from the queue (nothing of it runs)."""
        messages = sync.receive()
        for message in messages:
            sync.sqs.delete_message(QueueUrl=sync.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    assert poll() == []
    # When the user asks for a sync (and before it runs)
    status, _ = call_api(invoke_api, "sync-account.json", params={"account_id": account.account_id})
    assert status == 202
    assert [json.loads(m["Body"])["reason"] for m in take()] == ["manual"]
    # Then the next poll queues it again
    assert [(q["account_id"], q["reason"]) for q in poll()] == [(account.account_id, "poll")]


# ------------------------------------------------------------------------------ listing cursors

OTHER_TENANT = "globex"


def admins_see_all(invoke_api: Invoke, tenant: str) -> None:
    """The tenant's privacy policy set to `admin_view: full`: its admins' GET /accounts is the
    whole listing (`AccountStore.list_accounts`; members and the default `as_shared` go through
    `list_shared_accounts`)."""
    status, current = call_api(invoke_api, "get-privacy-settings.json", role="admin", tenant=tenant)
    assert status == 200, current
    settings = {"admin_view": "full", "version": current["version"]}
    status, answer = call_api(
        invoke_api, "put-privacy-settings.json", role="admin", tenant=tenant, body=settings
    )
    assert status == 200, answer


def seed_listed(tenant: str, count: int) -> list[str]:
    """`count` IMAP accounts of `tenant` owned by the sample events' caller; their ids in the
    listing's order (the sort key)."""
    ids = [f"acc_{tenant[:4]}{i:016x}" for i in range(count)]
    for account_id in ids:
        seeding.seed_account(
            get_settings().tables.accounts,
            get_settings().data_key_id,
            tenant=tenant,
            account_id=account_id,
            address=f"{account_id}@example.com",
        )
    return ids


def listed(
    invoke_api: Invoke, *, role: str, tenant: str = TENANT, cursor: str | None = None
) -> tuple[int, Any]:
    query = {"limit": "1", **({"cursor": cursor} if cursor is not None else {})}
    return call_api(invoke_api, "list-accounts.json", role=role, tenant=tenant, query=query)


def test_an_account_listing_cursor_of_one_tenant_is_refused_for_another(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given two tenants with accounts, each listed in full to its admins (the whole listing)
    seed_listed(TENANT, 2)
    seed_listed(OTHER_TENANT, 2)
    for tenant in (TENANT, OTHER_TENANT):
        admins_see_all(invoke_api, tenant)
    status, first = listed(invoke_api, role="admin")
    assert status == 200, first
    assert first["next_cursor"]
    # When acme's cursor is presented by globex's admin
    status, answer = listed(invoke_api, role="admin", tenant=OTHER_TENANT, cursor=first["next_cursor"])
    # Then it is 400 invalid_cursor: no page of either tenant
    assert (status, answer["error"]["code"]) == (400, "invalid_cursor")
    # (and the cursor still serves its own tenant)
    status, second = listed(invoke_api, role="admin", cursor=first["next_cursor"])
    assert status == 200, second
    assert len(second["items"]) == 1


def test_an_account_listing_cursor_is_the_tenants_whichever_view_issued_it(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given three accounts of acme, listed in full to its admins and as shared to its members
    # (`list_shared_accounts` gives "the same cursors as list_accounts": both are the tenant's
    # listing of ACCOUNT# items, signed for the tenant)
    ids = seed_listed(TENANT, 3)
    admins_see_all(invoke_api, TENANT)
    # When a page of one view is continued in the other, both ways
    status, by_member = listed(invoke_api, role="member")
    assert status == 200, by_member
    status, by_admin = listed(invoke_api, role="admin", cursor=by_member["next_cursor"])
    assert status == 200, by_admin
    status, by_member_again = listed(invoke_api, role="member", cursor=by_admin["next_cursor"])
    assert status == 200, by_member_again
    # Then the pages chain: every account once, in order, and the listing ends
    pages = (by_member, by_admin, by_member_again)
    assert [a["account_id"] for page in pages for a in page["items"]] == ids
    status, last = listed(invoke_api, role="admin", cursor=by_member_again["next_cursor"])
    assert (status, last["items"], last["next_cursor"]) == (200, [], None)
