"""The OAuth provider registry: what differs from one provider to the next, behind one protocol.

A provider (the `{provider}` of `/oauth/{provider}/start`) knows its authorization URL and
parameters, how to exchange a code and refresh or revoke a token, which scopes it asks for and
which of them it cannot work without, what kind of account it makes (a mailbox today; a CRM
connection for Salesforce/HubSpot later), and how to learn the connected account's address.
Add one by implementing `OAuthProvider` and registering a factory in `_FACTORIES`; the flow in
`service.py` and the token cache in `tokens.py` stay as they are.

Google (`gmail`): "Using OAuth 2.0 for Web Server Applications" (developers.google.com/identity/
protocols/oauth2/web-server): `access_type=offline` and `prompt=consent` so a refresh token is
issued on every consent, `include_granted_scopes=true` (incremental authorization), PKCE S256,
`login_hint` to preselect the account; token requests as RFC 6749 section 4.1.3 / 6, revocation
at the revoke endpoint (RFC 7009 style, `token=`). The address comes from the ID token's
`email` claim (OpenID Connect Core 3.1.3.7 allows trusting an ID token received directly from
the token endpoint over TLS without checking its signature; `aud` and `email_verified` are
still checked), else from Gmail's `users.getProfile`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol
from urllib.parse import urlencode

import httpx

from mailbridge import aws
from mailbridge.config import GoogleSettings, Settings
from mailbridge.errors import NotFound, ProviderAuthError, ProviderError
from mailbridge.models.account import CALENDAR_SCOPES, Provider
from mailbridge.oauth import http as oauth_http

GMAIL_MODIFY = "https://www.googleapis.com/auth/gmail.modify"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
CONTACTS_READONLY = "https://www.googleapis.com/auth/contacts.readonly"
CALENDAR_EVENTS = CALENDAR_SCOPES["gmail"]
USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})

AccountKind = Literal["mailbox", "crm"]


@dataclass(frozen=True)
class TokenGrant:
    """A token endpoint's answer (RFC 6749 section 5.1). Never log it."""

    access_token: str = field(repr=False)
    expires_in: int
    scopes: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    # What the callback seals as the account's credentials; None: `{"refresh_token": ...}`.
    # Microsoft: `{"token_cache": <msal's serialized cache>}` (see microsoft.py).
    secrets: dict[str, str | None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Identity:
    """Who connected: the mailbox address and the provider's stable user id."""

    address: str
    subject: str | None = None


class OAuthProvider(Protocol):
    """One OAuth provider. Methods raise the typed errors of `mailbridge.oauth.http`."""

    name: str
    account_provider: Provider  # Account.provider of the accounts it makes
    account_kind: AccountKind

    @property
    def configured(self) -> bool:
        """Whether the deployment has a client id and secret for it."""
        ...

    def scopes(self, options: Collection[str]) -> list[str]:
        """The scopes to ask for; `options` are switched-on extras (e.g. `contact_import`)."""
        ...

    def missing_scopes(self, granted: Collection[str]) -> list[str]:
        """Required scopes the user did not grant (granular consent lets them untick some)."""
        ...

    def authorization_url(
        self, *, state: str, code_challenge: str, redirect_uri: str, scopes: list[str], login_hint: str | None
    ) -> str: ...

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenGrant: ...

    def refresh(self, refresh_token: str) -> TokenGrant:
        """A fresh access token; raises GrantRevoked when the grant is gone (`invalid_grant`)."""
        ...

    def revoke(self, token: str) -> None: ...

    def identify(self, grant: TokenGrant) -> Identity: ...


# ---------------------------------------------------------------------------------- client secret


def _secret_value(raw: str) -> str:
    """The client secret from the secret's value: the bare secret, `{"client_secret": ...}`, or the
    client JSON Google's console downloads (`{"web": {"client_secret": ...}}`)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw.strip()
    if isinstance(parsed, dict):
        inner = parsed.get("web") or parsed.get("installed") or parsed
        if isinstance(inner, dict) and isinstance(inner.get("client_secret"), str):
            return str(inner["client_secret"])
    return raw.strip()


class ClientSecret:
    """A client secret read from Secrets Manager on first use and kept for `ttl_seconds` (so a
    rotated secret is picked up without a redeploy)."""

    def __init__(
        self, arn: str, ttl_seconds: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.arn = arn
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._value: str | None = None
        self._read_at = 0.0

    def __call__(self) -> str:
        if self._value is None or self._clock() - self._read_at > self.ttl_seconds:
            if not self.arn:
                raise ProviderAuthError("no OAuth client secret is configured", code="client_misconfigured")
            raw = aws.secretsmanager().get_secret_value(SecretId=self.arn)["SecretString"]
            self._value, self._read_at = _secret_value(str(raw)), self._clock()
        return self._value


# ---------------------------------------------------------------------------------- Google


def _unverified_claims(id_token: str) -> dict[str, object]:
    from google.auth import jwt

    claims = jwt.decode(id_token, verify=False)  # type: ignore[no-untyped-call]
    return dict(claims)


class GoogleOAuth:
    """Gmail mailboxes through Google's OAuth 2.0 web server flow."""

    name = "gmail"
    account_provider: Provider = "gmail"
    account_kind: AccountKind = "mailbox"
    base_scopes = (GMAIL_MODIFY, GMAIL_SEND, "openid", "email")
    required_scopes = (GMAIL_MODIFY, GMAIL_SEND)
    optional_scopes: dict[str, tuple[str, ...]] = {  # noqa: RUF012
        "contact_import": (CONTACTS_READONLY,),
        "calendar": (CALENDAR_EVENTS,),
    }

    def __init__(
        self, settings: GoogleSettings, secret: Callable[[], str], http: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self._secret = secret
        self._http = http

    @property
    def configured(self) -> bool:
        return bool(self.settings.client_id and self.settings.client_secret_arn)

    def scopes(self, options: Collection[str]) -> list[str]:
        extra = [scope for option in sorted(options) for scope in self.optional_scopes.get(option, ())]
        return list(dict.fromkeys([*self.base_scopes, *extra]))

    def missing_scopes(self, granted: Collection[str]) -> list[str]:
        return [scope for scope in self.required_scopes if scope not in set(granted)]

    def authorization_url(
        self, *, state: str, code_challenge: str, redirect_uri: str, scopes: list[str], login_hint: str | None
    ) -> str:
        params = {
            "client_id": self.settings.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "true",
        }
        if login_hint:
            params["login_hint"] = login_hint
        return f"{self.settings.auth_url}?{urlencode(params)}"

    def _client_form(self) -> dict[str, str]:
        return {"client_id": self.settings.client_id, "client_secret": self._secret()}

    @staticmethod
    def _grant(body: dict[str, object]) -> TokenGrant:
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError("the token endpoint answered without an access token", code="oauth_error")
        expires_in = body.get("expires_in")
        refresh = body.get("refresh_token")
        id_token = body.get("id_token")
        return TokenGrant(
            access_token=token,
            expires_in=int(expires_in)
            if isinstance(expires_in, int | str) and str(expires_in).isdigit()
            else 3600,
            scopes=tuple(str(body.get("scope") or "").split()),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
        )

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenGrant:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
            **self._client_form(),
        }
        return self._grant(oauth_http.post_form(self.settings.token_url, form, http=self._http))

    def refresh(self, refresh_token: str) -> TokenGrant:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **self._client_form()}
        return self._grant(oauth_http.post_form(self.settings.token_url, form, http=self._http))

    def revoke(self, token: str) -> None:
        oauth_http.post_form(self.settings.revoke_url, {"token": token}, http=self._http)

    def identify(self, grant: TokenGrant) -> Identity:
        if grant.id_token:
            claims = _unverified_claims(grant.id_token)
            email = claims.get("email")
            if (
                claims.get("aud") == self.settings.client_id
                and claims.get("iss") in GOOGLE_ISSUERS
                and isinstance(email, str)
                and claims.get("email_verified") is True
            ):
                subject = claims.get("sub")
                return Identity(address=email, subject=str(subject) if subject else None)
        from mailbridge.providers.gmail.client import GmailClient

        profile = GmailClient(self.settings.gmail_api_url, lambda _force: grant.access_token).get_profile()
        return Identity(address=profile.email_address)


