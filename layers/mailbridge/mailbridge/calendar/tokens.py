"""Signed tokens in links that carry no bearer token: RSVP links and subscription feed URLs.

A token is `{payload}.{tag}`: base64url (RFC 4648 section 5, unpadded) of a compact JSON payload,
and of an HMAC-SHA256 (RFC 2104) over the token's purpose and that payload. The purpose
(`rsvp`, `feed`) is inside the MAC, so a token made for one use is refused by the other.

- RSVP: `{t: tenant, e: event_id, a: attendee key, x: expiry (Unix seconds)}`; the attendee key is
  a digest of the address, so the link does not spell the address out. Expired: 403
  `token_expired`; any other failure: 403 `invalid_token`.
- Feed: `{t: tenant, u: digest of the user's subject, g: generation}`; rotating the feed moves the
  user's generation on, which makes every older token invalid.

The key is the secret named by `CALENDAR_SECRET_ARN` (template.yaml `CalendarSecret`), read from
Secrets Manager once per container on first use, like the cursor key (store/pagination.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbridge.errors import Forbidden
from mailbridge.store.keys import digest

_TOKEN = re.compile(r"([A-Za-z0-9_-]{8,1024})\.([A-Za-z0-9_-]{43})")


def attendee_key(address: str) -> str:
    return digest(address.strip().lower(), 24)


def subject_key(subject: str) -> str:
    return digest(subject, 40)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid() -> Forbidden:
    return Forbidden("the link is not valid", code="invalid_token")


@dataclass(frozen=True)
class RsvpClaims:
    tenant_id: str
    event_id: str
    attendee: str  # attendee_key(address)
    expires: int


@dataclass(frozen=True)
class FeedClaims:
    tenant_id: str
    user: str  # subject_key(subject)
    generation: int


class Signer:
    """Makes and checks tokens with the key `key()` returns (read when first needed)."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        self._key = key

    def _tag(self, purpose: str, payload: str) -> str:
        message = f"{purpose}.{payload}".encode()
        return _b64(hmac.new(self._key(), message, hashlib.sha256).digest())

    def sign(self, purpose: str, claims: dict[str, Any]) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._tag(purpose, payload)}"

    def verify(self, purpose: str, token: str) -> dict[str, Any]:
        """The claims of a token made by `sign(purpose, ...)`; Forbidden `invalid_token` otherwise."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise _invalid()
        payload, tag = match.groups()
        if not hmac.compare_digest(tag, self._tag(purpose, payload)):
            raise _invalid()
        try:
            claims = json.loads(_unb64(payload))
        except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
            raise _invalid() from exc
        if not isinstance(claims, dict):
            raise _invalid()
        return claims

    # ---------------------------------------------------------------- RSVP
    def rsvp_token(self, tenant_id: str, event_id: str, address: str, expires: datetime) -> str:
        claims = {"t": tenant_id, "e": event_id, "a": attendee_key(address), "x": int(expires.timestamp())}
        return self.sign("rsvp", claims)

    def rsvp_claims(self, token: str, now: datetime) -> RsvpClaims:
        claims = self.verify("rsvp", token)
        try:
            parsed = RsvpClaims(str(claims["t"]), str(claims["e"]), str(claims["a"]), int(claims["x"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise _invalid() from exc
        if parsed.expires <= now.timestamp():
            raise Forbidden(
                "the link has expired; ask the organizer for a new invitation", code="token_expired"
            )
        return parsed

    # ---------------------------------------------------------------- feeds
    def feed_token(self, tenant_id: str, subject: str, generation: int) -> str:
        return self.sign("feed", {"t": tenant_id, "u": subject_key(subject), "g": generation})

    def feed_claims(self, token: str) -> FeedClaims:
        claims = self.verify("feed", token)
        try:
            return FeedClaims(str(claims["t"]), str(claims["u"]), int(claims["g"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise _invalid() from exc
