"""Batched DynamoDB reads and writes within the service's limits, with its retry rules.

- `batch_get`: BatchGetItem, at most 100 keys a request (16 MB a response). Keys the service did
  not get to come back as `UnprocessedKeys` and are asked for again.
- `batch_put`: BatchWriteItem, at most 25 puts a request; `UnprocessedItems` are sent again. For
  items whose key is deterministic, so that writing one twice changes nothing. `batch_delete`: the
  same for deletes.
- `transact`: TransactWriteItems, at most 100 actions and 4 MB a request, all or nothing; for the
  writes that need a condition (exactly once) or an update expression. A lost condition raises
  `TransactionLost`, naming which actions failed.

Every function here takes the low-level DynamoDB client (`mailbridge.aws.dynamodb_client`, a
repository's `client`), not a resource's: items go in and come out as Python values, converted once
per item at this boundary (`to_wire`: the types items are made of by exact type, the rest with
boto3's `TypeSerializer`; `from_wire`: boto3's `TypeDeserializer`), the same conversion the
resource layer makes, without its deep copy of every request and its walk of every parameter and
response (the largest share of the sync's CPU, benchmarks/bench_sync.py with
BENCH_SYNC_PROFILE=1). Unprocessed keys and items come back in wire format and are sent again as
they are.

Unprocessed keys and items are retried with exponential backoff and full jitter (DynamoDB
developer guide, "Error retries and exponential backoff"; BatchGetItem / BatchWriteItem API
reference: "we strongly recommend that you use an exponential backoff algorithm"), at most
`MAX_ATTEMPTS` times; what is still unprocessed then raises `StoreThrottled` (retryable), so the
caller's queue record is retried rather than anything lost.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from mailbridge.errors import Conflict, MailbridgeError

Item = dict[str, Any]
# An item or key in DynamoDB's wire format: {"name": {"S": "value"}, ...}
WireItem = dict[str, Any]

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
# Attributes of a transaction action that hold attribute values (TransactWriteItems API
# reference: Put.Item, Update/Delete/ConditionCheck.Key, ExpressionAttributeValues of each).
_VALUE_MAPS = ("Item", "Key", "ExpressionAttributeValues")

BATCH_GET_MAX = 100
BATCH_WRITE_MAX = 25
TRANSACT_MAX_ACTIONS = 100
# TransactWriteItems refuses more than 4 MB; items are sized by their JSON text, which is close
# to DynamoDB's own item size (attribute names + values), so leave a margin.
TRANSACT_MAX_BYTES = 3_500_000
MAX_ATTEMPTS = 8
BASE_DELAY = 0.05
MAX_DELAY = 2.0


class StoreThrottled(MailbridgeError):
    """DynamoDB kept leaving part of a batch unprocessed (throttling): try the whole thing later."""

    code = "store_throttled"
    retryable = True


class TransactionLost(Conflict):
    """A condition of a transaction failed or a concurrent transaction got there first: nothing of
    it was written. `failed` holds the indexes of the actions whose condition failed."""

    code = "transaction_lost"

    def __init__(self, failed: list[int]) -> None:
        super().__init__("a conditional write lost to a concurrent one", details={"failed": failed})
        self.failed = failed


def to_wire(item: Mapping[str, Any]) -> WireItem:
    """`item` in DynamoDB's wire format (boto3's `TypeSerializer`: str -> S, int/Decimal -> N,
    bool -> BOOL, None -> NULL, bytes -> B, sets -> SS/NS/BS, list -> L, dict -> M). Raises
    `TypeError` for a float or any type DynamoDB has no type for, as the resource layer does.

    The same output as `TypeSerializer.serialize` value for value (tests/unit/test_store_batch_wire.py
    compares them). The types stored items are made of (exactly `str`, `bool`, `int` below 10**38,
    `None`, `list`, `dict`, a non-empty `set` of `str`) are converted by a lookup on the value's
    exact type; anything else (Decimal, bytes, Binary, tuples, other sets and mappings, subclasses)
    goes to `TypeSerializer`. `TypeSerializer` asks up to ten `isinstance` questions of every value
    in a fixed order: for the sync's email items that was 16% of the sync's CPU
    (benchmarks/bench_sync.py, BENCH_SYNC_YAPPI_OUT)."""
    return {name: _serialize(value) for name, value in item.items()}


def _serialize(value: Any) -> dict[str, Any]:
    convert = _BY_TYPE.get(type(value))
    wire = convert(value) if convert is not None else None
    return wire if wire is not None else cast("dict[str, Any]", _SERIALIZER.serialize(value))


def _number(value: int) -> dict[str, Any] | None:
    # DynamoDB numbers have 38 digits of precision: below this an int is exact, and its `str` is
    # TypeSerializer's `str(DYNAMODB_CONTEXT.create_decimal(value))`; beyond, that refuses it.
    return {"N": str(value)} if -_EXACT_INT < value < _EXACT_INT else None


def _string_set(value: set[Any]) -> dict[str, Any] | None:
    # TypeSerializer calls an empty set, or one holding numbers or bools, NS: those go to it
    return {"SS": list(value)} if value and all(type(member) is str for member in value) else None


_EXACT_INT = 10**38
# By exact type: a subclass (a StrEnum, an OrderedDict, ...) is TypeSerializer's to convert.
_BY_TYPE: dict[type, Callable[[Any], dict[str, Any] | None]] = {
    str: lambda value: {"S": value},
    dict: lambda value: {"M": {key: _serialize(member) for key, member in value.items()}},
    bool: lambda value: {"BOOL": value},
    int: _number,
    list: lambda value: {"L": [_serialize(member) for member in value]},
    type(None): lambda _: {"NULL": True},
    set: _string_set,
}


def from_wire(item: Mapping[str, Any]) -> Item:
    """A wire-format item as Python values (boto3's `TypeDeserializer`: N -> Decimal, SS -> set,
    B -> `Binary`, ...), what the resource layer returns."""
    deserialize = _DESERIALIZER.deserialize
    return {name: deserialize(value) for name, value in item.items()}


def _wire_action(body: Mapping[str, Any], table_name: str) -> dict[str, Any]:
    """A transaction action's body with its items, keys and expression values in wire format and
    the table name set (unless the action names one). Expressions must be strings here."""
    wire: dict[str, Any] = {"TableName": table_name}
    for name, value in body.items():
        wire[name] = to_wire(value) if name in _VALUE_MAPS else value
    return wire


@dataclass
class Backoff:
    """Full-jitter exponential backoff between attempts at unprocessed keys or items."""

    sleep: Callable[[float], None] = time.sleep
    attempts: int = MAX_ATTEMPTS

    def wait(self, attempt: int) -> None:
        if attempt >= self.attempts:
            raise StoreThrottled("DynamoDB left part of a batch unprocessed after every retry")
        self.sleep(random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2**attempt)))  # noqa: S311


@dataclass
class BatchRead:
    """Keys of one table for a shared BatchGetItem (`read_together`) through the low-level
    `client`; `items` holds what exists (any order, as Python values) afterwards. `projection`
    names the attributes to read (the keys are added)."""

    client: Any
    table_name: str
    keys: list[dict[str, Any]]
    projection: Sequence[str] | None = None
    consistent: bool = False
    items: list[Item] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"ConsistentRead": self.consistent}
        if self.projection:
            names = list(dict.fromkeys(["pk", "sk", *self.projection]))
            spec["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(names)))
            spec["ExpressionAttributeNames"] = {f"#p{i}": name for i, name in enumerate(names)}
        return spec


def read_together(
    reads: Sequence[BatchRead],
    *,
    backoff: Backoff | None = None,
    on_request: Callable[[], None] | None = None,
) -> None:
    """Read every key of every read (one read per table; duplicates asked once) in BatchGetItem
    requests of at most 100 keys in all: one request reads several tables, so a route that needs
    a record and the emails linked to it pays one request, not two. `on_request` is called once
    per request made."""
    by_table = {read.table_name: read for read in reads}
    if len(by_table) != len(reads):
        raise ValueError("read_together takes one read per table")
    wanted = [
        (read.table_name, key)
        for read in reads
        for key in {(str(k["pk"]), str(k["sk"])): dict(k) for k in read.keys}.values()
    ]
    if not wanted:
        return
    client = reads[0].client
    wait = backoff or Backoff()
    for start in range(0, len(wanted), BATCH_GET_MAX):
        request: dict[str, Any] = {}
        for table, key in wanted[start : start + BATCH_GET_MAX]:
            request.setdefault(table, {**by_table[table].spec(), "Keys": []})["Keys"].append(to_wire(key))
        attempt = 0
        while request:
            if attempt:
                wait.wait(attempt)
            response = client.batch_get_item(RequestItems=request)
            if on_request is not None:
                on_request()
            for table, found in response.get("Responses", {}).items():
                by_table[table].items.extend(from_wire(item) for item in found)
            request = response.get("UnprocessedKeys") or {}
            attempt += 1


def batch_get(
    client: Any,
    table_name: str,
    keys: Iterable[Mapping[str, Any]],
    *,
    consistent: bool = False,
    projection: Sequence[str] | None = None,
    backoff: Backoff | None = None,
    on_request: Callable[[], None] | None = None,
) -> list[Item]:
    """The items of `keys` that exist (any order); duplicates asked once. `projection` names the
    attributes to read (the key attributes are always added)."""
    read = BatchRead(client, table_name, [dict(k) for k in keys], projection, consistent)
    read_together([read], backoff=backoff, on_request=on_request)
    return read.items


def batch_put(client: Any, table_name: str, items: Sequence[Item], *, backoff: Backoff | None = None) -> None:
    """Put every item, 25 a request; a later item with the same key replaces an earlier one."""
    unique = list({(str(i["pk"]), str(i["sk"])): i for i in items}.values())
    _batch_write(client, table_name, [{"PutRequest": {"Item": to_wire(item)}} for item in unique], backoff)


def batch_delete(
    client: Any, table_name: str, keys: Sequence[Mapping[str, Any]], *, backoff: Backoff | None = None
) -> None:
    """Delete every key, 25 a request (deleting a missing item is no error); duplicates once."""
    unique = list({(str(k["pk"]), str(k["sk"])): dict(k) for k in keys}.values())
    _batch_write(client, table_name, [{"DeleteRequest": {"Key": to_wire(key)}} for key in unique], backoff)


def _batch_write(client: Any, table_name: str, writes: Sequence[Item], backoff: Backoff | None) -> None:
    wait = backoff or Backoff()
    for start in range(0, len(writes), BATCH_WRITE_MAX):
        request: dict[str, Any] = {table_name: list(writes[start : start + BATCH_WRITE_MAX])}
        attempt = 0
        while request:
            if attempt:
                wait.wait(attempt)
            response = client.batch_write_item(RequestItems=request)
            request = response.get("UnprocessedItems") or {}
            attempt += 1


def approximate_size(action: Mapping[str, Any]) -> int:
    """Bytes an action adds to a transaction, about (its JSON text)."""
    return len(json.dumps(action, default=str, separators=(",", ":")))


def chunks(actions: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """`actions` in order, cut into transactions of at most 100 actions and about 3.5 MB."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for action in actions:
        action_size = approximate_size(action)
        if current and (len(current) == TRANSACT_MAX_ACTIONS or size + action_size > TRANSACT_MAX_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(action)
        size += action_size
    if current:
        out.append(current)
    return out


def transact(client: Any, table_name: str, actions: Sequence[dict[str, Any]]) -> None:
    """One TransactWriteItems of `actions` (`{"Put": {...}}`, `{"Update": {...}}`, ... without the
    table name, Python values, string expressions; at most 100, no two on the same item). Raises
    `TransactionLost` when a condition failed or a concurrent transaction on the same items won;
    nothing was written then."""
    if not actions:
        return
    items = []
    for action in actions:
        ((kind, body),) = action.items()
        items.append({kind: _wire_action(body, table_name)})
    try:
        client.transact_write_items(TransactItems=items)
    except Exception as exc:
        response = getattr(exc, "response", None)
        if not isinstance(response, Mapping):
            raise
        if response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        reasons = response.get("CancellationReasons") or []
        failed = [i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"]
        raise TransactionLost(failed) from exc
