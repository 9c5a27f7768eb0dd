"""Gmail API v1 over httpx: typed results, typed errors, a quota budget, bounded concurrency.

Endpoints, parameters and shapes from the gmail.v1 discovery document (rev 20240520) under the
`GMAIL_API_URL` setting (`https://gmail.googleapis.com/gmail/v1` by default); errors as listed
in `errors.py`; quota units as in `quota.py`. The host is a deployment setting, never tenant
input, so plain httpx (with timeouts, no proxies from the environment) is used rather than the
SSRF-guarded client.

Tokens come from a `TokenSource` (`mailbridge.oauth.tokens.access_token` for real accounts):
called with False for the cached token, with True after a 401 to force one refresh; a second
401 is ProviderAuthError(`reauth_required`).

`get_raw_many` fetches `format=raw` messages on a small thread pool (`max_concurrency`, 8 by
default): Gmail's batch endpoint would save round trips but is not served by the local double,
and 8 requests in flight keep one mailbox well inside its quota while the per-user limit, not
latency, bounds a large sync (15,000 units a minute = 3,000 messages.get).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from mailbridge import opsmetrics
from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.providers.gmail.errors import DraftNotFound, HistoryExpired, MessageNotFound
from mailbridge.providers.gmail.models import (
    DraftRef,
    History,
    HistoryRecord,
    Label,
    Message,
    MessageList,
    MessageRef,
    Profile,
    RawMessage,
    Sent,
    Watch,
)
from mailbridge.providers.gmail.quota import QuotaBudget
from mailbridge.providers.google_api import (
    RATE_LIMIT_REASONS,
    TokenSource,
    error_reason,
    http_client,
)
from mailbridge.providers.http import parse_retry_after, transport_errors

MAX_PAGE = 500  # messages.list / history.list maxResults maximum [D]
MAX_BATCH_MODIFY = 1000  # messages.batchModify ids per call [D discovery: "at most 1000"]
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")


def _snake(reason: str) -> str:
    """`userRateLimitExceeded` -> `user_rate_limit_exceeded` (a metric dimension value)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", reason).lower()


