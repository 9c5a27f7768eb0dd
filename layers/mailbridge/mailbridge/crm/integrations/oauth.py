"""The OAuth clients of the CRMs: Salesforce (web server flow with PKCE, device flow, refresh,
revoke) and HubSpot (authorization code, token metadata, refresh, revoke). URLs are settings
(`CrmOAuthSettings`), never tenant input, so plain httpx through `mailbridge.oauth.http` is used.

Salesforce (Salesforce Help "OAuth 2.0 Web Server Flow for Web App Integration", "OAuth 2.0
Device Flow for IoT Integration", "OAuth 2.0 Refresh Token Flow", "Revoke OAuth Tokens"):
`{login}/services/oauth2/authorize` with `code_challenge` (S256), the token endpoint
`{login}/services/oauth2/token` (`grant_type=authorization_code` with `code_verifier`,
`refresh_token`; `response_type=device_code` starts the device flow and `grant_type=device`
with `code=<device_code>` polls it, answering RFC 8628 section 3.5's `authorization_pending`,
`slow_down`, `access_denied`, or `invalid_grant` once the code expired), revocation at
`{login}/services/oauth2/revoke`. The token answer carries `instance_url` and `id`, the identity
URL `https://login.salesforce.com/id/{org id}/{user id}`; it has no `expires_in` (the session
lasts the org's session timeout, two hours by default), so `SALESFORCE_SESSION_SECONDS` is
assumed and a 401 refreshes earlier.

HubSpot ("OAuth quickstart", "Managing OAuth tokens"): install URL `app.hubspot.com/oauth/
authorize`, `POST {api}/oauth/v1/token` (authorization_code with `code_verifier`; refresh_token),
`GET {api}/oauth/v1/access-tokens/{token}` for the portal (`hub_id`, `hub_domain`, `user_id`),
`DELETE {api}/oauth/v1/refresh-tokens/{token}` to revoke. Its errors are `{"status":
"BAD_REFRESH_TOKEN" | "BAD_AUTH_CODE" | "BAD_CLIENT_ID" | ...}`, mapped to the same typed errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx

from mailbridge.config import CrmOAuthSettings
from mailbridge.crm.integrations.models import CrmProviderName
from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.oauth import http as oauth_http
from mailbridge.oauth.http import GrantRevoked
from mailbridge.providers.http import transport_errors

SALESFORCE_SESSION_SECONDS = 7200
SALESFORCE_DEVICE_SECONDS = 600  # a device code lives 10 minutes (Salesforce Help, device flow)
_IDENTITY = re.compile(r"/id/(00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)/(005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)")


@dataclass(frozen=True)
class CrmGrant:
    """A token answer and who/where it is for. Never log it."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: int
    scopes: tuple[str, ...] = ()
    org_id: str | None = None
    org_name: str | None = None
    instance_url: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    interval: int
    expires_in: int


DeviceStatus = Literal["authorization_pending", "slow_down", "access_denied", "expired_token"]


class DevicePending(Exception):
    """A device poll that did not yield tokens: RFC 8628 section 3.5's error code."""

    def __init__(self, status: DeviceStatus) -> None:
        super().__init__(status)
        self.status = status


class CrmOAuth(Protocol):
    name: CrmProviderName

    @property
    def configured(self) -> bool: ...

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str: ...

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> CrmGrant: ...

    def refresh(self, refresh_token: str) -> CrmGrant:
        """Raises GrantRevoked when the provider refuses the refresh token."""
        ...

    def revoke(self, token: str) -> None: ...


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _scopes(body: dict[str, Any]) -> tuple[str, ...]:
    scope = body.get("scope") or body.get("scopes")
    if isinstance(scope, str):
        return tuple(scope.split())
    if isinstance(scope, list):
        return tuple(str(s) for s in scope)
    return ()


def _token(body: dict[str, Any]) -> str:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise ProviderError("the token endpoint answered without an access token", code="oauth_error")
    return token


