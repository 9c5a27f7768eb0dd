"""Calendar table: events, their UID lookups, timeline entries, feed tokens and rate counters.

Item types:
  pk = TENANT#{tenant}, sk = EVENT#{event_id}
      an event (a series with its overrides) as a document (`doc`), its `version`, and the
      instants its occurrences span (`series_start`, `series_end`; END_OF_TIME when open-ended).
      gsi1 (events by the end of their span, for range reads):
        gsi1pk = TENANT#{tenant}#SERIES, gsi1sk = {series_end}#{event_id}
      gsi2 (pending invitations, sparse: only while one waits for an answer):
        gsi2pk = TENANT#{tenant}#PENDING, gsi2sk = {received_at}#{event_id}
  pk = TENANT#{tenant}, sk = UID#{sha256(uid)}
      iCalendar UID -> event_id: one event per UID per tenant (imports and iTIP find events by it)
  pk = TENANT#{tenant}#REL#{record_id}, sk = {start}#{event_id}
      legacy, no longer written or read (scripts/backfill_timeline.py deletes them): the event
      under a record. Events are on contacts' and deals' timelines through their entries in the
      links table's timeline index (store/links.py `timeline_entry_item`: title, start, end ...).
  pk = TENANT#{tenant}, sk = FEED#{user key}  (the user key: a digest of the subject, tokens.subject_key)
      the generation of a user's subscription feed token (rotating it makes old tokens invalid)
  pk = TENANT#{tenant}, sk = PROVIDER#{account_id}#{sha256(provider event id)}
      a provider calendar's event -> ours (`uid`, `event_id`) with the provider's `etag` and
      `updated` last seen (provider deletions name only the provider id; echo suppression)
  pk = TENANT#{tenant}, sk = PROVIDERUID#{sha256(uid)}
      our uid -> the provider event (`account_id`, `provider_id`): where an API change is pushed
  pk = TENANT#{tenant}, sk = CALSYNC#{account_id}
      the account's provider calendar cursor (`sync_token`: Google's nextSyncToken)
  pk = TENANT#{tenant}, sk = RATE#{bucket}#{window}
      a per-tenant counter for one rate-limit window (written by store/ratelimit.py); `ttl` removes it
An event, its UID item and its timeline entries (in the links table) change in one
TransactWriteItems; the event is conditional on its version, the UID item on being new or the
event's own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbridge.calendar.models import Event
from mailbridge.errors import Conflict, Invalid, MailbridgeError
from mailbridge.store.base import DynamoRepository, Item, Write, tenant_pk
from mailbridge.store.conditions import Attr, Key
from mailbridge.store.keys import digest
from mailbridge.store.links import timeline_entry_item, timeline_kind

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

BATCH_GET = 100
MAX_EVENT_BYTES = 350_000  # DynamoDB items stop at 400 KB; keys and indexes need the rest
RANGE_READ_MAX = 5000


def event_sk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def uid_sk(uid: str) -> str:
    return f"UID#{digest(uid, 40)}"


def series_pk(tenant_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#SERIES"


def pending_pk(tenant_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#PENDING"


def feed_sk(user: str) -> str:
    return f"FEED#{user}"


def provider_sk(account_id: str, provider_id: str) -> str:
    return f"PROVIDER#{account_id}#{digest(provider_id, 40)}"  # account_provider_links reads the prefix


def provider_uid_sk(uid: str) -> str:
    return f"PROVIDERUID#{digest(uid, 40)}"


def calendar_sync_sk(account_id: str) -> str:
    return f"CALSYNC#{account_id}"


@dataclass(frozen=True)
class ProviderLink:
    """One provider event as we last saw or wrote it."""

    provider_id: str
    uid: str
    etag: str | None = None
    updated: str | None = None  # the provider's `updated` / `lastModifiedDateTime`, ISO 8601


@dataclass(frozen=True)
class Span:
    """The UTC instants (ISO 8601) between which an event's occurrences fall."""

    start: str
    end: str


def _doc(event: Event) -> dict[str, Any]:
    doc = event.model_dump(mode="json", exclude={"version"})
    if len(json.dumps(doc, separators=(",", ":"))) > MAX_EVENT_BYTES:
        raise Invalid(
            "the event is too large to store (too many attendees, overrides or too much text)",
            code="event_too_large",
        )
    return doc


