"""Plain httpx to OAuth authorization servers (their URLs are settings, never tenant input, so
the SSRF-guarded client of providers/http.py is not needed), and RFC 6749 error handling.

Token endpoint errors (RFC 6749 section 5.2: `{"error", "error_description"}`) become typed
errors: `invalid_grant` -> `GrantRevoked` (the grant or code is dead: the user must consent
again), `invalid_client` / `unauthorized_client` -> ProviderAuthError(`client_misconfigured`,
the deployment's client id or secret is wrong), any other 4xx -> ProviderError(`oauth_error`,
not retryable), 5xx, timeouts and refused connections -> retryable ProviderError /
ProviderUnreachable. Error texts from the server are never copied into messages or logs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import httpx

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.providers.http import transport_errors

# Per phase; the token and revoke endpoints answer in well under a second.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class GrantRevoked(ProviderAuthError):
    """`invalid_grant`: the refresh token (or authorization code) is expired, revoked or used."""

    code = "invalid_grant"


@lru_cache(maxsize=1)
def client() -> httpx.Client:
    """One pooled client per process (thread-safe; building one costs more than a call)."""
    return httpx.Client(timeout=TIMEOUT, trust_env=False, follow_redirects=False)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def post_form(url: str, form: dict[str, str], *, http: httpx.Client | None = None) -> dict[str, Any]:
    """POST an `application/x-www-form-urlencoded` request (RFC 6749 sections 4.1.3, 6; RFC 7009)
    and return the JSON object answered with a 2xx; raises the typed errors of the module."""
    with transport_errors("the authorization server"):
        response = (http or client()).post(url, data=form, headers={"Accept": "application/json"})
    if response.is_success:
        return _json(response)
    error = str(_json(response).get("error") or "")
    if response.status_code == 429:
        raise ProviderRateLimited("the authorization server is rate limiting", retry_after=None)
    if response.status_code >= 500:
        raise ProviderError(
            "the authorization server failed", code="unavailable", details={"status": response.status_code}
        )
    if error == "invalid_grant":
        raise GrantRevoked("the grant is no longer valid")
    if error in ("invalid_client", "unauthorized_client"):
        raise ProviderAuthError("the OAuth client id or secret was refused", code="client_misconfigured")
    failure = ProviderError(
        "the authorization server refused the request",
        code="oauth_error",
        details={"status": response.status_code, "error": error[:64]},
    )
    failure.retryable = False
    raise failure
