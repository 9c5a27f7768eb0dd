"""moto's DynamoDB items built at the cost AWS has: an item's 400 KB size check made once per
item, not once per attribute over every attribute before it.

moto 5.2.5 (`moto.dynamodb.models.dynamo_type.Item.__init__`) stores an item's attributes one by
one in a `LimitedSizeDict`, whose `__setitem__` sums the size of every attribute already stored
(walking each nested list, map and set) before adding the next: quadratic in the attribute count.
An email item has about 50 attributes, several of them nested (addresses, attachments, sets of
locations), and moto builds one for every Put of a transaction, every BatchWriteItem put and
every item an update writes back. Measured without a profiler (thread CPU of moto's
`DynamoDBBackend.transact_write_items`, ingesting 500 messages of the shared corpus in batches
of 100 in process, loaded machine): 2.10 s without this module, 1.17 s with it; and
`item_build_seconds` below builds an email-like item of 50 attributes in 10.7 ms without it,
1.2 ms with it. DynamoDB checks an item's size once. moto's own `Item.__deepcopy__` already
skips the per-insert check for the same reason ("would make the overall copy O(n^2)").

Only item construction changes: the attributes are stored as moto stores them, and the total is
checked once against moto's own limit (405,000 bytes, counted as moto counts: each name's UTF-8
length plus `DynamoType.size()` of each value). Sizes only add up as attributes are added, so
the item is refused exactly when moto's per-attribute check would have refused it, with the
same `ItemSizeTooLarge`. Setting one attribute later (an update) still goes through moto's own
`LimitedSizeDict.__setitem__`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ITEM_LIMIT = 405_000  # moto's LimitedSizeDict limit (DynamoDB's 400 KB, as moto measured it)


def install(setter: Callable[[Any, str, Any], None] = setattr) -> None:
    """Replace `Item.__init__` with a single size check (idempotent; `setter`: `setattr`, or
    pytest's `monkeypatch.setattr` so the patch ends with the test)."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    if getattr(Item.__init__, "_one_size_check", False):
        return

    def __init__(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:  # noqa: N807
        self.hash_key = hash_key
        self.range_key = range_key
        stored = LimitedSizeDict()
        total = 0
        for key, value in attrs.items():
            typed = DynamoType(value)
            total += bytesize(key) + typed.size()
            dict.__setitem__(stored, key, typed)
        if total > ITEM_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = stored

    __init__._one_size_check = True  # type: ignore[attr-defined]
    setter(Item, "__init__", __init__)


def email_like_attributes(attributes: int = 50) -> dict[str, Any]:
    """A wire-format item shaped like a stored email: flat strings, address lists, sets."""
    address = {"M": {"name": {"S": "Carol Customer"}, "address": {"S": "carol@customer.example"}}}
    item: dict[str, Any] = {"pk": {"S": "TENANT#bench"}, "sk": {"S": "EMAIL#em_0123456789"}}
    for i in range(attributes - 2):
        kind = i % 4
        if kind == 0:
            item[f"a{i}"] = {"S": "x" * 40}
        elif kind == 1:
            item[f"a{i}"] = {"L": [address] * 3}
        elif kind == 2:
            item[f"a{i}"] = {"SS": [f"LOC#acc#{n}" for n in range(3)]}
        else:
            item[f"a{i}"] = {"BOOL": True}
    return item


def item_build_seconds(repeat: int = 300) -> float:
    """Seconds to build `repeat` email-like items (run by hand:
    `python -c "from benchmarks.sync import moto_items as m; a = m.item_build_seconds();
    m.install(); print(a / m.item_build_seconds())"` from the repo root)."""
    import time

    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    attrs = email_like_attributes()
    start = time.perf_counter()
    for _ in range(repeat):
        Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs)
    return time.perf_counter() - start
