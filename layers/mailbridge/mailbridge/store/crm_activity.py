"""Which emails each CRM integration has logged as an activity, in the crm table.

Item type (pk = TENANT#{tenant}):
  CRMACT#{integration_id}#{sha256 of the RFC 5322 Message-ID, 40 hex digits}
      `remote_id` (the Salesforce Task / HubSpot email engagement id), `logged_at` (UTC ISO 8601)

The key holds a digest, not the Message-ID (which is up to 998 octets and may name a host). The
adapters already look a Message-ID up at the provider before creating an activity; this record
lets a retry, a redelivery or a second mailbox holding the same message skip the provider
entirely: one BatchGetItem per batch of emails answers "already logged" for all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from mailbridge.store.base import DynamoRepository, tenant_pk
from mailbridge.store.batch import batch_delete, batch_get, batch_put
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


def prefix(integration_id: str) -> str:
    return f"CRMACT#{integration_id}#"


def message_digest(message_id: str) -> str:
    """40 hex digits of sha256 over the Message-ID exactly as stored (angle brackets included)."""
    return hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:40]


def logged_sk(integration_id: str, message_id: str) -> str:
    return prefix(integration_id) + message_digest(message_id)


class LoggedEmailStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def logged(self, tenant_id: str, integration_id: str, message_ids: Iterable[str]) -> dict[str, str]:
        """Message-ID -> remote activity id, for those the integration logged already (BatchGetItem,
        100 keys a request; consistent, so a redelivery right after a write sees it)."""
        by_sk = {logged_sk(integration_id, m): m for m in dict.fromkeys(message_ids)}
        if not by_sk:
            return {}
        pk = tenant_pk(tenant_id)
        items = batch_get(
            self.client,
            self.table_name,
            [{"pk": pk, "sk": sk} for sk in by_sk],
            consistent=True,
        )
        return {by_sk[str(item["sk"])]: str(item["remote_id"]) for item in items}

    def mark(self, tenant_id: str, integration_id: str, logged: Mapping[str, str], at: datetime) -> None:
        """Record Message-ID -> remote activity id as logged (BatchWriteItem, 25 a request;
        deterministic keys, so writing one twice changes nothing)."""
        pk = tenant_pk(tenant_id)
        items = [
            {
                "pk": pk,
                "sk": logged_sk(integration_id, message_id),
                "integration_id": integration_id,
                "remote_id": remote_id,
                "logged_at": at.isoformat(),
            }
            for message_id, remote_id in logged.items()
        ]
        if items:
            batch_put(self.client, self.table_name, items)

    def delete_all(self, tenant_id: str, integration_id: str) -> None:
        """Every record of an integration (when it is removed)."""
        pk = tenant_pk(tenant_id)
        keys = [
            {"pk": pk, "sk": item["sk"]}
            for item in self.query_all(
                KeyConditionExpression=Key("pk").eq(pk) & Key("sk").begins_with(prefix(integration_id)),
                ProjectionExpression="sk",
            )
        ]
        batch_delete(self.client, self.table_name, keys)
