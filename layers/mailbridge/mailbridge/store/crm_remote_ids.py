"""Which provider record each of our contacts is, per CRM integration (`RemoteLink`), in the crm table.

Item types (pk = TENANT#{tenant}), two per pair so either side finds the other in one BatchGetItem:
  CRMID#{integration_id}#C#{contact_id}    by our contact id
  CRMID#{integration_id}#R#{remote_id}     by the provider's record id (Salesforce Contact Id,
                                           HubSpot contact id)
Both carry the whole link. Keys are deterministic, so writes are plain BatchWriteItem puts: writing a
link twice changes nothing, and a later write of the same pair replaces the earlier one. Moving a
contact to another remote record (a merge at the provider) is `relink`: the old remote item goes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.crm.integrations.models import RemoteLink
from mailbridge.store.base import DynamoRepository, tenant_pk
from mailbridge.store.batch import batch_delete, batch_get, batch_put
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def prefix(integration_id: str) -> str:
    return f"CRMID#{integration_id}#"


def contact_sk(integration_id: str, contact_id: str) -> str:
    return f"{prefix(integration_id)}C#{contact_id}"


def remote_sk(integration_id: str, remote_id: str) -> str:
    return f"{prefix(integration_id)}R#{remote_id}"


def _link(item: dict[str, Any]) -> RemoteLink:
    return RemoteLink(
        integration_id=item["integration_id"],
        contact_id=item["contact_id"],
        remote_id=item["remote_id"],
        remote_modified=item.get("remote_modified"),
        local_updated_at=item.get("local_updated_at"),
        fields_hash=item.get("fields_hash"),
        synced_at=datetime.fromisoformat(item["synced_at"]),
    )


class RemoteIdStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def _items(self, tenant_id: str, link: RemoteLink) -> list[dict[str, Any]]:
        body = {k: v for k, v in link.model_dump(mode="json").items() if v is not None}
        pk = tenant_pk(tenant_id)
        return [
            {"pk": pk, "sk": contact_sk(link.integration_id, link.contact_id), **body},
            {"pk": pk, "sk": remote_sk(link.integration_id, link.remote_id), **body},
        ]

    def put(self, tenant_id: str, links: Sequence[RemoteLink]) -> None:
        """Write each link (both items), 25 items a BatchWriteItem request."""
        items = [item for link in links for item in self._items(tenant_id, link)]
        if items:
            batch_put(self.client, self.table_name, items)

    def relink(self, tenant_id: str, old: Sequence[RemoteLink], new: Sequence[RemoteLink]) -> None:
        """Write `new` and remove the items of `old` that `new` does not rewrite (a contact now
        linked to another remote record, or a remote record to another contact)."""
        self.put(tenant_id, new)
        kept = {item["sk"] for link in new for item in self._items(tenant_id, link)}
        gone = [item["sk"] for link in old for item in self._items(tenant_id, link) if item["sk"] not in kept]
        self._delete_sks(tenant_id, gone)

    def by_contacts(
        self, tenant_id: str, integration_id: str, contact_ids: Iterable[str]
    ) -> dict[str, RemoteLink]:
        """contact id -> link, for the ids that have one (BatchGetItem, 100 keys a request)."""
        return {
            link.contact_id: link
            for link in self._get(tenant_id, [contact_sk(integration_id, c) for c in set(contact_ids)])
        }

    def by_remote(
        self, tenant_id: str, integration_id: str, remote_ids: Iterable[str]
    ) -> dict[str, RemoteLink]:
        """remote id -> link, for the ids that have one (BatchGetItem, 100 keys a request)."""
        return {
            link.remote_id: link
            for link in self._get(tenant_id, [remote_sk(integration_id, r) for r in set(remote_ids)])
        }

    def _get(self, tenant_id: str, sks: Sequence[str]) -> list[RemoteLink]:
        if not sks:
            return []
        pk = tenant_pk(tenant_id)
        items = batch_get(self.client, self.table_name, [{"pk": pk, "sk": sk} for sk in sks])
        return [_link(item) for item in items]

    def forget(self, tenant_id: str, links: Sequence[RemoteLink]) -> None:
        """Forget each pair (both items): a contact deleted on one side and propagated."""
        self._delete_sks(tenant_id, [item["sk"] for link in links for item in self._items(tenant_id, link)])

    def delete_all(self, tenant_id: str, integration_id: str) -> None:
        """Every link of an integration (when it is removed)."""
        pk = tenant_pk(tenant_id)
        sks = [
            item["sk"]
            for item in self.query_all(
                KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with(prefix(integration_id)),
                ProjectionExpression="sk",
            )
        ]
        self._delete_sks(tenant_id, sks)

    def _delete_sks(self, tenant_id: str, sks: Sequence[str]) -> None:
        pk = tenant_pk(tenant_id)
        batch_delete(self.client, self.table_name, [{"pk": pk, "sk": sk} for sk in sks])
