"""OAuth 2.0 as login.salesforce.com does it: web server flow (with PKCE), device flow, refresh, revoke.

Sources: Salesforce Help "OAuth 2.0 Web Server Flow for Web App Integration", "OAuth 2.0 Device
Flow for IoT Integration", "OAuth 2.0 Refresh Token Flow", "Revoke OAuth Tokens" [D for the
endpoints and parameters]; @salesforce/core's DeviceCodeResponse (`device_code`, `user_code`,
`verification_uri`, `interval`) [D]; RFC 7636 (PKCE) and RFC 8628 §3.5 (device polling errors).

* ``GET /services/oauth2/authorize`` approves at once as the org's signed-in user and redirects
  with `code` and `state`; an unknown client or unregistered callback gets Salesforce's error page
  (it cannot redirect), a user who denies comes back with ``error=access_denied``.
* ``POST /services/oauth2/token``: ``grant_type=authorization_code`` (single use, 15 minutes [R],
  PKCE S256/plain checked when the authorize request carried a challenge, the consumer secret
  required unless the app turned "Require Secret for Web Server Flow" off),
  ``grant_type=refresh_token`` (no new refresh token in the answer [D]),
  ``response_type=device_code`` (starts the device flow) and ``grant_type=device`` with
  ``code=<device_code>`` (polls it: `authorization_pending` until the user approves the user code,
  `slow_down` when polled faster than `interval`, `access_denied` if the user refused,
  `invalid_grant` once the code expired (10 minutes [R]) or was used).
* The token answer holds access_token, refresh_token (only with the `refresh_token` or
  `offline_access` scope [D]), signature = base64(HMAC-SHA256(consumer secret, id + issued_at))
  [D], scope, instance_url, id (the identity URL), token_type "Bearer", issued_at (epoch ms).
* Access tokens are session ids: they die after `session_seconds` without use (the org's session
  timeout, two hours by default [D, "Error Handling for Session Expiration"]), or on revocation.
  ``POST /services/oauth2/revoke`` revokes an access token, or a refresh token with every access
  token issued from it [D]; an unknown token answers 400 `unsupported_token_type` [R].
* Error bodies ``{"error", "error_description"}``, status 400 [R for the descriptions].
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from local.salesforce.errors import OAuthError, PageError
from local.salesforce.ids import Ids

SCOPES = frozenset(
    {
        "api",
        "refresh_token",
        "offline_access",
        "full",
        "id",
        "profile",
        "email",
        "address",
        "phone",
        "openid",
        "web",
        "chatter_api",
        "custom_permissions",
        "cdp_query_api",
        "lightning",
        "content",
        "visualforce",
    }
)
CODE_LIFETIME = timedelta(minutes=15)
DEVICE_LIFETIME = timedelta(minutes=10)
DEVICE_INTERVAL = 5
_PKCE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


@dataclass
class ConnectedApp:
    client_id: str
    client_secret: str
    callback_urls: list[str]
    scopes: list[str]
    require_secret: bool = True
    device_flow: bool = True


@dataclass
class Grant:
    code: str
    app: ConnectedApp
    user_id: str
    scopes: list[str]
    redirect_uri: str
    challenge: str | None
    method: str
    expires: datetime
    used: bool = False


@dataclass
class DeviceGrant:
    device_code: str
    user_code: str
    app: ConnectedApp
    scopes: list[str]
    expires: datetime
    last_poll: datetime | None = None
    approved_by: str | None = None
    denied: bool = False
    used: bool = False


@dataclass
class RefreshToken:
    token: str
    app: ConnectedApp
    user_id: str
    scopes: list[str]
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    app: ConnectedApp
    user_id: str
    scopes: list[str]
    issued: datetime
    last_used: datetime
    refresh: str | None
    revoked: bool = False


@dataclass
class OAuthSettings:
    session_seconds: int = 7200
    device_interval: int = DEVICE_INTERVAL
    device_lifetime: timedelta = DEVICE_LIFETIME


@dataclass
class OAuth:
    ids: Ids
    now: Callable[[], datetime]
    org_id: str
    settings: OAuthSettings = field(default_factory=OAuthSettings)
    apps: dict[str, ConnectedApp] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # user id -> username
    signed_in: str = ""
    denies: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)
    devices: dict[str, DeviceGrant] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)

    # ------------------------------------------------------------------ setup

    def register_app(
        self,
        callback_urls: list[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: list[str] | None = None,
        require_secret: bool = True,
        device_flow: bool = True,
    ) -> ConnectedApp:
        app = ConnectedApp(
            client_id=client_id or "3MVG9" + self.ids.token(80),
            client_secret=client_secret or self.ids.token(64).upper(),
            callback_urls=list(callback_urls),
            scopes=list(scopes or ["api", "refresh_token", "offline_access", "id"]),
            require_secret=require_secret,
            device_flow=device_flow,
        )
        self.apps[app.client_id] = app
        return app

    def identity_url(self, base_url: str, user_id: str) -> str:
        return f"{base_url}/id/{self.org_id}/{user_id}"

    # ------------------------------------------------------------------ authorize

    def authorize(self, params: dict[str, str]) -> str:
        """The redirect Location for an authorization request (PageError when no redirect is possible)."""
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise PageError("invalid_client_id", "client identifier invalid")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.callback_urls:
            raise PageError("redirect_uri_mismatch", "redirect_uri must match configuration")
        state = {"state": params["state"]} if "state" in params else {}

        def back(values: dict[str, str]) -> str:
            joiner = "&" if "?" in redirect_uri else "?"
            return redirect_uri + joiner + urlencode({**values, **state})

        if params.get("response_type") != "code":
            return back(
                {"error": "unsupported_response_type", "error_description": "response type not supported"}
            )
        scopes = self._scopes(params.get("scope"), app)
        if scopes is None:
            return back({"error": "invalid_scope", "error_description": "the requested scope is not allowed"})
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else "")
        if challenge is not None and (not _PKCE.fullmatch(challenge) or method not in ("S256", "plain")):
            return back({"error": "invalid_request", "error_description": "invalid code_challenge"})
        if self.denies:
            return back({"error": "access_denied", "error_description": "end-user denied authorization"})
        code = self.ids.code()
        self.grants[code] = Grant(
            code, app, self.signed_in, scopes, redirect_uri, challenge, method, self.now() + CODE_LIFETIME
        )
        return back({"code": code})

    def _scopes(self, requested: str | None, app: ConnectedApp) -> list[str] | None:
        if not requested:
            return list(app.scopes)
        scopes = [s for s in requested.split() if s]
        if any(s not in SCOPES for s in scopes):
            return None
        return scopes

    # ------------------------------------------------------------------ token endpoint

    def client(
        self, form: dict[str, str], basic: tuple[str, str] | None, secret_required: bool
    ) -> ConnectedApp:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if basic is not None:
            client_id, secret = basic
        app = self.apps.get(client_id or "")
        if app is None:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if (secret_required or secret is not None) and not hmac.compare_digest(
            (secret or "").encode(), app.client_secret.encode()
        ):
            raise OAuthError("invalid_client", "invalid client credentials")
        return app

    def token(self, form: dict[str, str], basic: tuple[str, str] | None, base_url: str) -> dict[str, Any]:
        if form.get("response_type") == "device_code":
            return self.start_device(form, base_url)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange(form, basic, base_url)
        if grant_type == "refresh_token":
            return self._refresh(form, basic, base_url)
        if grant_type == "device":
            return self._poll(form, base_url)
        if not grant_type:
            raise OAuthError("invalid_request", "grant type is required")
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def _exchange(self, form: dict[str, str], basic: tuple[str, str] | None, base_url: str) -> dict[str, Any]:
        app = self.apps.get((basic[0] if basic else form.get("client_id")) or "")
        if app is None:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        grant = self.grants.get(form.get("code", ""))
        # PKCE stands in for the secret only when the app does not require one [D].
        self.client(form, basic, secret_required=app.require_secret)
        if grant is None or grant.used or grant.app is not app or self.now() >= grant.expires:
            raise OAuthError("invalid_grant", "invalid authorization code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "redirect_uri must match configuration")
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            if not _PKCE.fullmatch(verifier) or not hmac.compare_digest(
                _challenge(verifier, grant.method), grant.challenge
            ):
                raise OAuthError("invalid_grant", "invalid code verifier")
        grant.used = True
        return self._issue(app, grant.user_id, grant.scopes, base_url, with_refresh=True)

    def _refresh(self, form: dict[str, str], basic: tuple[str, str] | None, base_url: str) -> dict[str, Any]:
        app = self.client(form, basic, secret_required=False)
        stored = self.refresh_tokens.get(form.get("refresh_token", ""))
        if stored is None or stored.revoked or stored.app is not app:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        return self._issue(
            app, stored.user_id, stored.scopes, base_url, with_refresh=False, refresh=stored.token
        )

    def start_device(self, form: dict[str, str], base_url: str) -> dict[str, Any]:
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not app.device_flow:
            raise OAuthError("invalid_request", "device flow is not enabled for this connected app")
        scopes = self._scopes(form.get("scope"), app)
        if scopes is None:
            raise OAuthError("invalid_scope", "the requested scope is not allowed")
        device = DeviceGrant(
            self.ids.device_code(),
            self.ids.user_code(),
            app,
            scopes,
            self.now() + self.settings.device_lifetime,
        )
        self.devices[device.device_code] = device
        return {
            "device_code": device.device_code,
            "user_code": device.user_code,
            "verification_uri": f"{base_url}/setup/connect",
            "interval": self.settings.device_interval,
        }

    def approve_device(self, user_code: str, deny: bool = False) -> DeviceGrant:
        """The user types the code at the verification URI and approves (or denies) the app."""
        wanted = user_code.strip().upper()
        for device in self.devices.values():
            if device.user_code == wanted and not device.used and self.now() < device.expires:
                device.denied = deny
                device.approved_by = None if deny else self.signed_in
                return device
        raise KeyError(user_code)

    def _poll(self, form: dict[str, str], base_url: str) -> dict[str, Any]:
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        device = self.devices.get(form.get("code", ""))
        now = self.now()
        if device is None or device.app is not app or device.used or now >= device.expires:
            raise OAuthError("invalid_grant", "expired authorization code")
        too_soon = device.last_poll is not None and now - device.last_poll < timedelta(
            seconds=self.settings.device_interval
        )
        device.last_poll = now
        if device.denied:
            device.used = True
            raise OAuthError("access_denied", "end-user denied authorization")
        if device.approved_by is None:
            if too_soon:
                raise OAuthError("slow_down", "polling too frequently")
            raise OAuthError("authorization_pending", "authorization pending")
        device.used = True
        return self._issue(app, device.approved_by, device.scopes, base_url, with_refresh=True)

    def _issue(
        self,
        app: ConnectedApp,
        user_id: str,
        scopes: list[str],
        base_url: str,
        with_refresh: bool,
        refresh: str | None = None,
    ) -> dict[str, Any]:
        now = self.now()
        if with_refresh and ("refresh_token" in scopes or "offline_access" in scopes):
            stored = RefreshToken(self.ids.refresh_token(), app, user_id, scopes)
            self.refresh_tokens[stored.token] = stored
            refresh = stored.token
            new_refresh: str | None = stored.token
        else:
            new_refresh = None
        access = AccessToken(self.ids.access_token(self.org_id), app, user_id, scopes, now, now, refresh)
        self.access_tokens[access.token] = access
        identity = self.identity_url(base_url, user_id)
        issued_at = str(int(now.timestamp() * 1000))
        signature = base64.b64encode(
            hmac.new(app.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        body: dict[str, Any] = {"access_token": access.token}
        if new_refresh is not None:
            body["refresh_token"] = new_refresh
        body |= {
            "signature": signature,
            "scope": " ".join(scopes),
            "instance_url": base_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
        return body

    # ------------------------------------------------------------------ use and revocation

    def session(self, token: str | None) -> AccessToken | None:
        """The live session behind a bearer token (its inactivity timer restarts), else None."""
        stored = self.access_tokens.get(token or "")
        if stored is None or stored.revoked:
            return None
        now = self.now()
        if now - stored.last_used > timedelta(seconds=self.settings.session_seconds):
            stored.revoked = True
            return None
        stored.last_used = now
        return stored

    def revoke(self, token: str) -> None:
        if (refresh := self.refresh_tokens.get(token)) is not None:
            refresh.revoked = True
            for access in self.access_tokens.values():
                if access.refresh == token:
                    access.revoked = True
            return
        if (single := self.access_tokens.get(token)) is not None:
            single.revoked = True
            return
        raise OAuthError("unsupported_token_type", "this token type is not supported")

    def revoke_all(self, client_id: str | None = None) -> int:
        """The admin blocks the app (or every app): its refresh and access tokens die at once."""
        count = 0
        everything: list[RefreshToken | AccessToken] = [
            *self.refresh_tokens.values(),
            *self.access_tokens.values(),
        ]
        for stored in everything:
            if not stored.revoked and (client_id is None or stored.app.client_id == client_id):
                stored.revoked = True
                count += 1
        return count

    def mint(self, user_id: str) -> str:
        """A session id for the platform's own use (outbound messages that send one) [D]."""
        app = self.apps.get("__platform__") or ConnectedApp(
            "__platform__", "", [], ["api"], device_flow=False
        )
        self.apps.setdefault(app.client_id, app)
        now = self.now()
        access = AccessToken(self.ids.access_token(self.org_id), app, user_id, ["api"], now, now, None)
        self.access_tokens[access.token] = access
        return access.token

    def expire_sessions(self) -> int:
        """Every access token dies (the org's session timeout passed); refresh tokens still work."""
        count = 0
        for access in self.access_tokens.values():
            if not access.revoked:
                access.revoked = True
                count += 1
        return count


def _challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
