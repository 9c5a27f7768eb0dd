"""CRM table: contacts, companies, deals, campaigns, the deal pipeline, and their lookup items.

Item types (pk = TENANT#{tenant} for all):
  CONTACT#{contact_id}                   a contact (in gsi2 under its last change)
  CONTACTGONE#{contact_id}               a deleted contact's tombstone, ids only (in gsi2)
  EMAIL#{address}                        lookup: address (lower-cased) -> contact_id, company_id
  COMPANY#{company_id}                   a company
  DOMAIN#{domain}                        lookup: domain (lower-cased) -> company_id
  DEAL#{deal_id}                         a deal; with a company, also in gsi1 under the company
  DEALCONTACT#{deal_id}#{contact_id}     a deal's link to one of its contacts, in gsi1 under the contact
  CAMPAIGN#{campaign_id}                 a campaign
  PIPELINE                               the tenant's deal stages (absent: the default pipeline)
  TASK#{task_id}                         a task; in gsi1 under the tenant's tasks (by due date),
                                         and while open, due and not yet announced, in gsi2
  ACTIVITY#{activity_id}                 an activity (immutable)
  ACTREL#{record_id}#{occurred_at}#{activity_id}
                                         the activity listed under a contact or deal (a copy),
                                         newest first with `ScanIndexForward=false`
An activity's entries on its contact's and deal's timelines live in the links table's timeline
index (store/links.py `timeline_entry_item`), written in the activity's transaction: a store that
writes activities is given that table (`timeline_table`).
gsi1 (deals by company / by contact, open first, last updated first; a company's contacts):
  gsi1pk = TENANT#{tenant}#COMPANY#{company_id}#DEALS | TENANT#{tenant}#CONTACT#{contact_id}#DEALS
  gsi1sk = OPEN#{updated_at}#{deal_id} | CLOSED#{updated_at}#{deal_id}
  gsi1pk = TENANT#{tenant}#COMPANY#{company_id}#CONTACTS, gsi1sk = {contact_id}  (creation order)
  gsi1pk = TENANT#{tenant}#TASKS, gsi1sk = {due UTC ISO 8601}#{task_id} | ~#{task_id} (no due date)
gsi2 (tasks coming due, all tenants, for the hourly due-soon scan; sparse):
  gsi2pk = TASKDUE#{due date, UTC}, gsi2sk = {due UTC ISO 8601}#{tenant}#{task_id}
gsi2 (contacts by last change, for the CRM sync's push; mailbridge.crm.sync):
  gsi2pk = TENANT#{tenant}#CONTACTCHANGES, gsi2sk = {updated_at, UTC, fixed width}#{contact_id}
  on every contact, and on `CONTACTGONE#{contact_id}` (the tombstone of a deleted contact, ids only)
A record and its lookup/link items change in one TransactWriteItems: the lookups are created with
`attribute_not_exists(pk) OR <id> = :me`, so two records can never claim one address or domain,
even when written concurrently; the record itself is conditional on its version.
Ids are time-ordered, so a plain listing is in creation order. Filtered listings fill their
pages with `mailbridge.store.fill` (a bounded number of requests per page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from mailbridge.crm.models import (
    Activity,
    ActivityTimelineItem,
    Campaign,
    CampaignFields,
    Company,
    Contact,
    Deal,
    EmailLookup,
    Pipeline,
    Task,
    is_open,
)
from mailbridge.errors import Conflict, MailbridgeError, NotFound
from mailbridge.store.base import DynamoRepository, Item, Write, is_condition_failure, tenant_pk
from mailbridge.store.batch import BatchRead
from mailbridge.store.conditions import Attr, Key
from mailbridge.store.fill import PAGE_BUDGET, Budget, fill
from mailbridge.store.links import timeline_entry_item
from mailbridge.store.pagination import MAX_PAGE_SIZE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

PIPELINE_SK = "PIPELINE"
_INT_DIGITS_LIMIT = Decimal(10) ** 38
BATCH_GET = 100

Query = Callable[[str | None, int], tuple[list[Item], str | None]]
# The attributes of a key after which a listing resumes: the table's, or gsi1's.
TABLE_KEY = ("pk", "sk")
INDEX_KEY = ("pk", "sk", "gsi1pk", "gsi1sk")


def contact_sk(contact_id: str) -> str:
    return f"CONTACT#{contact_id}"


def company_sk(company_id: str) -> str:
    return f"COMPANY#{company_id}"


def deal_sk(deal_id: str) -> str:
    return f"DEAL#{deal_id}"


def campaign_sk(campaign_id: str) -> str:
    return f"CAMPAIGN#{campaign_id}"


def email_sk(address: str) -> str:
    return f"EMAIL#{address.lower()}"


def domain_sk(domain: str) -> str:
    return f"DOMAIN#{domain.lower()}"


def deal_contact_sk(deal_id: str, contact_id: str) -> str:
    return f"DEALCONTACT#{deal_id}#{contact_id}"


def company_deals_pk(tenant_id: str, company_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#COMPANY#{company_id}#DEALS"


def contact_deals_pk(tenant_id: str, contact_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#CONTACT#{contact_id}#DEALS"


def company_contacts_pk(tenant_id: str, company_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#COMPANY#{company_id}#CONTACTS"


def task_sk(task_id: str) -> str:
    return f"TASK#{task_id}"


def activity_sk(activity_id: str) -> str:
    return f"ACTIVITY#{activity_id}"


def instant_key(value: datetime) -> str:
    """`{UTC ISO 8601}`: the date part of timeline sort keys (`datetime.isoformat`, as mail dates)."""
    return value.astimezone(UTC).isoformat()


def activity_rel_prefix(record_id: str) -> str:
    return f"ACTREL#{record_id}#"


def tasks_pk(tenant_id: str) -> str:
    return f"{tenant_pk(tenant_id)}#TASKS"


def task_due_pk(day: date) -> str:
    return f"TASKDUE#{day.isoformat()}"


def deal_order_key(deal: Deal) -> str:
    state = "OPEN" if deal.open else "CLOSED"
    return f"{state}#{deal.updated_at.isoformat()}#{deal.deal_id}"


# ---------------------------------------------------------------------------------- mapping


def to_dynamo(value: Any) -> Any:
    """DynamoDB refuses floats: numbers go in as Decimals (through str, so 0.1 stays 0.1)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """Decimals back as ints (up to 38 digits, as they were accepted) or floats (custom fields);
    containers recursively. -9.9E+125 is integral but was sent, and is read back, as a float."""
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.copy_abs() < _INT_DIGITS_LIMIT
            else float(value)
        )
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _meta(item: Item) -> dict[str, Any]:
    return {
        "created_at": item["created_at"],
        "updated_at": item["updated_at"],
        "created_by": item["created_by"],
        "version": int(item["version"]),
    }


