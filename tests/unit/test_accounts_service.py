"""The accounts service over the real store on moto (the accounts table from template.yaml, a KMS
key), with the logins and the SyncQueue as recording stand-ins: what a call returns or raises,
what is stored and sealed, what is queued, and what settings reach the mail servers."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from moto import mock_aws

from local.resources import create_table
from local.template import load_template
from mailbridge import accounts, aws, crypto
from mailbridge.accounts import AccountDeps
from mailbridge.errors import Conflict, Forbidden, Invalid, NotFound, ProviderAuthError, ProviderUnreachable
from mailbridge.models.account import (
    AccountCreate,
    AccountPatch,
    FolderState,
    PublicServerSettings,
    SyncStage,
    SyncState,
)
from mailbridge.providers.imap.models import Folder
from mailbridge.providers.imap.protocol import MailFolderSource
from mailbridge.providers.imap.settings import ImapSettings, Security
from mailbridge.providers.smtp.settings import SmtpSettings
from mailbridge.queues import SyncQueue
from mailbridge.store import pagination
from mailbridge.store.accounts import AccountStore
from mailbridge.sync.messages import PurgeAccount, SyncRequest
from mailbridge.tenancy import Role, TenantContext

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


class RecordingQueue(SyncQueue):
    def __init__(self) -> None:
        super().__init__("unused")
        self.sent: list[Any] = []

    def send_many(self, messages: Sequence[Any], dedupe_ids: Sequence[str] | None = None) -> None:
        self.sent.extend(messages)


class Session:
    """A logged-in IMAP session as the login check sees it."""

    def __init__(self, sent: str | None) -> None:
        self.sent = sent

    def sent_folder(self) -> Folder | None:
        return Folder(self.sent, "/", frozenset({"\\Sent"})) if self.sent else None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class Servers:
    """The IMAP and SMTP logins: what they were given, and what they answer."""

    imap: list[ImapSettings] = field(default_factory=list)
    smtp: list[SmtpSettings] = field(default_factory=list)
    sent_folder: str | None = None
    imap_error: Exception | None = None
    smtp_error: Exception | None = None

    def connect(self, settings: ImapSettings) -> MailFolderSource:
        self.imap.append(settings)
        if self.imap_error is not None:
            raise self.imap_error
        # The login check uses only sent_folder() and the context manager.
        return cast("MailFolderSource", Session(self.sent_folder))

    def check_smtp(self, settings: SmtpSettings) -> None:
        self.smtp.append(settings)
        if self.smtp_error is not None:
            raise self.smtp_error


@dataclass
class World:
    """One test's tenant (its own, so tests share the module's tables without seeing each other)."""

    tenant: str
    deps: AccountDeps
    store: AccountStore
    queue: RecordingQueue
    servers: Servers

    @property
    def member(self) -> TenantContext:
        return TenantContext(tenant_id=self.tenant, role=Role.MEMBER, subject="user-1")

    @property
    def viewer(self) -> TenantContext:
        return TenantContext(tenant_id=self.tenant, role=Role.VIEWER, subject="user-2")

    def secrets(self, account_id: str) -> dict[str, Any]:
        envelope = self.store.get_credentials(self.tenant, account_id)
        assert envelope is not None
        context = {"tenant_id": self.tenant, "account_id": account_id}
        return json.loads(crypto.decrypt(envelope, context))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def aws_stack() -> Iterator[tuple[AccountStore, str]]:
    """The accounts table and the data key, once per module (creating them is the slow part)."""
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        aws.reset_clients()
        patch.setattr(pagination, "signing_key", lambda: b"k" * 64)
        # The data key first: the table is encrypted with it (SSESpecification)
        key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
        TEMPLATE.physical_ids["DataKey"] = key_id
        table = create_table(boto3.client("dynamodb", region_name="us-east-1"), TEMPLATE, "AccountsTable")
        yield AccountStore(table), key_id
        aws.reset_clients()


@pytest.fixture
def world(aws_stack: tuple[AccountStore, str]) -> World:
    store, key_id = aws_stack
    queue, servers = RecordingQueue(), Servers()
    deps = AccountDeps(
        store, queue, key_id, connect=servers.connect, check_smtp=servers.check_smtp, now=lambda: NOW
    )
    return World("t" + uuid.uuid4().hex[:12], deps, store, queue, servers)


def create_body(**changes: Any) -> AccountCreate:
    body: dict[str, Any] = {
        "provider": "imap",
        "address": "alice@example.com",
        "display_name": "Alice",
        "imap": {
            "host": "imap.example.com",
            "port": 993,
            "security": "ssl",
            "username": "alice",
            "password": "imap-pw",
        },
        "smtp": {
            "host": "smtp.example.com",
            "port": 465,
            "security": "ssl",
            "username": "alice-smtp",
            "password": "smtp-pw",
        },
        "folders": ["Projects"],
    }
    for name, value in changes.items():
        if isinstance(value, dict) and isinstance(body.get(name), dict):
            body[name] = body[name] | value
        else:
            body[name] = value
    return AccountCreate.model_validate(body)


def connect(w: World, **changes: Any) -> str:
    return accounts.connect_account(w.member, create_body(**changes), w.deps).account_id


def patch(w: World, account_id: str, **body: Any) -> Any:
    return accounts.update_account(w.member, account_id, AccountPatch.model_validate(body), w.deps)


# ------------------------------------------------------------------------------ connect


def test_connecting_logs_in_to_both_servers_then_stores_seals_and_queues(world: World) -> None:
    # Given servers that accept the logins, the IMAP one naming "Sent Items" its Sent folder
    world.servers.sent_folder = "Sent Items"
    # When a member connects a mailbox that lists the Sent folder among its folders
    before = time.monotonic()
    out = accounts.connect_account(world.member, create_body(folders=["Projects", "Sent Items"]), world.deps)
    after = time.monotonic()
    # Then the IMAP login got the server, the password, the deployed guard and the login deadline
    (imap,) = world.servers.imap
    assert (imap.host, imap.port, imap.security, imap.username) == (
        "imap.example.com",
        993,
        Security.SSL,
        "alice",
    )
    assert imap.password.get_secret_value() == "imap-pw"
    assert (imap.allow_private, imap.allow_insecure, imap.timeout_seconds) == (False, False, 20.0)
    assert imap.deadline is not None
    assert before + 20 <= imap.deadline <= after + 20
    # And so did the SMTP login, with the same deadline
    (smtp,) = world.servers.smtp
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == (
        "smtp.example.com",
        465,
        Security.SSL,
        "alice-smtp",
    )
    assert smtp.password is not None
    assert smtp.password.get_secret_value() == "smtp-pw"
    assert (smtp.allow_private, smtp.allow_insecure, smtp.timeout_seconds) == (False, False, 30.0)
    assert smtp.deadline == imap.deadline
    # And the account is stored as answered, without passwords, the Sent folder left out
    stored = world.store.get_account(world.tenant, out.account_id)
    assert stored.model_dump() == {
        "account_id": out.account_id,
        "tenant_id": world.tenant,
        "provider": "imap",
        "address": "alice@example.com",
        "display_name": "Alice",
        "imap": {"host": "imap.example.com", "port": 993, "security": Security.SSL, "username": "alice"},
        "smtp": {"host": "smtp.example.com", "port": 465, "security": Security.SSL, "username": "alice-smtp"},
        "folders": ["Projects"],
        "created_at": NOW,
        "created_by": "user-1",
        "visibility": None,
        "sync": {
            "stage": SyncStage.PENDING,
            "reason": None,
            "last_success_at": None,
            "last_error": None,
            "last_error_at": None,
            "queued_at": world.queue.sent[0].requested_at,
            "last_push_at": None,
            "reconcile_queued_at": None,
        },
        "oauth": None,
        "version": 1,
    }
    assert out == accounts.to_out(stored)
    assert out.account_id.startswith("acc_")
    assert len(out.account_id) == 24
    # And the passwords are sealed under the account's own context
    assert world.secrets(out.account_id) == {"imap_password": "imap-pw", "smtp_password": "smtp-pw"}
    # And its first sync is queued
    assert world.queue.sent == [
        SyncRequest(
            tenant_id=world.tenant,
            account_id=out.account_id,
            reason="connected",
            requested_at=world.queue.sent[0].requested_at,
        )
    ]


def test_a_mailbox_without_smtp_logs_in_to_imap_only_and_stores_no_smtp_password(world: World) -> None:
    account_id = connect(world, smtp=None)
    assert world.servers.smtp == []
    assert world.store.get_account(world.tenant, account_id).smtp is None
    assert world.secrets(account_id) == {"imap_password": "imap-pw", "smtp_password": None}


def test_each_account_gets_its_own_id(world: World) -> None:
    first = connect(world)
    second = connect(world, address="bob@example.com", imap={"username": "bob"})
    assert first != second


def test_a_viewer_cannot_connect_and_nothing_happens(world: World) -> None:
    with pytest.raises(Forbidden):
        accounts.connect_account(world.viewer, create_body(), world.deps)
    assert (world.servers.imap, world.queue.sent) == ([], [])


@pytest.mark.parametrize("server", ["imap", "smtp"])
def test_plain_text_is_refused_before_anything_outside_local_mode(world: World, server: str) -> None:
    with pytest.raises(Invalid) as caught:
        connect(world, **{server: {"security": "none", "port": 143}})
    assert (caught.value.code, caught.value.message) == (
        "insecure_not_allowed",
        "unencrypted connections are not allowed; use ssl or starttls",
    )
    assert (world.servers.imap, world.servers.smtp, world.queue.sent) == ([], [], [])
    assert world.store.list_accounts(world.tenant, cursor=None, limit=10) == ([], None)


def test_in_local_mode_plain_text_and_private_hosts_are_allowed_through_to_the_login(world: World) -> None:
    world.deps.allow_private_hosts = True
    connect(world, imap={"security": "none", "port": 143}, smtp={"security": "none", "port": 25})
    (imap,), (smtp,) = world.servers.imap, world.servers.smtp
    assert (imap.allow_private, imap.allow_insecure) == (True, True)
    assert (smtp.allow_private, smtp.allow_insecure) == (True, True)


def test_in_local_mode_tls_is_still_verified(world: World) -> None:
    world.deps.allow_private_hosts = True
    connect(world)
    assert (world.servers.imap[0].allow_insecure, world.servers.smtp[0].allow_insecure) == (False, False)


@pytest.mark.parametrize("server", ["imap", "smtp"])
def test_the_default_logins_are_the_guarded_adapters(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a mail host whose name resolves to loopback, outside local mode
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    public = PublicServerSettings(host="mail.example.com", port=993, security=Security.SSL, username="alice")
    # When the default login of AccountDeps (the real adapter) is tried
    # Then the adapter's host guard refuses it before connecting
    login: Callable[[], object] = (
        (lambda: accounts.imap_connect(accounts.imap_settings(public, "pw", allow_private=False)))
        if server == "imap"
        else (lambda: accounts.smtp_check_login(accounts.smtp_settings(public, "pw", allow_private=False)))
    )
    with pytest.raises(Invalid) as caught:
        login()
    assert caught.value.code == "host_not_allowed"


def test_a_taken_address_is_refused_before_logging_in(world: World) -> None:
    connect(world)
    world.servers.imap.clear()
    with pytest.raises(Conflict) as caught:
        connect(world, imap={"username": "alice2"})
    assert (caught.value.code, caught.value.details) == ("account_exists", {"field": "address"})
    assert world.servers.imap == []


@pytest.mark.parametrize("server", ["imap", "smtp"])
def test_a_failed_login_says_which_server_and_stores_nothing(world: World, server: str) -> None:
    error = ProviderAuthError("login rejected", code="auth_failed", details={"host": "h"})
    setattr(world.servers, f"{server}_error", error)
    with pytest.raises(ProviderAuthError) as caught:
        connect(world)
    assert caught.value.details == {"host": "h", "server": server}
    assert world.queue.sent == []
    assert world.store.list_accounts(world.tenant, cursor=None, limit=10) == ([], None)


def test_a_login_error_without_details_gets_the_server_and_other_details_are_kept(world: World) -> None:
    world.servers.imap_error = ProviderUnreachable("down", code="unreachable")
    with pytest.raises(ProviderUnreachable) as caught:
        connect(world)
    assert caught.value.details == {"server": "imap"}
    world.servers.imap_error = ProviderUnreachable("down", code="unreachable", details=["not", "a", "dict"])
    with pytest.raises(ProviderUnreachable) as caught:
        connect(world)
    assert caught.value.details == ["not", "a", "dict"]


# ------------------------------------------------------------------------------ the login deadline


def test_the_login_deadline_keeps_the_response_margin_of_the_lambdas_time(world: World) -> None:
    # 20 s at most; with 10 s left and 4 s kept for the response, 6 s
    before = time.monotonic()
    assert before + 20 <= accounts.login_deadline(world.deps, None) <= time.monotonic() + 20
    assert before + 20 <= accounts.login_deadline(world.deps, 60_000) <= time.monotonic() + 20
    assert before + 6 <= accounts.login_deadline(world.deps, 10_000) <= time.monotonic() + 6


def test_half_a_second_left_for_the_login_is_still_tried(world: World) -> None:
    # Given 4.5 s of Lambda time, 4 s of which are kept for the response
    # When a mailbox is connected, Then the login is tried within the 0.5 s left
    before = time.monotonic()
    accounts.connect_account(world.member, create_body(), world.deps, remaining_ms=4500)
    (imap,) = world.servers.imap
    assert imap.deadline is not None
    assert before + 0.5 <= imap.deadline <= time.monotonic() + 0.5


def test_the_smtp_login_check_uses_the_security_mode_given(world: World) -> None:
    # Given an SMTP server reached with STARTTLS on 587
    # When the mailbox is connected, Then the SMTP login is tried with STARTTLS
    connect(world, smtp={"security": "starttls", "port": 587})
    (smtp,) = world.servers.smtp
    assert (smtp.security, smtp.port) == (Security.STARTTLS, 587)


def test_the_imap_login_check_uses_the_security_mode_given(world: World) -> None:
    # Given an IMAP server reached with STARTTLS on 143
    # When the mailbox is connected, Then the IMAP login is tried with STARTTLS
    connect(world, imap={"security": "starttls", "port": 143})
    (imap,) = world.servers.imap
    assert (imap.security, imap.port) == (Security.STARTTLS, 143)


def test_plain_text_is_refused_as_such_even_when_the_address_is_taken(world: World) -> None:
    # Given a connected mailbox
    connect(world)
    # When the same address is connected again over plain text, outside local mode
    with pytest.raises(Invalid) as caught:
        connect(world, imap={"security": "none", "port": 143})
    # Then the answer is the plain-text refusal (400), not the taken address (409)
    assert caught.value.code == "insecure_not_allowed"


@pytest.mark.parametrize("server", ["imap", "smtp"])
def test_a_stored_plain_text_server_is_refused_outside_local_mode(server: str) -> None:
    # Given a server stored as plain text (connected while the stack allowed it)
    stored = PublicServerSettings(host="mail.example.com", port=143, security=Security.NONE, username="alice")
    settings = accounts.imap_settings if server == "imap" else accounts.smtp_settings
    # When a stack outside local mode builds its login settings (sync or send time)
    with pytest.raises(Invalid) as caught:
        settings(stored, "pw", allow_private=False)
    # Then it refuses plain text before anything connects
    assert caught.value.code == "insecure_not_allowed"
    # And in local mode the same server is allowed, insecure on purpose
    assert settings(stored, "pw", allow_private=True).allow_insecure is True


@pytest.mark.parametrize("remaining_ms", [4000, 3000])
def test_without_time_left_for_a_login_nothing_is_tried(world: World, remaining_ms: int) -> None:
    with pytest.raises(ProviderUnreachable) as caught:
        accounts.connect_account(world.member, create_body(), world.deps, remaining_ms=remaining_ms)
    assert (caught.value.code, caught.value.message) == (
        "timeout",
        "no time left to check the login; try again",
    )
    assert world.servers.imap == []


@pytest.mark.parametrize("change", [{"imap": {"password": "new-pw"}}, {"smtp": {"password": "new-smtp-pw"}}])
def test_a_patch_without_time_left_for_a_login_tries_none_and_writes_nothing(
    world: World, change: dict[str, Any]
) -> None:
    # Given an account, and a PATCH request whose Lambda has less time left than the response margin
    account_id = connect(world)
    world.servers.imap.clear()
    world.servers.smtp.clear()
    # When a new password is set
    with pytest.raises(ProviderUnreachable) as caught:
        accounts.update_account(
            world.member, account_id, AccountPatch.model_validate(change), world.deps, remaining_ms=3000
        )
    # Then it times out before any login, and the stored account and secrets are unchanged
    assert caught.value.code == "timeout"
    assert (world.servers.imap, world.servers.smtp) == ([], [])
    assert world.store.get_account(world.tenant, account_id).version == 1
    assert world.secrets(account_id) == {"imap_password": "imap-pw", "smtp_password": "smtp-pw"}


# ------------------------------------------------------------------------------ PATCH


def test_a_display_name_change_needs_no_login_and_keeps_the_credentials(world: World) -> None:
    account_id = connect(world)
    world.servers.imap.clear()
    envelope = world.store.get_credentials(world.tenant, account_id)
    out = patch(world, account_id, display_name="Alice Doe")
    assert (out.display_name, out.version) == ("Alice Doe", 2)
    assert world.store.get_account(world.tenant, account_id).display_name == "Alice Doe"
    assert world.store.get_credentials(world.tenant, account_id) == envelope
    assert world.servers.imap == []
    assert len(world.queue.sent) == 1  # the connect's sync only
    # And null clears it
    assert patch(world, account_id, display_name=None).display_name is None


def test_a_patch_with_nothing_in_it_writes_nothing(world: World) -> None:
    account_id = connect(world)
    assert patch(world, account_id).version == 1
    assert patch(world, account_id, version=1).version == 1


def test_a_patch_against_an_older_version_is_a_conflict(world: World) -> None:
    account_id = connect(world)
    patch(world, account_id, display_name="x")
    with pytest.raises(Conflict) as caught:
        patch(world, account_id, version=1, display_name="y")
    assert (caught.value.code, caught.value.message) == (
        "version_conflict",
        "the account was changed by someone else",
    )
    assert world.store.get_account(world.tenant, account_id).display_name == "x"


def test_a_new_password_is_tried_then_sealed_with_the_smtp_password_kept(world: World) -> None:
    account_id = connect(world)
    world.servers.imap.clear()
    out = patch(world, account_id, imap={"password": "new-imap-pw"})
    (imap,) = world.servers.imap
    assert (imap.host, imap.username, imap.password.get_secret_value()) == (
        "imap.example.com",
        "alice",
        "new-imap-pw",
    )
    assert imap.deadline is not None
    assert world.secrets(account_id) == {"imap_password": "new-imap-pw", "smtp_password": "smtp-pw"}
    assert out.version == 2
    assert len(world.queue.sent) == 1  # not failed before: no sync needed


def test_a_rejected_new_password_changes_nothing(world: World) -> None:
    account_id = connect(world)
    world.servers.imap_error = ProviderAuthError("no", code="auth_failed")
    with pytest.raises(ProviderAuthError):
        patch(world, account_id, imap={"password": "wrong"})
    assert world.secrets(account_id)["imap_password"] == "imap-pw"
    assert world.store.get_account(world.tenant, account_id).version == 1


def test_an_account_whose_credentials_are_gone_is_refused_as_auth_failed(world: World) -> None:
    # Given an account whose stored credentials are missing (the item lost its sealed envelope)
    account_id = connect(world)
    world.servers.imap.clear()
    world.store.table.update_item(
        Key={"pk": f"TENANT#{world.tenant}", "sk": f"ACCOUNT#{account_id}"},
        UpdateExpression="REMOVE credentials",
    )
    # When a new password is set
    with pytest.raises(ProviderAuthError) as caught:
        patch(world, account_id, imap={"password": "new-pw"})
    # Then it is refused as a credentials failure, before any login, and nothing is written
    assert (caught.value.code, caught.value.message) == ("auth_failed", "no credentials stored")
    assert world.servers.imap == []
    assert world.store.get_account(world.tenant, account_id).version == 1


def test_a_new_password_brings_an_account_failed_on_its_credentials_back(world: World) -> None:
    # Given an account whose sync failed on rejected credentials, out of the poll
    account_id = connect(world)
    failed = SyncState(stage=SyncStage.FAILED, reason="auth_failed", last_error="rejected")
    world.store.set_sync_state(world.tenant, account_id, failed, pollable=False)
    world.queue.sent.clear()
    assert account_id not in [a for _, a in world.store.pollable("imap")]
    # When a password that logs in is set
    patch(world, account_id, imap={"password": "new-imap-pw"})
    # Then it is pending with the failure cleared, back in the poll, and a sync is queued
    state = world.store.get_account(world.tenant, account_id).sync
    assert (state.stage, state.reason) == (SyncStage.PENDING, None)
    assert (world.tenant, account_id) in set(world.store.pollable("imap"))
    assert [(m.account_id, m.reason) for m in world.queue.sent] == [(account_id, "manual")]
    assert state.queued_at == world.queue.sent[0].requested_at


def test_another_failure_is_not_cleared_by_a_new_password(world: World) -> None:
    account_id = connect(world)
    world.store.set_sync_state(
        world.tenant, account_id, SyncState(stage=SyncStage.FAILED, reason="unreachable")
    )
    world.queue.sent.clear()
    patch(world, account_id, imap={"password": "new-imap-pw"})
    state = world.store.get_account(world.tenant, account_id).sync
    assert (state.stage, state.reason) == (SyncStage.FAILED, "unreachable")
    assert world.queue.sent == []


def test_adding_a_folder_queues_a_sync_and_removing_one_forgets_its_state(world: World) -> None:
    account_id = connect(world, folders=["Projects", "Invoices"])
    for name in ("Projects", "Invoices"):
        world.store.save_folder_state(
            world.tenant, account_id, FolderState(name=name, uidvalidity=1, last_uid=5)
        )
    world.queue.sent.clear()
    # When Invoices is dropped and Archive added
    out = patch(world, account_id, folders=["Projects", "Archive"])
    # Then the account lists the new folders, Invoices' cursor is gone, Projects' kept, a sync queued
    assert out.folders == ["Projects", "Archive"]
    assert [f.name for f in world.store.folder_states(world.tenant, account_id)] == ["Projects"]
    assert [m.reason for m in world.queue.sent] == ["manual"]
    # And dropping one without adding any queues nothing
    world.queue.sent.clear()
    patch(world, account_id, folders=["Projects"])
    assert world.queue.sent == []


def test_a_folder_change_without_a_login_keeps_every_name_given(world: World) -> None:
    world.servers.sent_folder = "Sent Items"
    account_id = connect(world)
    assert patch(world, account_id, folders=["Sent Items", "Projects"]).folders == ["Sent Items", "Projects"]


def test_a_folder_change_with_a_login_leaves_the_sent_folder_out(world: World) -> None:
    world.servers.sent_folder = "Sent Items"
    account_id = connect(world)
    out = patch(world, account_id, folders=["Sent Items", "Projects"], imap={"password": "new-imap-pw"})
    assert out.folders == ["Projects"]


def test_removing_smtp_drops_its_settings_and_password(world: World) -> None:
    account_id = connect(world)
    out = patch(world, account_id, smtp=None)
    assert out.smtp is None
    assert world.secrets(account_id) == {"imap_password": "imap-pw", "smtp_password": None}
    assert len(world.servers.smtp) == 1  # no login for a removal


def test_an_smtp_change_merges_with_what_is_stored_and_logs_in_first(world: World) -> None:
    account_id = connect(world)
    world.servers.smtp.clear()
    # When only the host changes
    out = patch(world, account_id, smtp={"host": "smtp2.example.com"})
    # Then the login used the new host with the stored port, security, username and password
    (smtp,) = world.servers.smtp
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == (
        "smtp2.example.com",
        465,
        Security.SSL,
        "alice-smtp",
    )
    assert smtp.password is not None
    assert smtp.password.get_secret_value() == "smtp-pw"
    assert smtp.deadline is not None
    assert out.smtp == PublicServerSettings(
        host="smtp2.example.com", port=465, security=Security.SSL, username="alice-smtp"
    )
    assert world.secrets(account_id) == {"imap_password": "imap-pw", "smtp_password": "smtp-pw"}
    assert world.servers.imap[1:] == []  # no IMAP login for an SMTP change


def test_an_smtp_security_change_takes_its_default_port_unless_one_is_given(world: World) -> None:
    account_id = connect(world)
    assert patch(world, account_id, smtp={"security": "starttls"}).smtp.port is None
    assert patch(world, account_id, smtp={"security": "starttls", "port": 2525}).smtp.port == 2525
    assert patch(world, account_id, smtp={"username": "x", "password": "p2"}).smtp.port == 2525
    assert world.secrets(account_id)["smtp_password"] == "p2"


def test_a_first_smtp_setup_borrows_the_imap_password_when_it_names_none(world: World) -> None:
    account_id = connect(world, smtp=None)
    out = patch(world, account_id, smtp={"host": "smtp.example.com", "username": "alice"})
    assert out.smtp == PublicServerSettings(
        host="smtp.example.com", port=None, security=Security.SSL, username="alice"
    )
    password = world.servers.smtp[-1].password
    assert password is not None
    assert password.get_secret_value() == "imap-pw"
    assert world.secrets(account_id)["smtp_password"] == "imap-pw"


@pytest.mark.parametrize("change", [{"username": "alice"}, {"host": "smtp.example.com"}])
def test_a_first_smtp_setup_must_name_host_and_username(world: World, change: dict[str, str]) -> None:
    account_id = connect(world, smtp=None)
    with pytest.raises(Invalid) as caught:
        patch(world, account_id, smtp=change)
    assert (caught.value.code, caught.value.message) == (
        "smtp_incomplete",
        "the account has no SMTP settings yet: give host, username and password",
    )


def test_smtp_changed_to_plain_text_is_refused(world: World) -> None:
    account_id = connect(world)
    with pytest.raises(Invalid) as caught:
        patch(world, account_id, smtp={"security": "none"})
    assert caught.value.code == "insecure_not_allowed"
    assert world.store.get_account(world.tenant, account_id).smtp.security is Security.SSL  # type: ignore[union-attr]


def test_a_viewer_cannot_patch(world: World) -> None:
    account_id = connect(world)
    with pytest.raises(Forbidden):
        accounts.update_account(world.viewer, account_id, AccountPatch(display_name="x"), world.deps)


# ------------------------------------------------------------------------------ delete, sync, status


def test_delete_removes_the_account_and_queues_a_purge_only_when_asked(world: World) -> None:
    kept, purged = connect(world), connect(world, address="bob@example.com", imap={"username": "bob"})
    world.queue.sent.clear()
    accounts.delete_account(world.member, kept, world.deps, purge=False)
    accounts.delete_account(world.member, purged, world.deps, purge=True)
    for account_id in (kept, purged):
        with pytest.raises(NotFound):
            world.store.get_account(world.tenant, account_id)
    assert world.queue.sent == [PurgeAccount(tenant_id=world.tenant, account_id=purged)]
    with pytest.raises(Forbidden):
        accounts.delete_account(world.viewer, kept, world.deps, purge=False)


def test_a_sync_request_queues_a_manual_sync_and_shows_it_queued(world: World) -> None:
    account_id = connect(world)
    world.queue.sent.clear()
    status = accounts.request_sync(world.member, account_id, world.deps)
    (request,) = world.queue.sent
    assert (request.tenant_id, request.account_id, request.reason) == (world.tenant, account_id, "manual")
    assert status.queued_at == request.requested_at
    assert (status.account_id, status.stage) == (account_id, SyncStage.PENDING)
    with pytest.raises(Forbidden):
        accounts.request_sync(world.viewer, account_id, world.deps)


def test_a_sync_request_puts_only_a_failed_account_back_into_the_poll(world: World) -> None:
    failed, idle = connect(world), connect(world, address="bob@example.com", imap={"username": "bob"})
    # (both out of the poll index, as a sync failing on rejected credentials leaves them)
    world.store.set_sync_state(
        world.tenant, failed, SyncState(stage=SyncStage.FAILED, reason="auth_failed"), pollable=False
    )
    world.store.set_sync_state(
        world.tenant, idle, SyncState(stage=SyncStage.IDLE, reason="auth_failed"), pollable=False
    )
    accounts.request_sync(world.member, failed, world.deps)
    accounts.request_sync(world.member, idle, world.deps)
    pollable = set(world.store.pollable("imap"))
    assert (world.tenant, failed) in pollable
    assert (world.tenant, idle) not in pollable


def test_the_status_shows_the_sync_state_and_the_folders(world: World) -> None:
    account_id = connect(world)
    state = SyncState(
        stage=SyncStage.FAILED,
        reason="unreachable",
        last_success_at=NOW,
        last_error="down",
        last_error_at=NOW,
    )
    world.store.set_sync_state(world.tenant, account_id, state)
    folder = FolderState(name="INBOX", uidvalidity=3, last_uid=9)
    world.store.save_folder_state(world.tenant, account_id, folder)
    status = accounts.account_status(world.viewer, account_id, world.deps)
    assert status.model_dump() == {
        "account_id": account_id,
        "stage": SyncStage.FAILED,
        "reason": "unreachable",
        "last_success_at": NOW,
        "last_error": "down",
        "last_error_at": NOW,
        "queued_at": world.queue.sent[0].requested_at,  # the connect's sync, not started yet
        "reconcile_queued_at": None,
        "folders": [
            folder.model_dump()
            | {
                "server_count": None,
                "stored_count": 0,
                "last_reconcile_at": None,
                "cursor_age_seconds": None,
                "since_last_push_seconds": None,
                "verdict": "failed",  # the last sync failed
            }
        ],
    }


def test_listing_pages_through_the_tenants_accounts(world: World) -> None:
    first = connect(world)
    second = connect(world, address="bob@example.com", imap={"username": "bob"})
    page = accounts.list_accounts(world.viewer, world.deps, cursor=None, limit=1)
    assert page.next_cursor is not None
    rest = accounts.list_accounts(world.viewer, world.deps, cursor=page.next_cursor, limit=1)
    assert {a.account_id for a in page.items + rest.items} == {first, second}
    assert accounts.get_account(world.viewer, first, world.deps) == accounts.to_out(
        world.store.get_account(world.tenant, first)
    )
