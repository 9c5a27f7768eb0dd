"""Our campaigns as each CRM integration holds them, in the crm table.

Item type (pk = TENANT#{tenant}):
  CRMCAMP#{integration_id}#{campaign_id}
      `remote_id` (Salesforce Campaign Id / HubSpot list id), `fields_hash` (sha256 hex of what
      was last written: name, status), `members` (the remote contact ids that are members, as
      last set: a string set, absent when empty), `synced_at`

A second sync compares with this item, so it writes only a changed name or status and adds or
removes only the members that changed: nothing is appended twice. Members are CRM record ids
(18 characters at Salesforce, up to 20 digits at HubSpot), so an item holds about 15,000 of
them below DynamoDB's 400 KB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, tenant_pk
from mailbridge.store.batch import batch_delete
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def prefix(integration_id: str) -> str:
    return f"CRMCAMP#{integration_id}#"


@dataclass(frozen=True)
class RemoteCampaign:
    remote_id: str
    fields_hash: str
    members: frozenset[str]


class RemoteCampaignStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_remote(self, tenant_id: str, integration_id: str, campaign_id: str) -> RemoteCampaign | None:
        item = self.get(tenant_pk(tenant_id), prefix(integration_id) + campaign_id, consistent=True)
        if item is None:
            return None
        return RemoteCampaign(
            remote_id=str(item["remote_id"]),
            fields_hash=str(item.get("fields_hash") or ""),
            members=frozenset(str(m) for m in item.get("members") or ()),
        )

    def put_remote(
        self,
        tenant_id: str,
        integration_id: str,
        campaign_id: str,
        remote: RemoteCampaign,
        at: datetime,
    ) -> None:
        item: dict[str, Any] = {
            "pk": tenant_pk(tenant_id),
            "sk": prefix(integration_id) + campaign_id,
            "integration_id": integration_id,
            "campaign_id": campaign_id,
            "remote_id": remote.remote_id,
            "fields_hash": remote.fields_hash,
            "synced_at": at.isoformat(),
        }
        if remote.members:
            item["members"] = set(remote.members)
        self.table.put_item(Item=item)

    def delete_all(self, tenant_id: str, integration_id: str) -> None:
        """Every campaign record of an integration (when it is removed)."""
        pk = tenant_pk(tenant_id)
        keys: Iterable[dict[str, str]] = [
            {"pk": pk, "sk": item["sk"]}
            for item in self.query_all(
                KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with(prefix(integration_id)),
                ProjectionExpression="sk",
            )
        ]
        batch_delete(self.client, self.table_name, list(keys))