def _record_item(tenant_id: str, sk: str, record: Any, exclude: set[str] | None = None) -> Item:
    fields = record.model_dump(mode="python", exclude=exclude)
    return {"pk": tenant_pk(tenant_id), "sk": sk, **to_dynamo(fields)}


def contact_changes_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#CONTACTCHANGES"


def change_key(at: datetime, contact_id: str) -> str:
    """gsi2sk of a contact change: fixed-width UTC time (sorts as it reads), then the id."""
    return f"{at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{contact_id}"


def contact_item(tenant_id: str, contact: Contact) -> Item:
    item = _record_item(tenant_id, contact_sk(contact.contact_id), contact)
    item["gsi2pk"] = contact_changes_pk(tenant_id)
    item["gsi2sk"] = change_key(contact.updated_at, contact.contact_id)
    # What `q` searches: the name and every address, lower-cased.
    item["search"] = " ".join([contact.name.lower(), *contact.addresses])
    if contact.company_id:
        item["gsi1pk"] = company_contacts_pk(tenant_id, contact.company_id)
        item["gsi1sk"] = contact.contact_id
    return item


def to_contact(item: Item) -> Contact:
    return Contact.model_validate(
        {
            "contact_id": item["contact_id"],
            "name": item["name"],
            "emails": [
                {"address": e["address"], "primary": bool(e.get("primary")), "label": e.get("label")}
                for e in item.get("emails") or ()
            ],
            "phones": list(item.get("phones") or ()),
            "title": item.get("title"),
            "company_id": item.get("company_id"),
            "tags": list(item.get("tags") or ()),
            "owner": item.get("owner"),
            "custom": plain(item.get("custom") or {}),
            "do_not_track": bool(item.get("do_not_track")),
            **_meta(item),
        }
    )


def company_item(tenant_id: str, company: Company) -> Item:
    item = _record_item(tenant_id, company_sk(company.company_id), company)
    item["search"] = company.name.lower()
    return item


def to_company(item: Item) -> Company:
    return Company.model_validate(
        {
            "company_id": item["company_id"],
            "name": item["name"],
            "domains": list(item.get("domains") or ()),
            "owner": item.get("owner"),
            **_meta(item),
        }
    )


def deal_item(tenant_id: str, deal: Deal) -> Item:
    item = _record_item(tenant_id, deal_sk(deal.deal_id), deal)
    if deal.company_id:
        item["gsi1pk"] = company_deals_pk(tenant_id, deal.company_id)
        item["gsi1sk"] = deal_order_key(deal)
    return item


def deal_contact_item(tenant_id: str, deal: Deal, contact_id: str) -> Item:
    return {
        "pk": tenant_pk(tenant_id),
        "sk": deal_contact_sk(deal.deal_id, contact_id),
        "deal_id": deal.deal_id,
        "contact_id": contact_id,
        "company_id": deal.company_id,
        "stage": deal.stage,
        "open": deal.open,
        "gsi1pk": contact_deals_pk(tenant_id, contact_id),
        "gsi1sk": deal_order_key(deal),
    }


def to_deal(item: Item) -> Deal:
    amount = item.get("amount")
    return Deal.model_validate(
        {
            "deal_id": item["deal_id"],
            "name": item["name"],
            "stage": item["stage"],
            "open": is_open(str(item["stage"])),
            "amount": None if amount is None else Decimal(amount),
            "currency": item.get("currency"),
            "contact_ids": list(item.get("contact_ids") or ()),
            "company_id": item.get("company_id"),
            "owner": item.get("owner"),
            "close_date": item.get("close_date"),
            **_meta(item),
        }
    )


def campaign_item(tenant_id: str, campaign: Campaign) -> Item:
    return _record_item(tenant_id, campaign_sk(campaign.campaign_id), campaign)


def to_campaign(item: Item) -> Campaign:
    fields = {name: plain(item[name]) for name in CampaignFields.model_fields if item.get(name) is not None}
    return Campaign.model_validate({"campaign_id": item["campaign_id"], **fields, **_meta(item)})


