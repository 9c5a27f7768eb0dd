"""Microsoft Graph v1.0 mail over httpx: typed results, typed errors, a request budget.

Endpoints and shapes from the Graph v1.0 reference (mailfolder-get, message-delta,
get-mime-content `$value`, message-update, message-move, user-sendmail, json-batching) under the
`GRAPH_API_URL` setting (`https://graph.microsoft.com/v1.0` by default), for the signed-in user
(`/me`). The host is a deployment setting, never tenant input, so plain httpx (timeouts, no
proxies from the environment) is used rather than the SSRF-guarded client; `ca_file` (a setting
used only with the local double) replaces the public roots.

Every message id is asked for and returned as an immutable id (`Prefer: IdType="ImmutableId"`,
outlook-immutable-id): it does not change when the message moves between folders.

Tokens come from a `TokenSource` (`mailbridge.oauth.tokens.access_token` for real accounts):
called with False for the cached token, with True after a 401 to force one refresh; a second
401 is ProviderAuthError(`reauth_required`). Errors as listed in `errors.py`; the request budget
(`budget.py`) is taken before every call, so the limits of Outlook are kept on our side.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import httpx

from mailbridge import opsmetrics
from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.providers.graph.budget import RequestBudget
from mailbridge.providers.graph.errors import DeltaReset, MessageNotFound
from mailbridge.providers.graph.models import DeltaMessage, DeltaPage, MailFolder, MimeBatch
from mailbridge.providers.http import parse_retry_after, transport_errors

TokenSource = Callable[[bool], str]
"""force_refresh -> a bearer access token."""

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_BATCH = 20  # requests per JSON batch [D: json-batching "Batch size limitations"]
DEFAULT_PAGE_SIZE = 100  # Prefer: odata.maxpagesize for messages/delta
IMMUTABLE = 'IdType="ImmutableId"'
WELL_KNOWN_FOLDERS = ("inbox", "sentitems", "archive", "deleteditems")
DELTA_SELECT = "id,conversationId,internetMessageId,isRead,flag,receivedDateTime,parentFolderId"
LIST_SELECT = "id,conversationId,isRead,flag,receivedDateTime"
LIST_TOP = 1000  # the largest $top Graph takes for user-list-messages / mailfolder-list-messages
RESET_CODES = frozenset({"syncstatenotfound", "resyncrequired"})


@lru_cache(maxsize=4)
def http_client(ca_file: str | None = None) -> httpx.Client:
    """One pooled client per process (and CA), shared by every account's adapter (thread-safe)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    return httpx.Client(
        timeout=TIMEOUT,
        trust_env=False,
        verify=verify,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )


