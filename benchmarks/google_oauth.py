"""An access token from the local Google double, as the benchmarks' Gmail accounts get it: the
authorization-code flow at the double's authorize and token endpoints (RFC 6749 section 4.1)
with a plain PKCE verifier (RFC 7636), the consent given at once by the double."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

REDIRECT = "http://127.0.0.1:3000/oauth/gmail/callback"
VERIFIER = "v" * 43  # RFC 7636 section 4.1: 43 characters at least


def access_token(google: Any, client: Any, login_hint: str | None = None) -> str:
    """The access token of `client` (registered at `google` with REDIRECT) for the double's
    signed-in user, or for `login_hint`'s mailbox when given."""
    import httpx

    params = {
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "https://www.googleapis.com/auth/gmail.modify",
        "access_type": "offline",
        "code_challenge": VERIFIER,
        "code_challenge_method": "plain",
    }
    if login_hint is not None:
        params["login_hint"] = login_hint
    answer = httpx.get(google.authorize_url, params=params)
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][-1]
    token = httpx.post(
        google.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": VERIFIER,
            "redirect_uri": REDIRECT,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    ).json()
    return str(token["access_token"])