def task_item(tenant_id: str, task: Task) -> Item:
    item = _record_item(tenant_id, task_sk(task.task_id), task)
    due = instant_key(task.due) if task.due else None
    item["gsi1pk"] = tasks_pk(tenant_id)
    item["gsi1sk"] = f"{due or '~'}#{task.task_id}"
    if task.due and task.status == "open" and task.due_soon_for != task.due:
        item["tenant_id"] = tenant_id
        item["gsi2pk"] = task_due_pk(task.due.astimezone(UTC).date())
        item["gsi2sk"] = f"{due}#{tenant_id}#{task.task_id}"
    return item


def to_task(item: Item) -> Task:
    return Task.model_validate(
        {
            "task_id": item["task_id"],
            "title": item["title"],
            "description": item.get("description"),
            "due": item.get("due"),
            "priority": item["priority"],
            "assignee": item.get("assignee"),
            "contact_id": item.get("contact_id"),
            "company_id": item.get("company_id"),
            "deal_id": item.get("deal_id"),
            "email_id": item.get("email_id"),
            "status": item["status"],
            "completed_at": item.get("completed_at"),
            "due_soon_for": item.get("due_soon_for"),
            **_meta(item),
        }
    )


def activity_items(tenant_id: str, activity: Activity) -> list[Item]:
    """The activity, and its copy under each contact and deal it is about."""
    record = {"pk": tenant_pk(tenant_id), "sk": activity_sk(activity.activity_id)}
    record.update(to_dynamo(activity.model_dump(mode="python")))
    order = f"{instant_key(activity.occurred_at)}#{activity.activity_id}"
    copies = [
        {**record, "sk": f"{activity_rel_prefix(rid)}{order}", "order_key": order}
        for rid in (activity.contact_id, activity.deal_id)
        if rid
    ]
    return [record, *copies]


def activity_timeline_entry(activity: Activity) -> str:
    """What a timeline shows of the activity (`ActivityTimelineItem` as JSON), at `occurred_at`."""
    return ActivityTimelineItem(
        activity_id=activity.activity_id,
        kind=activity.kind,
        body=activity.body,
        date=activity.occurred_at,
        contact_id=activity.contact_id,
        deal_id=activity.deal_id,
        company_id=activity.company_id,
        task_id=activity.task_id,
        created_by=activity.created_by,
    ).model_dump_json()


def activity_timeline_items(tenant_id: str, activity: Activity) -> list[Item]:
    """The activity's entries on the timelines of the contact and deal it names (links table)."""
    at, entry = instant_key(activity.occurred_at), activity_timeline_entry(activity)
    return [
        timeline_entry_item(tenant_id, "ACTIVITY", activity.activity_id, rid, at=at, entry=entry)
        for rid in (activity.contact_id, activity.deal_id)
        if rid
    ]


def to_activity(item: Item) -> Activity:
    fields = {name: item.get(name) for name in Activity.model_fields}
    return Activity.model_validate(fields)


# ---------------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class ContactFilter:
    q: str | None = None
    company_id: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class DealFilter:
    stage: str | None = None
    company_id: str | None = None
    contact_id: str | None = None
    open: bool | None = None


def _all(conditions: Iterable[Any]) -> Any:
    combined = None
    for condition in conditions:
        combined = condition if combined is None else combined & condition
    return combined


def contact_filter(f: ContactFilter) -> Any:
    return _all(
        c
        for c in (
            Attr("search").contains(f.q.lower()) if f.q else None,
            Attr("company_id").eq(f.company_id) if f.company_id else None,
            Attr("tags").contains(f.tag) if f.tag else None,
        )
        if c is not None
    )


# ---------------------------------------------------------------------------------- writes


def _put(item: Item, condition: str, error: Callable[[], MailbridgeError], **values: Any) -> Write:
    op: dict[str, Any] = {"Put": {"Item": item, "ConditionExpression": condition}}
    if values:
        op["Put"]["ExpressionAttributeValues"] = {f":{k}": v for k, v in values.items()}
    return Write(op, error)


def _delete(key: Item, condition: str, error: Callable[[], MailbridgeError], **values: Any) -> Write:
    op: dict[str, Any] = {"Delete": {"Key": key, "ConditionExpression": condition}}
    if values:
        op["Delete"]["ExpressionAttributeValues"] = {f":{k}": v for k, v in values.items()}
    return Write(op, error)