def _error_code(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code") or "") if isinstance(error, dict) else ""


class GraphClient:
    """One Outlook mailbox (`/me`: the token's owner)."""

    def __init__(
        self,
        token: TokenSource,
        *,
        base_url: str = DEFAULT_GRAPH_URL,
        budget: RequestBudget | None = None,
        ca_file: str | None = None,
        http: httpx.Client | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_concurrency: int = 4,
    ) -> None:
        self.base = base_url.rstrip("/")
        self._token = token
        self.budget = budget or RequestBudget()
        self._http = http
        self.ca_file = ca_file
        self.page_size = page_size
        self.max_concurrency = max_concurrency
        self.requests = 0  # HTTP requests made (benchmarks: requests per message)

    @property
    def http(self) -> httpx.Client:
        return self._http or http_client(self.ca_file)

    def _url(self, path: str) -> str:
        return path if path.startswith("https://") or path.startswith("http://") else self.base + path

    # ------------------------------------------------------------------ transport

    def _send(
        self, verb: str, url: str, token: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        self.requests += 1
        with transport_errors("Graph"):
            return self.http.request(
                verb, url, headers={"Authorization": f"Bearer {token}", **headers}, **kwargs
            )

    def _call(
        self,
        verb: str,
        path: str,
        *,
        requests: int = 1,
        headers: dict[str, str] | None = None,
        not_found: Callable[[], ProviderError] | None = None,
        delta: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP call (`requests` Graph requests: more for a batch): take the budget, send,
        refresh the token once on 401, map errors. Returns the successful response."""
        wanted = {"Prefer": IMMUTABLE, **(headers or {})}
        url = self._url(path)
        with self.budget.take(requests):
            response = self._send(verb, url, self._token(False), wanted, **kwargs)
        if response.status_code == 401:
            with self.budget.take(requests):
                response = self._send(verb, url, self._token(True), wanted, **kwargs)
            if response.status_code == 401:
                raise ProviderAuthError("Graph refused the refreshed access token", code="reauth_required")
        if response.is_success:
            self.budget.succeeded()
            return response
        raise self._error(response, not_found, delta)

    def _json(self, verb: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._call(verb, path, **kwargs)
        if not response.content:
            return {}
        parsed = response.json()
        return parsed if isinstance(parsed, dict) else {}

    def _error(
        self, response: httpx.Response, not_found: Callable[[], ProviderError] | None, delta: bool
    ) -> ProviderError:
        status = response.status_code
        try:
            code = _error_code(response.json())
        except ValueError:
            code = ""
        details = {"status": status, "code": code[:64]}
        if status == 429:
            opsmetrics.provider_throttled("graph", "http_429")
            delay = self.budget.refused(parse_retry_after(response.headers.get("retry-after")))
            return ProviderRateLimited("Graph is throttling this mailbox", retry_after=delay, details=details)
        if delta and (status == 410 or code.lower() in RESET_CODES):
            return DeltaReset("Graph asks for a full resync of this folder", details=details)
        if status == 403:
            return ProviderAuthError(
                "the mailbox did not grant a permission this needs",
                code="insufficient_scope",
                details=details,
            )
        if status == 404 and not_found is not None:
            return not_found()
        if status >= 500:
            return ProviderError("Graph failed", code="unavailable", details=details)
        refused = ProviderError("Graph refused the request", code="graph_request_refused", details=details)
        refused.retryable = False
        return refused

    # ------------------------------------------------------------------ folders

    def folder(self, name_or_id: str) -> MailFolder:
        """GET /me/mailFolders/{id}; well-known names (`inbox`, `sentitems`, `archive`,
        `deleteditems`, resources/mailfolder) resolve to the folder's id."""
        return MailFolder.model_validate(self._json("GET", f"/me/mailFolders/{name_or_id}"))

    def well_known_folders(self, names: Sequence[str] = WELL_KNOWN_FOLDERS) -> dict[str, MailFolder]:
        return {name: self.folder(name) for name in names}

    # ------------------------------------------------------------------ delta

    def delta_pages(self, folder_id: str, link: str | None = None) -> Iterator[DeltaPage]:
        """The pages of one delta round of a folder's messages: from `link` (a saved nextLink or
        deltaLink) or, without one, a full initial round. Each page is yielded as it arrives;
        the last one carries the `delta_link` (message-delta, delta-query-messages). Raises
        DeltaReset when Graph no longer has the state (410, syncStateNotFound, resyncRequired)."""
        headers = {"Prefer": f"odata.maxpagesize={self.page_size}, {IMMUTABLE}"}
        url = link
        params: dict[str, str] | None = None
        if url is None:
            url = f"/me/mailFolders/{folder_id}/messages/delta"
            params = {"$select": DELTA_SELECT}
        while True:
            body = self._json("GET", url, headers=headers, params=params, delta=True)
            messages = tuple(
                DeltaMessage.from_graph(entry) for entry in body.get("value") or [] if isinstance(entry, dict)
            )
            next_link = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")
            if not next_link and not delta_link:
                raise ProviderError("Graph sent a delta page without a link", code="protocol_error")
            yield DeltaPage(
                messages, str(next_link) if next_link else None, str(delta_link) if delta_link else None
            )
            if not next_link:
                return
            url, params = str(next_link), None

    # ------------------------------------------------------------------ listing

    def list_messages(self, folder_id: str) -> list[DeltaMessage]:
        """Every message of a folder as the reconciler needs it, with the fewest requests:
        `GET /me/mailFolders/{id}/messages?$select=id,conversationId,isRead,flag,receivedDateTime
        &$top=1000` (mailfolder-list-messages), following `@odata.nextLink`. The fields beyond `id`
        are the few a missing message needs to be stored (its flags and thread) without a second
        request; bodies are never asked for."""
        url = f"/me/mailFolders/{folder_id}/messages"
        params: dict[str, str] | None = {"$select": LIST_SELECT, "$top": str(LIST_TOP)}
        out: list[DeltaMessage] = []
        while True:
            body = self._json("GET", url, params=params)
            out += [
                DeltaMessage.from_graph(entry) for entry in body.get("value") or [] if isinstance(entry, dict)
            ]
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return out
            url, params = str(next_link), None

    # ------------------------------------------------------------------ messages

    def get_mime(self, message_id: str) -> bytes:
        """GET /me/messages/{id}/$value: the message's RFC 5322 bytes (get-mime-content)."""
        return self._call("GET", f"/me/messages/{message_id}/$value", not_found=_message_gone).content

    def get_mime_many(self, message_ids: Sequence[str]) -> MimeBatch:
        """`$value` of each id by JSON batches of 20 (each inner request counts against the
        limits and can be throttled on its own while the batch answers 200; non-JSON bodies come
        back base64-encoded), at most `max_concurrency` batches in flight (the budget's slots
        bound them further)."""
        batch = MimeBatch()
        chunks = [list(message_ids[i : i + MAX_BATCH]) for i in range(0, len(message_ids), MAX_BATCH)]
        if not chunks:
            return batch
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(chunks))) as pool:
            for answers in pool.map(self._mime_batch, chunks):
                for message_id, (status, body, retry_after) in answers.items():
                    if status == 200 and body is not None:
                        batch.mime[message_id] = body
                    elif status == 404:
                        batch.missing.append(message_id)
                    elif status == 429:
                        batch.throttled.append(message_id)
                        batch.retry_after = max(batch.retry_after or 0.0, retry_after or 0.0) or None
                    else:
                        raise ProviderError(
                            "Graph failed a message download", code="unavailable", details={"status": status}
                        )
        if batch.throttled:
            opsmetrics.provider_throttled("graph", "batch_429")
            batch.retry_after = self.budget.refused(batch.retry_after)
        return batch

    def _mime_batch(self, ids: list[str]) -> dict[str, tuple[int, bytes | None, float | None]]:
        requests = [
            {"id": str(n), "method": "GET", "url": f"/me/messages/{mid}/$value"} for n, mid in enumerate(ids)
        ]
        body = self._json("POST", "/$batch", requests=len(ids), json={"requests": requests})
        out: dict[str, tuple[int, bytes | None, float | None]] = {}
        for answer in body.get("responses") or []:
            if not isinstance(answer, dict):
                continue
            try:
                message_id = ids[int(str(answer.get("id")))]
            except (ValueError, IndexError):
                continue
            status = int(answer.get("status") or 0)
            headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
            content: bytes | None = None
            if status == 200:
                try:
                    content = base64.b64decode(str(answer.get("body") or ""), validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise ProviderError("Graph sent MIME that is not base64", code="protocol_error") from exc
            out[message_id] = (status, content, parse_retry_after(headers.get("retry-after")))
        for message_id in ids:
            out.setdefault(message_id, (500, None, None))
        return out

    def update(self, message_id: str, *, is_read: bool | None = None, flagged: bool | None = None) -> None:
        """PATCH /me/messages/{id} with `isRead` and/or `flag.flagStatus` (message-update)."""
        body: dict[str, Any] = {}
        if is_read is not None:
            body["isRead"] = is_read
        if flagged is not None:
            body["flag"] = {"flagStatus": "flagged" if flagged else "notFlagged"}
        if body:
            self._call("PATCH", f"/me/messages/{message_id}", json=body, not_found=_message_gone)

    def move(self, message_id: str, destination: str) -> str:
        """POST /me/messages/{id}/move to a folder id or well-known name (message-move); returns
        the moved message's id (unchanged: immutable)."""
        data = self._json(
            "POST",
            f"/me/messages/{message_id}/move",
            json={"destinationId": destination},
            not_found=_message_gone,
        )
        return str(data.get("id") or message_id)

    def send_mime(self, raw: bytes) -> None:
        """POST /me/sendMail with the MIME as base64 `text/plain` (user-sendmail "MIME format"):
        the Message-ID in `raw` is kept and a copy is saved in Sent Items."""
        self._call(
            "POST",
            "/me/sendMail",
            headers={"Content-Type": "text/plain"},
            content=base64.b64encode(raw),
        )

    def create_draft_mime(self, raw: bytes) -> str:
        """POST /me/messages with the MIME as base64 `text/plain` (message-create, "MIME format"):
        a draft (`isDraft`) in Drafts; its immutable id."""
        data = self._json(
            "POST", "/me/messages", headers={"Content-Type": "text/plain"}, content=base64.b64encode(raw)
        )
        return str(data["id"])

    def delete(self, message_id: str) -> None:
        """DELETE /me/messages/{id} (message-delete: out of the folder, into Recoverable Items).
        MessageNotFound when already gone."""
        self._call("DELETE", f"/me/messages/{message_id}", not_found=_message_gone)


def _message_gone() -> ProviderError:
    return MessageNotFound("the message is no longer in the mailbox")
