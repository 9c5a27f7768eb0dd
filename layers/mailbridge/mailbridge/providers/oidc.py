"""An OIDC issuer's signing keys (OpenID Connect Discovery 1.0 section 4, RFC 7517 JWK Set).

`{issuer}/.well-known/openid-configuration` names the `jwks_uri`; the key set is fetched on first
use and again when a token names a `kid` it does not hold (key rotation), at most once a minute.
Cognito user pools and the local runner's dev issuer both publish this document.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mailbridge.errors import ProviderUnreachable

if TYPE_CHECKING:
    import httpx
    import jwt

REFETCH_SECONDS = 60.0
TIMEOUT_SECONDS = 5.0


class OidcKeys:
    """The issuer's public keys by `kid` (thread-safe; one instance per cold start)."""

    def __init__(
        self,
        issuer: str,
        *,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`transport` and `monotonic` are for tests (httpx.MockTransport, a fake clock)."""
        self.issuer = issuer.rstrip("/")
        self.timeout = timeout
        self._transport = transport
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named `kid`, or None when the issuer does not publish it."""
        with self._lock:
            if kid not in self._keys and (
                self._fetched_at is None or self._monotonic() - self._fetched_at >= REFETCH_SECONDS
            ):
                self._keys = self._fetch()
                self._fetched_at = self._monotonic()
            return self._keys.get(kid)

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        import httpx
        import jwt

        try:
            with httpx.Client(
                timeout=self.timeout, follow_redirects=False, transport=self._transport
            ) as client:
                discovery = client.get(f"{self.issuer}/.well-known/openid-configuration")
                discovery.raise_for_status()
                jwks_uri = str(discovery.json()["jwks_uri"])
                response = client.get(jwks_uri)
                response.raise_for_status()
                document: Any = response.json()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise ProviderUnreachable(
                "the token issuer's keys could not be read", code="issuer_unreachable"
            ) from exc
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str) and jwk.get("use", "sig") == "sig":
                try:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk)
                except jwt.PyJWTError:
                    continue  # a key type we cannot use (e.g. an encryption key): not ours to check
        return keys
