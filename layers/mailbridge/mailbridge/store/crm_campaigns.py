"""Our campaigns as each CRM integration holds them, in the crm table.

Item types (pk = TENANT#{tenant}):
  CRMCAMP#{integration_id}#{campaign_id}
      the head: `remote_id` (Salesforce Campaign Id / HubSpot list id), `fields_hash` (sha256 hex
      of what was last written: name, status), `synced_at`, and the members (the remote contact
      ids that are members, as last set) either inline as `members` (a string set, absent when
      empty) or, past `INLINE_MEMBERS`, as `member_generation` + `member_chunks`
  CRMCAMP#{integration_id}#{campaign_id}#M#{generation}#{n:05d}
      `members`: the generation's n-th chunk of at most `CHUNK_MEMBERS` ids

A second sync compares with these items, so it writes only a changed name or status and adds or
removes only the members that changed: nothing is appended twice.

Why chunks: members are CRM record ids (18 characters at Salesforce, up to 20 digits at HubSpot)
and an audience chosen by tag has no upper bound, while a DynamoDB item holds at most 400 KB
(Developer Guide, item size limits): one item holds about 15,000 ids. Chunks of 5,000 (about
100 KB) are written first, under a generation no reader knows yet, then the head that names the
generation, then the chunks of the generation before are deleted. A reader follows the head only,
so a sync that dies between the writes leaves the members as last completely stored, never a mix.

Requests: a read is one Query (pages of 1 MB: one per about 45,000 members). A write of at most
`INLINE_MEMBERS` members is one PutItem (its old image says whether chunks were stored before,
which then are deleted: a Query and a BatchWriteItem); a larger one is one BatchWriteItem per 25
chunks, the head's PutItem, a Query of the chunks' keys and one BatchWriteItem per 25 chunks of
other generations (the one before, and any a failed write left).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, tenant_pk
from mailbridge.store.batch import batch_delete, batch_put
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

INLINE_MEMBERS = 5_000
"""Members kept in the head item itself (about 100 KB of ids)."""
CHUNK_MEMBERS = 5_000
"""Members per chunk item past `INLINE_MEMBERS`."""


def prefix(integration_id: str) -> str:
    return f"CRMCAMP#{integration_id}#"


def _head_sk(integration_id: str, campaign_id: str) -> str:
    return prefix(integration_id) + campaign_id


def _chunk_prefix(integration_id: str, campaign_id: str) -> str:
    return _head_sk(integration_id, campaign_id) + "#M#"


@dataclass(frozen=True)
class RemoteCampaign:
    remote_id: str
    fields_hash: str
    members: frozenset[str]


class RemoteCampaignStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def _items(self, tenant_id: str, integration_id: str, campaign_id: str) -> tuple[Any, list[Any]]:
        """(the head item or None, every chunk item of every generation), in one Query."""
        head_sk = _head_sk(integration_id, campaign_id)
        chunk_prefix = _chunk_prefix(integration_id, campaign_id)
        head: Any = None
        chunks: list[Any] = []
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(head_sk),
            ConsistentRead=True,
        ):
            sk = str(item["sk"])
            if sk == head_sk:
                head = item
            elif sk.startswith(chunk_prefix):
                chunks.append(item)
        return head, chunks

    def get_remote(self, tenant_id: str, integration_id: str, campaign_id: str) -> RemoteCampaign | None:
        """The campaign as the integration holds it, or None when it was never synced there."""
        head, chunks = self._items(tenant_id, integration_id, campaign_id)
        if head is None:
            return None
        members = {str(m) for m in head.get("members") or ()}
        generation = head.get("member_generation")
        if generation:
            own = _chunk_prefix(integration_id, campaign_id) + f"{generation}#"
            for chunk in chunks:
                if str(chunk["sk"]).startswith(own):
                    members.update(str(m) for m in chunk.get("members") or ())
        return RemoteCampaign(
            remote_id=str(head["remote_id"]),
            fields_hash=str(head.get("fields_hash") or ""),
            members=frozenset(members),
        )

    def put_remote(
        self,
        tenant_id: str,
        integration_id: str,
        campaign_id: str,
        remote: RemoteCampaign,
        at: datetime,
    ) -> None:
        """Store the campaign as now synced (see the module docstring for the order of writes)."""
        pk = tenant_pk(tenant_id)
        head: dict[str, Any] = {
            "pk": pk,
            "sk": _head_sk(integration_id, campaign_id),
            "integration_id": integration_id,
            "campaign_id": campaign_id,
            "remote_id": remote.remote_id,
            "fields_hash": remote.fields_hash,
            "synced_at": at.isoformat(),
        }
        members = sorted(remote.members)
        if len(members) <= INLINE_MEMBERS:
            if members:
                head["members"] = set(members)
            old = self.table.put_item(Item=head, ReturnValues="ALL_OLD").get("Attributes") or {}
            if old.get("member_generation"):  # it was chunked: its chunks (and any orphans) go
                self._drop_chunks(tenant_id, integration_id, campaign_id, keep=None)
            return
        generation = uuid.uuid4().hex[:12]
        chunk_prefix = _chunk_prefix(integration_id, campaign_id) + f"{generation}#"
        chunks = [
            {"pk": pk, "sk": f"{chunk_prefix}{n:05d}", "members": set(members[i : i + CHUNK_MEMBERS])}
            for n, i in enumerate(range(0, len(members), CHUNK_MEMBERS))
        ]
        batch_put(self.client, self.table_name, chunks)
        head["member_generation"] = generation
        head["member_chunks"] = len(chunks)
        self.table.put_item(Item=head)
        self._drop_chunks(tenant_id, integration_id, campaign_id, keep=generation)

    def _drop_chunks(self, tenant_id: str, integration_id: str, campaign_id: str, keep: str | None) -> None:
        """Delete the chunks of every generation but `keep` (None: all of them)."""
        chunk_prefix = _chunk_prefix(integration_id, campaign_id)
        self._delete_under(tenant_id, chunk_prefix, keep=f"{chunk_prefix}{keep}#" if keep else None)

    def _delete_under(self, tenant_id: str, sk_prefix: str, *, keep: str | None = None) -> None:
        """Delete every item of the tenant whose sort key begins with `sk_prefix`, but those that
        begin with `keep`: a Query of the keys, then BatchWriteItem 25 at a time."""
        pk = tenant_pk(tenant_id)
        stale = [
            {"pk": pk, "sk": str(item["sk"])}
            for item in self.query_all(
                KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with(sk_prefix),
                ProjectionExpression="sk",
            )
            if keep is None or not str(item["sk"]).startswith(keep)
        ]
        if stale:
            batch_delete(self.client, self.table_name, stale)

    def delete_all(self, tenant_id: str, integration_id: str) -> None:
        """Every campaign record of an integration, chunks included (when it is removed)."""
        self._delete_under(tenant_id, prefix(integration_id))
