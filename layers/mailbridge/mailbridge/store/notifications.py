"""In-app notifications, per user (issue 15 point 4): the notifications table.

Items (every key starts with the tenant; a user's items share one partition, so a user can only
ever reach their own):
- pk = TENANT#{tenant}#USER#{user}, sk = NOTIF#{notification_id}: a notification: `type`,
  `title`, `source` (the source event's detail-type), `subject_id` (what it is about: an email,
  account or rule id), `data` (small: ids and codes, never bodies or addresses), `channel`
  (in_app | email_digest), `created_at` (ISO UTC, the source event's `occurred_at`), `read_at`,
  `ttl` (epoch seconds, `RETENTION_DAYS` after `created_at`).
  The id is derived from (tenant, user, type, source idempotency key), and the put is conditional
  (`attribute_not_exists`), so one source event makes at most one notification per user.
  Indexes (both sparse, projection ALL):
  gsi1: in_app: gsi1pk = TENANT#{tenant}#USER#{user}, gsi1sk = {created_at}#{id} (newest first);
        email_digest: gsi1pk = TENANT#{tenant}#USER#{user}#DIGEST, same gsi1sk (for the digest).
  gsi2: unread in_app only: gsi2pk = TENANT#{tenant}#USER#{user}#UNREAD, same sort key; removed
        when read, so the unread count is one COUNT Query and read-all touches unread items only.
- pk = TENANT#{tenant}#USER#{user}, sk = PREFERENCES: the user's preferences (`types`: type ->
  in_app | email_digest | off, `digest_frequency`).
- pk = TENANT#{tenant}, sk = NOTIFICATION_SETTINGS: the tenant's `digest_sender_account_id`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

NOTIF_PREFIX = "NOTIF#"
PREFERENCES_SK = "PREFERENCES"
SETTINGS_SK = "NOTIFICATION_SETTINGS"
RETENTION_DAYS = 90
ALL_INDEX = "gsi1"
UNREAD_INDEX = "gsi2"


def user_pk(tenant_id: str, user_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#USER#{user_id}"


def notification_sk(notification_id: str) -> str:
    return f"{NOTIF_PREFIX}{notification_id}"


def digest_pk(tenant_id: str, user_id: str) -> str:
    return f"{user_pk(tenant_id, user_id)}#DIGEST"


def unread_pk(tenant_id: str, user_id: str) -> str:
    return f"{user_pk(tenant_id, user_id)}#UNREAD"


class NotificationStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    # -- notifications
    def create_notification(self, tenant_id: str, user_id: str, values: Item, *, ttl: int) -> bool:
        """Store a notification (`values` holds `notification_id`, `channel`, `created_at` ...);
        False, writing nothing, when that notification exists already (a redelivered event)."""
        notification_id = str(values["notification_id"])
        order = f"{values['created_at']}#{notification_id}"
        if values["channel"] == "in_app":
            index = {
                "gsi1pk": user_pk(tenant_id, user_id),
                "gsi1sk": order,
                "gsi2pk": unread_pk(tenant_id, user_id),
                "gsi2sk": order,
            }
        else:
            index = {"gsi1pk": digest_pk(tenant_id, user_id), "gsi1sk": order}
        try:
            self.table.put_item(
                Item={
                    "pk": user_pk(tenant_id, user_id),
                    "sk": notification_sk(notification_id),
                    "user_id": user_id,
                    **values,
                    **index,
                    "ttl": ttl,
                },
                ConditionExpression="attribute_not_exists(sk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def get_notification(self, tenant_id: str, user_id: str, notification_id: str) -> Item | None:
        return self.get(user_pk(tenant_id, user_id), notification_sk(notification_id), consistent=True)

    def list_notifications(
        self, tenant_id: str, user_id: str, *, unread: bool, cursor: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """The user's in-app notifications (only the unread ones when `unread`), newest first;
        an index without a filter, so every page but the last holds `limit`."""
        index, pk = (
            (UNREAD_INDEX, unread_pk(tenant_id, user_id))
            if unread
            else (ALL_INDEX, user_pk(tenant_id, user_id))
        )
        hash_key = "gsi2pk" if unread else "gsi1pk"
        return self.query_page(
            tenant_id=tenant_id,
            key_condition=Key(hash_key).eq(pk),
            cursor=cursor,
            limit=limit,
            index=index,
            newest_first=True,
        )

    def unread_count(self, tenant_id: str, user_id: str) -> int:
        """How many in-app notifications the user has not read: a COUNT Query of the unread index
        (one request per 1 MB of index keys)."""
        kwargs: dict[str, Any] = {
            "IndexName": UNREAD_INDEX,
            "KeyConditionExpression": Key("gsi2pk").eq(unread_pk(tenant_id, user_id)),
            "Select": "COUNT",
        }
        count = 0
        while True:
            response = self.table.query(**kwargs)
            count += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return count
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def mark_read(self, tenant_id: str, user_id: str, notification_id: str, at: datetime) -> Item | None:
        """Mark an in-app notification read (once: a second call keeps the first `read_at`);
        None when the user has no in-app notification of that id."""
        try:
            response = self.table.update_item(
                Key={"pk": user_pk(tenant_id, user_id), "sk": notification_sk(notification_id)},
                UpdateExpression="SET read_at = if_not_exists(read_at, :at) REMOVE gsi2pk, gsi2sk",
                ConditionExpression="attribute_exists(sk) AND channel = :in_app",
                ExpressionAttributeValues={":at": at.isoformat(), ":in_app": "in_app"},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return response.get("Attributes")

    def mark_all_read(self, tenant_id: str, user_id: str, at: datetime) -> int:
        """Mark every unread in-app notification of the user read; returns how many it marked.
        Reads the unread index page by page (keys only) and updates each item."""
        kwargs: dict[str, Any] = {
            "IndexName": UNREAD_INDEX,
            "KeyConditionExpression": Key("gsi2pk").eq(unread_pk(tenant_id, user_id)),
        }
        marked = 0
        while True:
            response = self.table.query(**kwargs)
            for item in response.get("Items", []):
                if self.mark_read(tenant_id, user_id, str(item["notification_id"]), at) is not None:
                    marked += 1
            if "LastEvaluatedKey" not in response:
                return marked
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- preferences and settings
    def get_preferences(self, tenant_id: str, user_id: str) -> Item | None:
        return self.get(user_pk(tenant_id, user_id), PREFERENCES_SK, consistent=True)

    def put_preferences(self, tenant_id: str, user_id: str, values: Item) -> None:
        self.table.put_item(Item={"pk": user_pk(tenant_id, user_id), "sk": PREFERENCES_SK, **values})

    def get_settings(self, tenant_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), SETTINGS_SK, consistent=True)

    def put_settings(self, tenant_id: str, values: Item) -> None:
        self.table.put_item(Item={"pk": tenant_pk(tenant_id), "sk": SETTINGS_SK, **values})