# ---------------------------------------------------------------------------------- registry


def _google(settings: Settings) -> OAuthProvider:
    return GoogleOAuth(settings.google, ClientSecret(settings.google.client_secret_arn))


def _microsoft(settings: Settings) -> OAuthProvider:
    from mailbridge.oauth.microsoft import MicrosoftOAuth

    return MicrosoftOAuth(settings.microsoft, ClientSecret(settings.microsoft.client_secret_arn))


_FACTORIES: dict[str, Callable[[Settings], OAuthProvider]] = {"gmail": _google, "graph": _microsoft}
PROVIDER_NAMES = tuple(_FACTORIES)


@lru_cache(maxsize=8)
def _cached(name: str, settings: Settings) -> OAuthProvider:
    return _FACTORIES[name](settings)


def get_provider(name: str, settings: Settings) -> OAuthProvider:
    """The provider serving `/oauth/{name}/...`; NotFound(provider_not_found) for any other name."""
    if name not in _FACTORIES:
        raise NotFound("no such OAuth provider", code="provider_not_found")
    return _cached(name, settings)


def provider_for_account(account_provider: str, settings: Settings) -> OAuthProvider:
    """The OAuth provider behind an account's `provider` (`gmail` -> Google, `graph` -> Microsoft)."""
    for name in _FACTORIES:
        provider = get_provider(name, settings)
        if provider.account_provider == account_provider:
            return provider
    raise NotFound("no OAuth provider for this account", code="provider_not_found")
