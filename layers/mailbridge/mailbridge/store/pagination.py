"""Opaque, tenant-bound pagination cursors over DynamoDB's LastEvaluatedKey.

The cursor is base64url JSON that also names the tenant it was issued to: a cursor replayed by
another tenant, or edited by hand, is rejected as `invalid_cursor` instead of leaking a key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import Field

from mailbridge.errors import Invalid
from mailbridge.models.base import Model

T = TypeVar("T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25


class Page(Model, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` to get the next page")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    return value


def encode_cursor(last_key: Mapping[str, Any] | None, tenant_id: str) -> str | None:
    if not last_key:
        return None
    payload = {"t": tenant_id, "k": {name: _plain(value) for name, value in last_key.items()}}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, tenant_id: str) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Invalid("the cursor is malformed", code="invalid_cursor") from exc
    if (
        not isinstance(payload, dict)
        or payload.get("t") != tenant_id
        or not isinstance(payload.get("k"), dict)
    ):
        raise Invalid("the cursor does not belong to this listing", code="invalid_cursor")
    key: dict[str, Any] = payload["k"]
    if not all(isinstance(v, str | int) for v in key.values()):
        raise Invalid("the cursor is malformed", code="invalid_cursor")
    return key