def to_event(item: Item) -> Event:
    return Event.model_validate({**_plain(item["doc"]), "version": int(item["version"])})


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints (the event document holds no fractions)."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _timeline_summary(event: Event) -> dict[str, Any]:
    assert event.end is not None
    return {
        "event_id": event.event_id,
        "title": event.title,
        "start": event.start.model_dump(mode="json", exclude_none=True),
        "end": event.end.model_dump(mode="json", exclude_none=True),
        "all_day": event.start.all_day,
        "location": event.location,
        "status": event.status,
        "recurring": event.recurring,
    }


def timeline_entry(event: Event) -> str:
    """What a timeline shows of the event (`CalendarTimelineItem` as JSON): placed at its start."""
    return json.dumps(
        {**_timeline_summary(event), "type": "event", "date": event.start.instant.isoformat()},
        separators=(",", ":"),
    )


class CalendarStore(DynamoRepository):
    """`timeline_table`: the links table, which holds the events' timeline entries."""

    def __init__(self, table_name: str, timeline_table: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)
        self.timeline_table = timeline_table

    # ------------------------------------------------------------------ reads
    def get_event(self, tenant_id: str, event_id: str) -> Event | None:
        item = self.get(tenant_pk(tenant_id), event_sk(event_id), consistent=True)
        return to_event(item) if item else None

    def _batch_get(self, tenant_id: str, sks: Sequence[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        unique = list(dict.fromkeys(sks))
        for start in range(0, len(unique), BATCH_GET):
            keys = [{"pk": tenant_pk(tenant_id), "sk": sk} for sk in unique[start : start + BATCH_GET]]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[str(item["sk"])] = item
                request = response.get("UnprocessedKeys") or {}
        return found

    def events_by_uid(self, tenant_id: str, uids: Iterable[str]) -> dict[str, Event]:
        """The stored events of these UIDs (UIDs without one are left out): two batched reads."""
        wanted = list(dict.fromkeys(uids))
        lookups = self._batch_get(tenant_id, [uid_sk(uid) for uid in wanted])
        event_ids = {str(item["uid"]): str(item["event_id"]) for item in lookups.values()}
        events = self._batch_get(tenant_id, [event_sk(i) for i in event_ids.values()])
        out: dict[str, Event] = {}
        for uid, event_id in event_ids.items():
            item = events.get(event_sk(event_id))
            if item is not None:
                out[uid] = to_event(item)
        return out

    def events_overlapping(self, tenant_id: str, start: datetime, end: datetime) -> list[Event]:
        """Events whose span meets [start, end): gsi1 from `start` on, filtered on the span's start.

        At most RANGE_READ_MAX events; more is `Invalid` 400 `range_too_busy` (ask for less)."""
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": Key("gsi1pk").eq(series_pk(tenant_id))
            & Key("gsi1sk").gte(start.isoformat()),
            "FilterExpression": Attr("series_start").lt(end.isoformat()),
        }
        out: list[Event] = []
        while True:
            response = self.table.query(**kwargs)
            out.extend(to_event(item) for item in response.get("Items", []))
            if len(out) > RANGE_READ_MAX:
                raise Invalid(
                    f"more than {RANGE_READ_MAX} events in this range; ask for a shorter one",
                    code="range_too_busy",
                )
            if "LastEvaluatedKey" not in response:
                return out
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def pending_page(
        self, tenant_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Event], str | None]:
        """Invitations waiting for an answer, latest received first."""
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("gsi2pk").eq(pending_pk(tenant_id)),
            cursor=cursor,
            limit=limit,
            index="gsi2",
            newest_first=True,
        )
        return [to_event(i) for i in items], next_cursor

    # ------------------------------------------------------------------ writes
    def _event_item(self, tenant_id: str, event: Event, span: Span) -> Item:
        item: Item = {
            "pk": tenant_pk(tenant_id),
            "sk": event_sk(event.event_id),
            "doc": _doc(event),
            "version": event.version,
            "uid": event.uid,
            "series_start": span.start,
            "series_end": span.end,
            "gsi1pk": series_pk(tenant_id),
            "gsi1sk": f"{span.end}#{event.event_id}",
        }
        invitation = event.invitation
        if invitation is not None and invitation.status == "pending":
            item["gsi2pk"] = pending_pk(tenant_id)
            item["gsi2sk"] = f"{invitation.received_at.isoformat()}#{event.event_id}"
        return item

    def _uid_item(self, tenant_id: str, event: Event) -> Item:
        return {
            "pk": tenant_pk(tenant_id),
            "sk": uid_sk(event.uid),
            "uid": event.uid,
            "event_id": event.event_id,
        }

    def _timeline_items(self, tenant_id: str, event: Event) -> dict[tuple[str, str], Item]:
        """The event's entries on its contacts' and deal's timelines (links table), by key."""
        at, entry = event.start.instant.isoformat(), timeline_entry(event)
        items = [
            timeline_entry_item(tenant_id, "EVENT", event.event_id, record, at=at, entry=entry)
            for record in event.record_ids
            if timeline_kind(record)
        ]
        return {(str(item["pk"]), str(item["sk"])): item for item in items}

    def _timeline_put(self, item: Item) -> Write:
        return Write(
            {"Put": {"TableName": self.timeline_table, "Item": item}},
            lambda: Conflict("conflict", code="conflict"),
        )

    def _timeline_delete(self, pk: str, sk: str) -> Write:
        return Write(
            {"Delete": {"TableName": self.timeline_table, "Key": {"pk": pk, "sk": sk}}},
            lambda: Conflict("conflict", code="conflict"),
        )

    def index_timeline(self, tenant_id: str, event: Event) -> bool:
        """Put the event's timeline entries (a backfill: store/timeline_backfill.py) if the stored
        event is still at `event.version`; False when it is not (read it again)."""
        check = {
            "ConditionCheck": {
                "Key": {"pk": tenant_pk(tenant_id), "sk": event_sk(event.event_id)},
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": event.version},
            }
        }
        writes = [Write(check, lambda: Conflict("changed", code="version_conflict"))]
        writes += [self._timeline_put(item) for item in self._timeline_items(tenant_id, event).values()]
        try:
            self.transact(writes)
        except Conflict:
            return False
        return True

    def _uid_taken(self, event: Event) -> MailbridgeError:
        return Conflict("another event already has this UID", code="uid_in_use", details={"uid": event.uid})

    def create_event(self, tenant_id: str, event: Event, span: Span) -> None:
        """Event, UID lookup and timeline entries at once; `Conflict` `uid_in_use` when the UID
        belongs to another event."""
        writes = [
            Write(
                {
                    "Put": {
                        "Item": self._event_item(tenant_id, event, span),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                lambda: Conflict("the event already exists", code="already_exists"),
            ),
            Write(
                {
                    "Put": {
                        "Item": self._uid_item(tenant_id, event),
                        "ConditionExpression": "attribute_not_exists(pk) OR event_id = :me",
                        "ExpressionAttributeValues": {":me": event.event_id},
                    }
                },
                lambda: self._uid_taken(event),
            ),
        ]
        writes += [self._timeline_put(item) for item in self._timeline_items(tenant_id, event).values()]
        self.transact(writes)

    def replace_event(self, tenant_id: str, event: Event, previous: Event, span: Span) -> None:
        """Write `event` (its version one above `previous`'s) and move its timeline entries;
        `Conflict` `version_conflict` when the stored event is no longer at `previous.version`."""
        old = self._timeline_items(tenant_id, previous)
        new = self._timeline_items(tenant_id, event)
        writes = [
            Write(
                {
                    "Put": {
                        "Item": self._event_item(tenant_id, event, span),
                        "ConditionExpression": "#v = :expected",
                        "ExpressionAttributeNames": {"#v": "version"},
                        "ExpressionAttributeValues": {":expected": previous.version},
                    }
                },
                lambda: Conflict("the event was changed by someone else", code="version_conflict"),
            )
        ]
        writes += [self._timeline_delete(pk, sk) for pk, sk in old.keys() - new.keys()]
        writes += [self._timeline_put(item) for key, item in new.items() if old.get(key) != item]
        self.transact(writes)

    def delete_event(self, tenant_id: str, event: Event) -> None:
        writes = [
            Write(
                {
                    "Delete": {
                        "Key": {"pk": tenant_pk(tenant_id), "sk": event_sk(event.event_id)},
                        "ConditionExpression": "#v = :expected",
                        "ExpressionAttributeNames": {"#v": "version"},
                        "ExpressionAttributeValues": {":expected": event.version},
                    }
                },
                lambda: Conflict("the event was changed by someone else", code="version_conflict"),
            ),
            Write(
                {
                    "Delete": {
                        "Key": {"pk": tenant_pk(tenant_id), "sk": uid_sk(event.uid)},
                        "ConditionExpression": "attribute_not_exists(pk) OR event_id = :me",
                        "ExpressionAttributeValues": {":me": event.event_id},
                    }
                },
                lambda: Conflict("conflict", code="conflict"),
            ),
        ]
        writes += [self._timeline_delete(pk, sk) for pk, sk in self._timeline_items(tenant_id, event)]
        self.transact(writes)

    # ------------------------------------------------------------------ provider calendars
    def provider_links(
        self, tenant_id: str, account_id: str, provider_ids: Iterable[str]
    ) -> dict[str, ProviderLink]:
        """The stored links of these provider event ids (ids without one are left out)."""
        items = self._batch_get(tenant_id, [provider_sk(account_id, i) for i in provider_ids])
        return {
            str(item["provider_id"]): ProviderLink(
                provider_id=str(item["provider_id"]),
                uid=str(item["uid"]),
                etag=str(item["etag"]) if item.get("etag") else None,
                updated=str(item["updated"]) if item.get("updated") else None,
            )
            for item in items.values()
        }

    def account_provider_links(self, tenant_id: str, account_id: str) -> list[ProviderLink]:
        """Every stored link of the account's provider events (a full resync reconciles by id)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(f"PROVIDER#{account_id}#"),
            "ConsistentRead": True,
        }
        links: list[ProviderLink] = []
        while True:
            response = self.table.query(**kwargs)
            for item in response.get("Items", []):
                links.append(
                    ProviderLink(
                        provider_id=str(item["provider_id"]),
                        uid=str(item["uid"]),
                        etag=str(item["etag"]) if item.get("etag") else None,
                        updated=str(item["updated"]) if item.get("updated") else None,
                    )
                )
            if "LastEvaluatedKey" not in response:
                return links
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def provider_of(self, tenant_id: str, uid: str) -> tuple[str, str] | None:
        """(account_id, provider event id) of an event pulled from a provider calendar."""
        item = self.get(tenant_pk(tenant_id), provider_uid_sk(uid), consistent=True)
        return (str(item["account_id"]), str(item["provider_id"])) if item else None

    def save_provider_link(
        self, tenant_id: str, account_id: str, link: ProviderLink, *, series: bool
    ) -> None:
        """Store the link; `series` (not an exception of one): the uid -> provider item too."""
        if series:
            self.table.put_item(
                Item={
                    "pk": tenant_pk(tenant_id),
                    "sk": provider_uid_sk(link.uid),
                    "account_id": account_id,
                    "provider_id": link.provider_id,
                }
            )
        self.table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": provider_sk(account_id, link.provider_id),
                "provider_id": link.provider_id,
                "uid": link.uid,
                "etag": link.etag,
                "updated": link.updated,
            }
        )

    def delete_provider_link(self, tenant_id: str, account_id: str, link: ProviderLink) -> None:
        self.delete(tenant_pk(tenant_id), provider_sk(account_id, link.provider_id))
        if self.provider_of(tenant_id, link.uid) == (account_id, link.provider_id):
            self.delete(tenant_pk(tenant_id), provider_uid_sk(link.uid))

    def calendar_sync_token(self, tenant_id: str, account_id: str) -> str | None:
        """The provider calendar cursor saved by the account's last complete pull (None: none)."""
        item = self.get(tenant_pk(tenant_id), calendar_sync_sk(account_id), consistent=True)
        return str(item["sync_token"]) if item and item.get("sync_token") else None

    def save_calendar_sync_token(self, tenant_id: str, account_id: str, token: str | None) -> None:
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": calendar_sync_sk(account_id), "sync_token": token}
        )

    # ------------------------------------------------------------------ feed tokens
    def feed_generation(self, tenant_id: str, user: str) -> tuple[int, str | None]:
        """(generation, rotated_at) of the user's feed token; (1, None) before any rotation."""
        item = self.get(tenant_pk(tenant_id), feed_sk(user), consistent=True)
        if item is None:
            return 1, None
        return int(item["generation"]), str(item["rotated_at"])

    def rotate_feed(self, tenant_id: str, user: str, rotated_at: str) -> int:
        """Move to the next generation (old tokens stop working); returns it."""
        response = self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": feed_sk(user)},
            UpdateExpression="SET generation = if_not_exists(generation, :one) + :one, rotated_at = :at",
            ExpressionAttributeValues={":one": 1, ":at": rotated_at},
            ReturnValues="UPDATED_NEW",
        )
        return int(str(response["Attributes"]["generation"]))
