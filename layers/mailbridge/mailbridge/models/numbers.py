"""Shared number types: every number a client sends is one DynamoDB can store, checked at the
boundary (the numeric counterpart of `mailbridge.models.fields`).

DynamoDB's Number (Amazon DynamoDB Developer Guide, "Supported data types and naming rules",
Numbers): at most 38 significant digits; a magnitude of 1E-130 to
9.9999999999999999999999999999999999999E+125, positive or negative, or zero; no NaN, no Infinity.
boto3 converts numbers through a Decimal context that traps everything else, so such a value used
to fail deep in a write: `1e308` and a 42-digit integer as a 500 (`decimal.Overflow` /
`Inexact`), `NaN` as a 500, `-Infinity` as a failed transaction.

- `DynamoInt`: an integer of at most 38 digits (a version, a count, a custom value).
- `DynamoFloat`: a finite float that is zero or has a magnitude in [1E-130, 1E+126).
- `DynamoNumber`: `DynamoInt | DynamoFloat`, for fields that take either (custom field values).
- `DynamoDecimal`: a finite Decimal with at most 38 significant digits, magnitude as above.

Refusals are pydantic errors (the API answers 422) whose `type` says which rule:
`number_not_finite`, `number_out_of_range` (too large, too small, or an integer over 38 digits),
`number_too_precise` (a Decimal with more than 38 significant digits). Use as
`Annotated[DynamoInt, Field(ge=1)]` when a field has a narrower range of its own.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MAX_DIGITS = 38
MIN_EXPONENT = -130  # smallest magnitude 1E-130 (adjusted exponent of the leading digit)
MAX_EXPONENT = 125  # largest magnitude just under 1E+126
_INT_LIMIT = 10**MAX_DIGITS


def _out_of_range() -> PydanticCustomError:
    return PydanticCustomError(
        "number_out_of_range",
        "the number is outside what can be stored: at most 38 digits, magnitude 1E-130 to 9.9E+125",
    )


def _check_decimal(value: Decimal) -> None:
    if not value.is_finite():
        raise PydanticCustomError("number_not_finite", "NaN and Infinity are not numbers here")
    if value.is_zero():
        return
    significant = bytes(value.as_tuple().digits).rstrip(b"\0")  # trailing zeros are not precision
    if len(significant) > MAX_DIGITS:
        raise PydanticCustomError("number_too_precise", "a number can have at most 38 significant digits")
    if not MIN_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        raise _out_of_range()


def _dynamo_int(value: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT_LIMIT:
        raise _out_of_range()
    return value


def _dynamo_float(value: float) -> float:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("number_not_finite", "NaN and Infinity are not numbers here")
        _check_decimal(Decimal(repr(value)))  # the shortest repr: what the store writes
    return value


def _dynamo_number(value: int | float) -> int | float:
    return _dynamo_float(value) if isinstance(value, float) else _dynamo_int(value)


def _dynamo_decimal(value: Decimal) -> Decimal:
    _check_decimal(value)
    return value


DynamoInt = Annotated[int, AfterValidator(_dynamo_int)]
"""An integer of at most 38 digits."""

DynamoFloat = Annotated[float, AfterValidator(_dynamo_float)]
"""A finite float, zero or with a magnitude in [1E-130, 1E+126)."""

# One validator over the union: a 42-digit integer must not fall through to the float branch
# (pydantic tries the next member when one fails) and be stored rounded.
DynamoNumber = Annotated[int | float, AfterValidator(_dynamo_number)]
"""An integer or a float, each within DynamoDB's Number."""

DynamoDecimal = Annotated[Decimal, AfterValidator(_dynamo_decimal)]
"""A finite Decimal within DynamoDB's Number."""
