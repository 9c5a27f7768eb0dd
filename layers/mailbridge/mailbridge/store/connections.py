"""Connections table: the open WebSocket connections of each user (mailbridge.realtime).

Items:
  pk = TENANT#{tenant}#USER#{sub}, sk = CONNECTION#{connection_id}
      one open connection: `tenant_id`, `user_id`, `connection_id`, `connected_at` (ISO UTC),
      `ttl` (epoch seconds): API Gateway closes a WebSocket connection after 2 hours at most
      (API Gateway quotas, "Connection duration for WebSocket API"), so a record whose
      $disconnect never arrived expires on its own.
  gsi1: gsi1pk = CONNECTION#{connection_id} (KEYS_ONLY): $disconnect names only the connection id.
The fan-out reads one user's connections with one Query on its own partition: the key starts with
the tenant, so another tenant's connections are never read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mailbridge.store.base import DynamoRepository, Item, tenant_pk
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

CONNECTION_LIFETIME = timedelta(hours=2)
"""API Gateway's maximum WebSocket connection duration; the record's `ttl` is this after connect."""


def user_pk(tenant_id: str, user_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#USER#{user_id}"


def connection_sk(connection_id: str) -> str:
    return f"CONNECTION#{connection_id}"


class ConnectionStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def add(self, tenant_id: str, user_id: str, connection_id: str, connected_at: datetime) -> None:
        """Record an open connection (a repeated $connect of the same id rewrites the same item)."""
        self.table.put_item(
            Item={
                "pk": user_pk(tenant_id, user_id),
                "sk": connection_sk(connection_id),
                "gsi1pk": connection_sk(connection_id),
                "tenant_id": tenant_id,
                "user_id": user_id,
                "connection_id": connection_id,
                "connected_at": connected_at.isoformat(),
                "ttl": int((connected_at + CONNECTION_LIFETIME).timestamp()),
            }
        )

    def connections(self, tenant_id: str, user_id: str, now: datetime) -> list[str]:
        """The user's open connection ids (expired records, which TTL deletes late, are left out)."""
        out: list[str] = []
        kwargs: Item = {
            "KeyConditionExpression": Key("pk").eq(user_pk(tenant_id, user_id)),
            "ProjectionExpression": "connection_id, #ttl",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
        }
        while True:
            response = self.table.query(**kwargs)
            out.extend(
                str(item["connection_id"])
                for item in response.get("Items", [])
                if int(str(item.get("ttl", 0))) > now.timestamp()
            )
            if "LastEvaluatedKey" not in response:
                return out
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def remove(self, tenant_id: str, user_id: str, connection_id: str) -> None:
        self.delete(user_pk(tenant_id, user_id), connection_sk(connection_id))

    def remove_by_id(self, connection_id: str) -> None:
        """Delete the record of a closed connection, found by its id alone ($disconnect)."""
        response = self.table.query(
            IndexName="gsi1", KeyConditionExpression=Key("gsi1pk").eq(connection_sk(connection_id))
        )
        for item in response.get("Items", []):
            self.delete(str(item["pk"]), str(item["sk"]))
