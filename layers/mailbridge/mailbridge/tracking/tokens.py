"""Tracking tokens: `/t/o/{token}` (open pixel) and `/t/c/{token}` (click).

The calendar's signed tokens (`mailbridge.calendar.tokens.Signer`: base64url JSON payload and an
HMAC-SHA256 tag, RFC 2104 / RFC 4648 section 5) with their own purposes, `track.open` and
`track.click`, inside the MAC: a token made for one use, or for an RSVP or a feed, is refused by
the other. Claims: `{t: tenant, m: email_id}` and, for a click, `l: link index`. A token carries
no URL: the link is looked up from what was stored at send time (no open redirect), and the
email id is inside the MAC, so a token cannot be pointed at another email (no replay).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbridge.calendar.tokens import Signer
from mailbridge.errors import Forbidden

OPEN = "track.open"
CLICK = "track.click"
MAX_LINKS = 500


@dataclass(frozen=True)
class TrackingClaims:
    tenant_id: str
    email_id: str
    link: int | None  # None: the open pixel


def open_token(signer: Signer, tenant_id: str, email_id: str) -> str:
    return signer.sign(OPEN, {"t": tenant_id, "m": email_id})


def click_token(signer: Signer, tenant_id: str, email_id: str, link: int) -> str:
    return signer.sign(CLICK, {"t": tenant_id, "m": email_id, "l": link})


def open_claims(signer: Signer, token: str) -> TrackingClaims:
    """Forbidden `invalid_token` unless made by `open_token`."""
    claims = signer.verify(OPEN, token)
    tenant, email = claims.get("t"), claims.get("m")
    if not isinstance(tenant, str) or not isinstance(email, str):
        raise Forbidden("the link is not valid", code="invalid_token")
    return TrackingClaims(tenant, email, None)


def click_claims(signer: Signer, token: str) -> TrackingClaims:
    """Forbidden `invalid_token` unless made by `click_token`."""
    claims = signer.verify(CLICK, token)
    tenant, email, link = claims.get("t"), claims.get("m"), claims.get("l")
    if (
        not isinstance(tenant, str)
        or not isinstance(email, str)
        or not isinstance(link, int)
        or isinstance(link, bool)
        or not 0 <= link < MAX_LINKS
    ):
        raise Forbidden("the link is not valid", code="invalid_token")
    return TrackingClaims(tenant, email, link)
