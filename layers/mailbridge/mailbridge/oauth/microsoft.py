"""Microsoft 365 / Outlook.com mailboxes (account provider `graph`) through msal.

Sources: "Microsoft identity platform and OAuth 2.0 authorization code flow" (learn.microsoft.com/
entra/identity-platform/v2-oauth2-auth-code-flow): `{authority}/oauth2/v2.0/authorize` with
`response_type=code`, PKCE S256 (RFC 7636), `prompt=consent` so the user is asked again and a
refresh token comes back with `offline_access`; "Refresh tokens in the Microsoft identity
platform": every refresh answers a new refresh token (rotation), which is why the whole msal
token cache is what we store (`{"token_cache": <msal SerializableTokenCache JSON>}`, sealed by
the callback and by `oauth/tokens.py` with optimistic concurrency); the error code reference:
`invalid_grant` (AADSTS50173 revoked, 700082 inactive, 65001 consent withdrawn) -> GrantRevoked.

Where msal fits our server-side state: the authorization URL is built here from the
`authorization_endpoint` msal discovered in the authority's OpenID metadata, with our own
single-use `state` and PKCE challenge (the verifier stays in our state store; msal's
`initiate_auth_code_flow` would keep its own in a session we do not have); the code is redeemed
with msal's `acquire_token_by_authorization_code` (the verifier as `code_verifier`), refreshes
are msal's `acquire_token_silent_with_error` over the account's deserialized cache.

The authority is `{MICROSOFT_AUTHORITY_HOST}/{MICROSOFT_TENANT}` (default
https://login.microsoftonline.com/common). Instance discovery is off: the host is a setting of
the deployment, never input. `MICROSOFT_CA_BUNDLE` adds the local double's CA (tests and
`make run`); verification is never turned off. Microsoft has no endpoint for a client to revoke a
refresh token (only the user or an admin removes the grant), so `revoke` does nothing.

The mailbox address comes from the ID token received over TLS from the token endpoint (OpenID
Connect Core 3.1.3.7: its signature need not be checked then; `aud` is): `preferred_username` or
`email` when it is an address, else Graph's `GET /me` (`mail`, then `userPrincipalName`).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import warnings
from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlencode

import httpx

from mailbridge.config import MicrosoftSettings
from mailbridge.errors import ProviderAuthError, ProviderError, ProviderUnreachable
from mailbridge.models.account import CALENDAR_SCOPES, Provider
from mailbridge.oauth.http import GrantRevoked
from mailbridge.oauth.providers import AccountKind, Identity, TokenGrant
from mailbridge.providers.http import transport_errors

MAIL_READWRITE = "Mail.ReadWrite"
MAIL_SEND = "Mail.Send"
CONTACTS_READ = "Contacts.Read"
CALENDARS_READWRITE = CALENDAR_SCOPES["graph"]
OFFLINE_ACCESS = "offline_access"
# msal adds these three to every request itself and refuses them as input ("reserved").
_MSAL_RESERVED = frozenset({"openid", "profile", OFFLINE_ACCESS})
TIMEOUT_SECONDS = 10.0


def _claims(id_token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (see the module docstring); {} when it is not one."""
    try:
        payload = id_token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _is_address(value: object) -> bool:
    return isinstance(value, str) and 3 <= len(value) <= 320 and value.count("@") == 1 and " " not in value


