"""Emails table: messages, their mailbox locations, threading lookups and quarantine records.

Item types (pk = TENANT#{tenant} for all):
  EMAIL#{email_id}                          the message (gsi1: newest first, gsi2: thread, gsi3: Message-ID)
  LOC#{account}#{folder}#{uidvalidity}#{uid} where a mailbox holds it (gsi1: per account, newest first)
  MSGID#{hash}                              Message-ID -> thread id (also for ids only referenced so far)
  SUBJ#{account}#{hash}                     base subject -> thread id, for replies without references
  QUAR#{account}#{folder}#{uidvalidity}#{uid} input that could not be normalized (raw bytes in S3)
Every create is conditional, so replaying a batch writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mailbridge.errors import Conflict
from mailbridge.store.base import DynamoRepository, Item, is_condition_failure
from mailbridge.store.conditions import Attr, Key
from mailbridge.store.keys import (
    email_sk,
    location_prefix,
    message_id_sk,
    quarantine_sk,
    subject_sk,
    tenant_pk,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

BATCH_GET = 100


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
        """True when this call stored the email, False when it already existed."""
        try:
            self.create({"pk": tenant_pk(tenant_id), "sk": email_sk(item["email_id"]), **item})
        except Conflict:
            return False
        return True

    def batch_get_emails(self, tenant_id: str, email_ids: Sequence[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        unique = list(dict.fromkeys(email_ids))
        for start in range(0, len(unique), BATCH_GET):
            keys = [
                {"pk": tenant_pk(tenant_id), "sk": email_sk(e)} for e in unique[start : start + BATCH_GET]
            ]
            request: dict[str, Any] = {self.table_name: {"Keys": keys}}
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[str(item["email_id"])] = item
                request = response.get("UnprocessedKeys") or {}
        return found

    def update_email(self, tenant_id: str, email_id: str, **values: Any) -> None:
        expression, names, exprs = _set_expression(values)
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": email_sk(email_id)},
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=exprs,
        )

    def transition(self, tenant_id: str, email_id: str, allowed: tuple[str, ...], **values: Any) -> bool:
        """Set `values` only while the outbound `send_status` is one of `allowed`; False otherwise."""
        expression, names, exprs = _set_expression(values)
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
        """Forget one location; True when the email has no location left (it is then marked deleted)."""
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
                UpdateExpression="SET deleted = :true REMOVE accounts, folders",
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
        while True:
            response = self.table.query(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def batch_get_sks(self, tenant_id: str, loc_keys: Iterable[str]) -> list[Item]:
        keys = [{"pk": tenant_pk(tenant_id), "sk": sk} for sk in loc_keys]
        out: list[Item] = []
        for start in range(0, len(keys), BATCH_GET):
            request: dict[str, Any] = {self.table_name: {"Keys": keys[start : start + BATCH_GET]}}
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                out.extend(response.get("Responses", {}).get(self.table_name, []))
                request = response.get("UnprocessedKeys") or {}
        return out

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
    def list_emails(
        self,
        tenant_id: str,
        *,
        cursor: str | None,
        limit: int,
        since: str | None = None,
        until: str | None = None,
        filters: Any = None,
    ) -> tuple[list[Item], str | None]:
        return self._newest_first(tenant_id, tenant_pk(tenant_id), cursor, limit, since, until, filters)

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
        partition = f"{tenant_pk(tenant_id)}#ACC#{account_id}"
        folder_filter = Attr("folder").eq(folder) if folder else None
        return self._newest_first(tenant_id, partition, cursor, limit, since, until, folder_filter)

    def _newest_first(
        self,
        tenant_id: str,
        partition: str,
        cursor: str | None,
        limit: int,
        since: str | None,
        until: str | None,
        filters: Any,
    ) -> tuple[list[Item], str | None]:
        """A gsi1 partition, newest first, optionally within a date range."""
        return self.query_page(
            tenant_id=tenant_id,
            key_condition=_date_range(Key("gsi1pk").eq(partition), since, until),
            cursor=cursor,
            limit=limit,
            index="gsi1",
            newest_first=True,
            filter_expression=filters,
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
            key_condition=Key("gsi2pk").eq(f"{tenant_pk(tenant_id)}#THREAD#{thread_id}"),
            cursor=cursor,
            limit=limit,
            index="gsi2",
            newest_first=newest_first,
            filter_expression=filters,
        )


def email_filter(
    *,
    include_deleted: bool = False,
    read: bool | None = None,
    search: str | None = None,
    account_id: str | None = None,
    folder: str | None = None,
) -> Any:
    """A FilterExpression over email items for `list_emails` / `list_thread` (None: no filter).

    `search` must already be lower-case (the item's `search` attribute is); `folder` needs `account_id`.
    """
    conditions: list[Any] = []
    if not include_deleted:
        conditions.append(Attr("deleted").ne(True))
    if read is not None:
        conditions.append(Attr("read").eq(read))
    if search:
        conditions.append(Attr("search").contains(search))
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


def _set_expression(values: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`SET #f0 = :v0, ...` with its name and value maps."""
    names = {f"#f{i}": name for i, name in enumerate(values)}
    exprs = {f":v{i}": value for i, value in enumerate(values.values())}
    return "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))), names, exprs


def _date_range(condition: Any, since: str | None, until: str | None) -> Any:
    # gsi1sk = "{iso date}#{email_id}": ISO dates sort as text, and "~" sorts after every id.
    if since and until:
        return condition & Key("gsi1sk").between(since, f"{until}~")
    if since:
        return condition & Key("gsi1sk").gte(since)
    if until:
        return condition & Key("gsi1sk").lte(f"{until}~")
    return condition
