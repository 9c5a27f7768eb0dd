"""OAuth 2.0 as HubSpot does it: install URL, token endpoint (v1 and v3), token metadata, revoke.

Sources [D unless marked]: HubSpot "OAuth quickstart" / "Managing OAuth tokens" (v1:
`POST /oauth/v1/token` form fields grant_type, client_id, client_secret, redirect_uri, code |
refresh_token; `GET /oauth/v1/access-tokens/{token}`, `GET /oauth/v1/refresh-tokens/{token}`,
`DELETE /oauth/v1/refresh-tokens/{token}`), the v3 OAuth guide (`POST /oauth/v3/token` with the
same fields in the body, PKCE `code_verifier`), the API usage guidelines ("When an access token is
generated, it will include an expires_in parameter").
* ``GET /oauth/authorize`` (app.hubspot.com) installs at once for the signed-in user's portal and
  redirects with `code` (and `state`); an unknown client or a redirect URI the app does not list
  gets an error page; a user who declines comes back with ``error=access_denied`` [R].
* Token answers: ``{"token_type": "bearer", "refresh_token", "access_token", "expires_in": 1800}``
  (access tokens live 30 minutes [R]); a refresh returns a new access token and the same refresh
  token [R]. Codes are single use [R].
* Errors: 400 with ``{"status": "BAD_AUTH_CODE", "message": "missing or unknown auth code"}``,
  BAD_REFRESH_TOKEN "missing or invalid refresh token", BAD_CLIENT_ID, BAD_CLIENT_SECRET,
  BAD_REDIRECT_URI, BAD_GRANT_TYPE [R for the texts].
* Uninstalling the app (control API) revokes every token of the portal for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from local.hubspot.errors import OAuthError, PageError

ACCESS_SECONDS = 1800
CODE_LIFETIME = timedelta(minutes=10)


@dataclass
class App:
    app_id: int
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scopes: list[str]


@dataclass
class Grant:
    code: str
    app: App
    scopes: list[str]
    redirect_uri: str
    challenge: str | None
    expires: datetime
    used: bool = False


@dataclass
class Refresh:
    token: str
    app: App
    scopes: list[str]
    revoked: bool = False


@dataclass
class Access:
    token: str
    app: App
    scopes: list[str]
    expires: datetime
    refresh: str
    revoked: bool = False


@dataclass
class OAuth:
    now: Callable[[], datetime]
    portal_id: int
    hub_domain: str
    user: str
    user_id: int
    rng: random.Random
    access_seconds: int = ACCESS_SECONDS
    apps: dict[str, App] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    refreshes: dict[str, Refresh] = field(default_factory=dict)
    accesses: dict[str, Access] = field(default_factory=dict)
    declines: bool = False

    def _text(self, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def register_app(
        self,
        redirect_uris: list[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: list[str] | None = None,
        app_id: int | None = None,
    ) -> App:
        app = App(
            app_id=app_id or self.rng.randint(1_000_000, 9_999_999),
            client_id=client_id or self._uuid(),
            client_secret=client_secret or self._uuid(),
            redirect_uris=list(redirect_uris),
            scopes=list(
                scopes
                or [
                    "oauth",
                    "crm.objects.contacts.read",
                    "crm.objects.contacts.write",
                    "crm.schemas.contacts.read",
                    "crm.schemas.contacts.write",
                    "crm.objects.companies.read",
                    "crm.objects.companies.write",
                    "crm.lists.read",
                    "crm.lists.write",
                    "sales-email-read",
                ]
            ),
        )
        self.apps[app.client_id] = app
        return app

    def authorize(self, params: dict[str, str]) -> str:
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise PageError("Authorization failed because this application is not found (invalid client_id).")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            raise PageError("Authorization failed because the redirect URL doesn't match the app's settings.")
        state = {"state": params["state"]} if "state" in params else {}
        joiner = "&" if "?" in redirect_uri else "?"
        requested = [s for s in (params.get("scope") or "").split() if s]
        if not requested or any(s not in app.scopes for s in requested):
            raise PageError(
                "Authorization failed because there is a mismatch between the scopes in the install URL "
                "and the app's configured scopes."
            )
        if self.declines:
            return redirect_uri + joiner + urlencode({"error": "access_denied", **state})
        code = self._uuid()
        self.grants[code] = Grant(
            code, app, requested, redirect_uri, params.get("code_challenge"), self.now() + CODE_LIFETIME
        )
        return redirect_uri + joiner + urlencode({"code": code, **state})

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError("BAD_GRANT_TYPE", "grant_type must be authorization_code or refresh_token")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise OAuthError("BAD_CLIENT_ID", "missing or invalid client_id")
        if not hmac.compare_digest(form.get("client_secret", "").encode(), app.client_secret.encode()):
            raise OAuthError("BAD_CLIENT_SECRET", "missing or invalid client_secret")
        if grant_type == "refresh_token":
            stored = self.refreshes.get(form.get("refresh_token", ""))
            if stored is None or stored.revoked or stored.app is not app:
                raise OAuthError("BAD_REFRESH_TOKEN", "missing or invalid refresh token")
            return self._issue(app, stored)
        grant = self.grants.get(form.get("code", ""))
        if grant is None or grant.used or grant.app is not app or self.now() >= grant.expires:
            raise OAuthError("BAD_AUTH_CODE", "missing or unknown auth code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("BAD_REDIRECT_URI", "redirect_uri does not match initial auth code URI")
        if grant.challenge is not None:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
                raise OAuthError("BAD_AUTH_CODE", "code_verifier does not match code_challenge")
        grant.used = True
        refresh = Refresh(self._uuid(), app, grant.scopes)
        self.refreshes[refresh.token] = refresh
        return self._issue(app, refresh)

    def _issue(self, app: App, refresh: Refresh) -> dict[str, Any]:
        token = "CJ" + self._text(140, string.ascii_letters + string.digits + "-_")
        self.accesses[token] = Access(
            token, app, refresh.scopes, self.now() + timedelta(seconds=self.access_seconds), refresh.token
        )
        return {
            "token_type": "bearer",
            "refresh_token": refresh.token,
            "access_token": token,
            "expires_in": self.access_seconds,
        }

    def access(self, token: str | None) -> Access | None:
        """The stored access token (expired ones too: the caller answers 401 with the age)."""
        stored = self.accesses.get(token or "")
        if stored is None or stored.revoked:
            return None
        return stored

    def access_info(self, token: str) -> dict[str, Any] | None:
        stored = self.access(token)
        if stored is None or self.now() >= stored.expires:
            return None
        return {
            "token": token,
            "user": self.user,
            "hub_domain": self.hub_domain,
            "scopes": stored.scopes,
            "hub_id": self.portal_id,
            "app_id": stored.app.app_id,
            "expires_in": int((stored.expires - self.now()).total_seconds()),
            "user_id": self.user_id,
            "token_type": "access",
        }

    def refresh_info(self, token: str) -> dict[str, Any] | None:
        stored = self.refreshes.get(token)
        if stored is None or stored.revoked:
            return None
        return {
            "token": token,
            "user": self.user,
            "hub_domain": self.hub_domain,
            "scopes": stored.scopes,
            "hub_id": self.portal_id,
            "client_id": stored.app.client_id,
            "user_id": self.user_id,
            "token_type": "refresh",
        }

    def revoke_refresh(self, token: str) -> bool:
        stored = self.refreshes.get(token)
        if stored is None or stored.revoked:
            return False
        stored.revoked = True
        for access in self.accesses.values():
            if access.refresh == token:
                access.revoked = True
        return True

    def uninstall(self, client_id: str | None = None) -> int:
        count = 0
        for refresh in self.refreshes.values():
            if not refresh.revoked and (client_id is None or refresh.app.client_id == client_id):
                count += int(self.revoke_refresh(refresh.token))
        return count

    def expire_access_tokens(self) -> int:
        now = self.now()
        count = 0
        for access in self.accesses.values():
            if access.expires > now:
                access.expires = now
                count += 1
        return count
