"""Drafts, in the emails table (pk = TENANT#{tenant}, sk = DRAFT#{draft_id}).

A draft is a message being written, not mail: it has no Message-ID, thread or location yet, so it
is kept apart from EMAIL# items (no listing index key is set, nothing of `GET /emails` meets it).
The item holds the summary, the version and where the provider keeps its copy; the body (up to
the send body's limits, far past 400 KB) lives in S3 under `body_key`, one object per version.

Attributes: draft_id, account_id, version (optimistic concurrency, `DynamoRepository.replace`),
state (`active`; `deleting` until the provider copy is removed; `sending` until the send
succeeded), body_key, subject, to, created_at, updated_at, created_by, origin (`mailbridge` or
`provider`: picked up from the mail client), synced_version (the version the provider copy
holds), provider (where: `{"kind": "imap", "folder", "uidvalidity", "uid"}`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mailbridge.store.base import DynamoRepository, Item, is_condition_failure
from mailbridge.store.conditions import Attr, Key
from mailbridge.store.keys import tenant_pk

ACTIVE = "active"
DELETING = "deleting"
SENDING = "sending"  # handed to the outbox; deleted once the send succeeded


def draft_sk(draft_id: str) -> str:
    return f"DRAFT#{draft_id}"


class DraftStore(DynamoRepository):
    def get_draft(self, tenant_id: str, draft_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), draft_sk(draft_id), consistent=True)

    def create_draft(self, tenant_id: str, item: Item) -> Item:
        """Store a new draft at version 1; `Conflict` `already_exists` if the id is taken."""
        return self.create({"pk": tenant_pk(tenant_id), "sk": draft_sk(str(item["draft_id"])), **item})

    def replace_draft(self, tenant_id: str, item: Item, *, expected_version: int) -> Item:
        """Overwrite the draft written at `expected_version`; `Conflict` `version_conflict` when
        another writer got there first (the stored version is not `expected_version`)."""
        keyed = {"pk": tenant_pk(tenant_id), "sk": draft_sk(str(item["draft_id"])), **item}
        return self.replace(keyed, expected_version=expected_version)

    def set_state(self, tenant_id: str, draft_id: str, *, expected_version: int, state: str) -> bool:
        """Move an active draft at `expected_version` to `state` (version + 1); False when the
        draft changed, is gone or is no longer active."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": draft_sk(draft_id)},
                UpdateExpression="SET #s = :state, #v = :next",
                ConditionExpression="#v = :expected AND #s = :active",
                ExpressionAttributeNames={"#s": "state", "#v": "version"},
                ExpressionAttributeValues={
                    ":state": state,
                    ":next": expected_version + 1,
                    ":expected": expected_version,
                    ":active": ACTIVE,
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def release(self, tenant_id: str, draft_id: str, *, claimed_version: int, state: str) -> bool:
        """Give a draft claimed by `set_state(state=...)` back: active again at the version it had
        before the claim (`claimed_version` - 1), as if never claimed."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": draft_sk(draft_id)},
                UpdateExpression="SET #s = :active, #v = :previous",
                ConditionExpression="#v = :claimed AND #s = :state",
                ExpressionAttributeNames={"#s": "state", "#v": "version"},
                ExpressionAttributeValues={
                    ":active": ACTIVE,
                    ":previous": claimed_version - 1,
                    ":claimed": claimed_version,
                    ":state": state,
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def record_synced(self, tenant_id: str, draft_id: str, *, version: int, provider: dict[str, Any]) -> bool:
        """Note that the provider copy `provider` holds `version`; False when the draft moved on
        (or went) meanwhile: the sync queued by that change replaces the copy again."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": draft_sk(draft_id)},
                UpdateExpression="SET synced_version = :v, provider = :p",
                ConditionExpression="#v = :v",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":v": version, ":p": provider},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def delete_draft(self, tenant_id: str, draft_id: str, *, state: str | None = None) -> bool:
        """Delete the draft (only while in `state`, when given); False when it was not there."""
        kwargs: dict[str, Any] = {"Key": {"pk": tenant_pk(tenant_id), "sk": draft_sk(draft_id)}}
        if state is not None:
            kwargs["ConditionExpression"] = Attr("state").eq(state)
        else:
            kwargs["ConditionExpression"] = Attr("pk").exists()
        try:
            self.table.delete_item(**kwargs)
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def account_drafts(self, tenant_id: str, account_id: str) -> list[Item]:
        """Every draft of one mailbox, in any state (what the sync compares with its Drafts folder)."""
        return list(
            self.query_all(
                KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("DRAFT#"),
                FilterExpression=Attr("account_id").eq(account_id),
                ConsistentRead=True,
            )
        )

    def delete_if_version(self, tenant_id: str, draft_id: str, version: int) -> bool:
        """Delete an active draft still at `version`; False when it changed or went meanwhile."""
        try:
            self.table.delete_item(
                Key={"pk": tenant_pk(tenant_id), "sk": draft_sk(draft_id)},
                ConditionExpression=Attr("version").eq(version) & Attr("state").eq(ACTIVE),
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def page(
        self,
        tenant_id: str,
        *,
        cursor: str | None,
        limit: int,
        keep: Callable[[list[Item]], Sequence[Item | None]] | None = None,
    ) -> tuple[list[Item], str | None]:
        """Active drafts, oldest first (draft ids sort by creation time), and the signed cursor
        of the next page (400 `invalid_cursor` for any other); `keep` as `filled_query` takes it."""
        return self.filled_query(
            tenant_id,
            Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("DRAFT#"),
            Attr("state").eq(ACTIVE),
            cursor=cursor,
            limit=limit,
            keep=keep,
        )
