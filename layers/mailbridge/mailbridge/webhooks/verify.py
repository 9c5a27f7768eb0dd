"""Verifying a Pub/Sub push's OIDC token with google-auth (cloud.google.com/pubsub/docs/
authenticate-push-subscriptions; notes.md, "Pub/Sub OIDC push auth" [D]).

`Authorization: Bearer <JWT>`, RS256, signed by one of Google's keys published at the certs URL
(`GOOGLE_CERTS_URL`, the `{kid: PEM certificate}` form). Checked, each with its own reason code:
`aud` is the configured audience (`wrong_audience`), `iss` is https://accounts.google.com or
accounts.google.com (`wrong_issuer`), `email` is the push subscription's service account
(`wrong_email`), `email_verified` is true (`email_unverified`), `exp`/`iat` with 10 s of skew
(`expired`), then the signature by a published key (`bad_signature`: unknown `kid`, another
key, a tampered token) through `google.oauth2.id_token.verify_token`, which checks `aud` and the
times again. The claims are read before the signature only to name the reason; nothing about a
token counts until the signature verified.

google-auth fetches the certs on every verification; `CachedRequest` (a google-auth transport
over httpx) keeps them for the `max-age` Google sends (hours), so a push costs no outbound
request in a warm container. google-auth is imported on first use (cold start).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from mailbridge.errors import ProviderError, Unauthorized

GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
CLOCK_SKEW_SECONDS = 10
DEFAULT_CERTS_SECONDS = 3600.0
MAX_CERTS_SECONDS = 6 * 3600.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


def _invalid(reason: str) -> Unauthorized:
    return Unauthorized(
        "the push is not signed by Pub/Sub for us", code="invalid_token", details={"reason": reason}
    )


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    data: bytes


class CachedRequest:
    """A google-auth transport (`google.auth.transport.Request`: called with url, method, body,
    headers, timeout; answers status, headers, data) over httpx that caches successful GETs for
    their Cache-Control max-age (at most 6 h; 1 h without one)."""

    def __init__(self, http: httpx.Client | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._http = http or httpx.Client(timeout=httpx.Timeout(5.0), trust_env=False)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, _Answer]] = {}
        self.fetches = 0

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> _Answer:
        if method == "GET":
            with self._lock:
                cached = self._cache.get(url)
                if cached is not None and self._clock() < cached[0]:
                    return cached[1]
        from google.auth import exceptions

        try:
            response = self._http.request(
                method, url, content=body, headers=dict(headers or {}), timeout=timeout or 5.0
            )
        except httpx.HTTPError as exc:
            raise exceptions.TransportError("the certs could not be fetched") from exc  # type: ignore[no-untyped-call]
        self.fetches += 1
        answer = _Answer(response.status_code, dict(response.headers), response.content)
        if method == "GET" and response.status_code == 200:
            match = _MAX_AGE.search(response.headers.get("cache-control", ""))
            seconds = min(float(match.group(1)), MAX_CERTS_SECONDS) if match else DEFAULT_CERTS_SECONDS
            with self._lock:
                self._cache[url] = (self._clock() + seconds, answer)
        return answer


class PushVerifier:
    """Checks the OIDC token of a Pub/Sub push against the configured audience and account."""

    def __init__(
        self,
        *,
        certs_url: str,
        audience: str,
        service_account: str,
        request: CachedRequest | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.certs_url = certs_url
        self.audience = audience
        self.service_account = service_account
        self.request = request or CachedRequest()
        self._now = now

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """The verified claims; Unauthorized(missing_token | invalid_token with details.reason),
        ProviderError(certs_unavailable, 502: Pub/Sub redelivers) when Google's keys cannot be
        fetched."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a push must carry a bearer token", code="missing_token")
        from google.auth import exceptions, jwt
        from google.oauth2 import id_token

        try:
            claims = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]  # names the reason only
        except (ValueError, exceptions.GoogleAuthError):
            raise _invalid("malformed_token") from None
        self._check_claims(claims)
        try:
            verified: Mapping[str, Any] = id_token.verify_token(
                token,
                self.request,  # type: ignore[arg-type]  # duck-typed google.auth.transport.Request
                audience=self.audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except exceptions.TransportError as exc:
            raise ProviderError(
                "Google's signing keys could not be fetched", code="certs_unavailable"
            ) from exc
        except (ValueError, exceptions.GoogleAuthError):
            raise _invalid("bad_signature") from None
        return verified

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        now = self._now()
        if claims.get("aud") != self.audience:
            raise _invalid("wrong_audience")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise _invalid("wrong_issuer")
        if claims.get("email") != self.service_account:
            raise _invalid("wrong_email")
        if claims.get("email_verified") is not True:
            raise _invalid("email_unverified")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise _invalid("malformed_token")
        if exp < now - CLOCK_SKEW_SECONDS or iat > now + CLOCK_SKEW_SECONDS:
            raise _invalid("expired")
