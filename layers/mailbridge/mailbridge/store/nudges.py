"""Nudges in the flags table, beside the follow-up flags (issue 15 point 3): both are reminders on
an email, and the table's gsi1 (sparse, projection ALL) serves the daily run without a scan.

Items (pk = TENANT#{tenant}):
- sk = NUDGE_SETTINGS: the tenant's settings (`mailbridge.nudges.models.NudgeSettings`); while
  `enabled`: gsi1pk = NUDGE_TENANTS, gsi1sk = {tenant}, so the run reads the enabled tenants (with
  their settings) from one index partition.
- sk = NUDGEWAIT#{thread_id}: the thread's latest message and who owes an answer: `email_id`,
  `kind`, `since` (ISO UTC), `order` ({since}#{email_id}: a message older than the one stored
  never replaces it), `nudged` (the email id once its nudge exists). While waiting (no nudge yet,
  or a nudge whose `nudge.created` has not gone out yet: `nudged` set):
  gsi1pk = TENANT#{tenant}#NUDGEWAIT, gsi1sk = {since}#{thread_id}, oldest first.
- sk = NUDGE#{email_id}: a nudge: `kind`, `thread_id`, `since`, `due_at`, `state` open|dismissed,
  `created_at`, `dismissed_at`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.errors import Conflict
from mailbridge.store.base import DynamoRepository, Item, Write, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Attr, Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SETTINGS_SK = "NUDGE_SETTINGS"
TENANTS_PK = "NUDGE_TENANTS"
NUDGE_PREFIX = "NUDGE#"
WAIT_PREFIX = "NUDGEWAIT#"
INDEX = "gsi1"


def nudge_sk(email_id: str) -> str:
    return f"{NUDGE_PREFIX}{email_id}"


def wait_sk(thread_id: str) -> str:
    return f"{WAIT_PREFIX}{thread_id}"


def waiting_pk(tenant_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#NUDGEWAIT"


class NudgeStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    # -- settings
    def get_settings(self, tenant_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), SETTINGS_SK, consistent=True)

    def put_settings(self, tenant_id: str, values: Item) -> None:
        """Replace the settings; in the enabled-tenants index while `values["enabled"]`."""
        index = {"gsi1pk": TENANTS_PK, "gsi1sk": tenant_id} if values.get("enabled") else {}
        self.table.put_item(Item={"pk": tenant_pk(tenant_id), "sk": SETTINGS_SK, **values, **index})

    def enabled_tenants(self) -> Iterator[tuple[str, Item]]:
        """(tenant id, settings item) of every tenant with nudges on: one Query per 1 MB page."""
        kwargs: dict[str, Any] = {"IndexName": INDEX, "KeyConditionExpression": Key("gsi1pk").eq(TENANTS_PK)}
        while True:
            response = self.table.query(**kwargs)
            for item in response.get("Items", []):
                yield str(item["gsi1sk"]), item
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- what each thread waits for
    def set_waiting(self, tenant_id: str, thread_id: str, values: Item, *, pending: bool) -> Item | None:
        """Record the thread's latest message (`values` holds `email_id`, `since`, `order`, and
        `kind` when someone owes an answer), indexed as waiting when `pending`. Returns what it
        replaced (`{}` when nothing); None, writing nothing, when the stored message is as new or
        newer (a replayed or late event)."""
        index = (
            {"gsi1pk": waiting_pk(tenant_id), "gsi1sk": f"{values['since']}#{thread_id}"} if pending else {}
        )
        try:
            response = self.table.put_item(
                Item={
                    "pk": tenant_pk(tenant_id),
                    "sk": wait_sk(thread_id),
                    "thread_id": thread_id,
                    **values,
                    **index,
                },
                ConditionExpression="attribute_not_exists(sk) OR #order < :order",
                ExpressionAttributeNames={"#order": "order"},
                ExpressionAttributeValues={":order": values["order"]},
                ReturnValues="ALL_OLD",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return response.get("Attributes") or {}

    def get_waiting(self, tenant_id: str, thread_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), wait_sk(thread_id))

    def waiting(self, tenant_id: str) -> Iterator[Item]:
        """The tenant's threads waiting for an answer with no nudge yet, oldest `since` first."""
        kwargs: dict[str, Any] = {
            "IndexName": INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(waiting_pk(tenant_id)),
        }
        yield from self.query_all(**kwargs)

    def stop_waiting(self, tenant_id: str, thread_id: str, email_id: str) -> None:
        """Take the thread out of the waiting index while `email_id` is still its latest message."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": wait_sk(thread_id)},
                UpdateExpression="REMOVE gsi1pk, gsi1sk",
                ConditionExpression="email_id = :email",
                ExpressionAttributeValues={":email": email_id},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    # -- nudges
    def create_nudge(self, tenant_id: str, thread_id: str, values: Item) -> bool:
        """Write the nudge and set `nudged` on its thread's waiting item, in one transaction; the
        thread stays in the waiting index until `stop_waiting` after its `nudge.created` went out.
        False (nothing written) when the nudge exists already or the thread moved on (a reply)."""
        email_id = str(values["email_id"])
        pk = tenant_pk(tenant_id)

        def lost() -> Conflict:
            return Conflict("the nudge exists or its thread moved on", code="nudge_exists")

        writes = [
            Write(
                {
                    "Put": {
                        "Item": {"pk": pk, "sk": nudge_sk(email_id), "thread_id": thread_id, **values},
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                },
                lost,
            ),
            Write(
                {
                    "Update": {
                        "Key": {"pk": pk, "sk": wait_sk(thread_id)},
                        "UpdateExpression": "SET nudged = :email",
                        "ConditionExpression": "email_id = :email AND attribute_exists(gsi1pk)",
                        "ExpressionAttributeValues": {":email": email_id},
                    }
                },
                lost,
            ),
        ]
        try:
            self.transact(writes)
        except Conflict:
            return False
        return True

    def get_nudge(self, tenant_id: str, nudge_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), nudge_sk(nudge_id), consistent=True)

    def delete_nudge(self, tenant_id: str, nudge_id: str) -> None:
        self.delete(tenant_pk(tenant_id), nudge_sk(nudge_id))

    def dismiss(self, tenant_id: str, nudge_id: str, at: datetime) -> Item | None:
        """Mark an open nudge dismissed; None when there is no open nudge of that id."""
        try:
            response = self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": nudge_sk(nudge_id)},
                UpdateExpression="SET #state = :dismissed, dismissed_at = :at",
                ConditionExpression="#state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":dismissed": "dismissed", ":open": "open", ":at": at.isoformat()},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return response.get("Attributes")

    def list_nudges(
        self,
        tenant_id: str,
        kind: str | None,
        *,
        cursor: str | None,
        limit: int,
        keep: Callable[[list[Item]], Sequence[Item | None]] | None = None,
    ) -> tuple[list[Item], str | None]:
        """The tenant's open nudges (of `kind` when given), in email id order, `limit` a page
        whenever that many match."""
        key_condition = Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(NUDGE_PREFIX)
        filters: Any = Attr("state").eq("open")
        if kind is not None:
            filters = filters & Attr("kind").eq(kind)
        return self.filled_query(tenant_id, key_condition, filters, cursor=cursor, limit=limit, keep=keep)
