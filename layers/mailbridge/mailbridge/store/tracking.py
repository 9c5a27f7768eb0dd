"""Tracking table: the link set of each tracked email and its hits.

    pk = TENANT#{tenant}#EMAIL#{email_id}, sk = MESSAGE              links by index, opens/clicks on
                                           sk = HIT#{at}#{hit_id}     one hit with its evidence,
                                                                      classification and reasons (ttl)

`at` is ISO 8601 UTC with microseconds, so hits sort by time and a time range is a key range.
Hit records expire `ttl` (epoch seconds) after they were made: the retention is a setting
(`TRACKING_HIT_RETENTION_DAYS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from mailbridge.store.base import DynamoRepository, Item
from mailbridge.store.batch import batch_put
from mailbridge.tracking.models import Evidence, Hit, TrackedMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

MESSAGE_SK = "MESSAGE"
MAX_HITS_READ = 2000  # engagement reads at most this many hits of one email


def message_pk(tenant_id: str, email_id: str) -> str:
    return f"TENANT#{tenant_id}#EMAIL#{email_id}"


def _at(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


class TrackingStore(Protocol):
    def put_message(self, message: TrackedMessage) -> None: ...

    def put_messages(self, messages: Sequence[TrackedMessage]) -> None: ...

    def get_message(self, tenant_id: str, email_id: str) -> TrackedMessage | None: ...

    def put_hit(self, tenant_id: str, hit: Hit, *, expires: datetime) -> None: ...

    def hits_since(self, tenant_id: str, email_id: str, since: datetime) -> list[Hit]: ...

    def hits(self, tenant_id: str, email_id: str) -> Iterator[Hit]: ...

    def records(self, tenant_id: str, email_id: str) -> tuple[TrackedMessage | None, list[Hit]]: ...


def _message_item(message: TrackedMessage) -> Item:
    return {
        "pk": message_pk(message.tenant_id, message.email_id),
        "sk": MESSAGE_SK,
        "opens": message.opens,
        "clicks": message.clicks,
        "links": list(message.links),
    }


class DynamoTrackingStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def put_message(self, message: TrackedMessage) -> None:
        """Idempotent: a retried send request stores the same link set again."""
        self.table.put_item(Item=_message_item(message))

    def put_messages(self, messages: Sequence[TrackedMessage]) -> None:
        """`put_message` for many, 25 a BatchWriteItem: the key is the email's, so a replay
        writes the same items again."""
        batch_put(self.client, self.table_name, [_message_item(m) for m in messages])

    def get_message(self, tenant_id: str, email_id: str) -> TrackedMessage | None:
        item = self.get(message_pk(tenant_id, email_id), MESSAGE_SK)
        return None if item is None else _message(tenant_id, email_id, item)

    def put_hit(self, tenant_id: str, hit: Hit, *, expires: datetime) -> None:
        evidence = hit.evidence.model_dump(exclude_none=True)
        if hit.evidence.seconds_since_delivery is not None:
            evidence["seconds_since_delivery"] = Decimal(str(round(hit.evidence.seconds_since_delivery, 3)))
        item: Item = {
            "pk": message_pk(tenant_id, hit.email_id),
            "sk": f"HIT#{_at(hit.at)}#{hit.hit_id}",
            "hit_id": hit.hit_id,
            "kind": hit.kind,
            "at": _at(hit.at),
            "evidence": evidence,
            "classification": hit.classification,
            "reasons": list(hit.reasons),
            "ttl": int(expires.timestamp()),
        }
        if hit.link is not None:
            item["link"] = hit.link
        self.table.put_item(Item=item)

    def _query(self, tenant_id: str, email_id: str, since: datetime | None) -> Iterator[Hit]:
        from boto3.dynamodb.conditions import Key

        hits = Key("sk").between(f"HIT#{_at(since)}", "HIT#~") if since else Key("sk").begins_with("HIT#")
        key = Key("pk").eq(message_pk(tenant_id, email_id)) & hits
        kwargs: dict[str, Any] = {"KeyConditionExpression": key}
        read = 0
        while True:
            response = self.table.query(**kwargs)
            for item in response.get("Items", []):
                read += 1
                yield _hit(email_id, item)
                if read >= MAX_HITS_READ:
                    return
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def hits_since(self, tenant_id: str, email_id: str, since: datetime) -> list[Hit]:
        return list(self._query(tenant_id, email_id, since))

    def hits(self, tenant_id: str, email_id: str) -> Iterator[Hit]:
        return self._query(tenant_id, email_id, None)

    def records(self, tenant_id: str, email_id: str) -> tuple[TrackedMessage | None, list[Hit]]:
        """The email's link set (None: not tracked) and its hits (at most MAX_HITS_READ), oldest
        first, from one Query of its partition (`HIT#...` sorts before `MESSAGE`; more requests
        only past 1 MB)."""
        from boto3.dynamodb.conditions import Key

        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(message_pk(tenant_id, email_id))}
        message: TrackedMessage | None = None
        hits: list[Hit] = []
        while True:
            response = self.table.query(**kwargs)
            for item in response.get("Items", []):
                if item["sk"] == MESSAGE_SK:
                    message = _message(tenant_id, email_id, item)
                elif str(item["sk"]).startswith("HIT#") and len(hits) < MAX_HITS_READ:
                    hits.append(_hit(email_id, item))
            last = response.get("LastEvaluatedKey")
            if not last:
                return message, hits
            kwargs["ExclusiveStartKey"] = last


def _message(tenant_id: str, email_id: str, item: Item) -> TrackedMessage:
    return TrackedMessage(
        tenant_id=tenant_id,
        email_id=email_id,
        opens=bool(item.get("opens")),
        clicks=bool(item.get("clicks")),
        links=[str(link) for link in item.get("links") or ()],
    )


def _hit(email_id: str, item: Item) -> Hit:
    evidence = dict(item.get("evidence") or {})
    if "seconds_since_delivery" in evidence:
        evidence["seconds_since_delivery"] = float(evidence["seconds_since_delivery"])
    link = item.get("link")
    return Hit(
        hit_id=str(item["hit_id"]),
        email_id=email_id,
        kind=item["kind"],
        link=int(link) if link is not None else None,
        at=datetime.fromisoformat(str(item["at"])),
        evidence=Evidence.model_validate(evidence),
        classification=item["classification"],
        reasons=[str(r) for r in item.get("reasons") or ()],
    )


def retention_expiry(now: datetime, days: int) -> datetime:
    return now + timedelta(days=days)
