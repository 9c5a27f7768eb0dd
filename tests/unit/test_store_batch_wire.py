"""store/batch.py `to_wire`: the same wire format as boto3's TypeSerializer, value for value,
including what it refuses."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.store.batch import to_wire

SERIALIZER = TypeSerializer()


def boto3_wire(item: dict[str, Any]) -> dict[str, Any]:
    return {name: SERIALIZER.serialize(value) for name, value in item.items()}


def outcome(convert: Any, item: dict[str, Any]) -> Any:
    try:
        return convert(item)
    except Exception as exc:  # noqa: BLE001 - the kind and text of a refusal are compared
        return (type(exc), str(exc))


class Kind(StrEnum):
    INBOUND = "inbound"


SCALARS = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([10**38 - 1, 10**38, -(10**38) + 1, -(10**38), 0, -1]),
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True, places=3),
    st.binary(max_size=4),
    st.floats(allow_nan=False, width=32),
    st.just(Kind.INBOUND),
    st.just(Binary(b"\x00\x01")),
)
SETS = st.one_of(
    st.frozensets(st.text(max_size=4), max_size=3),
    st.sets(st.text(max_size=4), max_size=3),
    st.sets(st.integers(min_value=-5, max_value=5), max_size=3),
    st.sets(st.binary(max_size=3), max_size=3),
    st.sets(st.one_of(st.text(max_size=2), st.integers(0, 3)), max_size=3),
    st.sets(st.booleans(), max_size=2),
)
VALUES = st.recursive(
    st.one_of(SCALARS, SETS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), VALUES, max_size=6))
def test_the_same_wire_format_as_type_serializer(item: dict[str, Any]) -> None:
    assert outcome(to_wire, item) == outcome(boto3_wire, item)


@pytest.mark.parametrize(
    "value",
    [
        "text",
        True,
        False,
        0,
        10**38 - 1,
        -(10**38) + 1,
        None,
        ["a", 1, {"b": [True, None]}],
        {"name": "Carol", "address": "carol@customer.example"},
        {"LOC#acc#1", "LOC#acc#2"},
    ],
)
def test_the_stored_types_convert_as_boto3_does(value: Any) -> None:
    assert to_wire({"v": value}) == boto3_wire({"v": value})


@pytest.mark.parametrize("value", [1.5, 10**38, -(10**38), Decimal("NaN"), object()])
def test_what_boto3_refuses_is_refused(value: Any) -> None:
    with pytest.raises(TypeError if not isinstance(value, int) else Exception) as refused:
        to_wire({"v": value})
    with pytest.raises(type(refused.value)):
        boto3_wire({"v": value})
