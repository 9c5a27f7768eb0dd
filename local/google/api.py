"""Google's own endpoints on the double: OAuth, certs, Gmail v1 and People v1 connections.

Every Gmail call goes through the same gate, in the order Google's front end applies it:
bearer token (401), the mailbox named by `userId` (403 "Delegation denied"), the method's scopes
(403 insufficientPermissions; scope lists from the gmail.v1 discovery document [D]), injected
faults (5xx backendError), then the per-user quota (403 userRateLimitExceeded).
"""

from __future__ import annotations

import email
import email.message
import json
from dataclasses import dataclass
from datetime import timedelta
from email import policy
from typing import TYPE_CHECKING, Any

from local.google import mime
from local.google.errors import ApiError, bad_request, insufficient_scope, not_found, unauthenticated
from local.google.gmail import DEFAULT_PAGE, MAX_PAGE, Mailbox, StoredMessage, parse_date_header
from local.google.keys import CERTS_CACHE_CONTROL
from local.google.oauth import AccessToken
from local.google.people import people_error
from local.google.server import Call, Response, Route, route

if TYPE_CHECKING:
    from local.google.double import GoogleDouble

FULL = "https://mail.google.com/"
G = "https://www.googleapis.com/auth/gmail."
READ_META = (FULL, G + "metadata", G + "modify", G + "readonly")
READ_MESSAGE = (
    *READ_META,
    G + "addons.current.message.action",
    G + "addons.current.message.metadata",
    G + "addons.current.message.readonly",
)
MODIFY = (FULL, G + "modify")
INSERT = (FULL, G + "insert", G + "modify")
# Method -> accepted scopes, from gmail.v1 discovery rev 20240520 [D].
SCOPES: dict[str, tuple[str, ...]] = {
    "users.getProfile": (*READ_META, G + "compose"),
    "users.watch": READ_META,
    "users.stop": READ_META,
    "users.history.list": READ_META,
    "users.labels.list": (*READ_META, G + "labels"),
    "users.labels.get": (*READ_META, G + "labels"),
    "users.labels.create": (FULL, G + "labels", G + "modify"),
    "users.messages.list": READ_META,
    "users.messages.get": READ_MESSAGE,
    "users.messages.attachments.get": (
        FULL,
        G + "addons.current.message.action",
        G + "addons.current.message.readonly",
        G + "modify",
        G + "readonly",
    ),
    "users.messages.modify": MODIFY,
    "users.messages.batchModify": MODIFY,
    "users.messages.trash": MODIFY,
    "users.messages.untrash": MODIFY,
    "users.messages.delete": (FULL,),
    "users.messages.send": (
        FULL,
        G + "addons.current.action.compose",
        G + "compose",
        G + "modify",
        G + "send",
    ),
    "users.messages.insert": INSERT,
    "users.drafts.create": (FULL, G + "addons.current.action.compose", G + "compose", G + "modify"),
    "users.drafts.update": (FULL, G + "addons.current.action.compose", G + "compose", G + "modify"),
    "users.drafts.delete": (FULL, G + "addons.current.action.compose", G + "compose", G + "modify"),
    "users.drafts.get": (*READ_MESSAGE, G + "compose"),
    "users.drafts.list": (*READ_MESSAGE, G + "compose"),
    "users.drafts.send": (FULL, G + "addons.current.action.compose", G + "compose", G + "modify"),
    "users.messages.import": INSERT,
    "users.threads.get": READ_MESSAGE,
}
PEOPLE_SCOPES = (
    "https://www.googleapis.com/auth/contacts",
    "https://www.googleapis.com/auth/contacts.readonly",
)
CAL = "https://www.googleapis.com/auth/calendar"
CALENDAR_READ = (CAL, CAL + ".readonly", CAL + ".events", CAL + ".events.readonly")
CALENDAR_WRITE = (CAL, CAL + ".events")
# calendar.v3 discovery document: the scopes each events method accepts.
CALENDAR_SCOPES: dict[str, tuple[str, ...]] = {
    "events.list": CALENDAR_READ,
    "events.get": CALENDAR_READ,
    "events.insert": CALENDAR_WRITE,
    "events.patch": CALENDAR_WRITE,
    "events.delete": CALENDAR_WRITE,
}
FORMATS = ("minimal", "full", "raw", "metadata")
LABEL_FILTERS = ("include", "exclude")


@dataclass
class GmailCall:
    """A Gmail request that passed the gate: the mailbox it acts on and the token it used."""

    call: Call
    mailbox: Mailbox
    token: AccessToken
    metadata_only: bool  # the token's only Gmail scope is gmail.metadata


