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
  An in-app notification also holds `announced` (false until its `notification.created` went out;
  absent on items written before it existed, which count as announced).
  Indexes (both sparse, projection ALL):
  gsi1: in_app: gsi1pk = TENANT#{tenant}#USER#{user}, gsi1sk = {created_at}#{id} (newest first);
        email_digest: gsi1pk = TENANT#{tenant}#USER#{user}#DIGEST, same gsi1sk (for the digest).
  gsi2: unread in_app only: gsi2pk = TENANT#{tenant}#USER#{user}#UNREAD, same sort key; removed
        when read, so the unread count is one COUNT Query and read-all touches unread items only.
- pk = TENANT#{tenant}#USER#{user}, sk = PREFERENCES: the user's preferences (`types`: type ->
  in_app | email_digest | off, `digest_frequency`).
- pk = TENANT#{tenant}#USER#{user}, sk = DIGEST_PENDING: the user has `email_digest` items not yet
  sent (`pending`: how many were written since the marker was last cleared, `tenant_id`,
  `user_id`); written with each digest item, so the digest run finds its users without reading any
  notification. Index: gsi2pk = DIGEST_PENDING, gsi2sk = {tenant}#{user} (one partition across
  tenants, as the nudges' enabled-tenants index: `store/nudges.py`); cleared by the run only while
  `pending` is what it read, so an item written during the run keeps the marker.
- pk = TENANT#{tenant}#USER#{user}, sk = DIGEST#{YYYY-MM-DD | YYYY-Www}: the digest of one period
  (`email_id` of the queued email, `items`), written only if absent: one digest per user and period.
  A digest item, once in a sent digest, leaves the digest index (`digest_period`, `digested_at`).
- pk = TENANT#{tenant}, sk = NOTIFICATION_SETTINGS: the tenant's `digest_sender_account_id` and the
  last digest run's `digest_status` and `digest_last_run_at` (`put_settings` replaces the item, so a
  new sender shows no status until the next run).