class MicrosoftOAuth:
    """Microsoft 365 and Outlook.com mailboxes through msal's ConfidentialClientApplication."""

    name = "graph"
    account_provider: Provider = "graph"
    account_kind: AccountKind = "mailbox"
    base_scopes = (MAIL_READWRITE, MAIL_SEND, OFFLINE_ACCESS, "openid", "profile", "email")
    required_scopes = (MAIL_READWRITE, MAIL_SEND)
    optional_scopes: dict[str, tuple[str, ...]] = {  # noqa: RUF012
        "contact_import": (CONTACTS_READ,),
        "calendar": (CALENDARS_READWRITE,),
    }

    def __init__(
        self, settings: MicrosoftSettings, secret: Callable[[], str], http: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self._secret = secret
        self._http = http
        # msal keeps the authority's OpenID metadata here, so apps built per call share one fetch.
        self._http_cache: dict[Any, Any] = {}
        self._session_lock = threading.Lock()
        self._session: Any = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.client_id and self.settings.client_secret_arn)

    def scopes(self, options: Collection[str]) -> list[str]:
        extra = [scope for option in sorted(options) for scope in self.optional_scopes.get(option, ())]
        return list(dict.fromkeys([*self.base_scopes, *extra]))

    def missing_scopes(self, granted: Collection[str]) -> list[str]:
        have = {scope.lower() for scope in granted}
        return [scope for scope in self.required_scopes if scope.lower() not in have]

    @staticmethod
    def _graph_scopes(scopes: Collection[str]) -> list[str]:
        return [s for s in scopes if s not in _MSAL_RESERVED and s != "email"]

    # ------------------------------------------------------------------ msal

    def _requests(self) -> Any:
        """One requests session per provider: ignores the environment, trusts the CA bundle set."""
        with self._session_lock:
            if self._session is None:
                import requests

                session = requests.Session()
                session.trust_env = False
                session.verify = self.settings.ca_bundle or True
                self._session = session
            return self._session

    def _app(self, cache: Any = None) -> Any:
        import msal  # type: ignore[import-untyped]
        import requests

        try:
            return msal.ConfidentialClientApplication(
                self.settings.client_id,
                client_credential=self._secret(),
                authority=self.settings.authority,
                instance_discovery=False,
                http_client=self._requests(),
                http_cache=self._http_cache,
                token_cache=cache,
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise ProviderUnreachable("the Microsoft authority is unreachable", code="unreachable") from exc
        except ValueError as exc:  # msal: the authority's metadata could not be read
            raise ProviderError(
                "the Microsoft authority could not be discovered", code="unavailable"
            ) from exc

    def _call(self, action: Callable[[], Any]) -> dict[str, Any]:
        import requests

        try:
            with warnings.catch_warnings():
                # acquire_token_by_authorization_code is the lower-level call that takes our own
                # verifier; msal marks it deprecated in favour of its session-kept flow.
                warnings.simplefilter("ignore", DeprecationWarning)
                result = action()
        except requests.Timeout as exc:
            raise ProviderUnreachable("Microsoft did not answer in time", code="timeout") from exc
        except requests.RequestException as exc:
            raise ProviderUnreachable("Microsoft is unreachable", code="unreachable") from exc
        if result is None:  # acquire_token_silent: nothing in the cache to refresh with
            raise GrantRevoked("no refresh token is cached")
        if not isinstance(result, dict):
            raise ProviderError("msal answered something unexpected", code="oauth_error")
        error = result.get("error")
        if error:
            raise self._error(str(error))
        return result

    @staticmethod
    def _error(error: str) -> ProviderAuthError | ProviderError:
        if error in ("invalid_grant", "interaction_required", "consent_required"):
            return GrantRevoked("the grant is no longer valid")
        if error in ("invalid_client", "unauthorized_client"):
            return ProviderAuthError("the OAuth client id or secret was refused", code="client_misconfigured")
        if error in ("temporarily_unavailable", "server_error"):
            return ProviderError("the Microsoft authority failed", code="unavailable")
        failure = ProviderError(
            "the Microsoft authority refused the request", code="oauth_error", details={"error": error[:64]}
        )
        failure.retryable = False
        return failure

    @staticmethod
    def _grant(result: dict[str, Any], cache: Any) -> TokenGrant:
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError("the token endpoint answered without an access token", code="oauth_error")
        expires_in = result.get("expires_in")
        refresh = result.get("refresh_token")
        id_token = result.get("id_token")
        return TokenGrant(
            access_token=token,
            expires_in=int(expires_in) if isinstance(expires_in, int) and expires_in > 0 else 3600,
            scopes=tuple(str(result.get("scope") or "").split()),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
            secrets={"token_cache": cache.serialize()} if cache is not None else None,
        )

    # ------------------------------------------------------------------ the OAuthProvider protocol

    def authorization_url(
        self, *, state: str, code_challenge: str, redirect_uri: str, scopes: list[str], login_hint: str | None
    ) -> str:
        endpoint = self._app().authority.authorization_endpoint
        params = {
            "client_id": self.settings.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "response_mode": "query",
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "prompt": "consent",
            "client_info": "1",  # msal keys its cache by the home account this carries
        }
        if login_hint:
            params["login_hint"] = login_hint
        return f"{endpoint}?{urlencode(params)}"

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> TokenGrant:
        import msal

        cache = msal.SerializableTokenCache()
        app = self._app(cache)
        result = self._call(
            lambda: app.acquire_token_by_authorization_code(
                code,
                scopes=self._graph_scopes(self.base_scopes),
                redirect_uri=redirect_uri,
                data={"code_verifier": code_verifier},
            )
        )
        return self._grant(result, cache)

    def acquire(self, token_cache: str, *, force_refresh: bool) -> tuple[TokenGrant, str | None]:
        """An access token from the account's msal cache (refreshed by msal when it is due or
        `force_refresh`), and the cache serialized again when msal changed it (a rotated refresh
        token), else None. Raises GrantRevoked (`invalid_grant`, no account in the cache)."""
        import msal

        cache = msal.SerializableTokenCache()
        try:
            cache.deserialize(token_cache)
        except ValueError:
            raise GrantRevoked("the stored token cache is unreadable") from None
        app = self._app(cache)
        accounts = app.get_accounts()
        if not accounts:
            raise GrantRevoked("the token cache holds no account")
        scopes = self._graph_scopes(self.required_scopes)
        result = self._call(
            lambda: app.acquire_token_silent_with_error(
                scopes, account=accounts[0], force_refresh=force_refresh
            )
        )
        grant = self._grant(result, None)
        return grant, (cache.serialize() if cache.has_state_changed else None)

    def refresh(self, refresh_token: str) -> TokenGrant:
        import msal

        cache = msal.SerializableTokenCache()
        app = self._app(cache)
        scopes = self._graph_scopes(self.required_scopes)
        return self._grant(
            self._call(lambda: app.acquire_token_by_refresh_token(refresh_token, scopes)), cache
        )

    def revoke(self, token: str) -> None:
        """Nothing to call: the identity platform has no client revocation endpoint (module docstring)."""

    def identify(self, grant: TokenGrant) -> Identity:
        if grant.id_token:
            claims = _claims(grant.id_token)
            if claims.get("aud") == self.settings.client_id:
                subject = claims.get("oid") or claims.get("sub")
                for name in ("preferred_username", "email"):
                    if _is_address(claims.get(name)):
                        return Identity(address=str(claims[name]), subject=str(subject) if subject else None)
        return self._me(grant.access_token)

    def _me(self, access_token: str) -> Identity:
        """Graph `GET /me` (user resource: `mail`, `userPrincipalName`, `id`)."""
        http = self._http or httpx.Client(
            timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=5.0),
            trust_env=False,
            verify=ssl.create_default_context(cafile=self.settings.ca_bundle)
            if self.settings.ca_bundle
            else True,
        )
        with transport_errors("Microsoft Graph"):
            response = http.get(
                f"{self.settings.graph_url.rstrip('/')}/me",
                params={"$select": "id,mail,userPrincipalName"},
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
        if not response.is_success:
            raise ProviderError("Microsoft Graph refused /me", code="identity_unavailable")
        try:
            body = response.json()
        except ValueError:
            body = {}
        for name in ("mail", "userPrincipalName"):
            if isinstance(body, dict) and _is_address(body.get(name)):
                return Identity(address=str(body[name]), subject=str(body.get("id") or "") or None)
        raise ProviderError("Microsoft Graph named no address", code="identity_unavailable")
