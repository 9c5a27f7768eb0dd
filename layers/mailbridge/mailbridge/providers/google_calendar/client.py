"""Google Calendar API v3 `events` on the account's `primary` calendar, over httpx.

Sources: developers.google.com/calendar/api/v3/reference/events (list, get, insert, patch,
delete) and developers.google.com/calendar/api/guides/sync ("Synchronize resources efficiently"):

- a full sync lists with `showDeleted=true` and `singleEvents=false` (recurring masters with their
  `recurrence`, changed occurrences as their own events), following `pageToken` until the last
  page, which alone carries `nextSyncToken`; an incremental sync passes that `syncToken` (and no
  time or query restriction: they are refused with it);
- 410 GONE (reason `fullSyncRequired`) on a sync token: "wipe the store and start a full sync"
  -> `SyncTokenExpired`;
- writes (`insert`, `patch`, `delete`) send `If-Match: <etag>` where an etag is known: 412
  `conditionNotMet` -> `EtagMismatch` (changed in Google since we read it); 410 on a write (the
  event was deleted in Google) and 404 -> `ProviderEventGone`;
- `events.insert` with an `iCalUID` the calendar already holds answers 409 `duplicate`
  ("The requested identifier already exists.") -> `EventExists`; the event is then found with
  `events.list?iCalUID=` ("Specifies an event ID in the iCalendar format to be provided in the
  response", events.list reference; events.get: "To retrieve an event using its iCalendar ID,
  call the events.list method using the iCalUID parameter").

One occurrence of a recurring event is read and written by its instance id (`instance_id`):
`{recurringEventId}_{originalStart}`, `originalStart` in UTC basic format `YYYYMMDDTHHMMSSZ` for
a timed series and `YYYYMMDD` for an all-day one. Google documents modifying an instance as
"retrieve the instance ... then update it" (developers.google.com/calendar/api/guides/
recurringevents, "Modifying instances"; the instances are those `events.instances` answers, an
instance is identified by its `recurringEventId` and `originalStartTime`, Event resource
reference), and the ids those instances carry have this form. A patch of an unchanged instance
makes it an exception (its own event in `events.list`); `events.delete` of an instance cancels
that occurrence (an exception with `status: cancelled`); an id whose time is not an occurrence
answers 404 (`ProviderEventGone`).

Other errors as the Gmail adapter maps them (401 after one forced token refresh ->
ProviderAuthError `reauth_required`; 403 `insufficientPermissions` -> `insufficient_scope`;
403 `rateLimitExceeded`/`userRateLimitExceeded` and 429 -> ProviderRateLimited with Retry-After;
5xx -> retryable ProviderError). The base URL is the `GOOGLE_CALENDAR_API_URL` setting.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.providers.calendar_errors import EtagMismatch, ProviderEventGone
from mailbridge.providers.google_api import RATE_LIMIT_REASONS, TokenSource, error_reason, http_client
from mailbridge.providers.google_calendar.models import EventsPage, GoogleEvent
from mailbridge.providers.http import parse_retry_after, transport_errors

MAX_PAGE = 2500  # events.list maxResults maximum [events.list reference]
CALENDAR_ID = "primary"

__all__ = [
    "EtagMismatch",
    "EventExists",
    "GoogleCalendarClient",
    "ProviderEventGone",
    "SyncTokenExpired",
    "instance_id",
]


def instance_id(recurring_event_id: str, original_start: date | datetime) -> str:
    """The id of one occurrence of a recurring event (see the module docstring):
    `{recurringEventId}_{YYYYMMDDTHHMMSSZ}` (the original start's UTC instant; a floating time
    is read as UTC) or `{recurringEventId}_{YYYYMMDD}` for an all-day series."""
    if not isinstance(original_start, datetime):
        return f"{recurring_event_id}_{original_start.strftime('%Y%m%d')}"
    moment = original_start if original_start.tzinfo else original_start.replace(tzinfo=UTC)
    return f"{recurring_event_id}_{moment.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


class SyncTokenExpired(ProviderError):
    """410 on `events.list` with a sync token: a full sync is required."""

    code = "sync_token_expired"
    retryable = False


class EventExists(ProviderError):
    """409 `duplicate` on `events.insert`: an event with this `iCalUID` exists in the calendar."""

    code = "provider_event_exists"
    retryable = False


class GoogleCalendarClient:
    """One account's primary calendar."""

    name = "gmail"

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        http: httpx.Client | None = None,
        page_size: int = MAX_PAGE,
    ) -> None:
        self.base = f"{base_url.rstrip('/')}/calendars/{CALENDAR_ID}/events"
        self._token = token
        self._http = http
        self.page_size = page_size
        self.skipped = 0  # list items that are not an Event resource (left out, counted)

    @property
    def http(self) -> httpx.Client:
        return self._http or http_client()

    def _send(
        self, verb: str, path: str, token: str, params: Any, body: Any, headers: dict[str, str]
    ) -> httpx.Response:
        with transport_errors("Google Calendar"):
            return self.http.request(
                verb,
                self.base + path,
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {token}", **headers},
            )

    def _call(
        self,
        method: str,
        verb: str,
        path: str = "",
        *,
        params: Any = None,
        body: Any = None,
        etag: str | None = None,
    ) -> dict[str, Any]:
        headers = {"If-Match": etag} if etag else {}
        response = self._send(verb, path, self._token(False), params, body, headers)
        if response.status_code == 401:
            response = self._send(verb, path, self._token(True), params, body, headers)
            if response.status_code == 401:
                raise ProviderAuthError(
                    "Google Calendar refused the refreshed access token", code="reauth_required"
                )
        if response.is_success:
            if not response.content:
                return {}
            parsed = response.json()
            return parsed if isinstance(parsed, dict) else {}
        raise self._error(method, response)

    def _error(self, method: str, response: httpx.Response) -> ProviderError:
        status = response.status_code
        try:
            parsed = response.json()
        except ValueError:
            parsed = {}
        reason = error_reason(parsed if isinstance(parsed, dict) else {})
        details = {"status": status, "reason": reason[:64], "method": method}
        typed = self._typed(method, status, details)
        if typed is not None:
            return typed
        if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
            return ProviderRateLimited(
                "Google Calendar is rate limiting this account",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                details=details,
            )
        if status == 403 and reason == "insufficientPermissions":
            return ProviderAuthError(
                "the account did not grant the calendar scope", code="insufficient_scope", details=details
            )
        if status >= 500:
            return ProviderError("Google Calendar failed", code="unavailable", details=details)
        refused = ProviderError(
            "Google Calendar refused the request", code="calendar_request_refused", details=details
        )
        refused.retryable = False
        return refused

    @staticmethod
    def _typed(method: str, status: int, details: dict[str, Any]) -> ProviderError | None:
        """The errors of the sync and write protocol: 410 on a list, 412, 404/410 on one event."""
        if status == 410 and method == "events.list":
            return SyncTokenExpired("the calendar sync token expired: full sync required", details=details)
        if status == 409 and method == "events.insert":
            return EventExists("an event with this iCalUID exists in Google", details=details)
        if status == 412:
            return EtagMismatch("the event changed in Google since it was read", details=details)
        if status in (404, 410) and method != "events.list":
            return ProviderEventGone("the event no longer exists in Google", details=details)
        return None

    # ------------------------------------------------------------------ read

    def list_events(self, sync_token: str | None, page_token: str | None = None) -> EventsPage:
        """One page of `events.list`: the full listing when `sync_token` is None (deleted events
        included, recurring events unexpanded), else the changes since it. Raises
        SyncTokenExpired (410)."""
        params: list[tuple[str, str]] = [
            ("maxResults", str(self.page_size)),
            ("showDeleted", "true"),
            ("singleEvents", "false"),
        ]
        if sync_token:
            params.append(("syncToken", sync_token))
        if page_token:
            params.append(("pageToken", page_token))
        raw = self._call("events.list", "GET", params=params)
        items: list[GoogleEvent] = []
        for item in raw.get("items") or []:
            try:
                items.append(GoogleEvent.model_validate(item))
            except ValidationError:
                self.skipped += 1
        return EventsPage(
            items=items,
            next_page_token=raw.get("nextPageToken") or None,
            next_sync_token=raw.get("nextSyncToken") or None,
        )

    def find_by_ical_uid(self, ical_uid: str) -> GoogleEvent | None:
        """The live event (a single event or a recurring master, not one of its changed
        occurrences, which share its iCalUID) whose `iCalUID` is `ical_uid`, by `events.list`
        with `iCalUID`; None when the calendar holds none."""
        params = [("iCalUID", ical_uid), ("singleEvents", "false"), ("maxResults", str(self.page_size))]
        raw = self._call("events.list", "GET", params=params)
        for item in raw.get("items") or []:
            try:
                event = GoogleEvent.model_validate(item)
            except ValidationError:
                continue
            if event.recurring_event_id is None and event.status != "cancelled":
                return event
        return None

    def get_event(self, event_id: str) -> GoogleEvent:
        return GoogleEvent.model_validate(self._call("events.get", "GET", f"/{quote(event_id, safe='')}"))

    # ------------------------------------------------------------------ write

    def insert_event(self, body: dict[str, Any]) -> GoogleEvent:
        return GoogleEvent.model_validate(self._call("events.insert", "POST", body=body))

    def patch_event(self, event_id: str, body: dict[str, Any], etag: str | None) -> GoogleEvent:
        return GoogleEvent.model_validate(
            self._call("events.patch", "PATCH", f"/{quote(event_id, safe='')}", body=body, etag=etag)
        )

    def delete_event(self, event_id: str, etag: str | None) -> None:
        self._call("events.delete", "DELETE", f"/{quote(event_id, safe='')}", etag=etag)
