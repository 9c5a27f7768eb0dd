"""Numbers a client sends stay within DynamoDB's Number (38 digits, 1E-130..9.9E+125, finite)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from mailbridge.models.numbers import DynamoDecimal, DynamoFloat, DynamoInt, DynamoNumber

NUMBER: TypeAdapter[Any] = TypeAdapter(DynamoNumber)


def refusal(adapter: TypeAdapter[Any], value: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        adapter.validate_python(value)
    return str(raised.value.errors()[0]["type"])


@pytest.mark.parametrize(
    "value",
    [0, -0.0, 1, -(10**38 - 1), 10**38 - 1, 0.1, 1e-130, -1e-130, 9.9e125, -9.9e125, 4.5, 2**53],
)
def test_what_dynamodb_stores_is_accepted_unchanged(value: Any) -> None:
    accepted = NUMBER.validate_python(value)
    assert accepted == value
    assert type(accepted) is type(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (10**38, "number_out_of_range"),
        (-(10**41), "number_out_of_range"),  # the 42-digit integer
        (1e308, "number_out_of_range"),
        (1e126, "number_out_of_range"),
        (-1e200, "number_out_of_range"),
        (1e-131, "number_out_of_range"),
        (5e-324, "number_out_of_range"),
        (float("nan"), "number_not_finite"),
        (float("inf"), "number_not_finite"),
        (float("-inf"), "number_not_finite"),
    ],
)
def test_what_dynamodb_cannot_store_is_refused_with_its_type(value: Any, error: str) -> None:
    assert refusal(NUMBER, value) == error


def test_a_long_integer_is_not_accepted_as_a_rounded_float() -> None:
    # pydantic tries the next union member when one fails: 10**41 must not become 1e41
    assert refusal(NUMBER, 10**41) == "number_out_of_range"


def test_the_single_types() -> None:
    assert refusal(TypeAdapter(DynamoInt), 10**38) == "number_out_of_range"
    assert TypeAdapter(DynamoInt).validate_python(10**38 - 1) == 10**38 - 1
    assert refusal(TypeAdapter(DynamoFloat), float("inf")) == "number_not_finite"
    decimal: TypeAdapter[Decimal] = TypeAdapter(DynamoDecimal)
    assert decimal.validate_python("1E+125") == Decimal("1E+125")
    assert refusal(decimal, "1" * 39) == "number_too_precise"
    assert refusal(decimal, "1E+126") == "number_out_of_range"
    assert refusal(decimal, "NaN") in {"number_not_finite", "finite_number"}
