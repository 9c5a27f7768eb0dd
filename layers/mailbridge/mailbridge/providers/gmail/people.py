"""Google People API v1 `people.connections.list` over httpx: the contacts of a Google account.

Source: developers.google.com/people/api/rest/v1/people.connections/list [D]: `resourceName`
`people/me`; `personFields` required; `pageSize` up to 1000; `requestSyncToken=true` gives
`nextSyncToken` on the last page; a `syncToken` lists what changed since (deleted contacts carry
`metadata.deleted = true`); with a `pageToken` the other parameters must repeat the first call's.
A sync token expires 7 days after the full list: the error carries a google.rpc.ErrorInfo with
reason `EXPIRED_SYNC_TOKEN` (status 400 FAILED_PRECONDITION as clients report it, or 410) ->
`SyncTokenExpired`: list everything again. Base URL: the `PEOPLE_API_URL` setting.

Errors: 401 -> one token refresh, then ProviderAuthError(`reauth_required`); 403 ->
ProviderAuthError(`insufficient_scope`) (no `contacts.readonly` grant); 429 ->
ProviderRateLimited(retry_after); 5xx, timeouts -> retryable ProviderError/ProviderUnreachable;
other 4xx -> ProviderError(`people_request_refused`, not retryable).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.models.base import Model
from mailbridge.providers.google_api import TokenSource, http_client
from mailbridge.providers.http import parse_retry_after, transport_errors

PERSON_FIELDS = "names,emailAddresses,organizations,phoneNumbers,metadata"
PAGE_SIZE = 1000
EXPIRED_SYNC_TOKEN = "EXPIRED_SYNC_TOKEN"  # noqa: S105 - an ErrorInfo reason, not a secret


class SyncTokenExpired(ProviderError):
    """The saved sync token is older than Google keeps: list every contact again."""

    code = "sync_token_expired"
    retryable = False


class Person(Model):
    """What contact import reads of a Person: its addresses, first name, organization, phones."""

    resource_name: str
    deleted: bool = False
    name: str | None = None
    emails: list[str] = Field(default_factory=list)
    organization: str | None = None
    title: str | None = None
    phones: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, data: dict[str, Any]) -> Person:
        def values(key: str, field: str) -> list[str]:
            return [str(v[field]) for v in data.get(key) or [] if isinstance(v, dict) and v.get(field)]

        orgs = [o for o in data.get("organizations") or [] if isinstance(o, dict)]
        return cls(
            resource_name=str(data.get("resourceName") or ""),
            deleted=bool((data.get("metadata") or {}).get("deleted")),
            name=next(iter(values("names", "displayName")), None),
            emails=values("emailAddresses", "value"),
            organization=str(orgs[0]["name"]) if orgs and orgs[0].get("name") else None,
            title=str(orgs[0]["title"]) if orgs and orgs[0].get("title") else None,
            phones=values("phoneNumbers", "value"),
        )


class Connections(Model):
    people: list[Person]
    next_sync_token: str | None = None


def _reason(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"])
    return str(error.get("status") or "")


class PeopleClient:
    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        http: httpx.Client | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.url = base_url.rstrip("/") + "/people/me/connections"
        self.page_size = page_size
        self._token = token
        self._http = http
        self.requests = 0

    def _get(self, params: dict[str, str]) -> dict[str, Any]:
        http = self._http or http_client()
        response = None
        for force_refresh in (False, True):
            self.requests += 1
            with transport_errors("Google People"):
                response = http.get(
                    self.url, params=params, headers={"Authorization": f"Bearer {self._token(force_refresh)}"}
                )
            if response.status_code != 401:
                break
        assert response is not None
        if response.is_success:
            parsed = response.json()
            return parsed if isinstance(parsed, dict) else {}
        raise self._error(response)

    def _error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        try:
            reason = _reason(response.json())
        except ValueError:
            reason = ""
        details = {"status": status, "reason": reason[:64], "method": "people.connections.list"}
        if reason == EXPIRED_SYNC_TOKEN or status == 410:
            return SyncTokenExpired("the contacts sync token expired; a full list is needed", details=details)
        if status == 401:
            return ProviderAuthError("Google refused the refreshed access token", code="reauth_required")
        if status == 403:
            return ProviderAuthError(
                "the account did not grant contacts.readonly", code="insufficient_scope", details=details
            )
        if status == 429:
            return ProviderRateLimited(
                "Google People is rate limiting this account",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                details=details,
            )
        if status >= 500:
            return ProviderError("Google People failed", code="unavailable", details=details)
        refused = ProviderError(
            "Google People refused the request", code="people_request_refused", details=details
        )
        refused.retryable = False
        return refused

    def list_connections(self, sync_token: str | None = None) -> Connections:
        """Every page of the account's contacts (all, or the changes since `sync_token`), and the
        token to ask for the next changes with. Raises SyncTokenExpired (see the module docstring)."""
        people: list[Person] = []
        page_token: str | None = None
        while True:
            params = {
                "personFields": PERSON_FIELDS,
                "pageSize": str(self.page_size),
                "requestSyncToken": "true",
            }
            if sync_token:
                params["syncToken"] = sync_token
            if page_token:
                params["pageToken"] = page_token
            page = self._get(params)
            people += [Person.of(p) for p in page.get("connections") or [] if isinstance(p, dict)]
            page_token = page.get("nextPageToken")
            if not page_token:
                return Connections(people=people, next_sync_token=page.get("nextSyncToken"))
