"""The bearer token of a WebSocket `$connect`, checked as the HTTP API's JWT authorizer checks it.

API Gateway WebSocket APIs have no JWT authorizer, so the realtime function verifies the token
itself, with the rules of the HTTP API's (API Gateway developer guide, "Controlling access to HTTP
APIs with JWT authorizers"): an RS256 signature by a key of the issuer's JWK Set named by the
token's `kid`; `iss` equal to the configured issuer; `exp` (required) and `nbf` in force; `aud`
or `client_id` one of the configured audiences (Cognito access tokens carry `client_id`). Browsers
cannot set headers on a WebSocket handshake, so the token comes from `Authorization: Bearer
<token>` or else the `token` query parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from mailbridge.errors import Unauthorized

ALGORITHMS = ("RS256",)
LEEWAY_SECONDS = 0


class KeySource(Protocol):
    def key(self, kid: str) -> Any: ...


def bearer_token(headers: Mapping[str, str] | None, query: Mapping[str, str] | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (header name any case), else `?token=`."""
    for name, value in (headers or {}).items():
        if name.lower() == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    token = (query or {}).get("token", "").strip()
    return token or None


def verify(token: str, issuer: str, audience: Sequence[str], keys: KeySource) -> dict[str, Any]:
    """The token's claims; `Unauthorized` (code `invalid_token`) when any check fails."""
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = keys.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise jwt.InvalidTokenError("unknown kid")
        claims: Any = jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss"], "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("the token is not valid", code="invalid_token") from exc
    if not isinstance(claims, dict):
        raise Unauthorized("the token is not valid", code="invalid_token")
    if audience:
        aud = claims.get("aud")
        offered = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
        if isinstance(claims.get("client_id"), str):
            offered.add(claims["client_id"])
        if not offered & set(audience):
            raise Unauthorized("the token is not valid", code="invalid_token")
    return claims