"""

from __future__ import annotations

from collections.abc import Iterator
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
PENDING_SK = "DIGEST_PENDING"
PENDING_INDEX_PK = "DIGEST_PENDING"  # on gsi2, next to the unread partitions
DIGEST_PREFIX = "DIGEST#"


def _old_item(exc: Exception) -> Item | None:
    """The item a failed conditional write returned (`ReturnValuesOnConditionCheckFailure`): the
    error response carries it in DynamoDB's attribute-value form, which the resource layer leaves
    as it is for errors."""
    raw = getattr(exc, "response", {}).get("Item")
    if not isinstance(raw, dict) or not raw:
        return None
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {name: deserializer.deserialize(value) for name, value in raw.items()}


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
    def create_notification(
        self, tenant_id: str, user_id: str, values: Item, *, ttl: int
    ) -> tuple[bool, Item]:
        """Store a notification (`values` holds `notification_id`, `channel`, `created_at` ...) if
        absent. Returns (True, the item written), or (False, the stored item) when that
        notification exists already (a redelivered event): the failed conditional put returns it
        (`ReturnValuesOnConditionCheckFailure=ALL_OLD`, PutItem API reference), so no read follows.
        An in-app notification is written with `announced: false` (see `mark_announced`)."""
        notification_id = str(values["notification_id"])
        order = f"{values['created_at']}#{notification_id}"
        if values["channel"] == "in_app":
            index: Item = {
                "gsi1pk": user_pk(tenant_id, user_id),
                "gsi1sk": order,
                "gsi2pk": unread_pk(tenant_id, user_id),
                "gsi2sk": order,
                "announced": False,
            }
        else:
            index = {"gsi1pk": digest_pk(tenant_id, user_id), "gsi1sk": order}
        item: Item = {
            "pk": user_pk(tenant_id, user_id),
            "sk": notification_sk(notification_id),
            "user_id": user_id,
            **values,
            **index,
            "ttl": ttl,
        }
        try:
            self.table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(sk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            stored = _old_item(exc)
            if stored is None:  # not returned (never seen): read it
                stored = self.get_notification(tenant_id, user_id, notification_id) or {}
            return False, stored
        if values["channel"] == "email_digest":
            self._mark_pending(tenant_id, user_id)
        return True, item

    def mark_announced(self, tenant_id: str, user_id: str, notification_id: str) -> None:
        """Record that `notification.created` went out for an in-app notification (PutEvents
        accepted it); a notification deleted meanwhile (TTL) is left alone."""
        try:
            self.table.update_item(
                Key={"pk": user_pk(tenant_id, user_id), "sk": notification_sk(notification_id)},
                UpdateExpression="SET announced = :true",
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeValues={":true": True},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

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

    def update_digest_status(self, tenant_id: str, values: Item) -> None:
        """Record the last digest run on the settings item (keeps the sender setting)."""
        names = sorted(values)
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": SETTINGS_SK},
            UpdateExpression="SET " + ", ".join(f"#{n} = :{n}" for n in names),
            ExpressionAttributeNames={f"#{n}": n for n in names},
            ExpressionAttributeValues={f":{n}": values[n] for n in names},
        )

    # -- digests
    def _mark_pending(self, tenant_id: str, user_id: str) -> None:
        self.table.update_item(
            Key={"pk": user_pk(tenant_id, user_id), "sk": PENDING_SK},
            UpdateExpression=(
                "SET gsi2pk = :index, gsi2sk = :order, tenant_id = :t, user_id = :u ADD pending :one"
            ),
            ExpressionAttributeValues={
                ":index": PENDING_INDEX_PK,
                ":order": f"{tenant_id}#{user_id}",
                ":t": tenant_id,
                ":u": user_id,
                ":one": 1,
            },
        )

    def pending_digests(self) -> Iterator[Item]:
        """Every user's pending-digest marker (`tenant_id`, `user_id`, `pending`), in tenant order:
        one Query per 1 MB page of markers, no notification read."""
        kwargs: dict[str, Any] = {
            "IndexName": UNREAD_INDEX,
            "KeyConditionExpression": Key("gsi2pk").eq(PENDING_INDEX_PK),
        }
        yield from self.query_all(**kwargs)

    def clear_pending(self, tenant_id: str, user_id: str, pending: int) -> bool:
        """Delete the marker if no digest item was written since it read `pending`; False otherwise."""
        try:
            self.table.delete_item(
                Key={"pk": user_pk(tenant_id, user_id), "sk": PENDING_SK},
                ConditionExpression="pending = :n",
                ExpressionAttributeValues={":n": pending},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def digest_items(self, tenant_id: str, user_id: str) -> list[Item]:
        """The user's digest items not yet sent, oldest first (the digest index, all pages)."""
        kwargs: dict[str, Any] = {
            "IndexName": ALL_INDEX,
            "KeyConditionExpression": Key("gsi1pk").eq(digest_pk(tenant_id, user_id)),
        }
        items: list[Item] = []
        while True:
            response = self.table.query(**kwargs)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def claim_digest(self, tenant_id: str, user_id: str, period: str, values: Item, *, ttl: int) -> bool:
        """Write the digest of `period` (`YYYY-MM-DD` or `YYYY-Www`) if absent; False when the user
        has it already."""
        try:
            self.table.put_item(
                Item={
                    "pk": user_pk(tenant_id, user_id),
                    "sk": f"{DIGEST_PREFIX}{period}",
                    **values,
                    "ttl": ttl,
                },
                ConditionExpression="attribute_not_exists(sk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def set_digest_email(self, tenant_id: str, user_id: str, period: str, email_id: str) -> None:
        self.table.update_item(
            Key={"pk": user_pk(tenant_id, user_id), "sk": f"{DIGEST_PREFIX}{period}"},
            UpdateExpression="SET email_id = :e",
            ExpressionAttributeValues={":e": email_id},
        )

    def get_digest(self, tenant_id: str, user_id: str, period: str) -> Item | None:
        return self.get(user_pk(tenant_id, user_id), f"{DIGEST_PREFIX}{period}", consistent=True)

    def mark_digested(
        self, tenant_id: str, user_id: str, notification_id: str, period: str, at: datetime
    ) -> None:
        """Take a digest item out of the digest index: it went out in the digest of `period`."""
        self.table.update_item(
            Key={"pk": user_pk(tenant_id, user_id), "sk": notification_sk(notification_id)},
            UpdateExpression="SET digest_period = :p, digested_at = :at REMOVE gsi1pk, gsi1sk",
            ExpressionAttributeValues={":p": period, ":at": at.isoformat()},
        )