class SalesforceOAuth:
    name: CrmProviderName = "salesforce"

    def __init__(
        self, settings: CrmOAuthSettings, secret: Callable[[], str], http: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self._secret = secret
        self._http = http
        self._base = settings.salesforce_login_url.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.settings.salesforce_client_id and self.settings.salesforce_client_secret_arn)

    @property
    def token_url(self) -> str:
        return self._base + "/services/oauth2/token"

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.settings.salesforce_client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.salesforce_scopes,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self._base}/services/oauth2/authorize?{urlencode(params)}"

    def _grant(self, body: dict[str, Any], refresh_token: str | None = None) -> CrmGrant:
        identity = _IDENTITY.search(urlsplit(str(body.get("id") or "")).path)
        instance = body.get("instance_url")
        refresh = body.get("refresh_token")
        return CrmGrant(
            access_token=_token(body),
            refresh_token=refresh if isinstance(refresh, str) and refresh else refresh_token,
            expires_in=SALESFORCE_SESSION_SECONDS,
            scopes=_scopes(body),
            org_id=identity.group(1) if identity else None,
            instance_url=str(instance).rstrip("/") if isinstance(instance, str) and instance else None,
            user_id=identity.group(2) if identity else None,
        )

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> CrmGrant:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
            "client_id": self.settings.salesforce_client_id,
            "client_secret": self._secret(),
        }
        return self._grant(oauth_http.post_form(self.token_url, form, http=self._http))

    def refresh(self, refresh_token: str) -> CrmGrant:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self.settings.salesforce_client_id,
            "client_secret": self._secret(),
        }
        # Salesforce answers a refresh without a new refresh token: the old one stays valid.
        return self._grant(oauth_http.post_form(self.token_url, form, http=self._http), refresh_token)

    def revoke(self, token: str) -> None:
        oauth_http.post_form(self._base + "/services/oauth2/revoke", {"token": token}, http=self._http)

    def start_device(self) -> DeviceAuthorization:
        """RFC 8628 section 3.1 as Salesforce spells it (`response_type=device_code`)."""
        form = {
            "response_type": "device_code",
            "client_id": self.settings.salesforce_client_id,
            "scope": self.settings.salesforce_scopes,
        }
        body = oauth_http.post_form(self.token_url, form, http=self._http)
        try:
            return DeviceAuthorization(
                device_code=str(body["device_code"]),
                user_code=str(body["user_code"]),
                verification_uri=str(body["verification_uri"]),
                interval=int(body.get("interval") or 5),
                expires_in=int(body.get("expires_in") or SALESFORCE_DEVICE_SECONDS),
            )
        except (KeyError, TypeError, ValueError):
            raise ProviderError("the device authorization answer is incomplete", code="oauth_error") from None

    def poll_device(self, device_code: str) -> CrmGrant:
        """Tokens once the user approved; raises DevicePending(status) otherwise (RFC 8628 section
        3.5; Salesforce answers an expired or used device code with `invalid_grant`)."""
        form = {"grant_type": "device", "client_id": self.settings.salesforce_client_id, "code": device_code}
        with transport_errors("the authorization server"):
            response = (self._http or oauth_http.client()).post(
                self.token_url, data=form, headers={"Accept": "application/json"}
            )
        body = _json(response)
        if response.is_success:
            return self._grant(body)
        if response.status_code == 429:
            raise ProviderRateLimited("the authorization server is rate limiting", retry_after=None)
        if response.status_code >= 500:
            raise ProviderError("the authorization server failed", code="unavailable")
        error = str(body.get("error") or "")
        if error in ("authorization_pending", "slow_down", "access_denied", "expired_token"):
            raise DevicePending(error)  # type: ignore[arg-type]
        if error == "invalid_grant":
            raise DevicePending("expired_token")
        if error in ("invalid_client", "invalid_client_id", "unauthorized_client"):
            raise ProviderAuthError("the OAuth client id was refused", code="client_misconfigured")
        failure = ProviderError("the authorization server refused the poll", code="oauth_error")
        failure.retryable = False
        raise failure


class HubSpotOAuth:
    name: CrmProviderName = "hubspot"

    def __init__(
        self, settings: CrmOAuthSettings, secret: Callable[[], str], http: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self._secret = secret
        self._http = http
        self._api = settings.hubspot_api_url.rstrip("/")

    @property
    def configured(self) -> bool:
        return bool(self.settings.hubspot_client_id and self.settings.hubspot_client_secret_arn)

    def authorization_url(self, *, state: str, code_challenge: str, redirect_uri: str) -> str:
        params = {
            "client_id": self.settings.hubspot_client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.hubspot_scopes,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.settings.hubspot_auth_url}?{urlencode(params)}"

    def _call(self, method: str, url: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        with transport_errors("HubSpot"):
            response = (self._http or oauth_http.client()).request(
                method, url, data=form, headers={"Accept": "application/json"}
            )
        body = _json(response)
        if response.is_success:
            return body
        if response.status_code == 429:
            raise ProviderRateLimited("HubSpot is rate limiting", retry_after=None)
        if response.status_code >= 500:
            raise ProviderError("HubSpot failed", code="unavailable")
        status = str(body.get("status") or body.get("category") or "")
        if status in ("BAD_REFRESH_TOKEN", "BAD_AUTH_CODE", "BAD_REDIRECT_URI"):
            raise GrantRevoked("the grant is no longer valid")
        if status in ("BAD_CLIENT_ID", "BAD_CLIENT_SECRET"):
            raise ProviderAuthError("the OAuth client id or secret was refused", code="client_misconfigured")
        failure = ProviderError("HubSpot refused the request", code="oauth_error")
        failure.retryable = False
        raise failure

    def _form(self) -> dict[str, str]:
        return {"client_id": self.settings.hubspot_client_id, "client_secret": self._secret()}

    def _grant(self, body: dict[str, Any]) -> CrmGrant:
        access = _token(body)
        info = self._call("GET", f"{self._api}/oauth/v1/access-tokens/{quote(access, safe='')}")
        hub_id = info.get("hub_id")
        refresh = body.get("refresh_token")
        expires_in = body.get("expires_in")
        return CrmGrant(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in=int(expires_in) if isinstance(expires_in, int) else 1800,
            scopes=_scopes(info),
            org_id=str(hub_id) if isinstance(hub_id, int | str) and str(hub_id) else None,
            org_name=str(info["hub_domain"]) if info.get("hub_domain") else None,
            user_id=str(info["user_id"]) if info.get("user_id") is not None else None,
        )

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> CrmGrant:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": code_verifier,
            "redirect_uri": redirect_uri,
            **self._form(),
        }
        return self._grant(self._call("POST", f"{self._api}/oauth/v1/token", form))

    def refresh(self, refresh_token: str) -> CrmGrant:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **self._form()}
        body = self._call("POST", f"{self._api}/oauth/v1/token", form)
        expires_in = body.get("expires_in")
        refresh = body.get("refresh_token")
        return CrmGrant(
            access_token=_token(body),
            refresh_token=refresh if isinstance(refresh, str) and refresh else refresh_token,
            expires_in=int(expires_in) if isinstance(expires_in, int) else 1800,
        )

    def revoke(self, token: str) -> None:
        self._call("DELETE", f"{self._api}/oauth/v1/refresh-tokens/{quote(token, safe='')}")