class CrmStore(DynamoRepository):
    """`timeline_table`: the links table, where activities are put on timelines; a store built
    without it can do everything but write activities."""

    def __init__(
        self, table_name: str, table: Table | None = None, *, timeline_table: str | None = None
    ) -> None:
        super().__init__(table_name, table)
        self.timeline_table = timeline_table

    # ------------------------------------------------------------------ plumbing
    def _record_writes(
        self, tenant_id: str, sk: str, item: Item, *, expected_version: int | None, kind: str
    ) -> Write:
        if expected_version is None:
            return _put(
                item, "attribute_not_exists(pk)", lambda: Conflict("the record exists", code="exists")
            )
        return _put(
            item,
            "version = :expected",
            lambda: self._lost_race(tenant_id, sk, kind),
            expected=expected_version,
        )

    def _lost_race(self, tenant_id: str, sk: str, kind: str) -> MailbridgeError:
        if self.get(tenant_pk(tenant_id), sk, consistent=True) is None:
            return NotFound(f"no such {kind}", code=f"{kind}_not_found")
        return Conflict(f"the {kind} was changed by someone else", code="version_conflict")

    def _record_delete(self, tenant_id: str, sk: str, version: int, kind: str) -> Write:
        return _delete(
            {"pk": tenant_pk(tenant_id), "sk": sk},
            "version = :expected",
            lambda: self._lost_race(tenant_id, sk, kind),
            expected=version,
        )

    def _address_in_use(self, tenant_id: str, address: str) -> Callable[[], MailbridgeError]:
        """409 `email_in_use` naming the contact that holds the address (read when it happens)."""

        def error() -> MailbridgeError:
            holder = self.find_email(tenant_id, address)
            return Conflict(
                f"address {address} belongs to another contact",
                code="email_in_use",
                details={"address": address, "contact_id": holder.contact_id if holder else None},
            )

        return error

    def _domain_in_use(self, tenant_id: str, domain: str) -> Callable[[], MailbridgeError]:
        """409 `domain_in_use` naming the company that holds the domain (read when it happens)."""

        def error() -> MailbridgeError:
            return Conflict(
                f"domain {domain} belongs to another company",
                code="domain_in_use",
                details={"domain": domain, "company_id": self.find_domain(tenant_id, domain)},
            )

        return error

    def _get_item(self, tenant_id: str, sk: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), sk, consistent=True)

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

    def _fill(
        self,
        tenant_id: str,
        query: Query,
        *,
        index: str | None,
        key_condition: Any,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Item], str | None]:
        """A filtered page holding `limit` items whenever that many match (within the request
        budget of `mailbridge.store.fill`); `query` pages `key_condition` on `index`."""
        key = INDEX_KEY if index else TABLE_KEY
        return fill(
            query,
            lambda items, _wanted: items,  # the FilterExpression already dropped the others
            lambda item: self.cursor_at(
                tenant_id, {name: item[name] for name in key}, index=index, key_condition=key_condition
            ),
            limit=limit,
            cursor=cursor,
            budget=Budget(PAGE_BUDGET),
            max_read=MAX_PAGE_SIZE,
        )

    def _list_kind(
        self, tenant_id: str, prefix: str, *, cursor: str | None, limit: int, filters: Any = None
    ) -> tuple[list[Item], str | None]:
        key_condition = Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(prefix)

        def query(page_cursor: str | None, page_limit: int) -> tuple[list[Item], str | None]:
            return self.query_page(
                tenant_id=tenant_id,
                key_condition=key_condition,
                cursor=page_cursor,
                limit=page_limit,
                filter_expression=filters,
            )

        if filters is None:
            return query(cursor, limit)
        return self._fill(
            tenant_id, query, index=None, key_condition=key_condition, cursor=cursor, limit=limit
        )

    # ------------------------------------------------------------------ contacts
    def get_contact(self, tenant_id: str, contact_id: str) -> Contact | None:
        item = self._get_item(tenant_id, contact_sk(contact_id))
        return None if item is None else to_contact(item)

    def _email_lookup_writes(self, tenant_id: str, contact: Contact, previous: Contact | None) -> list[Write]:
        writes = [
            _put(
                {
                    "pk": tenant_pk(tenant_id),
                    "sk": email_sk(address),
                    "address": address,
                    "contact_id": contact.contact_id,
                    "company_id": contact.company_id,
                },
                "attribute_not_exists(pk) OR contact_id = :me",
                self._address_in_use(tenant_id, address),
                me=contact.contact_id,
            )
            for address in contact.addresses
        ]
        gone = [a for a in (previous.addresses if previous else []) if a not in contact.addresses]
        writes += [
            _delete(
                {"pk": tenant_pk(tenant_id), "sk": email_sk(address)},
                "attribute_not_exists(pk) OR contact_id = :me",
                self._address_in_use(tenant_id, address),
                me=contact.contact_id,
            )
            for address in gone
        ]
        return writes

    def _save(
        self, tenant_id: str, item: Item, kind: str, previous_version: int | None, lookups: list[Any]
    ) -> None:
        """The record (new, or over `previous_version`) and its lookup items, in one transaction."""
        record = self._record_writes(
            tenant_id, item["sk"], item, expected_version=previous_version, kind=kind
        )
        self.transact([record, *lookups])

    def create_contact(self, tenant_id: str, contact: Contact) -> None:
        lookups = self._email_lookup_writes(tenant_id, contact, None)
        self._save(tenant_id, contact_item(tenant_id, contact), "contact", None, lookups)

    def update_contact(self, tenant_id: str, contact: Contact, previous: Contact) -> None:
        """Write `contact` over `previous` (which must still be the stored version)."""
        lookups = self._email_lookup_writes(tenant_id, contact, previous)
        self._save(tenant_id, contact_item(tenant_id, contact), "contact", previous.version, lookups)

    def delete_contact(self, tenant_id: str, contact: Contact, *, now: datetime | None = None) -> None:
        """The contact and its lookups; a tombstone (`CONTACTGONE#`, ids only) stays in the
        changed-contacts index so a CRM sync can propagate the deletion."""
        sk = contact_sk(contact.contact_id)
        at = now or datetime.now(UTC)
        tombstone = {
            "pk": tenant_pk(tenant_id),
            "sk": f"CONTACTGONE#{contact.contact_id}",
            "contact_id": contact.contact_id,
            "deleted_at": at.isoformat(),
            "gsi2pk": contact_changes_pk(tenant_id),
            "gsi2sk": change_key(at, contact.contact_id),
        }
        writes = [
            self._record_delete(tenant_id, sk, contact.version, "contact"),
            _put(tombstone, "attribute_not_exists(pk)", lambda: self._lost_race(tenant_id, sk, "contact")),
        ]
        writes += [
            _delete(
                {"pk": tenant_pk(tenant_id), "sk": email_sk(address)},
                "attribute_not_exists(pk) OR contact_id = :me",
                self._address_in_use(tenant_id, address),
                me=contact.contact_id,
            )
            for address in contact.addresses
        ]
        self.transact(writes)

    def list_contacts(
        self, tenant_id: str, filters: ContactFilter, *, cursor: str | None, limit: int
    ) -> tuple[list[Contact], str | None]:
        """In creation order; a company's contacts from its gsi1 partition, the rest filtered."""
        if filters.company_id:
            rest = contact_filter(ContactFilter(q=filters.q, tag=filters.tag))
            query, key_condition = self._index_query(
                tenant_id, company_contacts_pk(tenant_id, filters.company_id), None, rest, newest_first=False
            )
            items, next_cursor = self._fill(
                tenant_id, query, index="gsi1", key_condition=key_condition, cursor=cursor, limit=limit
            )
        else:
            items, next_cursor = self._list_kind(
                tenant_id, "CONTACT#", cursor=cursor, limit=limit, filters=contact_filter(filters)
            )
        return [to_contact(i) for i in items], next_cursor

    def get_contacts(self, tenant_id: str, contact_ids: Sequence[str]) -> list[Contact]:
        """The contacts that exist, in the order asked."""
        found = self._batch_get(tenant_id, [contact_sk(c) for c in contact_ids])
        return [to_contact(found[contact_sk(c)]) for c in contact_ids if contact_sk(c) in found]

    def changed_contacts(self, tenant_id: str, after: str | None) -> Iterator[tuple[str, Contact | str]]:
        """Contacts changed (created, updated: the contact; deleted: its id) after the change key
        `after` (None: from the start of the index), oldest first, as (change key, contact or id):
        a Query of the sparse gsi2 partition `TENANT#{tenant}#CONTACTCHANGES` (a contact's item
        sits there under its latest `updated_at`; a deleted one's tombstone under its deletion
        time). Contacts written before the index existed are only in `all_contacts`."""
        condition = Key("gsi2pk").eq(contact_changes_pk(tenant_id))
        if after is not None:
            condition = condition & Key("gsi2sk").gt(after)
        for item in self.query_all(IndexName="gsi2", KeyConditionExpression=condition):
            key = str(item["gsi2sk"])
            if str(item["sk"]).startswith("CONTACTGONE#"):
                yield key, str(item["contact_id"])
            elif str(item["sk"]).startswith("CONTACT#"):
                yield key, to_contact(item)

    def all_contacts(self, tenant_id: str) -> Iterator[Contact]:
        """Every contact of the tenant (a Query of its partition's `CONTACT#` items, 1 MB a page)."""
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with("CONTACT#")
        ):
            yield to_contact(item)

    def find_email(self, tenant_id: str, address: str) -> EmailLookup | None:
        """Address (any case) -> contact id and company id: one key read."""
        item = self._get_item(tenant_id, email_sk(address))
        return None if item is None else _lookup(item)

    def find_emails(self, tenant_id: str, addresses: Iterable[str]) -> dict[str, EmailLookup]:
        """Many addresses at once (BatchGetItem), keyed by the lower-cased address."""
        found = self._batch_get(tenant_id, [email_sk(a) for a in addresses])
        return {str(i["address"]): _lookup(i) for i in found.values()}

    # ------------------------------------------------------------------ companies
    def get_companies(self, tenant_id: str, company_ids: Sequence[str]) -> dict[str, Company]:
        """The companies that exist among `company_ids`, by id (BatchGetItem, 100 a request)."""
        found = self._batch_get(tenant_id, [company_sk(c) for c in company_ids])
        return {c: to_company(found[company_sk(c)]) for c in company_ids if company_sk(c) in found}

    def get_company(self, tenant_id: str, company_id: str) -> Company | None:
        item = self._get_item(tenant_id, company_sk(company_id))
        return None if item is None else to_company(item)

    def _domain_writes(self, tenant_id: str, company: Company, previous: Company | None) -> list[Write]:
        me = company.company_id
        writes = [
            _put(
                {"pk": tenant_pk(tenant_id), "sk": domain_sk(d), "domain": d, "company_id": me},
                "attribute_not_exists(pk) OR company_id = :me",
                self._domain_in_use(tenant_id, d),
                me=me,
            )
            for d in company.domains
            if previous is None or d not in previous.domains
        ]
        gone = [d for d in (previous.domains if previous else []) if d not in company.domains]
        writes += [
            _delete(
                {"pk": tenant_pk(tenant_id), "sk": domain_sk(d)},
                "attribute_not_exists(pk) OR company_id = :me",
                self._domain_in_use(tenant_id, d),
                me=me,
            )
            for d in gone
        ]
        return writes

    def create_company(self, tenant_id: str, company: Company) -> None:
        lookups = self._domain_writes(tenant_id, company, None)
        self._save(tenant_id, company_item(tenant_id, company), "company", None, lookups)

    def update_company(self, tenant_id: str, company: Company, previous: Company) -> None:
        lookups = self._domain_writes(tenant_id, company, previous)
        self._save(tenant_id, company_item(tenant_id, company), "company", previous.version, lookups)

    def delete_company(self, tenant_id: str, company: Company) -> None:
        sk = company_sk(company.company_id)
        writes = [self._record_delete(tenant_id, sk, company.version, "company")]
        empty = company.model_copy(update={"domains": []})
        self.transact([*writes, *self._domain_writes(tenant_id, empty, company)])

    def list_companies(
        self, tenant_id: str, *, q: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Company], str | None]:
        filters = Attr("search").contains(q.lower()) if q else None
        items, next_cursor = self._list_kind(
            tenant_id, "COMPANY#", cursor=cursor, limit=limit, filters=filters
        )
        return [to_company(i) for i in items], next_cursor

    def find_domain(self, tenant_id: str, domain: str) -> str | None:
        """Domain (any case) -> company id: one key read."""
        item = self._get_item(tenant_id, domain_sk(domain))
        return None if item is None else str(item["company_id"])

    def find_domains(self, tenant_id: str, domains: Iterable[str]) -> dict[str, str]:
        found = self._batch_get(tenant_id, [domain_sk(d) for d in domains])
        return {str(i["domain"]): str(i["company_id"]) for i in found.values()}

    # ------------------------------------------------------------------ deals
    def get_deal(self, tenant_id: str, deal_id: str) -> Deal | None:
        item = self._get_item(tenant_id, deal_sk(deal_id))
        return None if item is None else to_deal(item)

    def get_deals(self, tenant_id: str, deal_ids: Sequence[str]) -> list[Deal]:
        """The deals that exist, in the order asked."""
        found = self._batch_get(tenant_id, [deal_sk(d) for d in deal_ids])
        return [to_deal(found[deal_sk(d)]) for d in deal_ids if deal_sk(d) in found]

    def _link_writes(self, tenant_id: str, deal: Deal, previous: Deal | None) -> list[Write]:
        # Every link is rewritten: its sort key carries the deal's open state and update time.
        def ok() -> MailbridgeError:
            return Conflict("a concurrent change got there first; try again", code="conflict")

        writes = [
            _put(
                deal_contact_item(tenant_id, deal, c),
                "attribute_not_exists(pk) OR deal_id = :me",
                ok,
                me=deal.deal_id,
            )
            for c in deal.contact_ids
        ]
        gone = [c for c in (previous.contact_ids if previous else []) if c not in deal.contact_ids]
        writes += [
            _delete(
                {"pk": tenant_pk(tenant_id), "sk": deal_contact_sk(deal.deal_id, c)},
                "attribute_not_exists(pk) OR deal_id = :me",
                ok,
                me=deal.deal_id,
            )
            for c in gone
        ]
        return writes

    def create_deal(self, tenant_id: str, deal: Deal) -> None:
        self._save(
            tenant_id, deal_item(tenant_id, deal), "deal", None, self._link_writes(tenant_id, deal, None)
        )

    def update_deal(self, tenant_id: str, deal: Deal, previous: Deal) -> None:
        lookups = self._link_writes(tenant_id, deal, previous)
        self._save(tenant_id, deal_item(tenant_id, deal), "deal", previous.version, lookups)

    def delete_deal(self, tenant_id: str, deal: Deal) -> None:
        record = self._record_delete(tenant_id, deal_sk(deal.deal_id), deal.version, "deal")
        unlinked = deal.model_copy(update={"contact_ids": []})
        self.transact([record, *self._link_writes(tenant_id, unlinked, deal)])

    def list_deals(
        self, tenant_id: str, filters: DealFilter, *, cursor: str | None, limit: int
    ) -> tuple[list[Deal], str | None]:
        """By contact or company: last updated first (gsi1). Otherwise all deals, oldest first."""
        conditions = [
            Attr("stage").eq(filters.stage) if filters.stage else None,
            Attr("open").eq(filters.open) if filters.open is not None else None,
        ]
        if filters.contact_id:
            conditions.append(Attr("company_id").eq(filters.company_id) if filters.company_id else None)
            pk = contact_deals_pk(tenant_id, filters.contact_id)
        elif filters.company_id:
            pk = company_deals_pk(tenant_id, filters.company_id)
        else:
            items, next_cursor = self._list_kind(
                tenant_id, "DEAL#", cursor=cursor, limit=limit, filters=_all(c for c in conditions if c)
            )
            return [to_deal(i) for i in items], next_cursor
        query, key_condition = self._index_query(
            tenant_id, pk, filters.open, _all(c for c in conditions if c)
        )
        items, next_cursor = self._fill(
            tenant_id, query, index="gsi1", key_condition=key_condition, cursor=cursor, limit=limit
        )
        if filters.contact_id:
            return self.get_deals(tenant_id, [str(i["deal_id"]) for i in items]), next_cursor
        return [to_deal(i) for i in items], next_cursor

    def _index_query(
        self, tenant_id: str, gsi1pk: str, open_only: bool | None, filters: Any, *, newest_first: bool = True
    ) -> tuple[Query, Any]:
        """A page reader of one gsi1 partition, and its key condition (what its cursors are bound to)."""
        key = Key("gsi1pk").eq(gsi1pk)
        if open_only is not None:
            key = key & Key("gsi1sk").begins_with("OPEN#" if open_only else "CLOSED#")

        def query(page_cursor: str | None, page_limit: int) -> tuple[list[Item], str | None]:
            return self.query_page(
                tenant_id=tenant_id,
                key_condition=key,
                index="gsi1",
                cursor=page_cursor,
                limit=page_limit,
                newest_first=newest_first,
                filter_expression=filters,
            )

        return query, key

    def open_deal_ids_of_contact(self, tenant_id: str, contact_id: str, *, limit: int = 100) -> list[str]:
        """Ids of the contact's open deals, last updated first (one gsi1 query, no deal read)."""
        items, _ = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("gsi1pk").eq(contact_deals_pk(tenant_id, contact_id))
            & Key("gsi1sk").begins_with("OPEN#"),
            limit=limit,
            index="gsi1",
            newest_first=True,
        )
        return [str(i["deal_id"]) for i in items]

    def record_read(self, tenant_id: str, kind: str, record_id: str) -> BatchRead:
        """A consistent read of one contact, company, deal or campaign, for `read_together`."""
        sk = {"contact": contact_sk, "company": company_sk, "deal": deal_sk, "campaign": campaign_sk}[kind]
        return self._read(tenant_id, [sk(record_id)])

    def contact_view_read(self, tenant_id: str, lookup: EmailLookup, deal_ids: Sequence[str]) -> BatchRead:
        """The contact an address resolves to, the company the lookup names (written with the
        contact) and the given deals, for `read_together`; see `contact_view_from`."""
        sks = [contact_sk(lookup.contact_id), *(deal_sk(d) for d in deal_ids)]
        if lookup.company_id:
            sks.append(company_sk(lookup.company_id))
        return self._read(tenant_id, sks)

    def contact_view_from(
        self, tenant_id: str, read: BatchRead, lookup: EmailLookup, deal_ids: Sequence[str]
    ) -> tuple[Contact | None, Company | None, list[Deal]]:
        """The contact, its company and the deals that exist (in the order of `deal_ids`) from a
        `contact_view_read`; a contact whose company is not the lookup's has it read on its own."""
        found = {str(item["sk"]): item for item in read.items}
        item = found.get(contact_sk(lookup.contact_id))
        if item is None:
            return None, None, []
        contact = to_contact(item)
        company: Company | None = None
        if contact.company_id:
            company_item = found.get(company_sk(contact.company_id))
            company = (
                to_company(company_item) if company_item else self.get_company(tenant_id, contact.company_id)
            )
        return contact, company, [to_deal(found[deal_sk(d)]) for d in deal_ids if deal_sk(d) in found]

    def _read(self, tenant_id: str, sks: Sequence[str]) -> BatchRead:
        keys = [{"pk": tenant_pk(tenant_id), "sk": sk} for sk in sks]
        return BatchRead(self.client, self.table_name, keys, consistent=True)

    def open_deals_of_contact(self, tenant_id: str, contact_id: str, *, limit: int = 100) -> list[Deal]:
        """Open deals naming the contact, last updated first (one gsi1 query + one batch read)."""
        deals, _ = self.list_deals(
            tenant_id, DealFilter(contact_id=contact_id, open=True), cursor=None, limit=limit
        )
        return deals

    def open_deals_of_company(self, tenant_id: str, company_id: str, *, limit: int = 100) -> list[Deal]:
        """Open deals of the company, last updated first (one gsi1 query)."""
        deals, _ = self.list_deals(
            tenant_id, DealFilter(company_id=company_id, open=True), cursor=None, limit=limit
        )
        return deals

    # ------------------------------------------------------------------ campaigns
    def get_campaign(self, tenant_id: str, campaign_id: str) -> Campaign | None:
        item = self._get_item(tenant_id, campaign_sk(campaign_id))
        return None if item is None else to_campaign(item)

    def create_campaign(self, tenant_id: str, campaign: Campaign) -> None:
        self._save(tenant_id, campaign_item(tenant_id, campaign), "campaign", None, [])

    def update_campaign(self, tenant_id: str, campaign: Campaign, previous: Campaign) -> None:
        self._save(tenant_id, campaign_item(tenant_id, campaign), "campaign", previous.version, [])

    def delete_campaign(self, tenant_id: str, campaign: Campaign) -> None:
        sk = campaign_sk(campaign.campaign_id)
        self.transact([self._record_delete(tenant_id, sk, campaign.version, "campaign")])

    def list_campaigns(
        self, tenant_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Campaign], str | None]:
        items, next_cursor = self._list_kind(tenant_id, "CAMPAIGN#", cursor=cursor, limit=limit)
        return [to_campaign(i) for i in items], next_cursor

    # ------------------------------------------------------------------ tasks
    def get_task(self, tenant_id: str, task_id: str) -> Task | None:
        item = self._get_item(tenant_id, task_sk(task_id))
        return None if item is None else to_task(item)

    def create_task(self, tenant_id: str, task: Task) -> None:
        """`Conflict(exists)` when a task with this id is already stored (an idempotency key
        used before)."""
        self._save(tenant_id, task_item(tenant_id, task), "task", None, [])

    def update_task(
        self, tenant_id: str, task: Task, previous: Task, activity: Activity | None = None
    ) -> None:
        """`task` over `previous`, with the `task_done` activity in the same transaction."""
        extra = self._activity_writes(tenant_id, activity) if activity else []
        self._save(tenant_id, task_item(tenant_id, task), "task", previous.version, extra)

    def delete_task(self, tenant_id: str, task: Task) -> None:
        self.transact([self._record_delete(tenant_id, task_sk(task.task_id), task.version, "task")])

    def list_tasks(
        self,
        tenant_id: str,
        *,
        due_before: datetime | None,
        filters: Any,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Task], str | None]:
        """By due date, soonest first, undated last (gsi1); `due_before` is part of the key
        condition, the other filters fill the page."""
        key = Key("gsi1pk").eq(tasks_pk(tenant_id))
        if due_before is not None:
            key = key & Key("gsi1sk").lt(instant_key(due_before))

        def query(page_cursor: str | None, page_limit: int) -> tuple[list[Item], str | None]:
            return self.query_page(
                tenant_id=tenant_id,
                key_condition=key,
                index="gsi1",
                cursor=page_cursor,
                limit=page_limit,
                filter_expression=filters,
            )

        if filters is None:
            items, next_cursor = query(cursor, limit)
        else:
            items, next_cursor = self._fill(
                tenant_id, query, index="gsi1", key_condition=key, cursor=cursor, limit=limit
            )
        return [to_task(i) for i in items], next_cursor

    def tasks_coming_due(self, start: datetime, end: datetime) -> Iterator[tuple[str, Task]]:
        """(tenant, task) of every open task due in [start, end) not yet announced for its due
        time, across tenants: one Query per page of gsi2, one partition per UTC day."""
        day = start.astimezone(UTC).date()
        while day <= end.astimezone(UTC).date():
            kwargs: dict[str, Any] = {
                "IndexName": "gsi2",
                "KeyConditionExpression": Key("gsi2pk").eq(task_due_pk(day))
                & Key("gsi2sk").between(instant_key(start), instant_key(end)),
            }
            while True:
                response = self.table.query(**kwargs)
                for item in response.get("Items", []):
                    task = to_task(item)
                    if task.due is not None and start <= task.due < end:
                        yield str(item["tenant_id"]), task
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            day += timedelta(days=1)

    def mark_due_soon(self, tenant_id: str, task: Task) -> bool:
        """Record that `activity.due_soon` went out for the task's current due time and take it
        out of gsi2. False when the task changed its due time, was completed or is gone (the
        version is not bumped: a reminder is not an edit)."""
        assert task.due is not None
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": task_sk(task.task_id)},
                UpdateExpression="SET due_soon_for = :due REMOVE gsi2pk, gsi2sk",
                ConditionExpression="#due = :due AND #status = :open",
                ExpressionAttributeNames={"#due": "due", "#status": "status"},
                ExpressionAttributeValues={":due": task.due.isoformat(), ":open": "open"},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------ activities
    def _activity_put(self, item: Item) -> Write:
        return _put(item, "attribute_not_exists(pk)", lambda: Conflict("the activity exists", code="exists"))

    def _activity_writes(self, tenant_id: str, activity: Activity) -> list[Write]:
        """The activity, its copies, and its timeline entries (links table)."""
        if self.timeline_table is None:
            raise RuntimeError("this CrmStore was built without timeline_table: it cannot write activities")
        writes = [self._activity_put(i) for i in activity_items(tenant_id, activity)]
        for item in activity_timeline_items(tenant_id, activity):
            write = self._activity_put(item)
            write.op["Put"]["TableName"] = self.timeline_table
            writes.append(write)
        return writes

    def create_activity(self, tenant_id: str, activity: Activity) -> None:
        self.transact(self._activity_writes(tenant_id, activity))

    def index_activity_timeline(self, tenant_id: str, activity: Activity) -> None:
        """Put the activity's timeline entries again (a backfill: store/timeline_backfill.py);
        the same items its creation writes, so writing them twice changes nothing."""
        if self.timeline_table is None:
            raise RuntimeError("this CrmStore was built without timeline_table")
        client = self.table.meta.client
        for item in activity_timeline_items(tenant_id, activity):
            client.put_item(TableName=self.timeline_table, Item=item)  # the resource client serializes

    def activities_page(
        self, tenant_id: str, record_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[tuple[str, Activity]], str | None]:
        """A contact's or deal's activities newest first: (sort key `{date}#{id}`, activity)."""
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(activity_rel_prefix(record_id)),
            cursor=cursor,
            limit=limit,
            newest_first=True,
        )
        return [(str(i["order_key"]), to_activity(i)) for i in items], next_cursor

    # ------------------------------------------------------------------ pipeline
    def get_pipeline(self, tenant_id: str) -> Pipeline | None:
        item = self._get_item(tenant_id, PIPELINE_SK)
        if item is None:
            return None
        return Pipeline(
            stages=[str(s) for s in item["stages"]],
            version=int(item["version"]),
            updated_at=datetime.fromisoformat(item["updated_at"]) if item.get("updated_at") else None,
            updated_by=item.get("updated_by"),
        )

    def save_pipeline(self, tenant_id: str, pipeline: Pipeline, *, expected_version: int | None) -> Pipeline:
        """`expected_version` None: the tenant still has the default (no item yet)."""
        item = {
            "pk": tenant_pk(tenant_id),
            "sk": PIPELINE_SK,
            "stages": list(pipeline.stages),
            "updated_at": pipeline.updated_at.isoformat() if pipeline.updated_at else None,
            "updated_by": pipeline.updated_by,
        }
        try:
            stored = self.replace(item, expected_version=expected_version)
        except Conflict as exc:
            raise Conflict("the pipeline was changed by someone else", code="version_conflict") from exc
        return pipeline.model_copy(update={"version": int(stored["version"])})


def _lookup(item: Item) -> EmailLookup:
    company = item.get("company_id")
    return EmailLookup(
        address=str(item["address"]),
        contact_id=str(item["contact_id"]),
        company_id=str(company) if company else None,
    )
