"""Accounts table: connected mailboxes, their per-folder sync state, and what keeps them unique.

pk = TENANT#{tenant}, sk = ACCOUNT#{account_id}           the account (+ encrypted credentials and
                                                          `credentials_version`, which every
                                                          credentials write raises by one: the
                                                          optimistic lock of a rotating token cache)
pk = TENANT#{tenant}, sk = FOLDER#{account_id}#{folder}   per-folder cursor, counts, presence
pk = TENANT#{tenant}, sk = OWNER#{account_id}            a disconnected account's owner and
                                                          visibility (its mail may stay: it stays
                                                          as private as it was; mailbridge.access);
                                                          also written for connected accounts by
                                                          store.owner_backfill (the account item
                                                          decides while it exists)
pk = TENANT#{tenant}, sk = UNIQUE#ADDRESS#{address}       address lower-cased -> account_id
pk = TENANT#{tenant}, sk = UNIQUE#LOGIN#{digest}          sha256 of (IMAP host lower-cased,
                                                          username) -> account_id
pk = PUSH#{provider}#{address}, sk = TENANT#{tenant}#ACCOUNT#{account_id}
                                                          push lookup of an OAuth mailbox
                                                          (address lower-cased) -> tenant_id,
                                                          account_id
gsi1pk = POLL#{provider} on active accounts (sparse): what the poll schedule walks.

The UNIQUE items (address; the IMAP login for IMAP accounts) are written in the same transaction
as the account, each on condition that it does not exist, and deleted in the same transaction as
the account: one address, and one IMAP login, is one account per tenant, however many accounts
there are and however many creates race.

The PUSH items are the one cross-tenant key, by design: a provider's push names only the mailbox
address (Gmail's Pub/Sub notification carries `emailAddress`), and the same mailbox may be
connected in several tenants. Written and deleted with the account, they hold nothing but the ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.access import Mailbox, Visibility
from mailbridge.crypto import Envelope
from mailbridge.errors import Conflict, NotFound
from mailbridge.models.account import (
    OAUTH_PROVIDERS,
    REAUTH_REQUIRED,
    Account,
    FolderState,
    SyncStage,
    SyncState,
    sortable_utc,
)
from mailbridge.store.base import DynamoRepository, Write, is_condition_failure
from mailbridge.store.conditions import Attr, Key
from mailbridge.store.keys import digest, folder_key, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


_OWN_WRITERS = {"queued_at", "reconcile_queued_at", "last_push_at"}
"""SyncState fields that `set_sync_state` leaves alone: each has its own conditional writer."""


def _folder_state(item: dict[str, Any]) -> FolderState:
    return FolderState.model_validate({**dict(item.get("state") or {}), "name": item["name"]})


def _account(item: dict[str, Any]) -> Account:
    return Account.model_validate({**item["account"], "version": int(item["version"])})


def account_sk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def owner_sk(account_id: str) -> str:
    return f"OWNER#{account_id}"


def owner_record(pk: str, account_id: str, owner: str, visibility: str | None) -> dict[str, Any]:
    """The `OWNER#` item of an account: its owner and visibility (None: the tenant default)."""
    record: dict[str, Any] = {"pk": pk, "sk": owner_sk(account_id), "owner": owner}
    if visibility:
        record["visibility"] = visibility
    return record


def _mailbox(owner: Any, visibility: Any) -> Mailbox:
    return Mailbox(owner=str(owner), visibility=Visibility(str(visibility)) if visibility else None)


def folder_sk(account_id: str, folder: str) -> str:
    return f"FOLDER#{account_id}#{folder_key(folder)}"


def address_sk(address: str) -> str:
    return f"UNIQUE#ADDRESS#{address.lower()}"


def login_sk(host: str, username: str) -> str:
    # Host names are case-insensitive (RFC 4343) and may end in the root's dot; user names are
    # compared as the server would see them, exactly.
    return f"UNIQUE#LOGIN#{digest(host.lower().rstrip('.') + chr(0) + username)}"


def push_pk(provider: str, address: str) -> str:
    return f"PUSH#{provider}#{address.lower()}"


def push_sk(tenant_id: str, account_id: str) -> str:
    return f"TENANT#{tenant_id}#ACCOUNT#{account_id}"


def _unique_keys(account: Account) -> tuple[str, ...]:
    if account.imap is None:
        return (address_sk(account.address),)
    return address_sk(account.address), login_sk(account.imap.host, account.imap.username)


def _address_taken() -> Conflict:
    return Conflict(
        "a mailbox with this address is already connected",
        code="account_exists",
        details={"field": "address"},
    )


def _login_taken() -> Conflict:
    return Conflict(
        "this IMAP login (server and user name) is already connected",
        code="account_exists",
        details={"field": "login"},
    )


class AccountStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def create_account(self, account: Account, credentials: Envelope) -> None:
        """Write the account with its uniqueness items (and an OAuth mailbox's push lookup), all or
        nothing.

        Raises Conflict(account_exists, details.field = "address" | "login").
        """
        pk = tenant_pk(account.tenant_id)
        item = {
            "pk": pk,
            "sk": account_sk(account.account_id),
            "account": account.model_dump(mode="json"),
            "credentials": credentials.model_dump(),
            "gsi1pk": f"POLL#{account.provider}",
            "version": 1,
        }
        new = "attribute_not_exists(pk)"
        writes = [
            Write(
                {"Put": {"Item": item, "ConditionExpression": new}},
                lambda: Conflict("the account exists", code="already_exists"),
            )
        ]
        for sk, taken in zip(_unique_keys(account), (_address_taken, _login_taken), strict=False):
            writes.append(
                Write(
                    {
                        "Put": {
                            "Item": {"pk": pk, "sk": sk, "account_id": account.account_id},
                            "ConditionExpression": new,
                        }
                    },
                    taken,
                )
            )
        if account.provider in OAUTH_PROVIDERS:
            lookup = {
                "pk": push_pk(account.provider, account.address),
                "sk": push_sk(account.tenant_id, account.account_id),
                "tenant_id": account.tenant_id,
                "account_id": account.account_id,
            }
            writes.append(
                Write(
                    {"Put": {"Item": lookup}}, lambda: Conflict("the account exists", code="already_exists")
                )
            )
        self.transact(writes)

    def check_unique(self, tenant_id: str, address: str, host: str, username: str) -> None:
        """Conflict(account_exists) when the address or the login is taken: an early answer before
        logging in; `create_account` is what enforces it."""
        pk = tenant_pk(tenant_id)
        if self.get(pk, address_sk(address), consistent=True) is not None:
            raise _address_taken()
        if self.get(pk, login_sk(host, username), consistent=True) is not None:
            raise _login_taken()

    def _item(self, tenant_id: str, account_id: str) -> dict[str, Any]:
        item = self.get(tenant_pk(tenant_id), account_sk(account_id), consistent=True)
        if item is None:
            raise NotFound("no such account", code="account_not_found")
        return item

    def get_account(self, tenant_id: str, account_id: str) -> Account:
        return _account(self._item(tenant_id, account_id))

    def get_credentials(self, tenant_id: str, account_id: str) -> Envelope | None:
        raw = self._item(tenant_id, account_id).get("credentials")
        return Envelope.model_validate(raw) if raw else None

    def list_accounts(
        self, tenant_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Account], str | None]:
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("ACCOUNT#"),
            cursor=cursor,
            limit=limit,
        )
        return [_account(i) for i in items], next_cursor

    def list_shared_accounts(
        self, tenant_id: str, subject: str, default: Visibility, *, cursor: str | None, limit: int
    ) -> tuple[list[Account], str | None]:
        """`list_accounts` without the accounts private to `subject`: theirs, and the others whose
        visibility (or, without one, the tenant `default`) is not private. Filtered by DynamoDB,
        pages filled (`filled_query`), the same cursors as `list_accounts`."""
        mine = Attr("account.created_by").eq(subject)
        if default is Visibility.PRIVATE:
            shared = Attr("account.visibility").is_in(
                [Visibility.METADATA.value, Visibility.SUBJECT.value, Visibility.FULL.value]
            )
        else:
            shared = ~Attr("account.visibility").eq(Visibility.PRIVATE.value)
        items, next_cursor = self.filled_query(
            tenant_id,
            Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("ACCOUNT#"),
            mine | shared,
            cursor=cursor,
            limit=limit,
        )
        return [_account(i) for i in items], next_cursor

    def mailboxes(self, tenant_id: str) -> dict[str, Mailbox]:
        """Owner and visibility of every account of the tenant, connected or disconnected (the
        `OWNER#` items): what `mailbridge.access` decides with. Two Queries of small projections."""
        pk = tenant_pk(tenant_id)
        found: dict[str, Mailbox] = {}
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with("OWNER#"),
            ProjectionExpression="sk, #o, visibility",
            ExpressionAttributeNames={"#o": "owner"},
        ):
            found[str(item["sk"]).removeprefix("OWNER#")] = _mailbox(item["owner"], item.get("visibility"))
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with("ACCOUNT#"),
            ProjectionExpression="sk, #a.created_by, #a.visibility",
            ExpressionAttributeNames={"#a": "account"},
        ):
            account = item.get("account") or {}
            found[str(item["sk"]).removeprefix("ACCOUNT#")] = _mailbox(
                account.get("created_by"), account.get("visibility")
            )
        return found

    def update_account(
        self,
        account: Account,
        *,
        fields: Iterable[str],
        expected_version: int,
        credentials: Envelope | None = None,
    ) -> Account:
        """Write `fields` of `account` (and new credentials) if the stored version is still
        `expected_version`; the version goes up by one. The sync state is not touched.

        Raises NotFound(account_not_found) or Conflict(version_conflict).
        """
        values = account.model_dump(mode="json", include=set(fields))
        names = {"#v": "version"} | ({"#a": "account"} if values else {})
        expression_values: dict[str, Any] = {":expected": expected_version, ":one": 1}
        sets = ["#v = #v + :one"]
        for i, (field, value) in enumerate(values.items()):
            names[f"#f{i}"] = field
            expression_values[f":f{i}"] = value
            sets.append(f"#a.#f{i} = :f{i}")
        adds = ""
        if credentials is not None:
            expression_values[":c"] = credentials.model_dump()
            sets.append("credentials = :c")
            adds = " ADD credentials_version :one"
        key = {"pk": tenant_pk(account.tenant_id), "sk": account_sk(account.account_id)}
        try:
            response = self.table.update_item(
                Key=key,
                UpdateExpression="SET " + ", ".join(sets) + adds,
                ConditionExpression="attribute_exists(pk) AND #v = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expression_values,
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            self._item(account.tenant_id, account.account_id)  # NotFound when it is gone
            raise Conflict("the account was changed by someone else", code="version_conflict") from exc
        return _account(response["Attributes"])

    def set_sync_state(
        self,
        tenant_id: str,
        account_id: str,
        state: SyncState,
        *,
        pollable: bool = True,
        provider: str | None = None,
    ) -> None:
        """Record the sync stage; an account whose credentials failed leaves the poll index, and
        (given its `provider`) a pollable one is put back in it, whatever queued the sync that
        recovered it (a manual sync, a PATCH, a push).

        `queued_at` is left as it is: only `mark_sync_queued` and `clear_sync_queued` move it, so
        a sync finishing never hides one queued meanwhile; so are `reconcile_queued_at`
        (`mark_reconcile_queued`, `clear_reconcile_queued`) and `last_push_at` (`note_push`).
        """
        values: dict[str, Any] = {
            f":f{i}": value
            for i, value in enumerate(state.model_dump(mode="json", exclude=_OWN_WRITERS).values())
        }
        fields = list(state.model_dump(mode="json", exclude=_OWN_WRITERS))
        names = {"#a": "account", "#s": "sync"} | {f"#f{i}": field for i, field in enumerate(fields)}
        sets = [f"#a.#s.#f{i} = :f{i}" for i in range(len(fields))]
        if pollable and provider is not None:
            sets.append("gsi1pk = :poll")
            values[":poll"] = f"POLL#{provider}"
        expression = "SET " + ", ".join(sets) + ("" if pollable else " REMOVE gsi1pk")
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise NotFound("no such account", code="account_not_found") from exc
            raise

    def mark_sync_queued(self, tenant_id: str, account_id: str, at: datetime) -> bool:
        """Show that a sync requested at `at` is queued; False when the account is gone."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression="SET #a.#s.#q = :q",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#a": "account", "#s": "sync", "#q": "queued_at"},
                ExpressionAttributeValues={":q": sortable_utc(at)},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def mark_reconcile_queued(
        self, tenant_id: str, account_id: str, at: datetime, stale_before: datetime
    ) -> bool:
        """Show that a reconcile requested at `at` is queued, unless one queued after
        `stale_before` has not finished yet (then False: that one stands). A reconcile whose
        record was lost (its queue's DLQ) stops holding new ones once it is older than that."""
        return self._set_sync_field(
            tenant_id,
            account_id,
            "reconcile_queued_at",
            sortable_utc(at),
            "attribute_not_exists(#a.#s.#f) OR #a.#s.#f = :null OR #a.#s.#f < :stale",
            {":stale": sortable_utc(stale_before)},
        )

    def clear_reconcile_queued(self, tenant_id: str, account_id: str) -> None:
        """The queued reconcile finished (whatever it found): a new one may be requested."""
        self._set_sync_field(tenant_id, account_id, "reconcile_queued_at", None)

    def note_push(self, tenant_id: str, account_id: str, at: datetime) -> None:
        """Record that a push for the mailbox arrived at `at` (only ever later)."""
        self._set_sync_field(
            tenant_id,
            account_id,
            "last_push_at",
            sortable_utc(at),
            "attribute_not_exists(#a.#s.#f) OR #a.#s.#f = :null OR #a.#s.#f < :v",
        )

    def _set_sync_field(
        self,
        tenant_id: str,
        account_id: str,
        name: str,
        value: str | None,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """Set `account.sync.<name>` to `value` (`:v`) on an existing account, only where
        `condition` holds (`#f` names the field, `:null` is null); False when it does not."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression="SET #a.#s.#f = :v",
                ConditionExpression="attribute_exists(pk)" + (f" AND ({condition})" if condition else ""),
                ExpressionAttributeNames={"#a": "account", "#s": "sync", "#f": name},
                ExpressionAttributeValues={
                    ":v": value,
                    **({":null": None} if condition else {}),
                    **(values or {}),
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def clear_sync_queued(self, tenant_id: str, account_id: str, requested_at: datetime) -> None:
        """A sync requested at `requested_at` started: clear `queued_at` unless a later request
        was queued since (its time sorts after; times are stored fixed-width)."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression="SET #a.#s.#q = :null",
                ConditionExpression="#a.#s.#q <= :r",
                ExpressionAttributeNames={"#a": "account", "#s": "sync", "#q": "queued_at"},
                ExpressionAttributeValues={":null": None, ":r": sortable_utc(requested_at)},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def make_pollable(self, tenant_id: str, account_id: str, provider: str) -> None:
        """Put the account back in the `provider`'s poll index. Raises NotFound(account_not_found)
        when the account is gone (deleted between a caller's read and this write): no item is
        written for it."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression="SET gsi1pk = :p",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":p": f"POLL#{provider}"},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise NotFound("no such account", code="account_not_found") from exc
            raise

    def delete_account(self, tenant_id: str, account_id: str) -> None:
        """Delete the account, its credentials and its uniqueness items in one transaction, then
        its folder states. Raises NotFound(account_not_found)."""
        pk = tenant_pk(tenant_id)
        account = self.get_account(tenant_id, account_id)

        def gone() -> NotFound:
            return NotFound("no such account", code="account_not_found")

        writes = [
            Write(
                {
                    "Delete": {
                        "Key": {"pk": pk, "sk": account_sk(account_id)},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                gone,
            )
        ]
        for sk in _unique_keys(account):
            held = self.get(pk, sk, consistent=True)
            if held is not None and held.get("account_id") == account_id:  # never another's
                writes.append(
                    Write(
                        {
                            "Delete": {
                                "Key": {"pk": pk, "sk": sk},
                                "ConditionExpression": "account_id = :me",
                                "ExpressionAttributeValues": {":me": account_id},
                            }
                        },
                        lambda: Conflict("a concurrent change got there first; try again", code="conflict"),
                    )
                )
        if account.provider in OAUTH_PROVIDERS:
            lookup = {"pk": push_pk(account.provider, account.address), "sk": push_sk(tenant_id, account_id)}
            writes.append(Write({"Delete": {"Key": lookup}}, gone))
        # Mail kept after the disconnect keeps its owner and visibility (mailbridge.access).
        visibility = account.visibility.value if account.visibility is not None else None
        owner = owner_record(pk, account_id, account.created_by, visibility)
        writes.append(Write({"Put": {"Item": owner}}, gone))
        self.transact(writes)
        self.delete_folder_states(
            tenant_id, account_id, [s.name for s in self.folder_states(tenant_id, account_id)]
        )

    def delete_folder_states(self, tenant_id: str, account_id: str, folders: Iterable[str]) -> None:
        for folder in folders:
            self.delete(tenant_pk(tenant_id), folder_sk(account_id, folder))

    def accounts_for_address(self, provider: str, address: str) -> list[tuple[str, str]]:
        """(tenant_id, account_id) of every account of `provider` connected for `address`, in any
        tenant: what a provider push (which names only the mailbox) is routed by."""
        response = self.table.query(KeyConditionExpression=Key("pk").eq(push_pk(provider, address)))
        return [(str(i["tenant_id"]), str(i["account_id"])) for i in response["Items"]]

    def replace_credentials(self, tenant_id: str, account_id: str, credentials: Envelope) -> None:
        """Store new sealed credentials (a provider rotated a refresh token); the version and the
        sync state are not touched. Raises NotFound(account_not_found)."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression="SET credentials = :c ADD credentials_version :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":c": credentials.model_dump(), ":one": 1},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise NotFound("no such account", code="account_not_found") from exc
            raise

    def get_versioned_credentials(self, tenant_id: str, account_id: str) -> tuple[Envelope | None, int]:
        """The sealed credentials and their `credentials_version` (0 before the first rewrite),
        read consistently: what `swap_credentials` is conditioned on. Raises NotFound."""
        item = self._item(tenant_id, account_id)
        raw = item.get("credentials")
        return (Envelope.model_validate(raw) if raw else None), int(item.get("credentials_version", 0))

    def swap_credentials(
        self, tenant_id: str, account_id: str, credentials: Envelope, expected_version: int
    ) -> bool:
        """Write new sealed credentials only if `credentials_version` is still `expected_version`
        (then it becomes `expected_version + 1`); False when another writer got there first (read
        again and use theirs). Raises NotFound(account_not_found) when the account is gone."""
        condition = (
            "attribute_exists(pk) AND attribute_not_exists(credentials_version)"
            if expected_version == 0
            else "attribute_exists(pk) AND credentials_version = :expected"
        )
        values: dict[str, Any] = {":c": credentials.model_dump(), ":next": expected_version + 1}
        if expected_version:
            values[":expected"] = expected_version
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression="SET credentials = :c, credentials_version = :next",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            self._item(tenant_id, account_id)  # NotFound when it is gone
            return False
        return True

    def mark_reauth_required(self, tenant_id: str, account_id: str, at: datetime, message: str) -> bool:
        """Fail the account with `reauth_required` and take it out of the poll; True only for the
        call that made the change (so its event goes out once), False when it was already marked
        or the account is gone."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression=(
                    "SET #a.#s.#st = :failed, #a.#s.#r = :r, #a.#s.#e = :e, #a.#s.#ea = :at REMOVE gsi1pk"
                ),
                ConditionExpression="attribute_exists(pk) AND (NOT #a.#s.#r = :r)",
                ExpressionAttributeNames={
                    "#a": "account",
                    "#s": "sync",
                    "#st": "stage",
                    "#r": "reason",
                    "#e": "last_error",
                    "#ea": "last_error_at",
                },
                ExpressionAttributeValues={
                    ":failed": SyncStage.FAILED.value,
                    ":r": REAUTH_REQUIRED,
                    ":e": message,
                    ":at": at.isoformat(),
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def pollable(self, provider: str) -> Iterator[tuple[str, str]]:
        """(tenant_id, account_id) of every active account of a provider (1 MB a request)."""
        for item in self.query_all(
            IndexName="gsi1", KeyConditionExpression=Key("gsi1pk").eq(f"POLL#{provider}")
        ):
            yield str(item["pk"]).removeprefix("TENANT#"), str(item["sk"]).removeprefix("ACCOUNT#")

    # ------------------------------------------------------------------ folders
    def contacts_sync_token(self, tenant_id: str, account_id: str) -> str | None:
        """The People API sync token saved by the account's last contact import (None: none yet)."""
        item = self.get(tenant_pk(tenant_id), f"CURSOR#{account_id}#contacts", consistent=True)
        return str(item["sync_token"]) if item and item.get("sync_token") else None

    def save_contacts_sync_token(self, tenant_id: str, account_id: str, token: str | None) -> None:
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": f"CURSOR#{account_id}#contacts", "sync_token": token}
        )

    def folder_states(self, tenant_id: str, account_id: str) -> list[FolderState]:
        response = self.table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(f"FOLDER#{account_id}#"),
            ConsistentRead=True,
        )
        return [_folder_state(item) for item in response["Items"]]

    def folder_state(self, tenant_id: str, account_id: str, folder: str) -> FolderState:
        item = self.get(tenant_pk(tenant_id), folder_sk(account_id, folder), consistent=True)
        if item is None:
            return FolderState(name=folder)
        return _folder_state(item)

    def save_folder_state(self, tenant_id: str, account_id: str, state: FolderState) -> None:
        """Write the folder's state; the cursor may only move forward within one UIDVALIDITY.

        A UIDVALIDITY change is the one legitimate reset (the server renumbered the folder).
        """
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": folder_sk(account_id, state.name)},
                UpdateExpression="SET #st = :s, #nm = :n",
                ConditionExpression=(
                    "attribute_not_exists(#st) OR #st.uidvalidity <> :v OR #st.last_uid <= :u"
                ),
                ExpressionAttributeNames={"#st": "state", "#nm": "name"},
                ExpressionAttributeValues={
                    ":s": state.model_dump(mode="json", exclude={"name"})
                    | ({"delta_link": state.delta_link} if state.delta_link else {}),
                    ":n": state.name,
                    ":v": state.uidvalidity,
                    ":u": state.last_uid,
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise Conflict("the folder cursor cannot move backwards", code="cursor_backwards") from exc
            raise
