"""Flags table: follow-up flags, one per email (issue 15 point 2).

Item (pk = TENANT#{tenant}, sk = FLAG#{email_id}): `state` open|done, `due_at` (ISO UTC),
`priority`, `note`, `thread_id`, `created_at`, `completed_at`, `reminded_at` (the due reminder
went out for this `due_at`); gsi1 (open flags by due day, for nudges): gsi1pk = DUE#{yyyy-mm-dd},
gsi1sk = {due_at}#{tenant}#{email_id}, removed when the flag is done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Attr, Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

PREFIX = "FLAG#"


def flag_sk(email_id: str) -> str:
    return f"{PREFIX}{email_id}"


class FlagStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_flag(self, tenant_id: str, email_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), flag_sk(email_id), consistent=True)

    def put_flag(self, tenant_id: str, email_id: str, values: Item) -> None:
        """Write an open flag (replacing an earlier one of the email), indexed by its due day."""
        due = str(values["due_at"])
        self.table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": flag_sk(email_id),
                **values,
                "gsi1pk": f"DUE#{due[:10]}",
                "gsi1sk": f"{due}#{tenant_id}#{email_id}",
            }
        )

    def delete_flag(self, tenant_id: str, email_id: str) -> bool:
        """False when there was none."""
        response = self.table.delete_item(
            Key={"pk": tenant_pk(tenant_id), "sk": flag_sk(email_id)}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in response

    def complete(self, tenant_id: str, email_id: str, at: datetime) -> Item | None:
        """Mark an open flag done (out of the due-day index); None when it is missing or done."""
        try:
            response = self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": flag_sk(email_id)},
                UpdateExpression="SET #state = :done, completed_at = :at REMOVE gsi1pk, gsi1sk",
                ConditionExpression="#state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":done": "done", ":open": "open", ":at": at.isoformat()},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return response.get("Attributes")

    def mark_reminded(self, tenant_id: str, email_id: str, due_at: str, at: datetime) -> bool:
        """Record that the reminder for `due_at` went out; False when it already did, or the flag
        is done, gone or due at another time now."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": flag_sk(email_id)},
                UpdateExpression="SET reminded_at = :at",
                ConditionExpression="#state = :open AND due_at = :due AND attribute_not_exists(reminded_at)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":open": "open", ":due": due_at, ":at": at.isoformat()},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def list_flags(
        self,
        tenant_id: str,
        state: str,
        now: datetime,
        *,
        cursor: str | None,
        limit: int,
        keep: Callable[[list[Item]], Sequence[Item | None]] | None = None,
    ) -> tuple[list[Item], str | None]:
        """The tenant's flags in `state` (`due`: open, due later; `overdue`: open, due now or
        before; `done`), in email id order, `limit` a page whenever that many match."""
        key_condition = Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(PREFIX)
        filters: Any
        if state == "done":
            filters = Attr("state").eq("done")
        elif state == "overdue":
            filters = Attr("state").eq("open") & Attr("due_at").lte(now.isoformat())
        else:
            filters = Attr("state").eq("open") & Attr("due_at").gt(now.isoformat())
        return self.filled_query(tenant_id, key_condition, filters, cursor=cursor, limit=limit, keep=keep)
