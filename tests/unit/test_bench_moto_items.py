"""The sync benchmark's moto item construction (benchmarks/sync/moto_items.py): the same items,
refused at exactly the size moto's own per-attribute check refuses."""

from __future__ import annotations

from typing import Any

import pytest
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from benchmarks.sync import moto_items

KEY = {"pk": {"S": "TENANT#t"}, "sk": {"S": "EMAIL#e"}}


def build(attrs: dict[str, Any]) -> Item | None:
    try:
        return Item(DynamoType(attrs["pk"]), DynamoType(attrs["sk"]), attrs)
    except ItemSizeTooLarge:
        return None


def items_near_the_limit() -> list[dict[str, Any]]:
    """Items whose size steps over moto's limit one byte at a time, with nested attributes first."""
    head = {**KEY, **moto_items.email_like_attributes(20)}
    used = sum(len(k) + DynamoType(v).size() for k, v in head.items()) + len("body")
    room = moto_items.ITEM_LIMIT - used
    return [{**head, "body": {"S": "x" * n}} for n in range(room - 3, room + 4)]


def test_items_are_built_the_same_and_refused_at_the_same_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given items around moto's size limit, built by moto as it is
    candidates = items_near_the_limit()
    before = [build(attrs) for attrs in candidates]
    # When they are built with one size check an item
    moto_items.install(monkeypatch.setattr)
    after = [build(attrs) for attrs in candidates]
    # Then the same ones are refused (some are, some are not) and the others are equal items
    assert [b is None for b in before] == [a is None for a in after]
    assert {b is None for b in before} == {True, False}
    assert [b for b in before if b is not None] == [a for a in after if a is not None]
    # And an attribute set later still goes through moto's own check
    stored = next(a for a in after if a is not None)
    with pytest.raises(ItemSizeTooLarge):
        stored.attrs["more"] = DynamoType({"S": "y" * 10})
