"""Repository base: conditional create, optimistic versioning and paged queries.

Subclasses map their domain models to items (keys, version, ttl live only here) and call these
helpers; a lost condition always surfaces as `Conflict`, never as a botocore error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbridge import aws
from mailbridge.errors import Conflict, Invalid, MailbridgeError
from mailbridge.store.fill import PAGE_BUDGET, Budget, fill
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table

Item = dict[str, Any]


def tenant_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


# Why DynamoDB cancels a transaction (TransactWriteItems API reference, CancellationReasons):
# only these two are about other writers; the others (ValidationError, ThrottlingError,
# ProvisionedThroughputExceeded, ItemCollectionSizeLimitExceeded ...) are not conflicts.
_CONFLICT_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


def is_condition_failure(exc: Exception) -> bool:
    """True only when a write lost to the table's current state: a failed ConditionExpression,
    or a transaction cancelled because one of its conditions failed or another transaction held
    an item. Any other error (an invalid value, throttling) is not a conflict: retrying the same
    request could never help, so it must not be answered as one."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return False
    code = response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = response.get("CancellationReasons") or []
        codes = {reason.get("Code") for reason in reasons if isinstance(reason, Mapping)}
        return bool(codes & _CONFLICT_REASONS) and codes <= _CONFLICT_REASONS | {"None", None}
    return False


@dataclass(frozen=True)
class Write:
    """One action of a transaction (`{"Put": {...}}`, `{"Delete": {...}}`, `{"Update": {...}}`,
    without the table name: the repository's; an action on another table, such as a timeline
    entry in the links table, names it with `TableName`) and the error to raise when its
    condition is what failed."""

    op: dict[str, Any]
    error: Callable[[], MailbridgeError]


