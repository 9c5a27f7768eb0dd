"""Opaque, tamper-evident pagination cursors over DynamoDB's LastEvaluatedKey.

A cursor is base64url (RFC 4648 section 5, unpadded) of one version byte, an HMAC-SHA256 tag
(RFC 2104) and the last evaluated key in DynamoDB's own typed form (`{"sk": {"S": "..."}}`).
The tag covers the version, the tenant the cursor was issued to, the listing it came from (the
table, index and key condition of the query) and the key. So a cursor is refused as 400
`invalid_cursor` when any character of it was changed, when its key was edited and re-encoded
(no tag can be made without the signing key), when another tenant or another listing presents
it, and when it was signed with another key (the key was rotated): never a 500.

The signing key is the secret named by the `CURSOR_SECRET_ARN` setting (template.yaml
`CursorSecret`), read from Secrets Manager the first time a cursor is made or checked in a
container and kept for its lifetime; a listing whose last page has no cursor never reads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Generic, TypeVar

from pydantic import Field

from mailbridge import aws
from mailbridge.config import get_settings
from mailbridge.errors import Invalid
from mailbridge.models.base import Model

T = TypeVar("T")

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 25

_VERSION = b"\x01"
_TAG_SIZE = hashlib.sha256().digest_size
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class Page(Model, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` to get the next page")


@lru_cache(maxsize=1)
def signing_key() -> bytes:
    """The cursor signing key: one Secrets Manager read per container, on first use."""
    secret = aws.secretsmanager().get_secret_value(SecretId=get_settings().cursor_secret_arn)
    return str(secret["SecretString"]).encode()


def _tag(key: bytes, tenant_id: str, listing: str, payload: bytes) -> bytes:
    # JSON of the strings keeps the fields apart (no tenant/listing pair can be spelled two ways).
    context = json.dumps([tenant_id, listing], separators=(",", ":")).encode()
    message = _VERSION + len(context).to_bytes(4, "big") + context + payload
    return hmac.new(key, message, hashlib.sha256).digest()


def _typed(value: Any) -> dict[str, str]:
    """A key attribute in DynamoDB's JSON form: S (string) or N (number, as its decimal string)."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return {"N": str(value)}
    raise TypeError(f"unsupported key attribute type {type(value).__name__}")


def _untyped(value: Any) -> str | Decimal:
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("S"), str):
            return str(value["S"])
        if isinstance(value.get("N"), str):
            number = Decimal(value["N"])
            if number.is_finite():
                return number
    raise ValueError("not a key attribute")


def encode_cursor(
    last_key: Mapping[str, Any] | None,
    tenant_id: str,
    *,
    listing: str = "",
    key: bytes | None = None,
) -> str | None:
    """The cursor for the page after `last_key` (None at the end of the listing).

    `listing` names the query the key came from (see `DynamoRepository.query_page`); `key` is
    for tests, otherwise the signing key from settings is used.
    """
    if not last_key:
        return None
    typed = {name: _typed(value) for name, value in last_key.items()}
    payload = json.dumps(typed, separators=(",", ":"), sort_keys=True).encode()
    tag = _tag(key if key is not None else signing_key(), tenant_id, listing, payload)
    return base64.urlsafe_b64encode(_VERSION + tag + payload).decode().rstrip("=")


def _invalid() -> Invalid:
    # One answer for every failure: which check failed is of no use to a client.
    return Invalid("the cursor is not valid for this listing; start again without one", code="invalid_cursor")


def decode_cursor(
    cursor: str | None,
    tenant_id: str,
    *,
    listing: str = "",
    key: bytes | None = None,
) -> dict[str, Any] | None:
    """The ExclusiveStartKey a cursor stands for, or `Invalid` 400 `invalid_cursor`."""
    if not cursor:
        return None
    if not _BASE64URL.fullmatch(cursor):
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _invalid() from exc
    # Only the canonical spelling: unused low bits of the last character must not be a second
    # spelling of the same bytes ("flip any character" must always be caught).
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != cursor:
        raise _invalid()
    version, tag, payload = raw[:1], raw[1 : 1 + _TAG_SIZE], raw[1 + _TAG_SIZE :]
    if version != _VERSION or len(tag) != _TAG_SIZE or not payload:
        raise _invalid()
    expected = _tag(key if key is not None else signing_key(), tenant_id, listing, payload)
    if not hmac.compare_digest(tag, expected):
        raise _invalid()
    try:
        typed = json.loads(payload)
        if not isinstance(typed, dict) or not typed:
            raise ValueError("not a key")
        return {str(name): _untyped(value) for name, value in typed.items()}
    except (ValueError, InvalidOperation, UnicodeDecodeError) as exc:
        raise _invalid() from exc