class GoogleApi:
    def __init__(self, double: GoogleDouble) -> None:
        self.double = double

    def routes(self) -> list[Route]:
        gm = "/gmail/v1/users/{userId}"
        up = "/upload/gmail/v1/users/{userId}"
        cal = "/calendar/v3/calendars/{calendarId}"
        return [
            route("GET", "/o/oauth2/v2/auth", self.authorize),
            route("POST", "/token", self.token),
            route("POST", "/revoke", self.revoke),
            route("GET", "/oauth2/v1/certs", self.certs_v1),
            route("GET", "/oauth2/v3/certs", self.certs_v3),
            route("GET", gm + "/profile", self.gmail("users.getProfile", self.get_profile)),
            route("POST", gm + "/watch", self.gmail("users.watch", self.watch)),
            route("POST", gm + "/stop", self.gmail("users.stop", self.stop)),
            route("GET", gm + "/history", self.gmail("users.history.list", self.history)),
            route("GET", gm + "/labels", self.gmail("users.labels.list", self.labels_list)),
            route("POST", gm + "/labels", self.gmail("users.labels.create", self.labels_create)),
            route("GET", gm + "/labels/{id}", self.gmail("users.labels.get", self.labels_get)),
            route("POST", gm + "/messages/send", self.gmail("users.messages.send", self.send)),
            route("POST", up + "/messages/send", self.gmail("users.messages.send", self.send)),
            route("POST", gm + "/messages/import", self.gmail("users.messages.import", self.import_)),
            route("POST", up + "/messages/import", self.gmail("users.messages.import", self.import_)),
            route(
                "POST",
                gm + "/messages/batchModify",
                self.gmail("users.messages.batchModify", self.batch_modify),
            ),
            route("GET", gm + "/messages", self.gmail("users.messages.list", self.messages_list)),
            route("POST", gm + "/messages", self.gmail("users.messages.insert", self.insert)),
            route("POST", up + "/messages", self.gmail("users.messages.insert", self.insert)),
            route("GET", gm + "/messages/{id}", self.gmail("users.messages.get", self.messages_get)),
            route("DELETE", gm + "/messages/{id}", self.gmail("users.messages.delete", self.messages_delete)),
            route("POST", gm + "/messages/{id}/modify", self.gmail("users.messages.modify", self.modify)),
            route("POST", gm + "/messages/{id}/trash", self.gmail("users.messages.trash", self.trash)),
            route("POST", gm + "/messages/{id}/untrash", self.gmail("users.messages.untrash", self.untrash)),
            route(
                "GET",
                gm + "/messages/{messageId}/attachments/{id}",
                self.gmail("users.messages.attachments.get", self.attachment),
            ),
            route("GET", gm + "/threads/{id}", self.gmail("users.threads.get", self.thread)),
            route("GET", gm + "/drafts", self.gmail("users.drafts.list", self.drafts_list)),
            route("POST", gm + "/drafts", self.gmail("users.drafts.create", self.drafts_create)),
            route("POST", gm + "/drafts/send", self.gmail("users.drafts.send", self.drafts_send)),
            route("GET", gm + "/drafts/{id}", self.gmail("users.drafts.get", self.drafts_get)),
            route("PUT", gm + "/drafts/{id}", self.gmail("users.drafts.update", self.drafts_update)),
            route("DELETE", gm + "/drafts/{id}", self.gmail("users.drafts.delete", self.drafts_delete)),
            route("GET", "/v1/{resource}/{name}/connections", self.connections),
            route("GET", cal + "/events", self.calendar("events.list", self.events_list)),
            route("POST", cal + "/events", self.calendar("events.insert", self.events_insert)),
            route("GET", cal + "/events/{eventId}", self.calendar("events.get", self.events_get)),
            route("PATCH", cal + "/events/{eventId}", self.calendar("events.patch", self.events_patch)),
            route("DELETE", cal + "/events/{eventId}", self.calendar("events.delete", self.events_delete)),
        ]

    # ------------------------------------------------------------------ OAuth and certs

    def authorize(self, call: Call) -> Response:
        params = {k: v[-1] for k, v in call.query.items()}
        with self.double.lock:
            location = self.double.oauth.authorize(params, self.double.now())
        return Response(302, b"", {"Location": location, "Cache-Control": "no-cache, no-store, max-age=0"})

    def token(self, call: Call) -> Response:
        with self.double.lock:
            body = self.double.oauth.token(call.form(), call.basic_auth(), self.double.now())
        return Response.json(200, body, {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})

    def revoke(self, call: Call) -> Response:
        token = call.form().get("token", "")
        with self.double.lock:
            self.double.oauth.revoke(token, self.double.now())
        return Response.json(200, {})

    def certs_v1(self, _call: Call) -> Response:
        return self._certs(self.double.keys.certs_v1())

    def certs_v3(self, _call: Call) -> Response:
        return self._certs(self.double.keys.jwks())

    def _certs(self, body: dict[str, Any]) -> Response:
        expires = self.double.now() + timedelta(hours=6)
        return Response.json(
            200,
            body,
            {"Cache-Control": CERTS_CACHE_CONTROL, "Expires": expires.strftime("%a, %d %b %Y %H:%M:%S GMT")},
        )

    # ------------------------------------------------------------------ the Gmail gate

    def gmail(self, method: str, handler: Any) -> Any:
        def gated(call: Call) -> Response:
            with self.double.lock:
                token = self._bearer(call)
                mailbox = self._mailbox(call.params["userId"], token)
                accepted = SCOPES[method]
                held = token.scopes & set(accepted)
                if not held:
                    raise insufficient_scope(list(accepted))
                metadata_only = held == {G + "metadata"}
                self.double.faults.check(method)
                self.double.quota.charge(mailbox.address.lower(), method, self.double.now())
                result: Response = handler(GmailCall(call, mailbox, token, metadata_only))
                return result

        return gated

    def _bearer(self, call: Call) -> AccessToken:
        header = call.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else call.one("access_token")
        if not value:
            raise unauthenticated(missing=True)
        token = self.double.oauth.bearer(value, self.double.now())
        if token is None:
            raise unauthenticated(missing=False)
        return token

    def _mailbox(self, user_id: str, token: AccessToken) -> Mailbox:
        owner = token.grant.email
        if user_id != "me" and user_id.lower() != owner:
            raise ApiError(403, f"Delegation denied for {owner}", "forbidden")
        mailbox = self.double.gmail.mailboxes.get(owner)
        if mailbox is None:
            raise ApiError(
                400, "Mail service not enabled", "failedPrecondition", status="FAILED_PRECONDITION"
            )
        return mailbox

    # ------------------------------------------------------------------ Gmail methods

    def get_profile(self, g: GmailCall) -> Response:
        return Response.json(200, self.double.gmail.profile(g.mailbox))

    def watch(self, g: GmailCall) -> Response:
        body = g.call.json()
        topic_name = str(body.get("topicName") or "")
        project = self.double.oauth.clients[g.token.grant.client_id].project_id
        parts = topic_name.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[1] != project or parts[2] != "topics":
            raise bad_request(
                f"Invalid topicName does not match projects/{project}/topics/*", location="topicName"
            )
        behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include").lower()
        if behavior not in LABEL_FILTERS:
            raise bad_request(f"Invalid value at 'label_filter_behavior': {behavior}")
        label_ids = [str(x) for x in body.get("labelIds") or []]
        topic = self.double.pubsub.topics.get(topic_name)
        if topic is None:
            message = f"Resource not found (resource={parts[3]})."
            raise ApiError(
                404, f"Error sending test message to Cloud PubSub {topic_name} : {message}", "notFound"
            )
        if not topic.gmail_can_publish:
            message = "User not authorized to perform this action."
            raise ApiError(
                403, f"Error sending test message to Cloud PubSub {topic_name} : {message}", "forbidden"
            )
        expiration = self.double.gmail.start_watch(g.mailbox, topic_name, label_ids, behavior)
        self.double.notify(g.mailbox, at_watch=True)
        return Response.json(
            200,
            {"historyId": str(g.mailbox.history_id), "expiration": str(int(expiration.timestamp() * 1000))},
        )

    def stop(self, g: GmailCall) -> Response:
        g.mailbox.watch = None
        return Response.empty()

    def history(self, g: GmailCall) -> Response:
        body = self.double.gmail.list_history(
            g.mailbox,
            g.call.one("startHistoryId"),
            g.call.many("historyTypes"),
            g.call.one("labelId"),
            _page_size(g.call.one("maxResults")),
            g.call.one("pageToken"),
        )
        return Response.json(200, body)

    def labels_list(self, g: GmailCall) -> Response:
        labels = [
            self.double.gmail.render_label(g.mailbox, lbl, counts=False) for lbl in g.mailbox.labels.values()
        ]
        return Response.json(200, {"labels": labels})

    def labels_get(self, g: GmailCall) -> Response:
        label = g.mailbox.labels.get(g.call.params["id"])
        if label is None:
            raise not_found()
        return Response.json(200, self.double.gmail.render_label(g.mailbox, label, counts=True))

    def labels_create(self, g: GmailCall) -> Response:
        label = self.double.gmail.create_label(g.mailbox, g.call.json())
        return Response.json(200, self.double.gmail.render_label(g.mailbox, label, counts=False))

    def messages_list(self, g: GmailCall) -> Response:
        if g.metadata_only and g.call.one("q"):
            raise ApiError(403, "Metadata scope does not support 'q' parameter", "forbidden")
        body = self.double.gmail.list_messages(
            g.mailbox,
            g.call.one("q"),
            g.call.many("labelIds"),
            g.call.flag("includeSpamTrash"),
            _page_size(g.call.one("maxResults")),
            g.call.one("pageToken"),
        )
        return Response.json(200, body)

    def messages_get(self, g: GmailCall) -> Response:
        fmt = (g.call.one("format") or "full").lower()
        if fmt not in FORMATS:
            raise bad_request(f"Invalid value at 'format' ({fmt})", location="format")
        if g.metadata_only and fmt in ("full", "raw"):
            raise ApiError(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
        message = self.double.gmail.find(g.mailbox, g.call.params["id"])
        return Response.json(200, self.double.gmail.render(message, fmt, g.call.many("metadataHeaders")))

    def messages_delete(self, g: GmailCall) -> Response:
        self.double.gmail.delete(g.mailbox, self.double.gmail.find(g.mailbox, g.call.params["id"]))
        return Response.empty()

    def modify(self, g: GmailCall) -> Response:
        body = g.call.json()
        add, remove = _label_list(body, "addLabelIds"), _label_list(body, "removeLabelIds")
        if len(add) > 100 or len(remove) > 100:
            raise bad_request("Too many labels: at most 100 can be added or removed in one call")
        message = self.double.gmail.find(g.mailbox, g.call.params["id"])
        self.double.gmail.modify(g.mailbox, message, add, remove)
        return Response.json(200, _minimal(message))

    def batch_modify(self, g: GmailCall) -> Response:
        body = g.call.json()
        ids = [str(x) for x in body.get("ids") or []]
        if not ids:
            raise bad_request("ids must be specified", location="ids")
        if len(ids) > 1000:
            raise bad_request("Too many ids: at most 1000 per request", location="ids")
        add, remove = _label_list(body, "addLabelIds"), _label_list(body, "removeLabelIds")
        self.double.gmail.batch_modify(g.mailbox, ids, add, remove)
        return Response.empty()

    def trash(self, g: GmailCall) -> Response:
        message = self.double.gmail.find(g.mailbox, g.call.params["id"])
        self.double.gmail.trash(g.mailbox, message)
        return Response.json(200, _minimal(message))

    def untrash(self, g: GmailCall) -> Response:
        message = self.double.gmail.find(g.mailbox, g.call.params["id"])
        self.double.gmail.untrash(g.mailbox, message)
        return Response.json(200, _minimal(message))

    def attachment(self, g: GmailCall) -> Response:
        message = self.double.gmail.find(g.mailbox, g.call.params["messageId"])
        data = self.double.gmail.attachment(message, g.call.params["id"])
        return Response.json(200, {"size": len(data), "data": mime.b64url(data)})

    def thread(self, g: GmailCall) -> Response:
        fmt = (g.call.one("format") or "full").lower()
        if fmt not in ("full", "metadata", "minimal"):
            raise bad_request(f"Invalid value at 'format' ({fmt})", location="format")
        if g.metadata_only and fmt == "full":
            raise ApiError(403, "Metadata scope doesn't allow format FULL", "forbidden")
        members = g.mailbox.thread(g.call.params["id"])
        if not members:
            raise not_found()
        rendered = [self.double.gmail.render(m, fmt, g.call.many("metadataHeaders")) for m in members]
        body = {
            "id": g.call.params["id"],
            "historyId": str(max(m.history_id for m in members)),
            "messages": rendered,
        }
        return Response.json(200, body)

    def send(self, g: GmailCall) -> Response:
        raw, meta = _upload(g.call)
        message = self.double.gmail.send(g.mailbox, raw, _thread_id(meta))
        return Response.json(200, _minimal(message))

    # Drafts [D: users.drafts]: the body is a Draft resource `{"id"?, "message": Message}`, its
    # message a Message with `raw` (and `threadId`); the answer a Draft `{"id", "message":
    # {"id", "threadId", "labelIds": ["DRAFT"]}}`, and for drafts.send the sent Message.

    def drafts_create(self, g: GmailCall) -> Response:
        raw, meta = _draft_message(g.call, required=True)
        assert raw is not None
        draft_id, message = self.double.gmail.create_draft(g.mailbox, raw, _thread_id(meta))
        return Response.json(200, {"id": draft_id, "message": _minimal(message)})

    def drafts_list(self, g: GmailCall) -> Response:
        """users.drafts.list: `{"drafts": [{"id", "message": {"id", "threadId"}}],
        "resultSizeEstimate"}`, `maxResults` (default 100, at most 500) a page, `nextPageToken`."""
        size = _page_size(g.call.one("maxResults"))
        ids = sorted(g.mailbox.drafts)
        token = g.call.one("pageToken") or "0"
        start = int(token) if token.isdigit() else 0
        page = ids[start : start + size]
        drafts = [
            {
                "id": d,
                "message": {
                    k: v
                    for k, v in _minimal(self.double.gmail.draft(g.mailbox, d)).items()
                    if k != "labelIds"
                },
            }
            for d in page
        ]
        body: dict[str, Any] = {"resultSizeEstimate": len(ids)}
        if drafts:
            body["drafts"] = drafts
        if start + size < len(ids):
            body["nextPageToken"] = str(start + size)
        return Response.json(200, body)

    def drafts_get(self, g: GmailCall) -> Response:
        draft_id = g.call.params["id"]
        message = self.double.gmail.draft(g.mailbox, draft_id)
        return Response.json(200, {"id": draft_id, "message": _minimal(message)})

    def drafts_update(self, g: GmailCall) -> Response:
        raw, meta = _draft_message(g.call, required=True)
        assert raw is not None
        draft_id = g.call.params["id"]
        message = self.double.gmail.update_draft(g.mailbox, draft_id, raw, _thread_id(meta))
        return Response.json(200, {"id": draft_id, "message": _minimal(message)})

    def drafts_delete(self, g: GmailCall) -> Response:
        self.double.gmail.delete_draft(g.mailbox, g.call.params["id"])
        return Response.empty(204)

    def drafts_send(self, g: GmailCall) -> Response:
        body = g.call.json()
        draft_id = body.get("id")
        if not isinstance(draft_id, str) or not draft_id:
            raise bad_request("Invalid draft id", location="id")
        raw, _meta = _draft_message(g.call, required=False)
        message = self.double.gmail.send_draft(g.mailbox, draft_id, raw)
        return Response.json(200, _minimal(message))

    def insert(self, g: GmailCall) -> Response:
        return self._store(g, default_labels=[], date_source="receivedTime", auto_thread=False)

    def import_(self, g: GmailCall) -> Response:
        return self._store(g, default_labels=["INBOX", "UNREAD"], date_source="dateHeader", auto_thread=True)

    def _store(
        self, g: GmailCall, default_labels: list[str], date_source: str, auto_thread: bool
    ) -> Response:
        raw, meta = _upload(g.call)
        source = g.call.one("internalDateSource") or date_source
        internal = self.double.now()
        if source == "dateHeader":
            internal = parse_date_header(raw) or internal
        labels = _label_list(meta, "labelIds") if "labelIds" in meta else default_labels
        message = self.double.gmail.add_message(
            g.mailbox,
            raw,
            labels,
            internal_date=internal,
            thread_id=_thread_id(meta),
            auto_thread=auto_thread,
        )
        return Response.json(200, _minimal(message))

    # ------------------------------------------------------------------ People

    def connections(self, call: Call) -> Response:
        with self.double.lock:
            token = self._bearer(call)
            if f"{call.params['resource']}/{call.params['name']}" != "people/me":
                raise people_error(400, "Only people/me is valid.", "INVALID_ARGUMENT")
            accepted = PEOPLE_SCOPES
            if not token.scopes & set(accepted):
                raise insufficient_scope(list(accepted))
            self.double.faults.check("people.connections.list")
            return Response.json(200, self.double.people.list_connections(token.grant.email, call.query))

    # ------------------------------------------------------------------ Calendar v3

    def calendar(self, method: str, handler: Any) -> Any:
        def gated(call: Call) -> Response:
            with self.double.lock:
                token = self._bearer(call)
                owner = token.grant.email
                calendar_id = call.params["calendarId"]
                if calendar_id != "primary" and calendar_id.lower() != owner.lower():
                    raise not_found()
                accepted = CALENDAR_SCOPES[method]
                if not token.scopes & set(accepted):
                    raise insufficient_scope(list(accepted))
                self.double.faults.check(method)
                result: Response = handler(call, owner)
                return result

        return gated

    def events_list(self, call: Call, owner: str) -> Response:
        return Response.json(200, self.double.calendars.list(owner, call.query))

    def events_get(self, call: Call, owner: str) -> Response:
        return Response.json(200, self.double.calendars.get(owner, call.params["eventId"]))

    def events_insert(self, call: Call, owner: str) -> Response:
        return Response.json(200, self.double.calendars.insert(owner, call.json(), call.headers))

    def events_patch(self, call: Call, owner: str) -> Response:
        event_id = call.params["eventId"]
        return Response.json(200, self.double.calendars.patch(owner, event_id, call.json(), call.headers))

    def events_delete(self, call: Call, owner: str) -> Response:
        self.double.calendars.remove(owner, call.params["eventId"], call.headers)
        return Response.empty(204)


def _page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isdigit():
        raise bad_request(
            f"Invalid value '{value}'. Values must match the format: unsigned integer", location="maxResults"
        )
    return min(max(int(value), 1), MAX_PAGE)


def _label_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise bad_request(f"Invalid value at '{key}'", location=key)
    return value


def _minimal(message: StoredMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"id": message.id, "threadId": message.thread_id}
    if message.labels:
        out["labelIds"] = list(message.labels)
    return out


def _draft_message(call: Call, *, required: bool) -> tuple[bytes | None, dict[str, Any]]:
    """The RFC 5322 bytes and Message metadata of a Draft resource's `message` (JSON path)."""
    body = call.json()
    message = body.get("message")
    if not isinstance(message, dict) or "raw" not in message:
        if required:
            raise bad_request("Missing draft message")
        return None, {}
    encoded = message.get("raw")
    if not isinstance(encoded, str) or not encoded:
        raise bad_request("Missing draft message")
    try:
        raw = mime.b64url_decode(encoded)
    except ValueError:
        raise bad_request(
            "Invalid value at 'draft.message.raw' (TYPE_BYTES), Base64 decoding failed"
        ) from None
    return raw, message


def _thread_id(meta: dict[str, Any]) -> str | None:
    value = meta.get("threadId")
    return str(value) if value else None


def _upload(call: Call) -> tuple[bytes, dict[str, Any]]:
    """The RFC 5322 bytes and the Message metadata of a send/insert/import request.

    JSON `{"raw": base64url, "threadId"?, "labelIds"?}` on the plain path; on /upload/ paths
    `uploadType=media` (the message itself, Content-Type message/rfc822) or `uploadType=multipart`
    (multipart/related: the JSON Message, then the message) [D: discovery mediaUpload].
    """
    meta: dict[str, Any] = {}
    if call.path.startswith("/upload/"):
        upload_type = call.one("uploadType")
        if upload_type == "media":
            raw = call.body
        elif upload_type == "multipart":
            raw, meta = _multipart(call)
        else:
            raise bad_request("Invalid uploadType: use media or multipart", location="uploadType")
    else:
        meta = call.json()
        encoded = meta.get("raw")
        if not isinstance(encoded, str) or not encoded:
            raise bad_request(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
            )
        try:
            raw = mime.b64url_decode(encoded)
        except ValueError:
            raise bad_request("Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed") from None
    if not raw.strip():
        raise bad_request(
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required"
        )
    return raw, meta


def _multipart(call: Call) -> tuple[bytes, dict[str, Any]]:
    content_type = call.headers.get("content-type", "")
    parsed = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + call.body, policy=policy.compat32
    )
    parts = parsed.get_payload() if parsed.is_multipart() else None
    if not isinstance(parts, list) or len(parts) != 2:
        raise bad_request("multipart upload needs two parts: the Message JSON and the message")
    meta_part, media_part = parts
    assert isinstance(meta_part, email.message.Message)
    assert isinstance(media_part, email.message.Message)
    meta_bytes = meta_part.get_payload(decode=True)
    try:
        meta = json.loads(meta_bytes if isinstance(meta_bytes, bytes) and meta_bytes.strip() else b"{}")
    except json.JSONDecodeError:
        raise bad_request("Invalid JSON payload received.", reason="parseError") from None
    media = media_part.get_payload(decode=True)
    return (media if isinstance(media, bytes) else b""), meta if isinstance(meta, dict) else {}