class DynamoRepository:
    """Owns one table. `table` may be injected (tests); otherwise the cached resource is used.

    `client` is the low-level client the batched paths (`mailbridge.store.batch`) speak through:
    the cached one, or, with an injected `table`, one for the same endpoint, region and
    credentials."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        self.table_name = table_name
        self._table = table
        self._injected = table  # `_table` is also filled lazily: only a table handed in counts
        self._client: DynamoDBClient | None = None

    @property
    def table(self) -> Table:
        if self._table is None:
            self._table = aws.dynamodb().Table(self.table_name)
        return self._table

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            injected = self._injected
            self._client = aws.dynamodb_client() if injected is None else aws.plain_client(injected)
        return self._client

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> Item | None:
        response = self.table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=consistent)
        return response.get("Item")

    def create(self, item: Item) -> Item:
        """Write a new item; `Conflict` if the key already exists. The item starts at version 1."""
        new = {**item, "version": 1}
        try:
            self.table.put_item(Item=new, ConditionExpression="attribute_not_exists(pk)")
        except Exception as exc:
            if is_condition_failure(exc):
                raise Conflict("the item already exists", code="already_exists") from exc
            raise
        return new

    def replace(self, item: Item, *, expected_version: int | None) -> Item:
        """Overwrite an item written at `expected_version` (None: it must not exist yet).

        The stored version goes up by one; a concurrent writer that got there first makes this
        raise `Conflict` so the caller can re-read and merge.
        """
        if expected_version is None:
            return self.create(item)
        new = {**item, "version": expected_version + 1}
        try:
            self.table.put_item(
                Item=new,
                ConditionExpression="#v = :expected",
                ExpressionAttributeNames={"#v": "version"},
                ExpressionAttributeValues={":expected": expected_version},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise Conflict("the item was changed by someone else", code="version_conflict") from exc
            raise
        return new

    def delete(self, pk: str, sk: str) -> None:
        self.table.delete_item(Key={"pk": pk, "sk": sk})

    def transact(self, writes: Sequence[Write]) -> None:
        """All of `writes` in one TransactWriteItems (on this table unless one names another), or none.

        When a condition fails, the first write whose condition failed names the error
        (DynamoDB's CancellationReasons are in the order of the actions); a transaction lost to
        a concurrent one is `Conflict(conflict)`.
        """
        items: list[Any] = []
        for write in writes:
            ((action, body),) = write.op.items()
            items.append({action: {"TableName": self.table_name, **body}})  # or the one it names
        try:
            self.table.meta.client.transact_write_items(TransactItems=items)
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            for write, reason in zip(writes, reasons, strict=False):
                if reason.get("Code") == "ConditionalCheckFailed":
                    raise write.error() from exc
            raise Conflict("a concurrent change got there first; try again", code="conflict") from exc

    def query_all(self, **kwargs: Any) -> Iterator[Item]:
        """Every item of one Query (`kwargs` as boto3's `Table.query` takes them), one request per
        1 MB page, following `LastEvaluatedKey`. For internal sweeps, not for client pages."""
        while True:
            response = self.table.query(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def query_page(
        self,
        *,
        tenant_id: str,
        key_condition: Any,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        index: str | None = None,
        newest_first: bool = False,
        filter_expression: Any = None,
    ) -> tuple[list[Item], str | None]:
        """One page of a query and the opaque cursor of the next one (None at the end).

        `cursor` must come from the same query (tenant, table, index, key condition): anything
        else is `Invalid` 400 `invalid_cursor` (store/pagination.py)."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE_SIZE}", code="invalid_limit")
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": key_condition,
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        if index:
            kwargs["IndexName"] = index
        if filter_expression is not None:
            kwargs["FilterExpression"] = filter_expression
        listing = self._listing(index, key_condition)
        start = decode_cursor(cursor, tenant_id, listing=listing)
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.table.query(**kwargs)
        next_cursor = encode_cursor(response.get("LastEvaluatedKey"), tenant_id, listing=listing)
        return response.get("Items", []), next_cursor

    def filled_query(
        self,
        tenant_id: str,
        key_condition: Any,
        filter_expression: Any,
        *,
        cursor: str | None,
        limit: int,
        newest_first: bool = False,
        keep: Callable[[list[Item]], Sequence[Item | None]] | None = None,
    ) -> tuple[list[Item], str | None]:
        """A page of the table query `key_condition` with `filter_expression` applied by DynamoDB,
        holding `limit` items whenever that many match (within the request budget of
        `mailbridge.store.fill`), and the cursor right after its last item (None at the end).
        `newest_first`: descending sort key. `keep` (optional) is a further check made outside
        DynamoDB (one request a read): each read item, or None to leave it out; the page is filled
        past what it leaves out."""

        def read(page_cursor: str | None, size: int) -> tuple[list[Item], str | None]:
            return self.query_page(
                tenant_id=tenant_id,
                key_condition=key_condition,
                cursor=page_cursor,
                limit=size,
                filter_expression=filter_expression,
                newest_first=newest_first,
            )

        return fill(
            read,
            # The FilterExpression already dropped the others.
            (lambda items, _wanted: items) if keep is None else (lambda items, _wanted: keep(items)),
            lambda item: self.cursor_at(
                tenant_id, {"pk": item["pk"], "sk": item["sk"]}, index=None, key_condition=key_condition
            ),
            limit=limit,
            cursor=cursor,
            budget=Budget(PAGE_BUDGET),
            max_read=MAX_PAGE_SIZE,
            round_cost=1 if keep is None else 2,
        )

    def cursor_at(
        self, tenant_id: str, key: Mapping[str, Any], *, index: str | None, key_condition: Any
    ) -> str | None:
        """The cursor that resumes the `query_page` listing (`index`, `key_condition`) right after
        the item whose key (table key, plus the index key when `index` is set) is `key`: what a
        page filler returns when it stops in the middle of what it read."""
        return encode_cursor(dict(key), tenant_id, listing=self._listing(index, key_condition))

    def _listing(self, index: str | None, key_condition: Any) -> str:
        """What a cursor is bound to: this table, the index and the query's key condition, so a
        cursor of one listing (`/crm/contacts`) is refused by another (`/crm/companies`, `/emails`)."""
        from boto3.dynamodb.conditions import ConditionExpressionBuilder

        built = ConditionExpressionBuilder().build_expression(key_condition, is_key_condition=True)
        values = {name: str(value) for name, value in built.attribute_value_placeholders.items()}
        return json.dumps(
            [
                self.table_name,
                index or "",
                built.condition_expression,
                built.attribute_name_placeholders,
                values,
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
