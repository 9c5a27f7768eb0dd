"""Links table: email <-> CRM record links and the participant index.

Item types:
  pk = TENANT#{tenant}#EMAIL#{email_id}, sk = LINK#{kind}#{record_id}
      one link of an email to a contact, company, deal or campaign, with why it was made
      (`reason`: participant | domain | deal_rule | manual) and what it came from (`via`: the
      address, domain or record). gsi1 (a record's timeline, newest first):
      gsi1pk = TENANT#{tenant}#{kind}#{record_id}, gsi1sk = {date}#{email_id}
  pk = TENANT#{tenant}#ADDR#{address}, sk = {date}#{email_id}
      participant index: every stored email under each of its from/to/cc addresses (lower-cased),
      written whether or not anything matched, so re-matching finds an address's mail by key
      instead of scanning the emails table.
  pk = TENANT#{tenant}#EVENT#{event_id} | TENANT#{tenant}#ACTIVITY#{activity_id}, sk = TL#{kind}#{record_id}
      a calendar event or a CRM activity on a contact's or deal's timeline, with what the timeline
      shows of it (`entry`, JSON); written by the calendar and CRM stores in the same transaction
      as the event or activity itself (`timeline_entry_item`).
  pk = TENANT#{tenant}#HIT#{hit_id}, sk = TL#contact#{contact_id}
      a human open or click of a tracked email on the timeline of each contact the email is linked
      to, written when the hit is recorded; `ttl` = the hit's own expiry (tracking retention).

gsi2 (the timeline index: a contact's or deal's emails, events and activities in one time order,
so one Query fills a page): gsi2pk = TENANT#{tenant}#TL#{kind}#{record_id} (kind: contact | deal),
gsi2sk = {UTC ISO 8601 instant}#{id} (mail: the email's date; events: their first start;
activities: when they happened; ids carry their kind's prefix, so keys are unique). Email links
to contacts and deals carry it, as do the event and activity entries above.

Automatic links are written only where the pair has no link yet (read first, in batches):
replays write nothing twice and never downgrade a manual link (the one gap: a manual link made
in the milliseconds between that read and the write keeps its link but shows the automatic
reason). A manual link overwrites whatever link the pair had.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key
from mailbridge.store.pagination import decode_cursor, encode_cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

# BatchGetItem takes at most 100 keys (BatchWriteItem's 25 puts are boto3's batch_writer's business).
BATCH_GET_MAX = 100
INDEX_PAGE_MAX = 1000
MANUAL = "manual"


def email_links_pk(tenant_id: str, email_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#EMAIL#{email_id}"


def link_sk(kind: str, record_id: str) -> str:
    return f"LINK#{kind}#{record_id}"


def timeline_pk(tenant_id: str, kind: str, record_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#{kind}#{record_id}"


def address_pk(tenant_id: str, address: str) -> str:
    return f"{tenant_pk(tenant_id)}#ADDR#{address.lower()}"


def order_key(date: str, email_id: str) -> str:
    return f"{date}#{email_id}"


# The records that have a timeline (GET /crm/contacts/{id}/timeline, GET /crm/deals/{id}/timeline).
TIMELINE_KINDS = {"ct_": "contact", "dl_": "deal"}


def timeline_kind(record_id: str) -> str | None:
    """`contact` / `deal` for an id of a record with a timeline (ids carry their kind), else None."""
    return TIMELINE_KINDS.get(record_id[:3])


def timeline_index_pk(tenant_id: str, kind: str, record_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#TL#{kind}#{record_id}"


def timeline_entry_key(tenant_id: str, source: str, source_id: str, record_id: str) -> Item:
    """The key of a `source` (`EVENT`, `ACTIVITY`) item's entry on `record_id`'s timeline."""
    kind = timeline_kind(record_id)
    return {"pk": f"{tenant_pk(tenant_id)}#{source}#{source_id}", "sk": f"TL#{kind}#{record_id}"}


def timeline_entry_item(
    tenant_id: str, source: str, source_id: str, record_id: str, *, at: str, entry: str
) -> Item:
    """A calendar event's or activity's entry on the timeline of `record_id` (a contact or deal:
    see `timeline_kind`), in gsi2 at `{at}#{source_id}`; `entry`: the JSON the timeline shows."""
    kind = timeline_kind(record_id)
    if kind is None:
        raise ValueError(f"{record_id[:3]} records have no timeline")
    return {
        **timeline_entry_key(tenant_id, source, source_id, record_id),
        "source": source,
        "source_id": source_id,
        "entry": entry,
        "gsi2pk": timeline_index_pk(tenant_id, kind, record_id),
        "gsi2sk": order_key(at, source_id),
    }


@dataclass(frozen=True)
class TimelineRow:
    """One gsi2 row: an email link (`source` EMAIL, `entry` None: the email is read from its
    table) or an event's / activity's entry (`entry`: its JSON)."""

    source: str
    source_id: str
    entry: str | None


def to_timeline_row(item: Item) -> TimelineRow:
    if "source" not in item:
        return TimelineRow("EMAIL", str(item["email_id"]), None)
    return TimelineRow(str(item["source"]), str(item["source_id"]), str(item["entry"]))


@dataclass(frozen=True)
class LinkRecord:
    """One link as stored (the persistence shape mapped to plain fields)."""

    email_id: str
    kind: str
    record_id: str
    reason: str
    via: str | None
    date: str
    direction: str
    created_at: str
    created_by: str


@dataclass(frozen=True)
class IndexEntry:
    """One participant index row: `address` took part in `email_id` as `role`."""

    address: str
    email_id: str
    date: str
    direction: str
    role: str


def link_item(tenant_id: str, link: LinkRecord) -> Item:
    item: Item = {
        "pk": email_links_pk(tenant_id, link.email_id),
        "sk": link_sk(link.kind, link.record_id),
        "email_id": link.email_id,
        "kind": link.kind,
        "record_id": link.record_id,
        "reason": link.reason,
        "via": link.via,
        "date": link.date,
        "direction": link.direction,
        "created_at": link.created_at,
        "created_by": link.created_by,
        "gsi1pk": timeline_pk(tenant_id, link.kind, link.record_id),
        "gsi1sk": order_key(link.date, link.email_id),
    }
    if link.kind in TIMELINE_KINDS.values():
        item["gsi2pk"] = timeline_index_pk(tenant_id, link.kind, link.record_id)
        item["gsi2sk"] = order_key(link.date, link.email_id)
    return item


def to_link(item: Item) -> LinkRecord:
    return LinkRecord(
        email_id=str(item["email_id"]),
        kind=str(item["kind"]),
        record_id=str(item["record_id"]),
        reason=str(item["reason"]),
        via=str(item["via"]) if item.get("via") else None,
        date=str(item["date"]),
        direction=str(item.get("direction") or "inbound"),
        created_at=str(item["created_at"]),
        created_by=str(item["created_by"]),
    )


def index_item(tenant_id: str, entry: IndexEntry) -> Item:
    return {
        "pk": address_pk(tenant_id, entry.address),
        "sk": order_key(entry.date, entry.email_id),
        "address": entry.address.lower(),
        "email_id": entry.email_id,
        "date": entry.date,
        "direction": entry.direction,
        "role": entry.role,
    }


def to_entry(item: Item) -> IndexEntry:
    return IndexEntry(
        address=str(item["address"]),
        email_id=str(item["email_id"]),
        date=str(item["date"]),
        direction=str(item.get("direction") or "inbound"),
        role=str(item.get("role") or "to"),
    )


class LinkStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    # ------------------------------------------------------------------ participant index
    def index_participants(self, tenant_id: str, entries: Sequence[IndexEntry]) -> None:
        """Deterministic keys: writing an email's index again changes nothing."""
        unique = {(e.address.lower(), e.email_id): e for e in entries}
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for entry in unique.values():
                batch.put_item(Item=index_item(tenant_id, entry))

    def address_page(
        self, tenant_id: str, address: str, *, cursor: str | None, limit: int
    ) -> tuple[list[IndexEntry], str | None]:
        """Emails `address` took part in, oldest first (a forward-only walk for backfills).
        Index rows are small, so pages may be larger than the API's (up to INDEX_PAGE_MAX)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(address_pk(tenant_id, address)),
            "Limit": max(1, min(limit, INDEX_PAGE_MAX)),
        }
        start = decode_cursor(cursor, tenant_id)
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.table.query(**kwargs)
        items = response.get("Items", [])
        return [to_entry(i) for i in items], encode_cursor(response.get("LastEvaluatedKey"), tenant_id)

    def address_emails(self, tenant_id: str, address: str, *, limit: int) -> list[IndexEntry]:
        """The newest `limit` emails of an address (one query of the participant index)."""
        items, _ = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(address_pk(tenant_id, address)),
            limit=limit,
            newest_first=True,
        )
        return [to_entry(i) for i in items]

    # ------------------------------------------------------------------ links
    def put_auto_links(self, tenant_id: str, links: Sequence[LinkRecord]) -> int:
        """Create the links that do not exist yet; returns how many this call wrote.

        One consistent BatchGetItem per 100 keys finds the pairs already linked (a replay, or a
        manual link), then BatchWriteItem writes the rest: deterministic keys make a replay
        write nothing new, and an existing manual link is never replaced.
        """
        unique = list({(link.email_id, link.kind, link.record_id): link for link in links}.values())
        existing: set[tuple[str, str]] = set()
        for start in range(0, len(unique), BATCH_GET_MAX):
            keys = [
                {"pk": email_links_pk(tenant_id, link.email_id), "sk": link_sk(link.kind, link.record_id)}
                for link in unique[start : start + BATCH_GET_MAX]
            ]
            request: dict[str, Any] = {
                self.table_name: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "pk, sk"}
            }
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    existing.add((str(item["pk"]), str(item["sk"])))
                request = response.get("UnprocessedKeys") or {}
        missing = [
            link
            for link in unique
            if (email_links_pk(tenant_id, link.email_id), link_sk(link.kind, link.record_id)) not in existing
        ]
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for link in missing:
                batch.put_item(Item=link_item(tenant_id, link))
        return len(missing)

    def put_manual_link(self, tenant_id: str, link: LinkRecord) -> None:
        """A person's link wins over an automatic one on the same pair."""
        self.table.put_item(Item=link_item(tenant_id, link))

    def email_links(self, tenant_id: str, email_id: str) -> list[LinkRecord]:
        """Every link of one email (an email has a handful; one query, all pages)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(email_links_pk(tenant_id, email_id))
            & Key("sk").begins_with("LINK#"),
            "ConsistentRead": True,
        }
        out: list[LinkRecord] = []
        while True:
            response = self.table.query(**kwargs)
            out.extend(to_link(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return out
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put_timeline_entries(self, items: Sequence[Item]) -> None:
        """Entries made by `timeline_entry_item` outside a record's own transaction (tracking's
        `HIT` entries); deterministic keys make a replay write nothing new."""
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for item in items:
                batch.put_item(Item=item)

    def delete_link(self, tenant_id: str, email_id: str, kind: str, record_id: str) -> bool:
        """True when a link was there to delete."""
        try:
            self.table.delete_item(
                Key={"pk": email_links_pk(tenant_id, email_id), "sk": link_sk(kind, record_id)},
                ConditionExpression="attribute_exists(pk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def delete_links(self, tenant_id: str, links: Iterable[LinkRecord]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for link in links:
                batch.delete_item(
                    Key={
                        "pk": email_links_pk(tenant_id, link.email_id),
                        "sk": link_sk(link.kind, link.record_id),
                    }
                )

    def timeline_page(
        self, tenant_id: str, kind: str, record_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[LinkRecord], str | None]:
        """A record's links, newest email first (gsi1)."""
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("gsi1pk").eq(timeline_pk(tenant_id, kind, record_id)),
            cursor=cursor,
            limit=limit,
            index="gsi1",
            newest_first=True,
        )
        return [to_link(i) for i in items], next_cursor

    def timeline_rows(
        self, tenant_id: str, kind: str, record_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Item], str | None]:
        """One Query of a contact's or deal's timeline index (gsi2), newest first: its email links
        and its events' and activities' entries (`to_timeline_row` reads each). `Invalid`
        `invalid_cursor` for a cursor of another listing."""
        return self.query_page(
            tenant_id=tenant_id,
            key_condition=self._timeline_condition(tenant_id, kind, record_id),
            cursor=cursor,
            limit=limit,
            index="gsi2",
            newest_first=True,
        )

    def timeline_cursor_after(self, tenant_id: str, kind: str, record_id: str, item: Item) -> str | None:
        """The cursor that resumes `timeline_rows` right after `item` (one of its rows)."""
        return self.cursor_at(
            tenant_id,
            {name: item[name] for name in ("pk", "sk", "gsi2pk", "gsi2sk")},
            index="gsi2",
            key_condition=self._timeline_condition(tenant_id, kind, record_id),
        )

    def _timeline_condition(self, tenant_id: str, kind: str, record_id: str) -> Any:
        return Key("gsi2pk").eq(timeline_index_pk(tenant_id, kind, record_id))
