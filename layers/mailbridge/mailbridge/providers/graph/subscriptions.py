"""Graph change-notification subscriptions: create, renew, delete (a small httpx client of its own).

Sources: Graph v1.0 "Create subscription" (POST /subscriptions), "Update subscription" (PATCH
/subscriptions/{id} with a new `expirationDateTime`), "Delete subscription"; "Receive change
notifications through webhooks" (the validation request Graph sends to `notificationUrl` and
`lifecycleNotificationUrl` before answering the create); notes.md (Graph section): the maximum
lifetime of Outlook message subscriptions is 4,230 minutes in the stored doc versions. We ask for
that much and keep the `expirationDateTime` Graph answers (it may keep less): the renewal
schedule works from what Graph returned, never from an assumed lifetime.

`Prefer: IdType="ImmutableId"` makes the notifications carry immutable ids, like the adapter's
requests. A 401 is retried once with a refreshed token; 429 -> ProviderRateLimited(retry_after),
404 -> NotFound(subscription_not_found), other 4xx -> ProviderError(graph_refused, not retryable),
5xx / transport errors -> retryable ProviderError / ProviderUnreachable. Nothing from Graph's
answers is logged but status codes.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from mailbridge.errors import NotFound, ProviderError, ProviderRateLimited
from mailbridge.providers.http import transport_errors

MAX_LIFETIME = timedelta(minutes=4230)
CHANGE_TYPES = "created,updated,deleted"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A subscription of one folder's messages; `folder` is a well-known name such as inbox, sentitems.
RESOURCE = "me/mailFolders('{folder}')/messages"

TokenSource = Callable[[bool], str]


@dataclass(frozen=True)
class Created:
    subscription_id: str
    expires_at: datetime


def graph_time(when: datetime) -> str:
    """ISO 8601 in UTC with a Z, as Graph's examples write `expirationDateTime`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_graph_time(value: object) -> datetime:
    """Graph's `expirationDateTime` (up to seven fractional digits, Z or an offset)."""
    if not isinstance(value, str) or not value:
        raise ProviderError("Graph answered no expirationDateTime", code="graph_refused")
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ProviderError("Graph answered an unreadable expirationDateTime", code="graph_refused") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _verify(ca_bundle: str) -> ssl.SSLContext | bool:
    """The system's roots, or the given bundle's (the local double's CA: tests, `make run`)."""
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True


class SubscriptionClient:
    """Graph's /subscriptions for one account, with its token source (`oauth.tokens.token_source`)."""

    def __init__(
        self, graph_url: str, tokens: TokenSource, *, ca_bundle: str = "", http: httpx.Client | None = None
    ) -> None:
        self.base = graph_url.rstrip("/")
        self._tokens = tokens
        self._http = http or httpx.Client(timeout=TIMEOUT, trust_env=False, verify=_verify(ca_bundle))

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        for attempt in range(2):
            headers = {
                "Authorization": f"Bearer {self._tokens(attempt > 0)}",
                "Accept": "application/json",
                "Prefer": 'IdType="ImmutableId"',
            }
            with transport_errors("Graph"):
                response = self._http.request(method, f"{self.base}{path}", json=body, headers=headers)
            if response.status_code != 401:
                break
        return self._checked(response)

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if response.is_success:
            return response
        if status == 404:
            raise NotFound("Graph has no such subscription", code="subscription_not_found")
        if status == 429:
            retry = response.headers.get("retry-after", "")
            raise ProviderRateLimited(
                "Graph is throttling", retry_after=float(retry) if retry.isdigit() else None
            )
        if status >= 500:
            raise ProviderError("Graph failed", code="unavailable", details={"status": status})
        failure = ProviderError(
            "Graph refused the subscription request", code="graph_refused", details={"status": status}
        )
        failure.retryable = False
        raise failure

    def create(
        self, *, folder: str, notification_url: str, lifecycle_url: str, client_state: str, now: datetime
    ) -> Created:
        """POST /subscriptions for `folder`'s messages; Graph validates both URLs before answering."""
        answer = self._request(
            "POST",
            "/subscriptions",
            {
                "changeType": CHANGE_TYPES,
                "notificationUrl": notification_url,
                "lifecycleNotificationUrl": lifecycle_url,
                "resource": RESOURCE.format(folder=folder),
                "expirationDateTime": graph_time(now + MAX_LIFETIME),
                "clientState": client_state,
            },
        ).json()
        subscription_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(subscription_id, str) or not subscription_id:
            raise ProviderError("Graph answered no subscription id", code="graph_refused")
        return Created(subscription_id, parse_graph_time(answer.get("expirationDateTime")))

    def renew(self, subscription_id: str, *, now: datetime) -> datetime:
        """PATCH the expiry as far as Graph allows; the expiry Graph kept. NotFound when it is gone."""
        answer = self._request(
            "PATCH",
            f"/subscriptions/{subscription_id}",
            {"expirationDateTime": graph_time(now + MAX_LIFETIME)},
        ).json()
        return parse_graph_time(answer.get("expirationDateTime") if isinstance(answer, dict) else None)

    def delete(self, subscription_id: str) -> None:
        """DELETE; a subscription Graph no longer has counts as deleted."""
        try:
            self._request("DELETE", f"/subscriptions/{subscription_id}")
        except NotFound:
            return
