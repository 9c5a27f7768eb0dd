"""Snoozes table: one record per snoozed email or thread, and reply lookups.

Items (pk = TENANT#{tenant}):
  SNOOZE#{target_id}             the snooze (target_id: an email id or a thread id), with `state`
                                 snoozed|woken|cancelled, `until` (ISO UTC), `email_ids`, `thread_id`;
                                 a finished one gets `ttl` 30 days after it ended
  REPLY#{thread_id}#{target_id}  present while a `wake_on_reply` snooze waits: a reply in the thread
                                 finds what to wake with one Query
The record is the truth: a lookup left behind finds a record that is no longer snoozed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

FINISHED_KEPT = timedelta(days=30)


def snooze_sk(target_id: str) -> str:
    return f"SNOOZE#{target_id}"


def reply_sk(thread_id: str, target_id: str = "") -> str:
    return f"REPLY#{thread_id}#{target_id}"


class SnoozeStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_snooze(self, tenant_id: str, target_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), snooze_sk(target_id), consistent=True)

    def put_snooze(self, tenant_id: str, target_id: str, values: Item) -> None:
        """Write the snooze, replacing an earlier one of the same target."""
        self.table.put_item(Item={"pk": tenant_pk(tenant_id), "sk": snooze_sk(target_id), **values})

    def finish(self, tenant_id: str, target_id: str, until: str, state: str, ended_at: datetime) -> bool:
        """Move a snooze from `snoozed` (at `until`) to `state`; False when it is not in that state
        any more (woken or cancelled already, or snoozed again to another time)."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": snooze_sk(target_id)},
                UpdateExpression="SET #state = :state, ended_at = :ended, #ttl = :ttl",
                ConditionExpression="#state = :snoozed AND #until = :until",
                ExpressionAttributeNames={"#state": "state", "#until": "until", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":state": state,
                    ":ended": ended_at.isoformat(),
                    ":ttl": int((ended_at + FINISHED_KEPT).timestamp()),
                    ":snoozed": "snoozed",
                    ":until": until,
                },
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def put_reply_lookup(self, tenant_id: str, thread_id: str, target_id: str) -> None:
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": reply_sk(thread_id, target_id), "target_id": target_id}
        )

    def delete_reply_lookup(self, tenant_id: str, thread_id: str, target_id: str) -> None:
        self.delete(tenant_pk(tenant_id), reply_sk(thread_id, target_id))

    def reply_lookups(self, tenant_id: str, thread_id: str) -> list[str]:
        """The targets of the thread's `wake_on_reply` snoozes (one Query; a handful at most)."""
        response = self.table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(reply_sk(thread_id)),
        )
        return [str(item["target_id"]) for item in response.get("Items", [])]
