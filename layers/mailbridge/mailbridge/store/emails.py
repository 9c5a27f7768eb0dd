"""Emails table: messages, their mailbox locations, threading lookups and quarantine records.

Item types (pk = TENANT#{tenant} for all):
  EMAIL#{email_id}                          the message (gsi1: newest first, gsi2: thread, gsi3: Message-ID,
                                            gsi4: unread, gsi5: by sender, gsi6: outbound by send status,
                                            gsi7: snoozed)
  LOC#{account}#{folder}#{uidvalidity}#{uid} where a mailbox holds it (gsi1: per account, newest first)
  MSGID#{hash}                              Message-ID -> thread id (also for ids only referenced so far)
  SUBJ#{account}#{hash}                     base subject -> thread id, for replies without references
  QUAR#{account}#{folder}#{uidvalidity}#{uid} input that could not be normalized (raw bytes in S3)
  THREAD#{thread_id}                        the thread's members (a string set of email ids, at
                                            most THREAD_MEMBERS_MAX; past that `overflow` is set
                                            and readers query gsi2), so a page of threads reads
                                            every member with batched gets instead of a query each
Creates are conditional where exactly-once matters (emails, Message-ID keys) and plain puts where
the key is deterministic (locations, quarantine records), so replaying a batch writes nothing twice.

Listing indexes (newest first; gsi4-7 reuse gsi1sk = "{date}#{email_id}" as their sort key, so a
date range is a key condition on every one of them, and project `SUMMARY_ATTRIBUTES` only, so a
listing never reads bodies):
  gsi1  gsi1pk = TENANT#{t}                      every email (and, as TENANT#{t}#ACC#{account},
                                                  the account's locations)
  gsi2  gsi2pk = TENANT#{t}#THREAD#{thread_id}    a thread's emails
  gsi4  gsi4pk = TENANT#{t}#UNREAD                sparse: unread emails a mailbox still holds
  gsi5  gsi5pk = TENANT#{t}#FROM#{digest(addr)}   the first From address, lower-cased
  gsi6  gsi6pk = TENANT#{t}#STATUS#{status}       sparse: outbound mail sent through mailbridge
  gsi7  gsi7pk = TENANT#{t}#SNOOZED               sparse: emails a snooze hides (`snoozed_until` set,
                                                  deleted ones too: the same set `?snoozed=true` reads)
The sparse keys follow the item: `create_email` derives them, and every write that changes `read`,
`deleted`, `send_status` or `snoozed_until` sets or removes them in the same update (data from
before gsi7: `mailbridge.store.snooze_backfill`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mailbridge.errors import Conflict
from mailbridge.store.base import DynamoRepository, Item, is_condition_failure
from mailbridge.store.batch import (
    BatchRead,
    TransactionLost,
    batch_get,
    batch_put,
    chunks,
    transact,
)
from mailbridge.store.conditions import Attr, Key
from mailbridge.store.fill import Budget
from mailbridge.store.keys import (
    digest,
    email_sk,
    location_prefix,
    message_id_sk,
    quarantine_sk,
    subject_sk,
    tenant_pk,
    thread_sk,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

# Members a THREAD item lists (email ids are 29 characters: about 60 KB, far below 400 KB).
THREAD_MEMBERS_MAX = 2000
# What ingest reads of what is already stored (locations, emails, Message-ID and subject keys).
PLAN_ATTRIBUTES = ("email_id", "thread_id", "announced", "direction", "message_id", "date")

# What the listing indexes gsi4-7 project besides their keys (template.yaml lists the same names;
# tests/unit/test_wiring.py checks): everything a summary shows and every listing filter reads.
SUMMARY_ATTRIBUTES = (
    "email_id",
    "thread_id",
    "subject",
    "from",
    "to",
    "date",
    "snippet",
    "read",
    "flagged",
    "answered",
    "has_attachments",
    "direction",
    "accounts",
    "folders",
    "deleted",
    "send_status",
    "send_at",
    "failure",
    "search",
    "category",
    "snoozed_until",
)


@dataclass(frozen=True)
class Source:
    """One index partition a listing reads, newest first."""

    index: str
    partition: str
    pk_attr: str
    sk_attr: str = "gsi1sk"

    def key_of(self, item: Item) -> dict[str, Any]:
        """The item's key in this index: what DynamoDB's LastEvaluatedKey would be after it."""
        return {name: item[name] for name in ("pk", "sk", self.pk_attr, self.sk_attr)}


def tenant_source(tenant_id: str) -> Source:
    return Source("gsi1", tenant_pk(tenant_id), "gsi1pk")


def account_source(tenant_id: str, account_id: str) -> Source:
    """The account's locations (not emails: one email may have several)."""
    return Source("gsi1", f"{tenant_pk(tenant_id)}#ACC#{account_id}", "gsi1pk")


