"""Accounts table: connected mailboxes and their per-folder sync state.

pk = TENANT#{tenant}, sk = ACCOUNT#{account_id}          the account (+ encrypted credentials)
pk = TENANT#{tenant}, sk = FOLDER#{account_id}#{folder}  per-folder cursor and counts
gsi1pk = POLL#{provider} on active accounts (sparse): what the poll schedule walks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mailbridge.crypto import Envelope
from mailbridge.errors import Conflict, NotFound
from mailbridge.models.account import Account, FolderState, SyncState
from mailbridge.store.base import DynamoRepository, is_condition_failure
from mailbridge.store.conditions import Key
from mailbridge.store.keys import folder_key, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def _folder_state(item: dict[str, Any]) -> FolderState:
    return FolderState.model_validate({**dict(item["state"]), "name": item["name"]})


def account_sk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def folder_sk(account_id: str, folder: str) -> str:
    return f"FOLDER#{account_id}#{folder_key(folder)}"


class AccountStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def create_account(self, account: Account, credentials: Envelope) -> None:
        item = {
            "pk": tenant_pk(account.tenant_id),
            "sk": account_sk(account.account_id),
            "account": account.model_dump(mode="json"),
            "credentials": credentials.model_dump(),
            "gsi1pk": f"POLL#{account.provider}",
        }
        self.create(item)

    def _item(self, tenant_id: str, account_id: str) -> dict[str, Any]:
        item = self.get(tenant_pk(tenant_id), account_sk(account_id), consistent=True)
        if item is None:
            raise NotFound("no such account", code="account_not_found")
        return item

    def get_account(self, tenant_id: str, account_id: str) -> Account:
        item = self._item(tenant_id, account_id)
        return Account.model_validate({**item["account"], "version": int(item["version"])})

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
        accounts = [Account.model_validate({**i["account"], "version": int(i["version"])}) for i in items]
        return accounts, next_cursor

    def set_sync_state(
        self, tenant_id: str, account_id: str, state: SyncState, *, pollable: bool = True
    ) -> None:
        """Record the sync stage; an account whose credentials failed leaves the poll index."""
        expression = "SET account.sync = :s" + ("" if pollable else " REMOVE gsi1pk")
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":s": state.model_dump(mode="json")},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise NotFound("no such account", code="account_not_found") from exc
            raise

    def make_pollable(self, tenant_id: str, account_id: str, provider: str) -> None:
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": account_sk(account_id)},
            UpdateExpression="SET gsi1pk = :p",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":p": f"POLL#{provider}"},
        )

    def delete_account(self, tenant_id: str, account_id: str) -> None:
        self._item(tenant_id, account_id)
        for state in self.folder_states(tenant_id, account_id):
            self.delete(tenant_pk(tenant_id), folder_sk(account_id, state.name))
        self.delete(tenant_pk(tenant_id), account_sk(account_id))

    def pollable(self, provider: str) -> Iterator[tuple[str, str]]:
        """(tenant_id, account_id) of every active account of a provider."""
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": Key("gsi1pk").eq(f"POLL#{provider}"),
        }
        while True:
            response = self.table.query(**kwargs)
            for item in response.get("Items", []):
                yield str(item["pk"]).removeprefix("TENANT#"), str(item["sk"]).removeprefix("ACCOUNT#")
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # ------------------------------------------------------------------ folders
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
                    ":s": state.model_dump(mode="json", exclude={"name"}),
                    ":n": state.name,
                    ":v": state.uidvalidity,
                    ":u": state.last_uid,
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise Conflict("the folder cursor cannot move backwards", code="cursor_backwards") from exc
            raise
