"""OAuth 2.0 for web server applications, as accounts.google.com / oauth2.googleapis.com do it.

Source: "Using OAuth 2.0 for Web Server Applications" (developers.google.com/identity/protocols/
oauth2/web-server) [D] for the parameters and flow; RFC 6749 and RFC 7636 (PKCE) for the rules;
the exact `error_description` strings are those Google's token endpoint is reported to send [R].

* ``GET /o/oauth2/v2/auth`` approves at once (no UI) as the signed-in account and redirects to
  `redirect_uri` with `code`, `scope` and `state`. A request Google cannot trust (unknown client,
  unregistered redirect URI) or a malformed one gets Google's 400/401 error page; a user who denies
  comes back with ``error=access_denied``.
* ``POST /token``: `authorization_code` (single use, short-lived, PKCE checked) and `refresh_token`
  grants; ``{"error", "error_description"}`` errors with 400 (`invalid_grant`, `invalid_request`,
  `unsupported_grant_type`, `redirect_uri_mismatch`) or 401 (`invalid_client`).
* ``POST /revoke``: revokes the whole grant behind an access or refresh token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from local.google.errors import ConsentPageError, OAuthError
from local.google.ids import Ids
from local.google.keys import KeySet

GOOGLE_ISSUER = "https://accounts.google.com"
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
USERINFO_PROFILE = "https://www.googleapis.com/auth/userinfo.profile"
# Google answers with the full URL for the short OpenID scope names [R].
SCOPE_ALIASES = {"email": USERINFO_EMAIL, "profile": USERINFO_PROFILE}
GMAIL = "https://www.googleapis.com/auth/gmail."
KNOWN_SCOPES = frozenset(
    {
        "openid",
        USERINFO_EMAIL,
        USERINFO_PROFILE,
        "https://mail.google.com/",
        "https://www.googleapis.com/auth/contacts",
        "https://www.googleapis.com/auth/contacts.readonly",
        "https://www.googleapis.com/auth/contacts.other.readonly",
        # calendar.v3 discovery document, auth.oauth2.scopes
        "https://www.googleapis.com/auth/calendar",
        "https://www.googleapis.com/auth/calendar.events",
        "https://www.googleapis.com/auth/calendar.events.readonly",
        "https://www.googleapis.com/auth/calendar.readonly",
        # gmail.v1 discovery document, auth.oauth2.scopes [D]
        *(
            GMAIL + name
            for name in (
                "addons.current.action.compose",
                "addons.current.message.action",
                "addons.current.message.metadata",
                "addons.current.message.readonly",
                "compose",
                "insert",
                "labels",
                "metadata",
                "modify",
                "readonly",
                "send",
                "settings.basic",
                "settings.sharing",
            )
        ),
    }
)
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1 (verifier) and §4.2 (challenge)


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    project_id: str


@dataclass
class Account:
    """A Google account: who signs in at the consent step."""

    email: str
    sub: str
    name: str
    denies_consent: bool = False


@dataclass
class Grant:
    """What one account granted one client; revoking it kills every token issued under it."""

    client_id: str
    email: str
    scopes: set[str]
    revoked: bool = False
    refresh_issued: bool = False


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    email: str
    scopes: frozenset[str]
    challenge: str | None
    challenge_method: str
    offline: bool
    prompted_consent: bool
    nonce: str | None
    expires_at: datetime
    used: bool = False


@dataclass
class AccessToken:
    grant: Grant
    scopes: frozenset[str]
    expires_at: datetime

    def valid(self, now: datetime) -> bool:
        return not self.grant.revoked and now < self.expires_at


@dataclass
class OAuthSettings:
    access_token_seconds: int = 3599  # Google's `expires_in` [D: web-server guide sample]
    code_seconds: int = 600  # authorization codes are short-lived [R: about ten minutes]
    id_token_seconds: int = 3600


@dataclass
class OAuth:
    """The authorization server: clients, accounts, grants and every live token."""

    ids: Ids
    keys: KeySet
    settings: OAuthSettings = field(default_factory=OAuthSettings)
    clients: dict[str, OAuthClient] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    grants: dict[tuple[str, str], Grant] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    signed_in: str | None = None

    # ------------------------------------------------------------------ registration

    def register_client(
        self,
        redirect_uris: list[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        project_id: str = "mailbridge-local",
    ) -> OAuthClient:
        client = OAuthClient(
            client_id=client_id
            or f"{self.ids.digits(12)}-{self.ids.token(32).lower()}.apps.googleusercontent.com",
            client_secret=client_secret or "GOCSPX-" + self.ids.token(28),
            redirect_uris=list(redirect_uris),
            project_id=project_id,
        )
        self.clients[client.client_id] = client
        return client

    def add_account(self, email: str, name: str) -> Account:
        account = Account(email=email, sub=self.ids.digits(21), name=name)
        self.accounts[email.lower()] = account
        if self.signed_in is None:
            self.signed_in = email.lower()
        return account

    # ------------------------------------------------------------------ authorization endpoint

    def authorize(self, params: dict[str, str], now: datetime) -> str:
        """The redirect location for a consent request; raises ConsentPageError for an error page."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise ConsentPageError(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            raise ConsentPageError(400, "invalid_request", "Missing required parameter: redirect_uri")
        if redirect_uri not in client.redirect_uris:
            raise ConsentPageError(
                400,
                "redirect_uri_mismatch",
                f"redirect_uri={redirect_uri} is not registered for this client.",
            )
        response_type = params.get("response_type")
        if not response_type:
            raise ConsentPageError(400, "invalid_request", "Required parameter is missing: response_type")
        if response_type != "code":
            raise ConsentPageError(
                400, "unsupported_response_type", f"Invalid response_type: {response_type}"
            )
        raw_scope = params.get("scope", "").split()
        if not raw_scope:
            raise ConsentPageError(400, "invalid_request", "Missing required parameter: scope")
        scopes = [SCOPE_ALIASES.get(s, s) for s in raw_scope]
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            raise ConsentPageError(400, "invalid_scope", f"Some requested scopes were invalid: {unknown}")
        access_type = params.get("access_type", "online")
        if access_type not in ("online", "offline"):
            raise ConsentPageError(400, "invalid_request", f"Invalid access_type: {access_type}")
        prompts = params.get("prompt", "").split()
        if any(p not in ("none", "consent", "select_account") for p in prompts) or (
            "none" in prompts and len(prompts) > 1
        ):
            raise ConsentPageError(400, "invalid_request", f"Invalid prompt: {params.get('prompt')}")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if method is not None and challenge is None:
            raise ConsentPageError(400, "invalid_request", "Missing code_challenge.")
        if challenge is not None:
            method = method or "plain"  # RFC 7636 §4.3: plain when the method is absent
            if method not in ("S256", "plain"):
                raise ConsentPageError(400, "invalid_request", f"Invalid code_challenge_method: {method}")
            if not _PKCE_VALUE.fullmatch(challenge):
                raise ConsentPageError(400, "invalid_request", "Invalid code_challenge.")
        account = self._signing_in(params.get("login_hint"))
        state = params.get("state")
        grant = self.grants.get((client.client_id, account.email.lower()))
        if account.denies_consent:
            return _redirect(redirect_uri, {"error": "access_denied", "state": state})
        if "none" in prompts and (grant is None or grant.revoked or not set(scopes) <= grant.scopes):
            return _redirect(redirect_uri, {"error": "consent_required", "state": state})
        granted = set(scopes)
        if params.get("include_granted_scopes") == "true" and grant is not None and not grant.revoked:
            granted |= grant.scopes
        code = self.ids.code()
        self.codes[code] = AuthorizationCode(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            email=account.email.lower(),
            scopes=frozenset(granted),
            challenge=challenge,
            challenge_method=method or "plain",
            offline=access_type == "offline",
            prompted_consent="consent" in prompts,
            nonce=params.get("nonce"),
            expires_at=now + timedelta(seconds=self.settings.code_seconds),
        )
        return _redirect(redirect_uri, {"state": state, "code": code, "scope": " ".join(sorted(granted))})

    def _signing_in(self, login_hint: str | None) -> Account:
        if login_hint:
            account = self.accounts.get(login_hint.lower())
            if account is None:
                raise ConsentPageError(400, "invalid_request", "No Google account matches login_hint.")
            return account
        if self.signed_in is None or self.signed_in not in self.accounts:
            raise ConsentPageError(400, "invalid_request", "No Google account is signed in to the double.")
        return self.accounts[self.signed_in]

    # ------------------------------------------------------------------ token endpoint

    def token(self, form: dict[str, str], basic: tuple[str, str] | None, now: datetime) -> dict[str, Any]:
        """Answer a token request, or raise OAuthError with Google's status and error."""
        grant_type = form.get("grant_type", "")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        client = self._authenticate_client(form, basic)
        if grant_type == "authorization_code":
            return self._exchange_code(client, form, now)
        return self._refresh(client, form, now)

    def _authenticate_client(self, form: dict[str, str], basic: tuple[str, str] | None) -> OAuthClient:
        client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret", ""))
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise OAuthError(401, "invalid_client", "Unauthorized")
        return client

    def _exchange_code(self, client: OAuthClient, form: dict[str, str], now: datetime) -> dict[str, Any]:
        code_value = form.get("code")
        if not code_value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: code")
        code = self.codes.get(code_value)
        if code is None or code.used or now >= code.expires_at or code.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "Bad Request")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        verifier = form.get("code_verifier")
        if code.challenge is None and verifier is not None:
            raise OAuthError(400, "invalid_request", "code_verifier or verifier is not needed.")
        if code.challenge is not None:
            if not verifier:
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if not _PKCE_VALUE.fullmatch(verifier) or not hmac.compare_digest(
                _challenge(verifier, code.challenge_method), code.challenge
            ):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        code.used = True  # single use (RFC 6749 §4.1.2), even when the exchange below fails
        key = (client.client_id, code.email)
        grant = self.grants.get(key)
        if grant is None or grant.revoked:
            grant = self.grants[key] = Grant(client_id=client.client_id, email=code.email, scopes=set())
        grant.scopes |= code.scopes
        body = self._access(grant, frozenset(code.scopes), now, nonce=code.nonce)
        # A refresh token comes with offline access on the first consent, or whenever the user was
        # prompted again (prompt=consent) [D: web-server guide, "Refreshing an access token"].
        if code.offline and (not grant.refresh_issued or code.prompted_consent):
            refresh = self.ids.refresh_token()
            self.refresh_tokens[refresh] = grant
            grant.refresh_issued = True
            body["refresh_token"] = refresh
        return body

    def _refresh(self, client: OAuthClient, form: dict[str, str], now: datetime) -> dict[str, Any]:
        value = form.get("refresh_token")
        if not value:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        grant = self.refresh_tokens.get(value)
        if grant is None or grant.revoked:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        if grant.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "Bad Request")
        return self._access(grant, frozenset(grant.scopes), now, nonce=None)

    def _access(
        self, grant: Grant, scopes: frozenset[str], now: datetime, nonce: str | None
    ) -> dict[str, Any]:
        token = self.ids.access_token()
        seconds = self.settings.access_token_seconds
        self.access_tokens[token] = AccessToken(
            grant=grant, scopes=scopes, expires_at=now + timedelta(seconds=seconds)
        )
        body: dict[str, Any] = {
            "access_token": token,
            "expires_in": seconds,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
        }
        # An ID token comes back when OpenID Connect scopes were granted [D: OpenID Connect guide].
        if scopes & {"openid", USERINFO_EMAIL, USERINFO_PROFILE}:
            body["id_token"] = self.id_token(grant, scopes, now, nonce)
        return body

    def id_token(self, grant: Grant, scopes: frozenset[str], now: datetime, nonce: str | None) -> str:
        account = self.accounts[grant.email]
        iat = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": GOOGLE_ISSUER,
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": account.sub,
            "iat": iat,
            "exp": iat + self.settings.id_token_seconds,
        }
        if USERINFO_EMAIL in scopes:
            claims.update(email=account.email, email_verified=True)
        if USERINFO_PROFILE in scopes:
            claims["name"] = account.name
        if nonce:
            claims["nonce"] = nonce
        return self.keys.sign(claims)

    # ------------------------------------------------------------------ revocation and checks

    def revoke(self, token: str, now: datetime) -> None:
        """POST /revoke: an access or refresh token revokes its whole grant [D: web-server guide].

        An unknown, expired or already revoked token is a 400 `invalid_token` [R].
        """
        access = self.access_tokens.get(token)
        grant = access.grant if access else self.refresh_tokens.get(token)
        if grant is None or grant.revoked or (access is not None and not access.valid(now)):
            raise OAuthError(400, "invalid_token", "Token expired or revoked")
        grant.revoked = True

    def revoke_grant(self, email: str, client_id: str | None = None) -> int:
        """The user removes the app's access (myaccount.google.com/permissions); returns grants revoked."""
        revoked = 0
        for (cid, owner), grant in self.grants.items():
            if owner == email.lower() and (client_id is None or cid == client_id) and not grant.revoked:
                grant.revoked = True
                revoked += 1
        return revoked

    def bearer(self, token: str, now: datetime) -> AccessToken | None:
        access = self.access_tokens.get(token)
        return access if access is not None and access.valid(now) else None


def _challenge(verifier: str, method: str) -> str:
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _redirect(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"