def thread_source(tenant_id: str, thread_id: str) -> Source:
    return Source("gsi2", f"{tenant_pk(tenant_id)}#THREAD#{thread_id}", "gsi2pk", "gsi2sk")


def unread_source(tenant_id: str) -> Source:
    return Source("gsi4", f"{tenant_pk(tenant_id)}#UNREAD", "gsi4pk")


def sender_source(tenant_id: str, address: str) -> Source:
    return Source("gsi5", _sender_pk(tenant_id, address), "gsi5pk")


def status_source(tenant_id: str, status: str) -> Source:
    return Source("gsi6", _status_pk(tenant_id, status), "gsi6pk")


def snoozed_source(tenant_id: str) -> Source:
    return Source("gsi7", f"{tenant_pk(tenant_id)}#SNOOZED", "gsi7pk")


def _sender_pk(tenant_id: str, address: str) -> str:
    return f"{tenant_pk(tenant_id)}#FROM#{digest(address.strip().lower())}"


def _status_pk(tenant_id: str, status: str) -> str:
    return f"{tenant_pk(tenant_id)}#STATUS#{status}"


def index_keys(tenant_id: str, item: Item) -> dict[str, str]:
    """The listing index keys (gsi4-6) an email item carries, from its own values (a new email is
    never snoozed: gsi7 is set by `set_snooze` alone)."""
    keys: dict[str, str] = {}
    if not item.get("read") and not item.get("deleted"):
        keys["gsi4pk"] = unread_source(tenant_id).partition
    senders = [a for a in item.get("from") or () if a.get("address")]
    if senders:
        keys["gsi5pk"] = _sender_pk(tenant_id, str(senders[0]["address"]))
    if item.get("send_status"):
        keys["gsi6pk"] = _status_pk(tenant_id, str(item["send_status"]))
    return keys


def locations_summary(loc_keys: Iterable[str]) -> tuple[set[str], set[str]]:
    """Accounts and `account:folder` names from location keys (LOC#{account}#{folder}#{v}#{uid})."""
    accounts: set[str] = set()
    folders: set[str] = set()
    for key in loc_keys:
        _, account_id, folder, _validity, _uid = key.split("#")
        accounts.add(account_id)
        folders.add(f"{account_id}:{unquote(folder)}")
    return accounts, folders


class EmailStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    # ------------------------------------------------------------------ emails
    def get_email(self, tenant_id: str, email_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), email_sk(email_id), consistent=True)

    def create_email(self, tenant_id: str, item: Item) -> bool:
        """True when this call stored the email, False when it already existed. The email joins
        its thread's members in the same transaction."""
        for full in (False, True):
            writes = EmailWrites(tenant_id)
            writes.create_email(item)
            writes.join_thread(str(item["thread_id"]), [str(item["email_id"])], full=full)
            try:
                self.write(writes)
            except TransactionLost as lost:
                failed = writes.tags_of(lost.failed)
                if "email" in failed:
                    return False
                if failed != {"thread"}:
                    raise
                continue  # the thread lists THREAD_MEMBERS_MAX members: mark it overflowing
            return True
        raise Conflict("the email could not be stored; try again", code="conflict")

    def create_emails(self, tenant_id: str, items: Sequence[Item]) -> set[str]:
        """New emails of new threads that an earlier attempt may have stored (a campaign recipient
        claimed by a delivery that stopped): for each, first its Message-ID -> thread pointer
        (first writer wins) and its thread's member set (a set add, or `overflow` past
        THREAD_MEMBERS_MAX), both idempotent, then the email with `attribute_not_exists`, which
        tells the new from the existing. Returns the ids this call stored. Plain requests, not a
        transaction: the order makes a crash between them harmless (the retry redoes the
        idempotent writes), and a lost condition costs nothing else."""
        created: set[str] = set()
        for item in items:
            email_id, thread_id = str(item["email_id"]), str(item["thread_id"])
            self.remember_message_ids(tenant_id, [str(item["message_id"])], thread_id)
            self._join_thread(tenant_id, thread_id, email_id)
            stored = {**item, **index_keys(tenant_id, item), "version": 1}
            if self.create_location(tenant_id, email_sk(email_id), stored):
                created.add(email_id)
        return created

    def _join_thread(self, tenant_id: str, thread_id: str, email_id: str) -> None:
        key = {"pk": tenant_pk(tenant_id), "sk": thread_sk(thread_id)}
        try:
            self.table.update_item(
                Key=key,
                UpdateExpression="SET thread_id = :t ADD members :m",
                ConditionExpression="attribute_not_exists(members) OR size(members) < :cap",
                ExpressionAttributeValues={":t": thread_id, ":m": {email_id}, ":cap": THREAD_MEMBERS_MAX},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            self.table.update_item(
                Key=key,
                UpdateExpression="SET thread_id = :t, overflow = :true",
                ExpressionAttributeValues={":t": thread_id, ":true": True},
            )

    def put_new_emails(self, tenant_id: str, items: Sequence[Item]) -> None:
        """Store emails of new threads that no one else can be storing (the caller holds an
        exclusive claim on each Message-ID, and no earlier attempt ran: a campaign recipient
        claimed by this delivery), with their Message-ID -> thread pointers and thread items,
        as plain puts, 25 a BatchWriteItem. Never for an email that may exist: a put replaces it."""
        pk = tenant_pk(tenant_id)
        puts: list[Item] = []
        for item in items:
            email_id, thread_id = str(item["email_id"]), str(item["thread_id"])
            puts.append(
                {"pk": pk, "sk": email_sk(email_id), **item, **index_keys(tenant_id, item), "version": 1}
            )
            puts.append({"pk": pk, "sk": message_id_sk(str(item["message_id"])), "thread_id": thread_id})
            puts.append({"pk": pk, "sk": thread_sk(thread_id), "thread_id": thread_id, "members": {email_id}})
        batch_put(self.client, self.table_name, puts)

    def batch_get_emails(
        self,
        tenant_id: str,
        email_ids: Sequence[str],
        budget: Budget | None = None,
        *,
        projection: Sequence[str] | None = None,
    ) -> dict[str, Item]:
        """Email items by id (missing ones left out), 100 to a BatchGetItem; every request is spent
        from `budget`. `projection` names the attributes to read (all when None)."""
        keys = [{"pk": tenant_pk(tenant_id), "sk": email_sk(e)} for e in dict.fromkeys(email_ids)]
        names = None if projection is None else ("email_id", *projection)
        items = batch_get(
            self.client,
            self.table_name,
            keys,
            projection=names,
            on_request=None if budget is None else budget.spend,
        )
        return {str(item["email_id"]): item for item in items}

    def summaries_read(self, tenant_id: str, email_ids: Sequence[str]) -> BatchRead:
        """The emails' `SUMMARY_ATTRIBUTES`, for `read_together` with another table's keys."""
        keys = [{"pk": tenant_pk(tenant_id), "sk": email_sk(e)} for e in dict.fromkeys(email_ids)]
        return BatchRead(self.client, self.table_name, keys, ("email_id", *SUMMARY_ATTRIBUTES))

    def update_email(self, tenant_id: str, email_id: str, **values: Any) -> None:
        """SET `values`; a change of `read` moves the email into or out of the unread index.

        (An unread flag set on a deleted email puts it in the index too; listings check `deleted`.)
        """
        expression, names, exprs = _set_expression(values, _unread_key(tenant_id, values))
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=exprs,
        )

    def set_snooze(self, tenant_id: str, email_id: str, until: str, snoozed_by: str) -> bool:
        """Hide the email from default listings until `until` (ISO UTC), on behalf of the snooze of
        `snoozed_by` (the email's own id or its thread's); False when the email is gone. The email
        enters the snoozed index (gsi7) in the same update."""
        try:
            self.update_email(
                tenant_id,
                email_id,
                snoozed_until=until,
                snoozed_by=snoozed_by,
                gsi7pk=snoozed_source(tenant_id).partition,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def end_snooze(self, tenant_id: str, email_id: str, until: str, *, unread: bool) -> bool:
        """Show the email again (and, with `unread`, mark it unread: back in the unread index) if
        the snooze at `until` still hides it, or nothing hides it any more (a replayed wake-up
        repeats the same change); False when another snooze hides it now, or it is gone. The email
        leaves the snoozed index (gsi7) in the same update."""
        names = {"#until": "snoozed_until", "#by": "snoozed_by", "#snoozed": "gsi7pk"}
        values: dict[str, Any] = {":until": until}
        expression = "REMOVE #until, #by, #snoozed"
        if unread:
            names |= {"#read": "read", "#unread": "gsi4pk"}
            values |= {":false": False, ":unread": unread_source(tenant_id).partition}
            expression = "SET #read = :false, #unread = :unread " + expression
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(#until) OR #until = :until)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def set_categorization(self, tenant_id: str, email_id: str, key: str, **values: Any) -> bool:
        """Store a categorization run's `values` (category, booleans, confidence, reasons,
        `category_source`) with `category_key = key` and `category_announced = false`.

        False, writing nothing, when the email is gone, its category is the user's
        (`category_source = user`: a correction is never overwritten) or this run (`key`) was
        already stored; the caller then announces nothing new."""
        values = {**values, "category_key": key, "category_announced": False}
        expression, names, exprs = _set_expression(values)
        names |= {"#src": "category_source", "#key": "category_key"}
        exprs |= {":user": "user", ":key": key}
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(#src) OR #src <> :user)"
                    " AND (attribute_not_exists(#key) OR #key <> :key)"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=exprs,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def mark_categorized_announced(self, tenant_id: str, email_id: str, key: str) -> None:
        """`category_announced = true` while the stored run is still `key`."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
                UpdateExpression="SET category_announced = :yes",
                ConditionExpression="category_key = :key",
                ExpressionAttributeValues={":yes": True, ":key": key},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def transition(self, tenant_id: str, email_id: str, allowed: tuple[str, ...], **values: Any) -> bool:
        """Set `values` only while the outbound `send_status` is one of `allowed`; False otherwise.
        A new `send_status` moves the email to that status's partition of the status index."""
        index: dict[str, str | None] = {}
        if "send_status" in values:
            index["gsi6pk"] = _status_pk(tenant_id, str(values["send_status"]))
        expression, names, exprs = _set_expression(values, index)
        names["#s"] = "send_status"
        exprs |= {f":a{i}": a for i, a in enumerate(allowed)}
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
                UpdateExpression=expression,
                ConditionExpression=f"#s IN ({', '.join(f':a{i}' for i in range(len(allowed)))})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=exprs,
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def attach_location(
        self, tenant_id: str, email_id: str, loc_sk: str, account_id: str, folder: str
    ) -> None:
        """Record on the email that a mailbox holds it (sets, so replays change nothing)."""
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
            UpdateExpression="ADD loc_keys :l, accounts :a, folders :f SET deleted = :false",
            ExpressionAttributeValues={
                ":l": {loc_sk},
                ":a": {account_id},
                ":f": {f"{account_id}:{folder}"},
                ":false": False,
            },
        )

    def detach_location(self, tenant_id: str, email_id: str, loc_sk: str) -> bool:
        """Forget one location; True when the email has no location left (it is then marked deleted
        and leaves the unread index)."""
        response = self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
            UpdateExpression="DELETE loc_keys :l",
            ExpressionAttributeValues={":l": {loc_sk}},
            ReturnValues="ALL_NEW",
        )
        left: Any = response.get("Attributes", {}).get("loc_keys") or set()
        remaining = {str(k) for k in left}
        if not remaining:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
                UpdateExpression="SET deleted = :true REMOVE accounts, folders, gsi4pk",
                ExpressionAttributeValues={":true": True},
            )
            return True
        # Keep the derived sets in step with the locations that are left.
        accounts, folders = locations_summary(remaining)
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
            UpdateExpression="SET accounts = :a, folders = :f",
            ExpressionAttributeValues={":a": accounts, ":f": folders},
        )
        return False

    # ------------------------------------------------------------------ locations
    def create_location(self, tenant_id: str, sk: str, item: Item) -> bool:
        try:
            self.table.put_item(
                Item={"pk": tenant_pk(tenant_id), "sk": sk, **item},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def get_location(self, tenant_id: str, sk: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), sk, consistent=True)

    def set_location_flags(self, tenant_id: str, sk: str, flags: Iterable[str], modseq: int | None) -> None:
        values: dict[str, Any] = {":flags": sorted(flags)}
        expression = "SET flags = :flags"
        if modseq is not None:
            values[":m"] = modseq
            expression += ", modseq = :m"
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": sk},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=values,
        )

    def delete_location(self, tenant_id: str, sk: str) -> None:
        self.table.delete_item(Key={"pk": tenant_pk(tenant_id), "sk": sk})

    def folder_locations(
        self, tenant_id: str, account_id: str, folder: str, uidvalidity: int | None = None
    ) -> Iterator[Item]:
        """Every stored location of a folder (all UIDVALIDITY generations when None), by UID."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(location_prefix(account_id, folder, uidvalidity)),
            "ProjectionExpression": "sk, email_id, uid, uidvalidity, flags",
        }
        yield from self.query_all(**kwargs)

    def batch_get_sks(
        self, tenant_id: str, loc_keys: Iterable[str], *, consistent: bool = False
    ) -> list[Item]:
        """The items of the given sort keys that exist (any order), 100 to a BatchGetItem."""
        keys = [{"pk": tenant_pk(tenant_id), "sk": sk} for sk in loc_keys]
        return batch_get(self.client, self.table_name, keys, consistent=consistent)

    # ------------------------------------------------------------------ threading lookups
    def threads_for_message_ids(self, tenant_id: str, message_ids: Sequence[str]) -> dict[str, str]:
        """Message-ID -> thread id for those already known."""
        wanted = {message_id_sk(m): m for m in message_ids}
        found: dict[str, str] = {}
        for item in self.batch_get_sks(tenant_id, wanted):
            found[wanted[str(item["sk"])]] = str(item["thread_id"])
        return found

    def remember_message_ids(self, tenant_id: str, message_ids: Iterable[str], thread_id: str) -> None:
        """Point Message-IDs at a thread unless they already point somewhere (first writer wins)."""
        for message_id in dict.fromkeys(message_ids):
            self.create_location(tenant_id, message_id_sk(message_id), {"thread_id": thread_id})

    def subject_thread(self, tenant_id: str, scope: str, base_subject: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), subject_sk(scope, base_subject))

    def remember_subject(
        self, tenant_id: str, scope: str, base_subject: str, thread_id: str, date: str
    ) -> None:
        # Keep the newest thread per subject: a reply joins the conversation that is still going.
        try:
            self.table.put_item(
                Item={
                    "pk": tenant_pk(tenant_id),
                    "sk": subject_sk(scope, base_subject),
                    "thread_id": thread_id,
                    "date": date,
                },
                ConditionExpression=Attr("date").not_exists() | Attr("date").lte(date),
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    # ------------------------------------------------------------------ quarantine
    def quarantine(
        self, tenant_id: str, account_id: str, folder: str, uidvalidity: int, uid: int, item: Item
    ) -> bool:
        sk = quarantine_sk(account_id, folder, uidvalidity, uid)
        return self.create_location(tenant_id, sk, item)

    def list_quarantine(self, tenant_id: str, account_id: str) -> list[Item]:
        response = self.table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
            & Key("sk").begins_with(f"QUAR#{account_id}#")
        )
        return response.get("Items", [])

    # ------------------------------------------------------------------ listings
    def read_source(
        self,
        tenant_id: str,
        source: Source,
        *,
        cursor: str | None,
        limit: int,
        since: str | None = None,
        until: str | None = None,
        filters: Any = None,
    ) -> tuple[list[Item], str | None]:
        """One query of an index partition, newest first, optionally within a date range."""
        return self.query_page(
            tenant_id=tenant_id,
            key_condition=_source_condition(source, since, until),
            cursor=cursor,
            limit=limit,
            index=source.index,
            newest_first=True,
            filter_expression=filters,
        )

    def cursor_after(
        self,
        tenant_id: str,
        source: Source,
        item: Item,
        *,
        since: str | None = None,
        until: str | None = None,
    ) -> str | None:
        """The cursor that resumes a `read_source` of `source` (same `since`/`until`) right after `item`."""
        return self.cursor_at(
            tenant_id,
            source.key_of(item),
            index=source.index,
            key_condition=_source_condition(source, since, until),
        )

    def list_account_locations(
        self,
        tenant_id: str,
        account_id: str,
        *,
        cursor: str | None,
        limit: int,
        since: str | None = None,
        until: str | None = None,
        folder: str | None = None,
    ) -> tuple[list[Item], str | None]:
        folder_filter = Attr("folder").eq(folder) if folder else None
        return self.read_source(
            tenant_id,
            account_source(tenant_id, account_id),
            cursor=cursor,
            limit=limit,
            since=since,
            until=until,
            filters=folder_filter,
        )

    def list_thread(
        self,
        tenant_id: str,
        thread_id: str,
        *,
        cursor: str | None,
        limit: int,
        newest_first: bool = False,
        filters: Any = None,
    ) -> tuple[list[Item], str | None]:
        """A thread's emails, oldest first unless `newest_first`; `filters` is a FilterExpression."""
        return self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("gsi2pk").eq(thread_source(tenant_id, thread_id).partition),
            cursor=cursor,
            limit=limit,
            index="gsi2",
            newest_first=newest_first,
            filter_expression=filters,
        )

    def thread_emails(self, tenant_id: str, thread_id: str, budget: Budget | None = None) -> list[Item]:
        """Every email of a thread, oldest first, with the summary attributes only (1 MB a request;
        every request is spent from `budget`)."""
        kwargs: dict[str, Any] = {
            "IndexName": "gsi2",
            "KeyConditionExpression": Key("gsi2pk").eq(thread_source(tenant_id, thread_id).partition),
            "ProjectionExpression": ", ".join(f"#a{i}" for i in range(len(THREAD_ATTRIBUTES))),
            "ExpressionAttributeNames": {f"#a{i}": name for i, name in enumerate(THREAD_ATTRIBUTES)},
        }
        out: list[Item] = []
        while True:
            response = self.table.query(**kwargs)
            if budget is not None:
                budget.spend()
            out.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return out
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # ------------------------------------------------------------------ batched ingest
    def plan_read(self, tenant_id: str, sks: Iterable[str]) -> dict[str, Item]:
        """Consistent BatchGetItem of the given sort keys (100 a request), `PLAN_ATTRIBUTES`
        only: what ingest needs to know of what is stored. Missing keys are left out."""
        keys = [{"pk": tenant_pk(tenant_id), "sk": sk} for sk in dict.fromkeys(sks)]
        items = batch_get(self.client, self.table_name, keys, consistent=True, projection=PLAN_ATTRIBUTES)
        return {str(item["sk"]): item for item in items}

    def write(self, writes: EmailWrites) -> None:
        """The conditional and update writes of `writes`, in order, in transactions of up to 100
        actions and about 3.5 MB. Raises `TransactionLost` (its `failed` indexes into all of
        `writes`) when a condition failed; transactions before it stay written."""
        done = 0
        for chunk in chunks(writes.actions):
            try:
                transact(self.client, self.table_name, chunk)
            except TransactionLost as lost:
                raise TransactionLost([done + i for i in lost.failed]) from lost
            done += len(chunk)

    def put_items(self, tenant_id: str, items: Sequence[tuple[str, Item]]) -> None:
        """Plain puts of (sort key, item), 25 a BatchWriteItem: only for deterministic keys, where
        writing an item again changes nothing (locations, quarantine records)."""
        batch_put(
            self.client,
            self.table_name,
            [{"pk": tenant_pk(tenant_id), "sk": sk, **item} for sk, item in items],
        )

    def mark_announced(self, tenant_id: str, email_ids: Sequence[str]) -> None:
        """Set `announced` on each email, 100 to a transaction; an email deleted meanwhile (a
        purge) is skipped."""
        writes = EmailWrites(tenant_id)
        for email_id in dict.fromkeys(email_ids):
            writes.set_announced(email_id)
        try:
            self.write(writes)
        except TransactionLost:
            for email_id in dict.fromkeys(email_ids):
                try:
                    self.update_email(tenant_id, email_id, announced=True)
                except Exception as exc:
                    if not is_condition_failure(exc):
                        raise

    def thread_members(
        self, tenant_id: str, thread_ids: Sequence[str], budget: Budget | None = None
    ) -> dict[str, Item]:
        """THREAD items by thread id (`members`, `overflow`), 100 to a BatchGetItem; every request
        is spent from `budget`."""
        keys = [{"pk": tenant_pk(tenant_id), "sk": thread_sk(t)} for t in dict.fromkeys(thread_ids)]
        items = batch_get(
            self.client,
            self.table_name,
            keys,
            on_request=None if budget is None else budget.spend,
        )
        return {str(item["thread_id"]): item for item in items}