def b64url_decode(value: str) -> bytes:
    """Gmail's `raw` is base64url, with or without padding (RFC 4648 section 5)."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode("ascii")


@dataclass
class RawBatch:
    """What `get_raw_many` fetched, in the order asked; `missing` were deleted since listed;
    `error`, when set, stopped the batch and the ids after the last fetched were not asked for."""

    messages: list[RawMessage] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: ProviderError | None = None


class GmailClient:
    """One Gmail mailbox (`user_id` "me": the token's owner)."""

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        budget: QuotaBudget | None = None,
        http: httpx.Client | None = None,
        max_concurrency: int = 8,
        page_size: int = MAX_PAGE,
    ) -> None:
        self.base = base_url.rstrip("/") + "/users/me"
        self._token = token
        self.budget = budget or QuotaBudget()
        self._http = http
        self.max_concurrency = max_concurrency
        self.page_size = page_size
        self.requests = 0  # HTTP requests made (benchmarks: requests per message)

    @property
    def http(self) -> httpx.Client:
        return self._http or http_client()

    # ------------------------------------------------------------------ transport

    def _send(
        self, verb: str, path: str, token: str, params: Any, body: dict[str, Any] | None
    ) -> httpx.Response:
        self.requests += 1
        with transport_errors("Gmail"):
            return self.http.request(
                verb, self.base + path, params=params, json=body, headers={"Authorization": f"Bearer {token}"}
            )

    def _call(
        self,
        method: str,
        verb: str,
        path: str,
        *,
        params: Any = None,
        body: dict[str, Any] | None = None,
        not_found: Callable[[], ProviderError] | None = None,
    ) -> dict[str, Any]:
        """One API call: spend its units, send, refresh the token once on 401, map errors."""
        self.budget.spend(method)
        response = self._send(verb, path, self._token(False), params, body)
        if response.status_code == 401:
            response = self._send(verb, path, self._token(True), params, body)
            if response.status_code == 401:
                raise ProviderAuthError("Gmail refused the refreshed access token", code="reauth_required")
        if response.is_success:
            self.budget.succeeded()
            if not response.content:
                return {}
            parsed = response.json()
            return parsed if isinstance(parsed, dict) else {}
        raise self._error(method, response, not_found)

    def _error(
        self, method: str, response: httpx.Response, not_found: Callable[[], ProviderError] | None
    ) -> ProviderError:
        status = response.status_code
        try:
            parsed = response.json()
        except ValueError:
            parsed = {}
        reason = error_reason(parsed if isinstance(parsed, dict) else {})
        details = {"status": status, "reason": reason[:64], "method": method}
        if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
            opsmetrics.provider_throttled("gmail", "http_429" if status == 429 else _snake(reason))
            delay = self.budget.refused(parse_retry_after(response.headers.get("retry-after")))
            return ProviderRateLimited(
                "Gmail is rate limiting this mailbox", retry_after=delay, details=details
            )
        if status == 403 and reason == "insufficientPermissions":
            return ProviderAuthError(
                "the mailbox did not grant a scope this needs", code="insufficient_scope", details=details
            )
        if status == 404 and not_found is not None:
            return not_found()
        if status >= 500:
            return ProviderError("Gmail failed", code="unavailable", details=details)
        refused = ProviderError("Gmail refused the request", code="gmail_request_refused", details=details)
        refused.retryable = False
        return refused

    # ------------------------------------------------------------------ users

    def get_profile(self) -> Profile:
        return Profile.model_validate(self._call("users.getProfile", "GET", "/profile"))

    def watch(self, topic_name: str, label_ids: Sequence[str] = (), behavior: str = "include") -> Watch:
        """Start (or replace) push notifications to `topic_name` (users.watch); renew daily."""
        body: dict[str, Any] = {"topicName": topic_name, "labelFilterBehavior": behavior.upper()}
        if label_ids:
            body["labelIds"] = list(label_ids)
        return Watch.model_validate(self._call("users.watch", "POST", "/watch", body=body))

    def stop(self) -> None:
        """End push notifications (users.stop)."""
        self._call("users.stop", "POST", "/stop")

    def list_labels(self) -> list[Label]:
        labels = self._call("users.labels.list", "GET", "/labels").get("labels") or []
        return [Label.model_validate(label) for label in labels]

    # ------------------------------------------------------------------ messages

    def list_messages(
        self,
        *,
        label_ids: Sequence[str] = (),
        query: str | None = None,
        include_spam_trash: bool = False,
        fields: str | None = None,
    ) -> MessageList:
        """Every page of users.messages.list (newest first), joined. `fields` (system parameter,
        e.g. `messages/id,nextPageToken`) trims each answer to what the caller reads."""
        refs: list[MessageRef] = []
        estimate = 0
        token: str | None = None
        while True:
            params: list[tuple[str, str]] = [("maxResults", str(self.page_size))]
            params += [("labelIds", label) for label in label_ids]
            if query:
                params.append(("q", query))
            if include_spam_trash:
                params.append(("includeSpamTrash", "true"))
            if fields:
                params.append(("fields", fields))
            if token:
                params.append(("pageToken", token))
            page = self._call("users.messages.list", "GET", "/messages", params=params)
            refs += [MessageRef.model_validate(m) for m in page.get("messages") or []]
            estimate = max(estimate, int(page.get("resultSizeEstimate") or 0))
            token = page.get("nextPageToken")
            if not token:
                return MessageList(messages=tuple(refs), result_size_estimate=estimate)

    def get_message(
        self,
        message_id: str,
        fmt: Literal["minimal", "metadata"] = "minimal",
        metadata_headers: Sequence[str] = (),
    ) -> Message:
        params: list[tuple[str, str]] = [("format", fmt)]
        params += [("metadataHeaders", name) for name in metadata_headers]
        data = self._call(
            "users.messages.get", "GET", f"/messages/{message_id}", params=params, not_found=_message_gone
        )
        headers = tuple(
            (str(h.get("name", "")), str(h.get("value", "")))
            for h in ((data.get("payload") or {}).get("headers") or [])
            if isinstance(h, dict)
        )
        return Message.model_validate({**data, "headers": headers})

    def get_raw(self, message_id: str) -> RawMessage:
        """users.messages.get?format=raw with `raw` decoded to the RFC 5322 bytes."""
        data = self._call(
            "users.messages.get",
            "GET",
            f"/messages/{message_id}",
            params={"format": "raw"},
            not_found=_message_gone,
        )
        try:
            raw = b64url_decode(str(data.get("raw") or ""))
        except (binascii.Error, ValueError) as exc:
            raise ProviderError("Gmail sent a message that is not base64url", code="protocol_error") from exc
        return RawMessage.model_validate({**data, "raw": raw})

    def get_raw_many(self, message_ids: Sequence[str]) -> RawBatch:
        """`get_raw` of each id, at most `max_concurrency` at a time. The first error other than
        a deleted message stops the batch: calls not started are not made."""
        batch = RawBatch()
        if not message_ids:
            return batch
        results: dict[str, RawMessage] = {}
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(message_ids))) as pool:
            futures = [(mid, pool.submit(self.get_raw, mid)) for mid in message_ids]
            for message_id, future in futures:
                if batch.error is not None:
                    future.cancel()
                    continue
                try:
                    results[message_id] = future.result()
                except MessageNotFound:
                    batch.missing.append(message_id)
                except ProviderError as exc:
                    batch.error = exc
                    for _, later in futures:
                        later.cancel()
        # Only an unbroken prefix counts as fetched: the caller resumes after it.
        for message_id in message_ids:
            if message_id in results:
                batch.messages.append(results[message_id])
            elif message_id not in batch.missing:
                break
        return batch

    def modify(self, message_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> MessageRef:
        body = {"addLabelIds": list(add), "removeLabelIds": list(remove)}
        data = self._call(
            "users.messages.modify",
            "POST",
            f"/messages/{message_id}/modify",
            body=body,
            not_found=_message_gone,
        )
        return MessageRef.model_validate(data)

    def trash(self, message_id: str) -> MessageRef:
        """users.messages.trash: TRASH added (and INBOX removed by Gmail); not a deletion."""
        data = self._call(
            "users.messages.trash", "POST", f"/messages/{message_id}/trash", not_found=_message_gone
        )
        return MessageRef.model_validate(data)

    def untrash(self, message_id: str) -> MessageRef:
        """users.messages.untrash: TRASH removed, the message back where it was."""
        data = self._call(
            "users.messages.untrash", "POST", f"/messages/{message_id}/untrash", not_found=_message_gone
        )
        return MessageRef.model_validate(data)

    def batch_modify(
        self, message_ids: Sequence[str], add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        """users.messages.batchModify in chunks of 1,000 ids (unknown ids are skipped by Gmail)."""
        add, remove = list(add), list(remove)
        for start in range(0, len(message_ids), MAX_BATCH_MODIFY):
            body = {
                "ids": list(message_ids[start : start + MAX_BATCH_MODIFY]),
                "addLabelIds": add,
                "removeLabelIds": remove,
            }
            self._call("users.messages.batchModify", "POST", "/messages/batchModify", body=body)

    def send(self, raw: bytes, thread_id: str | None = None) -> Sent:
        """users.messages.send of RFC 5322 bytes; `thread_id` files it in that Gmail thread (Gmail
        also needs References/In-Reply-To and a matching Subject to join it)."""
        body: dict[str, Any] = {"raw": b64url_encode(raw)}
        if thread_id:
            body["threadId"] = thread_id
        return Sent.model_validate(self._call("users.messages.send", "POST", "/messages/send", body=body))

    # ------------------------------------------------------------------ drafts [D: users.drafts]

    @staticmethod
    def _draft(raw: bytes, thread_id: str | None, draft_id: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"raw": b64url_encode(raw)}
        if thread_id:
            message["threadId"] = thread_id
        body: dict[str, Any] = {"message": message}
        if draft_id:
            body["id"] = draft_id
        return body

    def list_drafts(self) -> list[DraftRef]:
        """users.drafts.list, every page: each draft's id and its message's id and threadId."""
        found: list[DraftRef] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"maxResults": 500}
            if token:
                params["pageToken"] = token
            page = self._call("users.drafts.list", "GET", "/drafts", params=params)
            found += [DraftRef.model_validate(d) for d in page.get("drafts") or ()]
            token = page.get("nextPageToken")
            if not token:
                return found

    def create_draft(self, raw: bytes, thread_id: str | None = None) -> DraftRef:
        """users.drafts.create: the RFC 5322 bytes stored as a draft (label DRAFT)."""
        answer = self._call("users.drafts.create", "POST", "/drafts", body=self._draft(raw, thread_id))
        return DraftRef.model_validate(answer)

    def update_draft(self, draft_id: str, raw: bytes, thread_id: str | None = None) -> DraftRef:
        """users.drafts.update: replace the draft's content (same draft id, a new message id).
        A draft deleted meanwhile (in Gmail) is DraftNotFound."""
        answer = self._call(
            "users.drafts.update",
            "PUT",
            f"/drafts/{quote(draft_id, safe='')}",
            body=self._draft(raw, thread_id, draft_id),
            not_found=_draft_gone,
        )
        return DraftRef.model_validate(answer)

    def delete_draft(self, draft_id: str) -> None:
        """users.drafts.delete: permanently, not to the trash. DraftNotFound when already gone."""
        self._call(
            "users.drafts.delete", "DELETE", f"/drafts/{quote(draft_id, safe='')}", not_found=_draft_gone
        )

    def send_draft(self, draft_id: str, raw: bytes | None = None) -> Sent:
        """users.drafts.send: send the draft (its content replaced by `raw` first, when given) to
        its To, Cc and Bcc; Gmail removes the draft in the same call. DraftNotFound when gone."""
        body: dict[str, Any] = {"id": draft_id}
        if raw is not None:
            body["message"] = {"raw": b64url_encode(raw)}
        return Sent.model_validate(
            self._call("users.drafts.send", "POST", "/drafts/send", body=body, not_found=_draft_gone)
        )

    # ------------------------------------------------------------------ history

    def list_history(
        self,
        start_history_id: int,
        *,
        history_types: Sequence[str] = HISTORY_TYPES,
        label_id: str | None = None,
    ) -> History:
        """Every page of users.history.list after `start_history_id`, joined (no ceiling on the
        gap). HistoryExpired when Gmail no longer has that id (404): do a full sync."""
        records: list[HistoryRecord] = []
        token: str | None = None
        while True:
            params: list[tuple[str, str]] = [
                ("startHistoryId", str(start_history_id)),
                ("maxResults", str(self.page_size)),
            ]
            params += [("historyTypes", kind) for kind in history_types]
            if label_id:
                params.append(("labelId", label_id))
            if token:
                params.append(("pageToken", token))
            page = self._call(
                "users.history.list", "GET", "/history", params=params, not_found=_history_expired
            )
            records += [HistoryRecord.model_validate(r) for r in page.get("history") or []]
            token = page.get("nextPageToken")
            if not token:
                return History(
                    records=tuple(records), history_id=int(page.get("historyId") or start_history_id)
                )


def _draft_gone() -> ProviderError:
    return DraftNotFound("the Gmail draft does not exist (deleted or sent in Gmail)")


def _message_gone() -> ProviderError:
    return MessageNotFound("the message is no longer in the mailbox")


def _history_expired() -> ProviderError:
    return HistoryExpired("Gmail no longer has history from this point; a full sync is needed")
