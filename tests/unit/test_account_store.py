"""AccountStore's conditional writers against the template's accounts table on moto: what each
write stores, when its condition refuses it (and what it answers then), and what it leaves alone.
The sync fields (`queued_at`, `reconcile_queued_at`, `last_push_at`) each have their own writer;
the account's poll index entry (`pollable`) follows the sync verdicts; credentials are swapped
under their own version; uniqueness and push lookup items live and die with the account."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.resources import create_table
from local.template import load_template
from mailbridge import aws
from mailbridge.access import Mailbox, Visibility
from mailbridge.crypto import Envelope
from mailbridge.errors import Conflict, NotFound
from mailbridge.models.account import (
    Account,
    FolderPresence,
    FolderState,
    OAuthGrant,
    PublicServerSettings,
    ReconcileFindings,
    SyncStage,
    SyncState,
    sortable_utc,
)
from mailbridge.providers.imap.settings import Security
from mailbridge.store.accounts import AccountStore, account_sk, owner_record
from mailbridge.store.keys import digest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
MISSING = "acc_" + "0" * 20


def sealed(tag: str) -> Envelope:
    """An envelope as the store keeps it (the store never opens one)."""
    return Envelope(encrypted_key=f"key-{tag}", nonce=f"nonce-{tag}", ciphertext=f"ct-{tag}")


@pytest.fixture(scope="module")
def store() -> Iterator[AccountStore]:
    with mock_aws():
        aws.reset_clients()
        key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
        TEMPLATE.physical_ids["DataKey"] = key_id
        table = create_table(boto3.client("dynamodb", region_name="us-east-1"), TEMPLATE, "AccountsTable")
        yield AccountStore(table)
        aws.reset_clients()


@dataclass
class Tenant:
    store: AccountStore
    tenant_id: str

    def imap(self, address: str = "alice@example.com", username: str = "alice") -> Account:
        """A new IMAP account written to the store; returns it as stored."""
        account = Account(
            account_id="acc_" + uuid.uuid4().hex[:20],
            tenant_id=self.tenant_id,
            provider="imap",
            address=address,
            imap=PublicServerSettings(
                host="imap.example.com", port=993, security=Security.SSL, username=username
            ),
            created_at=T0,
            created_by="seed",
        )
        self.store.create_account(account, sealed("first"))
        return self.store.get_account(self.tenant_id, account.account_id)

    def gmail(self, address: str = "ada@example.com") -> Account:
        account = Account(
            account_id="acc_" + uuid.uuid4().hex[:20],
            tenant_id=self.tenant_id,
            provider="gmail",
            address=address,
            oauth=OAuthGrant(scopes=["gmail.modify"]),
            created_at=T0,
            created_by="seed",
        )
        self.store.create_account(account, sealed("first"))
        return self.store.get_account(self.tenant_id, account.account_id)

    def sync(self, account_id: str) -> SyncState:
        return self.store.get_account(self.tenant_id, account_id).sync

    def raw_sync(self, account_id: str) -> dict[str, Any]:
        """The stored `account.sync` map as it is in the table."""
        item = self.store.get(f"TENANT#{self.tenant_id}", account_sk(account_id), consistent=True)
        assert item is not None
        return dict(item["account"]["sync"])

    def polled(self, provider: str = "imap") -> set[str]:
        return {a for t, a in self.store.pollable(provider) if t == self.tenant_id}


@pytest.fixture
def tenant(store: AccountStore) -> Tenant:
    return Tenant(store, "t" + uuid.uuid4().hex[:12])


# ------------------------------------------------------------------------------ queued_at


def test_a_queued_sync_is_shown_until_the_sync_it_queued_starts(tenant: Tenant) -> None:
    # Given an account
    account_id = tenant.imap().account_id
    # When a sync is queued at T0+1 min
    assert tenant.store.mark_sync_queued(tenant.tenant_id, account_id, T0 + timedelta(minutes=1))
    # Then it is shown queued, at that time
    assert tenant.raw_sync(account_id)["queued_at"] == sortable_utc(T0 + timedelta(minutes=1))
    # When a sync requested earlier starts, the later request stays shown
    tenant.store.clear_sync_queued(tenant.tenant_id, account_id, T0)
    assert tenant.sync(account_id).queued_at == T0 + timedelta(minutes=1)
    # When the sync requested at that very time starts, it is cleared
    tenant.store.clear_sync_queued(tenant.tenant_id, account_id, T0 + timedelta(minutes=1))
    assert tenant.raw_sync(account_id)["queued_at"] is None


def test_a_sync_queued_for_a_gone_account_says_so_and_writes_nothing(tenant: Tenant) -> None:
    assert tenant.store.mark_sync_queued(tenant.tenant_id, MISSING, T0) is False
    tenant.store.clear_sync_queued(tenant.tenant_id, MISSING, T0)  # nothing to clear: no error
    with pytest.raises(NotFound):
        tenant.store.get_account(tenant.tenant_id, MISSING)


# ------------------------------------------------------------------------------ reconcile_queued_at


def test_a_queued_reconcile_holds_new_ones_until_it_finishes_or_goes_stale(tenant: Tenant) -> None:
    # Given an account with no reconcile queued
    account_id = tenant.imap().account_id
    store, t = tenant.store, tenant.tenant_id
    # When one is queued at T0
    assert store.mark_reconcile_queued(t, account_id, T0, stale_before=T0 - timedelta(hours=1))
    assert tenant.raw_sync(account_id)["reconcile_queued_at"] == sortable_utc(T0)
    # Then another requested while it is fresh is refused, and the first stands
    assert not store.mark_reconcile_queued(t, account_id, T0 + timedelta(minutes=5), stale_before=T0)
    assert not store.mark_reconcile_queued(
        t, account_id, T0 + timedelta(minutes=5), stale_before=T0 - timedelta(seconds=1)
    )
    assert tenant.sync(account_id).reconcile_queued_at == T0
    # When the first is older than the staleness bound (its record lost), a new one replaces it
    later = T0 + timedelta(hours=2)
    assert store.mark_reconcile_queued(t, account_id, later, stale_before=T0 + timedelta(seconds=1))
    assert tenant.sync(account_id).reconcile_queued_at == later
    # When it finishes, it is cleared, and a new one may be queued at once
    store.clear_reconcile_queued(t, account_id)
    assert tenant.raw_sync(account_id)["reconcile_queued_at"] is None
    assert store.mark_reconcile_queued(t, account_id, later, stale_before=T0)
    assert tenant.sync(account_id).reconcile_queued_at == later


def test_a_reconcile_is_queued_on_an_account_stored_before_the_field_existed(tenant: Tenant) -> None:
    # Given an account item whose sync map has no reconcile_queued_at (written before the field)
    account_id = tenant.imap().account_id
    tenant.store.table.update_item(
        Key={"pk": f"TENANT#{tenant.tenant_id}", "sk": account_sk(account_id)},
        UpdateExpression="REMOVE #a.#s.#f, #a.#s.#p",
        ExpressionAttributeNames={
            "#a": "account",
            "#s": "sync",
            "#f": "reconcile_queued_at",
            "#p": "last_push_at",
        },
    )
    # When a reconcile is queued and a push noted / Then both are written
    assert tenant.store.mark_reconcile_queued(tenant.tenant_id, account_id, T0, stale_before=T0)
    tenant.store.note_push(tenant.tenant_id, account_id, T0)
    assert (tenant.sync(account_id).reconcile_queued_at, tenant.sync(account_id).last_push_at) == (T0, T0)


def test_a_reconcile_of_a_gone_account_is_not_queued(tenant: Tenant) -> None:
    assert tenant.store.mark_reconcile_queued(tenant.tenant_id, MISSING, T0, stale_before=T0) is False
    tenant.store.clear_reconcile_queued(tenant.tenant_id, MISSING)  # nothing to clear: no error
    with pytest.raises(NotFound):
        tenant.store.get_account(tenant.tenant_id, MISSING)


# ------------------------------------------------------------------------------ last_push_at


def test_the_last_push_time_only_moves_forward(tenant: Tenant) -> None:
    # Given an account that never had a push
    account_id = tenant.gmail().account_id
    store, t = tenant.store, tenant.tenant_id
    # When pushes arrive at T0, then T0+1 s, then a late one of T0-1 s and a repeat of T0+1 s
    store.note_push(t, account_id, T0)
    assert tenant.raw_sync(account_id)["last_push_at"] == sortable_utc(T0)
    store.note_push(t, account_id, T0 + timedelta(seconds=1))
    store.note_push(t, account_id, T0 - timedelta(seconds=1))
    # Then the latest is kept
    assert tenant.sync(account_id).last_push_at == T0 + timedelta(seconds=1)
    # And a repeat of the same time keeps it too
    store.note_push(t, account_id, T0 + timedelta(seconds=1))
    assert tenant.sync(account_id).last_push_at == T0 + timedelta(seconds=1)
    # And a push for a gone account writes nothing and raises nothing
    store.note_push(t, MISSING, T0)
    with pytest.raises(NotFound):
        store.get_account(t, MISSING)


# ------------------------------------------------------------------------------ set_sync_state


def test_the_sync_state_is_written_but_the_fields_with_their_own_writers_are_left_alone(
    tenant: Tenant,
) -> None:
    # Given an account with a queued sync, a queued reconcile and a push noted
    account_id = tenant.imap().account_id
    store, t = tenant.store, tenant.tenant_id
    store.mark_sync_queued(t, account_id, T0)
    store.mark_reconcile_queued(t, account_id, T0, stale_before=T0)
    store.note_push(t, account_id, T0)
    # When a sync finishes and writes its state (with those fields unset)
    store.set_sync_state(
        t, account_id, SyncState(stage=SyncStage.IDLE, last_success_at=T0 + timedelta(minutes=3))
    )
    # Then the state is written and the three are as their writers left them
    state = tenant.sync(account_id)
    assert (state.stage, state.last_success_at) == (SyncStage.IDLE, T0 + timedelta(minutes=3))
    assert (state.queued_at, state.reconcile_queued_at, state.last_push_at) == (T0, T0, T0)


def test_a_credentials_failure_leaves_the_poll_and_a_recovery_with_its_provider_rejoins_it(
    tenant: Tenant,
) -> None:
    # Given a polled account
    account_id = tenant.imap().account_id
    store, t = tenant.store, tenant.tenant_id
    assert tenant.polled() == {account_id}
    # When its sync fails on its credentials (not pollable)
    failed = SyncState(stage=SyncStage.FAILED, reason="auth_failed", last_error="login refused")
    store.set_sync_state(t, account_id, failed, pollable=False, provider="imap")
    # Then it is failed and out of the poll
    assert (tenant.sync(account_id).stage, tenant.sync(account_id).reason) == (
        SyncStage.FAILED,
        "auth_failed",
    )
    assert tenant.polled() == set()
    # When a state is written as pollable but without the provider, it stays out
    store.set_sync_state(t, account_id, SyncState(stage=SyncStage.SYNCING))
    assert tenant.polled() == set()
    # When a sync recovers it, naming its provider, it is polled again
    store.set_sync_state(t, account_id, SyncState(stage=SyncStage.IDLE), provider="imap")
    assert tenant.polled() == {account_id}
    assert tenant.sync(account_id).stage == SyncStage.IDLE


def test_the_sync_state_of_a_gone_account_is_not_found(tenant: Tenant) -> None:
    with pytest.raises(NotFound) as raised:
        tenant.store.set_sync_state(
            tenant.tenant_id, MISSING, SyncState(stage=SyncStage.IDLE), provider="imap"
        )
    assert (raised.value.code, raised.value.message) == ("account_not_found", "no such account")
    with pytest.raises(NotFound):
        tenant.store.get_account(tenant.tenant_id, MISSING)


def test_make_pollable_puts_an_account_back_in_its_providers_poll(tenant: Tenant) -> None:
    account_id = tenant.imap().account_id
    tenant.store.set_sync_state(
        tenant.tenant_id, account_id, SyncState(stage=SyncStage.FAILED), pollable=False
    )
    assert tenant.polled() == set()
    tenant.store.make_pollable(tenant.tenant_id, account_id, "imap")
    assert tenant.polled() == {account_id}


def test_make_pollable_on_a_deleted_account_writes_no_item(tenant: Tenant) -> None:
    # Given an account that was deleted (say while a sync request for it was on its way)
    account_id = tenant.imap().account_id
    tenant.store.delete_account(tenant.tenant_id, account_id)
    # When it is made pollable again, the table refuses the write: a typed 404, never a raw
    # botocore error that the API would answer with a 500
    with pytest.raises(NotFound) as raised:
        tenant.store.make_pollable(tenant.tenant_id, account_id, "imap")
    # The code and the message are what the API answers ({"error": {"code", "message"}})
    assert (raised.value.code, raised.value.message) == ("account_not_found", "no such account")
    # Then no item was written back: not the account's key, nor anything in the poll
    assert tenant.store.get(f"TENANT#{tenant.tenant_id}", account_sk(account_id), consistent=True) is None
    assert tenant.polled() == set()


# ------------------------------------------------------------------------------ reauth


def test_reauth_required_is_marked_once_and_takes_the_account_out_of_the_poll(tenant: Tenant) -> None:
    # Given a polled Gmail account
    account_id = tenant.gmail().account_id
    store, t = tenant.store, tenant.tenant_id
    assert tenant.polled("gmail") == {account_id}
    # When its grant is found revoked, twice
    first = store.mark_reauth_required(t, account_id, T0, "the grant was revoked")
    second = store.mark_reauth_required(t, account_id, T0 + timedelta(seconds=1), "again")
    # Then only the first call made the change (its event goes out once)
    assert (first, second) == (True, False)
    state = tenant.sync(account_id)
    assert (state.stage, state.reason, state.last_error, state.last_error_at) == (
        SyncStage.FAILED,
        "reauth_required",
        "the grant was revoked",
        T0,
    )
    assert tenant.polled("gmail") == set()
    # And a gone account is not marked
    assert store.mark_reauth_required(t, MISSING, T0, "x") is False


# ------------------------------------------------------------------------------ credentials


def test_credentials_are_swapped_only_against_the_version_read(tenant: Tenant) -> None:
    # Given an account whose credentials were never rewritten (version 0)
    account_id = tenant.gmail().account_id
    store, t = tenant.store, tenant.tenant_id
    assert store.get_versioned_credentials(t, account_id) == (sealed("first"), 0)
    # When two writers both read version 0 and swap
    assert store.swap_credentials(t, account_id, sealed("a"), 0) is True
    assert store.swap_credentials(t, account_id, sealed("b"), 0) is False
    # Then the first one's credentials are kept, at version 1
    assert store.get_versioned_credentials(t, account_id) == (sealed("a"), 1)
    # And a swap against version 1 goes through (version 2); a stale one against 1 does not
    assert store.swap_credentials(t, account_id, sealed("c"), 1) is True
    assert store.swap_credentials(t, account_id, sealed("d"), 1) is False
    assert store.get_versioned_credentials(t, account_id) == (sealed("c"), 2)
    assert store.get_credentials(t, account_id) == sealed("c")


def test_replacing_credentials_raises_their_version(tenant: Tenant) -> None:
    account_id = tenant.gmail().account_id
    store, t = tenant.store, tenant.tenant_id
    store.replace_credentials(t, account_id, sealed("r1"))
    assert store.get_versioned_credentials(t, account_id) == (sealed("r1"), 1)
    store.replace_credentials(t, account_id, sealed("r2"))
    assert store.get_versioned_credentials(t, account_id) == (sealed("r2"), 2)
    # And the account's own version is untouched
    assert store.get_account(t, account_id).version == 1


def test_an_account_without_stored_credentials_reads_as_none_at_version_0(tenant: Tenant) -> None:
    # Given an account item that holds no sealed credentials (the token cache reads this as "no
    # token cache is stored": the account needs a new grant, oauth/tokens.py)
    account_id = tenant.gmail().account_id
    tenant.store.table.update_item(
        Key={"pk": f"TENANT#{tenant.tenant_id}", "sk": account_sk(account_id)},
        UpdateExpression="REMOVE credentials",
    )
    # Then both readers answer None (not a validation error), and the version is 0
    assert tenant.store.get_versioned_credentials(tenant.tenant_id, account_id) == (None, 0)
    assert tenant.store.get_credentials(tenant.tenant_id, account_id) is None


def test_credentials_of_a_gone_account_are_not_found(tenant: Tenant) -> None:
    store, t = tenant.store, tenant.tenant_id
    for write in (
        lambda: store.swap_credentials(t, MISSING, sealed("x"), 0),
        lambda: store.swap_credentials(t, MISSING, sealed("x"), 3),
        lambda: store.replace_credentials(t, MISSING, sealed("x")),
        lambda: store.get_versioned_credentials(t, MISSING),
    ):
        with pytest.raises(NotFound) as raised:
            write()
        # The code and the message are what the API answers ({"error": {"code", "message"}})
        assert (raised.value.code, raised.value.message) == ("account_not_found", "no such account")


# ------------------------------------------------------------------------------ create, update, delete


def test_one_address_and_one_imap_login_make_one_account_per_tenant(tenant: Tenant) -> None:
    # Given an account of alice@example.com logging in as "alice"
    first = tenant.imap()
    store, t = tenant.store, tenant.tenant_id
    # When another names the same address (in other case) / Then address taken
    with pytest.raises(Conflict) as address:
        tenant.imap(address="Alice@Example.com", username="other")
    assert (address.value.code, address.value.details) == ("account_exists", {"field": "address"})
    # (the message is answered too: {"error": {"code", "message", "details"}}, api/errors.py)
    assert address.value.message == "a mailbox with this address is already connected"
    # When another uses the same login under another address / Then login taken
    with pytest.raises(Conflict) as login:
        tenant.imap(address="bob@example.com", username="alice")
    assert (login.value.code, login.value.details) == ("account_exists", {"field": "login"})
    assert login.value.message == "this IMAP login (server and user name) is already connected"
    # And the early check answers the same, each on its own
    with pytest.raises(Conflict) as early:
        store.check_unique(t, "ALICE@example.com", "imap.other.example", "nobody")
    assert early.value.details == {"field": "address"}
    with pytest.raises(Conflict) as early_login:
        store.check_unique(t, "carol@example.com", "IMAP.example.com.", "alice")
    assert early_login.value.details == {"field": "login"}
    store.check_unique(t, "carol@example.com", "imap.example.com", "Alice")  # user names are exact
    # And only the first account exists
    assert [a.account_id for a in store.list_accounts(t, cursor=None, limit=10)[0]] == [first.account_id]


def test_the_uniqueness_and_push_items_are_stored_under_their_documented_keys(tenant: Tenant) -> None:
    # Given an IMAP account and a Gmail account (keys as the module docstring documents them:
    # they must stay the same across deploys, or a stored account would stop holding its address)
    imap = tenant.imap(address="Alice@Example.com", username="Alice")
    gmail = tenant.gmail(address="Ada@Example.com")
    pk = f"TENANT#{tenant.tenant_id}"
    # Then the address (lower-cased) and the login (host lower-cased, NUL, user name) name the account
    for sk in ("UNIQUE#ADDRESS#alice@example.com", "UNIQUE#LOGIN#" + digest("imap.example.com\x00Alice")):
        assert tenant.store.get(pk, sk, consistent=True) == {
            "pk": pk,
            "sk": sk,
            "account_id": imap.account_id,
        }
    # And the Gmail mailbox has its address item and its cross-tenant push lookup, no login
    assert tenant.store.get(pk, "UNIQUE#ADDRESS#ada@example.com", consistent=True) is not None
    push = tenant.store.get(
        "PUSH#gmail#ada@example.com", f"TENANT#{tenant.tenant_id}#ACCOUNT#{gmail.account_id}"
    )
    assert push == {
        "pk": "PUSH#gmail#ada@example.com",
        "sk": f"TENANT#{tenant.tenant_id}#ACCOUNT#{gmail.account_id}",
        "tenant_id": tenant.tenant_id,
        "account_id": gmail.account_id,
    }


def test_the_same_account_is_not_created_twice(tenant: Tenant) -> None:
    # Given a stored account / When it is created again / Then the account's own write refuses it
    account = tenant.imap()
    with pytest.raises(Conflict) as raised:
        tenant.store.create_account(account, sealed("again"))
    assert (raised.value.code, raised.value.message) == ("already_exists", "the account exists")
    assert tenant.store.get_credentials(tenant.tenant_id, account.account_id) == sealed("first")


def test_deleting_an_account_never_deletes_an_item_another_account_holds(tenant: Tenant) -> None:
    # Given an account whose address item is held by another account (written over by hand)
    account = tenant.imap()
    pk, sk = f"TENANT#{tenant.tenant_id}", "UNIQUE#ADDRESS#alice@example.com"
    tenant.store.table.put_item(Item={"pk": pk, "sk": sk, "account_id": "acc_other"})
    # When the account is deleted
    tenant.store.delete_account(tenant.tenant_id, account.account_id)
    # Then the other's item is kept, and the account's own login item is gone
    assert tenant.store.get(pk, sk, consistent=True) == {"pk": pk, "sk": sk, "account_id": "acc_other"}
    tenant.store.check_unique(tenant.tenant_id, "bob@example.com", "imap.example.com", "alice")


def test_an_account_deleted_by_another_request_meanwhile_is_not_found(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an account that another request deletes right after this one has read it
    account = tenant.imap()
    store, t = tenant.store, tenant.tenant_id
    read = store.get_account

    def read_then_lose_it(tenant_id: str, account_id: str) -> Account:
        found = read(tenant_id, account_id)
        store.table.delete_item(Key={"pk": f"TENANT#{t}", "sk": account_sk(account_id)})
        return found

    monkeypatch.setattr(store, "get_account", read_then_lose_it)
    # When this request deletes it
    with pytest.raises(NotFound) as raised:
        store.delete_account(t, account.account_id)
    # Then the answer is the API's not-found (code and message), and its address stays held:
    # the transaction wrote nothing
    assert (raised.value.code, raised.value.message) == ("account_not_found", "no such account")
    with pytest.raises(Conflict):
        store.check_unique(t, "alice@example.com", "imap.other.example", "nobody")


def test_an_address_taken_over_between_the_read_and_the_delete_is_a_conflict_and_kept(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an account whose address item passes to another account right after the deletion
    # has read it (the address freed and connected again by another request meanwhile)
    account = tenant.imap()
    store, t = tenant.store, tenant.tenant_id
    pk, sk = f"TENANT#{t}", "UNIQUE#ADDRESS#alice@example.com"
    read = store.get

    def read_then_lose_it(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        if args[:2] == (pk, sk):
            store.table.put_item(Item={"pk": pk, "sk": sk, "account_id": "acc_other"})
        return found

    monkeypatch.setattr(store, "get", read_then_lose_it)
    # When the account is deleted
    with pytest.raises(Conflict) as raised:
        store.delete_account(t, account.account_id)
    monkeypatch.undo()
    # Then the answer is the API's retryable conflict, and nothing was deleted: the account and
    # the other account's address item are there
    assert (raised.value.code, raised.value.message) == (
        "conflict",
        "a concurrent change got there first; try again",
    )
    assert store.get_account(t, account.account_id).account_id == account.account_id
    assert store.get(pk, sk, consistent=True) == {"pk": pk, "sk": sk, "account_id": "acc_other"}


def test_every_read_an_account_deletion_makes_is_strongly_consistent(tenant: Tenant) -> None:
    # Given an account with a folder state
    account = tenant.imap()
    store, t = tenant.store, tenant.tenant_id
    store.save_folder_state(t, account.account_id, FolderState(name="INBOX", uidvalidity=7, last_uid=3))
    sent: list[tuple[str, Any]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, params.get("ConsistentRead")))

    events = store.table.meta.client.meta.events
    events.register("provide-client-params.dynamodb", record)
    try:
        # When it is deleted
        store.delete_account(t, account.account_id)
    finally:
        events.unregister("provide-client-params.dynamodb", record)
    # Then the account, its address and login items (whose holder decides what is deleted) and
    # its folder states were read strongly consistent (GetItem/Query API reference,
    # ConsistentRead): an eventually consistent read may miss the latest write
    reads = [(name, consistent) for name, consistent in sent if name in ("GetItem", "Query")]
    assert reads == [("GetItem", True)] * 3 + [("Query", True)]


def test_deleting_an_account_frees_its_address_and_login_and_forgets_its_folders(tenant: Tenant) -> None:
    # Given an account with a folder state
    account = tenant.imap()
    store, t = tenant.store, tenant.tenant_id
    store.save_folder_state(t, account.account_id, FolderState(name="INBOX", uidvalidity=7, last_uid=3))
    # When it is deleted
    store.delete_account(t, account.account_id)
    # Then it is gone, its folder state too, and its address and login may be connected again
    with pytest.raises(NotFound):
        store.get_account(t, account.account_id)
    assert store.folder_states(t, account.account_id) == []
    store.check_unique(t, "alice@example.com", "imap.example.com", "alice")
    again = tenant.imap()
    assert store.get_account(t, again.account_id).address == "alice@example.com"
    # And deleting a gone account is not found
    with pytest.raises(NotFound) as raised:
        store.delete_account(t, account.account_id)
    assert raised.value.code == "account_not_found"


def test_an_oauth_mailbox_is_found_by_its_address_until_deleted(tenant: Tenant, store: AccountStore) -> None:
    # Given the same Gmail mailbox connected in two tenants
    other = Tenant(store, "t" + uuid.uuid4().hex[:12])
    mine, theirs = tenant.gmail("Ada.Push@example.com"), other.gmail("ada.push@example.com")
    # Then a push naming the address (any case) finds both
    assert sorted(store.accounts_for_address("gmail", "ADA.PUSH@example.com")) == sorted(
        [(tenant.tenant_id, mine.account_id), (other.tenant_id, theirs.account_id)]
    )
    assert store.accounts_for_address("graph", "ada.push@example.com") == []
    # When one is deleted / Then only the other is found
    store.delete_account(tenant.tenant_id, mine.account_id)
    assert store.accounts_for_address("gmail", "ada.push@example.com") == [
        (other.tenant_id, theirs.account_id)
    ]


def test_an_account_update_needs_the_version_read(tenant: Tenant) -> None:
    # Given an account at version 1
    account = tenant.imap()
    store, t = tenant.store, tenant.tenant_id
    # When its display name is written against version 1
    changed = store.update_account(
        account.model_copy(update={"display_name": "Alice L."}), fields=["display_name"], expected_version=1
    )
    # Then it is stored, at version 2, the credentials untouched
    assert (changed.display_name, changed.version) == ("Alice L.", 2)
    assert store.get_versioned_credentials(t, account.account_id) == (sealed("first"), 0)
    # When a writer still holding version 1 writes / Then a conflict, nothing written
    with pytest.raises(Conflict) as raised:
        store.update_account(
            account.model_copy(update={"display_name": "Stale"}), fields=["display_name"], expected_version=1
        )
    assert (raised.value.code, raised.value.message) == (
        "version_conflict",
        "the account was changed by someone else",
    )
    assert store.get_account(t, account.account_id).display_name == "Alice L."
    # When new credentials come with a change / Then they are stored and their version raised
    store.update_account(changed, fields=[], expected_version=2, credentials=sealed("new"))
    assert store.get_versioned_credentials(t, account.account_id) == (sealed("new"), 1)
    assert store.get_account(t, account.account_id).version == 3
    # And an update of a gone account is not found
    store.delete_account(t, account.account_id)
    with pytest.raises(NotFound):
        store.update_account(changed, fields=["display_name"], expected_version=3)


def test_a_reconnect_writes_its_grant_and_leaves_the_sync_state_as_the_sync_stored_it(tenant: Tenant) -> None:
    # Given a Gmail account read at version 1, whose sync state the sync function changes afterwards
    account = tenant.gmail()
    store, t = tenant.store, tenant.tenant_id
    store.set_sync_state(t, account.account_id, SyncState(stage=SyncStage.IDLE), provider="gmail")
    # When a reconnect writes the new grant (with its time) from the account it read
    grant = OAuthGrant(scopes=["gmail.modify", "contacts.readonly"], subject="sub-1", connected_at=T0)
    updated = store.update_account(
        account.model_copy(update={"oauth": grant, "display_name": "Stale"}),
        fields=["oauth"],
        expected_version=1,
        credentials=sealed("reconnected"),
    )
    # Then the grant is stored as given, the other fields and the sync state as stored before
    stored = store.get_account(t, account.account_id)
    assert stored.oauth == grant
    assert updated.oauth == grant
    assert stored.display_name == account.display_name
    assert stored.sync.stage is SyncStage.IDLE


def test_reads_before_connecting_an_account_are_strongly_consistent(tenant: Tenant) -> None:
    # Given an account
    account = tenant.imap()
    store, t = tenant.store, tenant.tenant_id
    sent: list[tuple[str, Any]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, params.get("ConsistentRead")))

    events = store.table.meta.client.meta.events
    events.register("provide-client-params.dynamodb", record)
    try:
        # When the early uniqueness check runs for a free address and login, and the account is read
        store.check_unique(t, "carol@example.com", "imap.example.com", "carol")
        store.get_account(t, account.account_id)
        store.get_credentials(t, account.account_id)
    finally:
        events.unregister("provide-client-params.dynamodb", record)
    # Then each GetItem asked for a strongly consistent read (an account connected a moment ago
    # must be seen: GetItem API reference, ConsistentRead)
    assert sent == [("GetItem", True)] * 4


# ------------------------------------------------------------------------------ contacts cursor


def test_the_contacts_sync_token_is_kept_per_account(tenant: Tenant) -> None:
    account_id = tenant.gmail().account_id
    store, t = tenant.store, tenant.tenant_id
    assert store.contacts_sync_token(t, account_id) is None
    store.save_contacts_sync_token(t, account_id, "tok-1")
    assert store.contacts_sync_token(t, account_id) == "tok-1"
    store.save_contacts_sync_token(t, account_id, None)
    assert store.contacts_sync_token(t, account_id) is None


# ------------------------------------------------------------------------------ folder states


def test_a_folder_state_is_stored_once_under_its_key_and_read_back_whole(tenant: Tenant) -> None:
    # Given a Graph folder's state with every field set: a time, a presence, the delta link the
    # folder resumes from (never in an API answer, but stored) and the last reconcile's findings
    account_id, store, t = tenant.gmail().account_id, tenant.store, tenant.tenant_id
    state = FolderState(
        name="Sent Items/2026",
        state=FolderPresence.MISSING,
        reason="folder_not_found",
        uidvalidity=7,
        last_uid=42,
        highestmodseq=9,
        messages_on_server=40,
        messages_stored=41,
        last_synced_at=T0,
        delta_link="https://graph.microsoft.com/v1.0/me/mailFolders/x/messages/delta?$deltatoken=abc",
        history_id=5,
        pending_history_id=6,
        reconcile=ReconcileFindings(at=T0 + timedelta(hours=1), server_count=40, stored_count=41, extra=1),
    )
    # When it is saved
    store.save_folder_state(t, account_id, state)
    # Then it reads back as saved, delta link included, alone or with the account's folders
    assert store.folder_state(t, account_id, "Sent Items/2026") == state
    assert store.folder_state(t, account_id, "Sent Items/2026").delta_link == state.delta_link
    assert store.folder_states(t, account_id) == [state]
    # And the item sits under its documented key (the folder name URL-quoted), the name stored
    # once beside the state, times as ISO text
    item = store.get(f"TENANT#{t}", f"FOLDER#{account_id}#Sent%20Items%2F2026", consistent=True)
    assert item is not None
    assert item["name"] == "Sent Items/2026"
    assert "name" not in item["state"]
    assert item["state"]["last_synced_at"] == T0.isoformat().replace("+00:00", "Z")


def test_a_folder_never_saved_reads_as_a_fresh_state_of_that_name(tenant: Tenant) -> None:
    account_id = tenant.imap().account_id
    assert tenant.store.folder_state(tenant.tenant_id, account_id, "Archive") == FolderState(name="Archive")


def test_the_folder_cursor_and_the_contacts_token_are_read_strongly_consistent(tenant: Tenant) -> None:
    # Given an account whose folder cursor and contacts token were just written
    account_id, store, t = tenant.gmail().account_id, tenant.store, tenant.tenant_id
    store.save_folder_state(t, account_id, FolderState(name="INBOX", uidvalidity=1, last_uid=3))
    store.save_contacts_sync_token(t, account_id, "tok")
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    events = store.table.meta.client.meta.events
    events.register("provide-client-params.dynamodb.GetItem", record)
    try:
        # When the sync reads them back to carry on from them
        store.folder_state(t, account_id, "INBOX")
        store.contacts_sync_token(t, account_id)
    finally:
        events.unregister("provide-client-params.dynamodb.GetItem", record)
    # Then each GetItem asks for a strongly consistent read (GetItem API reference, ConsistentRead):
    # an eventually consistent one may miss the write just made and resume from an older cursor
    assert [params.get("ConsistentRead") for params in sent] == [True, True]


# ------------------------------------------------------------------------------ the table


def test_a_table_handed_in_is_the_one_read_and_written(tenant: Tenant, store: AccountStore) -> None:
    # Given an account, and a store handed the accounts table's handle under a name no table has
    account_id = tenant.imap().account_id
    handed = AccountStore("no-such-table", store.table)
    # Then it reads and writes through that handle (not a table of that name)
    assert handed.get_account(tenant.tenant_id, account_id).account_id == account_id
    handed.save_contacts_sync_token(tenant.tenant_id, account_id, "tok")
    assert store.contacts_sync_token(tenant.tenant_id, account_id) == "tok"


# ------------------------------------------------------------------------------ ownership


def owned(tenant: Tenant, owner: str, visibility: Visibility | None) -> str:
    """A new account of the tenant connected by `owner` with `visibility` (None: the tenant
    default); its id."""
    account = Account(
        account_id="acc_" + uuid.uuid4().hex[:20],
        tenant_id=tenant.tenant_id,
        provider="imap",
        address=f"{owner}.{uuid.uuid4().hex[:8]}@example.com",
        imap=PublicServerSettings(
            host="imap.example.com", port=993, security=Security.SSL, username=uuid.uuid4().hex
        ),
        created_at=T0,
        created_by=owner,
        visibility=visibility,
    )
    tenant.store.create_account(account, sealed("first"))
    return account.account_id


def test_mailboxes_give_each_accounts_owner_and_visibility_connected_or_disconnected(
    tenant: Tenant, store: AccountStore
) -> None:
    # Given a private mailbox, one on the tenant default, and a disconnected one (its OWNER# item)
    private = owned(tenant, "ada", Visibility.PRIVATE)
    default = owned(tenant, "bea", None)
    gone = owned(tenant, "cy", Visibility.SUBJECT)
    store.delete_account(tenant.tenant_id, gone)
    # and another tenant's mailbox
    other = Tenant(store, "t" + uuid.uuid4().hex[:12])
    owned(other, "ada", Visibility.FULL)
    # When the tenant's mailboxes are read
    found = store.mailboxes(tenant.tenant_id)
    # Then each account is there once with its owner and visibility, and only this tenant's
    assert found == {
        private: Mailbox(owner="ada", visibility=Visibility.PRIVATE),
        default: Mailbox(owner="bea", visibility=None),
        gone: Mailbox(owner="cy", visibility=Visibility.SUBJECT),
    }


def test_a_connected_accounts_own_item_decides_over_its_owner_record(
    tenant: Tenant, store: AccountStore
) -> None:
    # Given a connected account made private, whose OWNER# item (the ownership backfill's) says full
    account_id = owned(tenant, "ada", Visibility.PRIVATE)
    store.table.put_item(Item=owner_record(f"TENANT#{tenant.tenant_id}", account_id, "bea", "full"))
    # Then the account item decides while it exists
    assert store.mailboxes(tenant.tenant_id) == {
        account_id: Mailbox(owner="ada", visibility=Visibility.PRIVATE)
    }


def test_a_disconnect_keeps_the_owner_and_only_a_visibility_that_was_set(
    tenant: Tenant, store: AccountStore
) -> None:
    # Given two accounts, one on the tenant default and one private, both disconnected
    default, private = owned(tenant, "ada", None), owned(tenant, "bea", Visibility.PRIVATE)
    for account_id in (default, private):
        store.delete_account(tenant.tenant_id, account_id)
    # Then each leaves an OWNER# item under its documented key, holding the owner, and the
    # visibility only where one was set (none: the tenant default decides, as before)
    pk = f"TENANT#{tenant.tenant_id}"
    assert store.get(pk, f"OWNER#{default}", consistent=True) == {
        "pk": pk,
        "sk": f"OWNER#{default}",
        "owner": "ada",
    }
    assert store.get(pk, f"OWNER#{private}", consistent=True) == {
        "pk": pk,
        "sk": f"OWNER#{private}",
        "owner": "bea",
        "visibility": "private",
    }


EVERY_KIND = (
    "ada private",
    "ada default",
    "bea private",
    "bea metadata",
    "bea subject",
    "bea full",
    "bea default",
)


@pytest.mark.parametrize(
    ("default", "hidden"),
    [
        # a sharing tenant default: only the others' private mailboxes are left out
        (Visibility.METADATA, {"bea private"}),
        (Visibility.FULL, {"bea private"}),
        # a private tenant default: the others' mailboxes without a visibility are private too
        (Visibility.PRIVATE, {"bea private", "bea default"}),
    ],
)
def test_the_shared_listing_leaves_out_only_the_mailboxes_private_to_the_caller(
    store: AccountStore, default: Visibility, hidden: set[str]
) -> None:
    # Given Ada's and Bea's mailboxes of every visibility
    tenant = Tenant(store, "t" + uuid.uuid4().hex[:12])
    names: dict[str, str] = {}
    for kind in EVERY_KIND:
        owner, visibility = kind.split()
        names[owned(tenant, owner, None if visibility == "default" else Visibility(visibility))] = kind
    # When Ada lists them under the tenant default
    accounts, cursor = store.list_shared_accounts(tenant.tenant_id, "ada", default, cursor=None, limit=100)
    # Then she gets hers and the others' shared ones, in the listing's order, on one page
    assert [names[a.account_id] for a in accounts] == [n for _, n in sorted(names.items()) if n not in hidden]
    assert cursor is None