class EmailWrites:
    """An ordered list of the transactional writes of one ingest batch, each tagged with what it
    is ("message_id", "subject", "thread", "thread_full", "email", "attach", "announced") so a
    lost condition can be told apart by kind."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.pk = tenant_pk(tenant_id)
        self.actions: list[dict[str, Any]] = []
        self.tags: list[str] = []
        self.keys: list[str] = []

    def __len__(self) -> int:
        return len(self.actions)

    def _add(self, tag: str, key: str, action: dict[str, Any]) -> None:
        self.actions.append(action)
        self.tags.append(tag)
        self.keys.append(key)

    def tags_of(self, indexes: Iterable[int]) -> set[str]:
        return {self.tags[i] for i in indexes}

    def register_message_id(self, message_id: str, thread_id: str) -> None:
        """Message-ID -> thread, only where the Message-ID points nowhere yet (first writer wins)."""
        self._add(
            "message_id",
            message_id,
            {
                "Put": {
                    "Item": {"pk": self.pk, "sk": message_id_sk(message_id), "thread_id": thread_id},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        )

    def remember_subject(self, scope: str, base_subject: str, thread_id: str, date: str) -> None:
        """Base subject -> thread, unless a newer conversation holds it (the newest one wins)."""
        self._add(
            "subject",
            subject_sk(scope, base_subject),
            {
                "Put": {
                    "Item": {
                        "pk": self.pk,
                        "sk": subject_sk(scope, base_subject),
                        "thread_id": thread_id,
                        "date": date,
                    },
                    "ConditionExpression": "attribute_not_exists(#d) OR #d <= :d",
                    "ExpressionAttributeNames": {"#d": "date"},
                    "ExpressionAttributeValues": {":d": date},
                }
            },
        )

    def join_thread(self, thread_id: str, email_ids: Sequence[str], *, full: bool = False) -> None:
        """Add emails to a thread's members (a set add: replays change nothing) while it lists
        fewer than THREAD_MEMBERS_MAX; `full` (after that condition failed) marks it `overflow`."""
        key = {"pk": self.pk, "sk": thread_sk(thread_id)}
        if full:
            update = {
                "Key": key,
                "UpdateExpression": "SET thread_id = :t, overflow = :true",
                "ExpressionAttributeValues": {":t": thread_id, ":true": True},
            }
            self._add("thread_full", thread_id, {"Update": update})
            return
        update = {
            "Key": key,
            "UpdateExpression": "SET thread_id = :t ADD members :m",
            "ConditionExpression": "attribute_not_exists(members) OR size(members) < :cap",
            "ExpressionAttributeValues": {":t": thread_id, ":m": set(email_ids), ":cap": THREAD_MEMBERS_MAX},
        }
        self._add("thread", thread_id, {"Update": update})

    def create_email(self, item: Item) -> None:
        """A new email (with its listing index keys), only if it does not exist yet."""
        keys = index_keys(self.tenant_id, item)
        stored = {"pk": self.pk, "sk": email_sk(item["email_id"]), **item, **keys, "version": 1}
        self._add(
            "email",
            str(item["email_id"]),
            {"Put": {"Item": stored, "ConditionExpression": "attribute_not_exists(pk)"}},
        )

    def attach(
        self,
        email_id: str,
        loc_keys: Iterable[str],
        flags: dict[str, bool] | None = None,
    ) -> None:
        """An existing email gains locations (set adds, so replays change nothing) and, with
        `flags`, takes the newest mailbox view of read/flagged/answered (moving it into or out
        of the unread index). The email must exist."""
        keys = set(loc_keys)
        accounts, folders = locations_summary(keys)
        values: dict[str, Any] = {":l": keys, ":a": accounts, ":f": folders, ":false": False}
        sets = ["deleted = :false"]
        removes: list[str] = []
        names: dict[str, str] = {}
        if flags is not None:
            for i, (name, on) in enumerate(flags.items()):
                names[f"#g{i}"] = name
                values[f":g{i}"] = on
                sets.append(f"#g{i} = :g{i}")
            if flags.get("read"):
                removes.append("gsi4pk")
            else:
                values[":u"] = unread_source(self.tenant_id).partition
                sets.append("gsi4pk = :u")
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        expression += " ADD loc_keys :l, accounts :a, folders :f"
        update: dict[str, Any] = {
            "Key": {"pk": self.pk, "sk": email_sk(email_id)},
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": values,
        }
        if names:
            update["ExpressionAttributeNames"] = names
        self._add("attach", email_id, {"Update": update})

    def set_announced(self, email_id: str) -> None:
        self._add(
            "announced",
            email_id,
            {
                "Update": {
                    "Key": {"pk": self.pk, "sk": email_sk(email_id)},
                    "UpdateExpression": "SET announced = :true",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":true": True},
                }
            },
        )


# A thread summary reads these of every message: the summary's and the listing filters' attributes.
THREAD_ATTRIBUTES = (*SUMMARY_ATTRIBUTES, "cc", "gsi1sk")


def email_filter(
    *,
    include_deleted: bool = False,
    read: bool | None = None,
    search: list[str] | None = None,
    account_id: str | None = None,
    folder: str | None = None,
    category: str | None = None,
    snoozed: bool | None = None,
) -> Any:
    """A FilterExpression over email items (None: no filter): what DynamoDB can check of a query.

    `search` holds the terms of `mailbridge.search.query_terms`, each of which the item's `search`
    attribute must contain; `folder` needs `account_id`; `snoozed` keeps only snoozed (True) or
    only not snoozed (False) emails (those with or without `snoozed_until`).
    """
    conditions: list[Any] = []
    if not include_deleted:
        conditions.append(Attr("deleted").ne(True))
    if snoozed is not None:
        conditions.append(Attr("snoozed_until").exists() if snoozed else Attr("snoozed_until").not_exists())
    if read is not None:
        conditions.append(Attr("read").eq(read))
    conditions.extend(Attr("search").contains(term) for term in search or ())
    if category:
        conditions.append(Attr("category").eq(category))
    if account_id:
        conditions.append(Attr("accounts").contains(account_id))
        if folder:
            conditions.append(Attr("folders").contains(f"{account_id}:{folder}"))
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined &= condition
    return combined


def _set_expression(
    values: dict[str, Any], index: dict[str, str | None] | None = None
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`SET #f0 = :v0, ... [REMOVE #r0 ...]` with its name and value maps; `index` names key
    attributes to set (a value) or remove (None) alongside."""
    sets = {**values, **{k: v for k, v in (index or {}).items() if v is not None}}
    removes = [k for k, v in (index or {}).items() if v is None]
    names = {f"#f{i}": name for i, name in enumerate(sets)}
    names |= {f"#r{i}": name for i, name in enumerate(removes)}
    exprs = {f":v{i}": value for i, value in enumerate(sets.values())}
    expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(sets)))
    if removes:
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
    return expression, names, exprs


def _unread_key(tenant_id: str, values: dict[str, Any]) -> dict[str, str | None]:
    if "read" not in values:
        return {}
    return {"gsi4pk": None if values["read"] else unread_source(tenant_id).partition}


def _date_range(condition: Any, sort_key: str, since: str | None, until: str | None) -> Any:
    # Sort keys are "{iso date}#{email_id}": ISO dates sort as text, and "~" sorts after every id.
    if since and until:
        return condition & Key(sort_key).between(since, f"{until}~")
    if since:
        return condition & Key(sort_key).gte(since)
    if until:
        return condition & Key(sort_key).lte(f"{until}~")
    return condition


def _source_condition(source: Source, since: str | None, until: str | None) -> Any:
    return _date_range(Key(source.pk_attr).eq(source.partition), source.sk_attr, since, until)
