"""Microsoft Graph v1.0: the mail, contacts, subscription and `$batch` endpoints over HTTP.

Paths are Graph's own [D: api reference pages user-list-mailfolders, mailfolder-get,
mailfolder-post-childfolders, user-list-messages, message-get, message-delta, message-update,
message-move, message-delete, message-send, user-post-messages, user-sendmail, get-mime-content
(`$value`), user-list-contacts, contact-delta, subscription-post-subscriptions / -get / -update /
-delete / -reauthorize, json-batching], under `/v1.0/me/...` and `/v1.0/users/{id | userPrincipalName}/...`.
Segment names match case-insensitively, `mailFolders('inbox')` equals `mailFolders/inbox`, and
`microsoft.graph.delta` equals `delta` [D: delta-query-overview "Tip"].

Every request passes one gate: bearer token (401 InvalidAuthenticationToken), the permission the
operation needs (403), the per-app per-mailbox limits (429, see throttle.py), an injected fault
(5xx), then the handler. Requests inside a `$batch` pass it one by one, so each can be throttled
while the batch answers 200 [D: json-batching "Batch size limitations"].
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from local.microsoft import calendar, render
from local.microsoft.contacts import ALL_PROPERTIES as CONTACT_PROPERTIES
from local.microsoft.contacts import ContactSource
from local.microsoft.delta import Source, removed_entry
from local.microsoft.errors import GraphError, access_denied, bad_request, invalid_token
from local.microsoft.identity import AccessToken, User
from local.microsoft.mail import FolderSource, Mailbox
from local.microsoft.server import Call, Response, Route

if TYPE_CHECKING:
    from local.microsoft.double import MicrosoftDouble

READ_MAIL = ("Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite")
WRITE_MAIL = ("Mail.ReadWrite",)
SEND_MAIL = ("Mail.Send",)
READ_CONTACTS = ("Contacts.Read", "Contacts.ReadWrite")
READ_CALENDAR = ("Calendars.Read", "Calendars.ReadWrite")
WRITE_CALENDAR = ("Calendars.ReadWrite",)
READ_USER = ("User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All")
DEFAULT_TOP = 10
MAX_TOP = 1000
MAX_BATCH = 20
INVALID_JSON = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
    "valid JSON format."
)


@dataclass
class GraphCall:
    call: Call
    path: str
    params: dict[str, str]
    token: AccessToken
    user: User
    mailbox: Mailbox | None
    link_base: str  # {origin}/v1.0/me or {origin}/v1.0/users/{id}
    immutable: bool

    @property
    def owner(self) -> Mailbox:
        assert self.mailbox is not None
        return self.mailbox


MailHandler = Callable[[GraphCall], Response]


def _mail_route(
    method: str, template: str, handler: MailHandler, scopes: tuple[str, ...]
) -> tuple[str, re.Pattern[str], MailHandler, tuple[str, ...]]:
    regex = re.sub(
        r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    )
    return method, re.compile(regex, re.IGNORECASE), handler, scopes


def normalize(path: str) -> str:
    """`/me/mailFolders('inbox')/messages/microsoft.graph.delta()` ->
    `/me/mailFolders/inbox/messages/delta`."""
    path = re.sub(r"\('([^']*)'\)", r"/\1", path)
    path = re.sub(r"/microsoft\.graph\.(\w+)(\(\))?", r"/\1", path, flags=re.IGNORECASE)
    path = re.sub(r"/(delta|send|move)\(\)", r"/\1", path, flags=re.IGNORECASE)
    return path.rstrip("/") or "/"


class GraphApi:
    def __init__(self, double: MicrosoftDouble) -> None:
        self.double = double
        self.mail_routes = [
            _mail_route("GET", "", self.profile, READ_USER),
            _mail_route("GET", "/mailFolders", self.folders, READ_MAIL),
            _mail_route("POST", "/mailFolders", self.create_folder, WRITE_MAIL),
            _mail_route("GET", "/mailFolders/{folder}", self.folder, READ_MAIL),
            _mail_route("GET", "/mailFolders/{folder}/childFolders", self.child_folders, READ_MAIL),
            _mail_route("POST", "/mailFolders/{folder}/childFolders", self.create_child_folder, WRITE_MAIL),
            _mail_route("GET", "/mailFolders/{folder}/messages/delta", self.delta, READ_MAIL),
            _mail_route("GET", "/mailFolders/{folder}/messages", self.list_messages, READ_MAIL),
            _mail_route("GET", "/mailFolders/{folder}/messages/{id}", self.get_message, READ_MAIL),
            _mail_route("GET", "/mailFolders/{folder}/messages/{id}/$value", self.mime, READ_MAIL),
            _mail_route("GET", "/messages", self.list_messages, READ_MAIL),
            _mail_route("POST", "/messages", self.create_draft, WRITE_MAIL),
            _mail_route("GET", "/messages/{id}", self.get_message, READ_MAIL),
            _mail_route("GET", "/messages/{id}/$value", self.mime, READ_MAIL),
            _mail_route("PATCH", "/messages/{id}", self.update_message, WRITE_MAIL),
            _mail_route("DELETE", "/messages/{id}", self.delete_message, WRITE_MAIL),
            _mail_route("POST", "/messages/{id}/move", self.move_message, WRITE_MAIL),
            _mail_route("POST", "/messages/{id}/send", self.send_draft, SEND_MAIL),
            _mail_route("POST", "/sendMail", self.send_mail, SEND_MAIL),
            _mail_route("GET", "/contacts", self.list_contacts, READ_CONTACTS),
            _mail_route("GET", "/contacts/delta", self.contacts_delta, READ_CONTACTS),
            _mail_route("GET", "/contacts/{id}", self.get_contact, READ_CONTACTS),
            _mail_route("GET", "/calendarView/delta", self.calendar_delta, READ_CALENDAR),
            _mail_route("POST", "/events", self.create_event, WRITE_CALENDAR),
            _mail_route("GET", "/events/{id}", self.get_event, READ_CALENDAR),
            _mail_route("PATCH", "/events/{id}", self.update_event, WRITE_CALENDAR),
            _mail_route("DELETE", "/events/{id}", self.delete_event, WRITE_CALENDAR),
        ]

    def routes(self) -> list[Route]:
        pattern = re.compile(r"/v1\.0(?P<rest>/.*)?", re.IGNORECASE)
        return [Route(method, pattern, self.entry) for method in ("GET", "POST", "PATCH", "DELETE", "PUT")]

    # ------------------------------------------------------------------ entry and gate

    def entry(self, call: Call) -> Response:
        path = normalize(call.params.get("rest") or "/")
        if path.lower() == "/$batch":
            if call.method != "POST":
                return GraphError(
                    405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target."
                ).response(self.double.ctx)
            return self.batch(call)
        return self.execute(call, path)

    def execute(self, call: Call, path: str) -> Response:
        double = self.double
        try:
            with double.lock:
                token, user = self._bearer(call)
                target = self._target(call, path, token, user)
            app_id, mailbox_address, upload = (
                token.client_id,
                user.address,
                len(call.body) if call.method in ("POST", "PATCH", "PUT") else 0,
            )
            double.throttle.enter(app_id, mailbox_address, double.now(), upload)
            try:
                double.throttle.wait_if_held(mailbox_address)
                double.faults.check(path)
                if target == "subscriptions":
                    return self.subscriptions(call, path, token, user)
                assert not isinstance(target, str)
                handler, graph_call = target
                with double.lock:
                    return handler(graph_call)
            finally:
                double.throttle.leave(app_id, mailbox_address)
        except GraphError as error:
            return error.response(double.ctx)

    def _bearer(self, call: Call) -> tuple[AccessToken, User]:
        header = call.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise invalid_token("Access token is empty.")
        value = header[7:].strip()
        token = self.double.identity.bearer(value, self.double.now())
        if token is None:
            if value in self.double.identity.access_tokens:
                raise invalid_token("Lifetime validation failed, the token is expired.")
            raise invalid_token("IDX14100: JWT is not well formed, there are no dots (.).")
        user = self.double.identity.user_by_oid(token.oid)
        assert user is not None
        return token, user

    def _target(
        self, call: Call, path: str, token: AccessToken, user: User
    ) -> str | tuple[MailHandler, GraphCall]:
        parts = path.split("/")
        if len(parts) > 1 and parts[1].lower() == "subscriptions":
            return "subscriptions"
        if len(parts) > 1 and parts[1].lower() == "me":
            owner_segment, rest = "me", "/".join(["", *parts[2:]]) if len(parts) > 2 else ""
            target_user = user
        elif len(parts) > 2 and parts[1].lower() == "users":
            owner_segment, rest = f"users/{parts[2]}", "/".join(["", *parts[3:]]) if len(parts) > 3 else ""
            found = self._user(parts[2])
            if found is None:
                raise GraphError(404, "ErrorInvalidUser", f"The requested user '{parts[2]}' is invalid.")
            target_user = found
        else:
            raise bad_request(
                f"Resource not found for the segment '{parts[1] if len(parts) > 1 else ''}'.", "BadRequest"
            )
        for method, pattern, handler, scopes in self.mail_routes:
            match = pattern.fullmatch(rest)
            if match is None:
                continue
            if method != call.method:
                continue
            if not token.scopes & set(scopes):
                if handler == self.profile:
                    raise GraphError(
                        403,
                        "Authorization_RequestDenied",
                        "Insufficient privileges to complete the operation.",
                    )
                raise access_denied()
            if target_user.oid != user.oid:
                raise access_denied()
            mailbox = self.double.mail.mailboxes.get(target_user.address.lower())
            if mailbox is None and handler != self.profile:
                raise GraphError(
                    404,
                    "MailboxNotEnabledForRESTAPI",
                    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
                )
            prefer = call.prefer()
            graph_call = GraphCall(
                call=call,
                path=rest,
                params=dict(match.groupdict()),
                token=token,
                user=target_user,
                mailbox=mailbox,
                link_base=f"{call.origin}/v1.0/{owner_segment}",
                immutable=prefer.get("idtype", "").lower() == "immutableid",
            )
            return handler, graph_call
        if any(pattern.fullmatch(rest) for _, pattern, _, _ in self.mail_routes):
            raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")
        raise bad_request(
            f"Resource not found for the segment '{rest.strip('/').split('/')[0]}'.", "BadRequest"
        )

    def _user(self, ref: str) -> User | None:
        identity = self.double.identity
        return identity.users.get(ref.lower()) or identity.user_by_oid(ref)

    # ------------------------------------------------------------------ users

    def profile(self, g: GraphCall) -> Response:
        user = g.user
        given, _, surname = user.name.partition(" ")
        return Response.json(
            200,
            {
                "@odata.context": f"{g.call.origin}/v1.0/$metadata#users/$entity",
                "businessPhones": [],
                "displayName": user.name,
                "givenName": given,
                "jobTitle": None,
                "mail": user.address,
                "mobilePhone": None,
                "officeLocation": None,
                "preferredLanguage": None,
                "surname": surname or None,
                "userPrincipalName": user.address,
                "id": user.oid,
            },
        )

    # ------------------------------------------------------------------ folders

    def folders(self, g: GraphCall) -> Response:
        mailbox = g.owner
        root = mailbox.well_known("msgfolderroot")
        return self._folder_list(g, root.id, "mailFolders")

    def child_folders(self, g: GraphCall) -> Response:
        parent = self.double.mail.folder(g.owner, g.params["folder"])
        return self._folder_list(g, parent.id, f"mailFolders('{parent.id}')/childFolders")

    def _folder_list(self, g: GraphCall, parent_id: str, segment: str) -> Response:
        hidden = (g.call.one("includeHiddenFolders") or "").lower() == "true"
        folders = [
            f for f in g.owner.folders.values() if f.parent_id == parent_id and (hidden or not f.hidden)
        ]
        folders.sort(key=lambda f: f.display_name.lower())
        rendered = [self.double.mail.folder_json(g.owner, f) for f in folders]
        return self._paged(g, rendered, segment, "mailFolders")

    def folder(self, g: GraphCall) -> Response:
        found = self.double.mail.folder(g.owner, g.params["folder"])
        body = {"@odata.context": f"{g.call.origin}/v1.0/$metadata#users('{g.user.oid}')/mailFolders/$entity"}
        return Response.json(200, body | self.double.mail.folder_json(g.owner, found))

    def create_folder(self, g: GraphCall) -> Response:
        return self._new_folder(g, g.owner.well_known("msgfolderroot").id)

    def create_child_folder(self, g: GraphCall) -> Response:
        return self._new_folder(g, self.double.mail.folder(g.owner, g.params["folder"]).id)

    def _new_folder(self, g: GraphCall, parent_id: str) -> Response:
        body = _json_body(g.call)
        name = body.get("displayName") if isinstance(body, dict) else None
        if not isinstance(name, str):
            raise bad_request("The displayName is required.", "ErrorInvalidRequest")
        folder = self.double.mail.create_folder(g.owner, name, parent_id, bool(body.get("isHidden", False)))
        return Response.json(201, self.double.mail.folder_json(g.owner, folder))

    # ------------------------------------------------------------------ messages

    def list_messages(self, g: GraphCall) -> Response:
        mail, mailbox = self.double.mail, g.owner
        select = render.parse_select(g.call.one("$select"), render.ALL_PROPERTIES, "microsoft.graph.message")
        if "folder" in g.params:
            folder = mail.folder(mailbox, g.params["folder"])
            messages = mailbox.in_folder(folder.id)
            segment = f"mailFolders('{folder.id}')/messages"
        else:
            messages = [m for m in mailbox.messages.values() if not mailbox.folders[m.folder_id].hidden]
            segment = "messages"
        messages = _filter(messages, g.call.one("$filter"))
        order = (g.call.one("$orderby") or "receivedDateTime desc").strip()
        descending = order.lower().endswith(" desc")
        field = order.split()[0]
        if field.lower() not in (
            "receiveddatetime",
            "sentdatetime",
            "lastmodifieddatetime",
            "createddatetime",
        ):
            raise bad_request(
                f"The $orderby expression '{order}' is not supported by the double.", "NotImplemented"
            )
        key = {
            "receiveddatetime": "received",
            "createddatetime": "created",
            "lastmodifieddatetime": "modified",
        }.get(field.lower(), "received")
        messages.sort(key=lambda m: (getattr(m, key), m.seq), reverse=descending)
        prefer_text = g.call.prefer().get("outlook.body-content-type", "").lower() == "text"
        rendered = [mail.render(m, select, g.immutable, prefer_text) for m in messages]
        return self._paged(g, rendered, segment, "messages", _preference(g))

    def _paged(
        self,
        g: GraphCall,
        items: list[dict[str, Any]],
        segment: str,
        context: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        top = _int_param(g.call.one("$top"), "$top", DEFAULT_TOP, 1, MAX_TOP)
        skip = _int_param(g.call.one("$skip"), "$skip", 0, 0, 10**9)
        page = items[skip : skip + top]
        body: dict[str, Any] = {
            "@odata.context": f"{g.call.origin}/v1.0/$metadata#users('{g.user.oid}')/{context}"
        }
        if (g.call.one("$count") or "").lower() == "true":
            body["@odata.count"] = len(items)
        body["value"] = page
        if skip + top < len(items):
            query = {k: v[-1] for k, v in g.call.query.items() if k.lower() not in ("$skip", "$top")}
            query |= {"$top": str(top), "$skip": str(skip + top)}
            body["@odata.nextLink"] = f"{g.link_base}/{segment}?{urlencode(query, safe='$,()')}"
        return Response.json(200, body, headers)

    def get_message(self, g: GraphCall) -> Response:
        mail, mailbox = self.double.mail, g.owner
        message = mail.find(mailbox, g.params["id"])
        if "folder" in g.params and mail.folder(mailbox, g.params["folder"]).id != message.folder_id:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        select = render.parse_select(g.call.one("$select"), render.ALL_PROPERTIES, "microsoft.graph.message")
        prefer_text = g.call.prefer().get("outlook.body-content-type", "").lower() == "text"
        body = {"@odata.context": f"{g.call.origin}/v1.0/$metadata#users('{g.user.oid}')/messages/$entity"}
        body |= mail.render(message, select, g.immutable, prefer_text)
        return Response.json(200, body, _preference(g))

    def mime(self, g: GraphCall) -> Response:
        message = self.double.mail.find(g.owner, g.params["id"])
        return Response(200, self.double.mail.mime(message), {"Content-Type": "text/plain"})

    def update_message(self, g: GraphCall) -> Response:
        mail = self.double.mail
        message = mail.find(g.owner, g.params["id"])
        mail.update(g.owner, message, _json_body(g.call))
        return Response.json(200, mail.render(message, None, g.immutable), _preference(g))

    def delete_message(self, g: GraphCall) -> Response:
        mail = self.double.mail
        mail.soft_delete(g.owner, mail.find(g.owner, g.params["id"]))
        return Response.empty(204)

    def move_message(self, g: GraphCall) -> Response:
        mail = self.double.mail
        message = mail.find(g.owner, g.params["id"])
        body = _json_body(g.call)
        destination = body.get("destinationId") if isinstance(body, dict) else None
        if not isinstance(destination, str) or not destination:
            raise bad_request("The destinationId is required.", "ErrorInvalidRequest")
        folder = mail.folder(g.owner, destination)
        mail.move(g.owner, message, folder)
        return Response.json(201, mail.render(message, None, g.immutable), _preference(g))

    def create_draft(self, g: GraphCall) -> Response:
        mail = self.double.mail
        if _is_mime(g.call):
            draft = mail.create_draft(g.owner, None, _mime_body(g.call))
        else:
            body = _json_body(g.call)
            if not isinstance(body, dict):
                raise bad_request(INVALID_JSON)
            draft = mail.create_draft(g.owner, body, None)
        return Response.json(201, mail.render(draft, None, g.immutable), _preference(g))

    def send_draft(self, g: GraphCall) -> Response:
        mail = self.double.mail
        mail.send_draft(g.owner, mail.find(g.owner, g.params["id"]))
        return Response.empty(202)

    def send_mail(self, g: GraphCall) -> Response:
        mail = self.double.mail
        if _is_mime(g.call):
            mail.send_mime(g.owner, _mime_body(g.call))
            return Response.empty(202)
        content_type = g.call.headers.get("content-type", "")
        if "json" not in content_type.lower():
            raise GraphError(
                415,
                "UnsupportedMediaType",
                f"The content type '{content_type}' is not supported; use application/json or text/plain.",
            )
        body = _json_body(g.call)
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            raise bad_request("Required parameter 'message' is missing.", "ErrorInvalidParameter")
        save = body.get("saveToSentItems", True)
        if isinstance(save, str):
            save = save.lower() != "false"
        mail.send_json(g.owner, body["message"], bool(save))
        return Response.empty(202)

    # ------------------------------------------------------------------ delta

    def delta(self, g: GraphCall) -> Response:
        mail, mailbox = self.double.mail, g.owner
        folder = mail.folder(mailbox, g.params["folder"])
        source = FolderSource(mail, mailbox, folder.id)
        link = f"{g.link_base}/mailFolders('{folder.id}')/messages/delta"
        prefer_text = g.call.prefer().get("outlook.body-content-type", "").lower() == "text"

        def entry(key: str, present: bool, select: list[str] | None) -> dict[str, Any]:
            message = mailbox.messages.get(key)
            if present and message is not None and message.folder_id == folder.id:
                return mail.render(message, select, g.immutable, prefer_text, delta=True)
            rest = next(
                (
                    r.rest_id
                    for r in reversed(mailbox.removals)
                    if r.immutable_id == key and r.folder_id == folder.id
                ),
                key,
            )
            return removed_entry(key if g.immutable else rest, "#microsoft.graph.message")

        select = render.parse_select(g.call.one("$select"), render.ALL_PROPERTIES, "microsoft.graph.message")
        return self._delta(g, folder.id, source, link, select, entry)

    def contacts_delta(self, g: GraphCall) -> Response:
        contacts = self.double.contacts
        book = contacts.book(g.owner.address)
        source = ContactSource(contacts, book)

        def entry(key: str, present: bool, select: list[str] | None) -> dict[str, Any]:
            contact = book.contacts.get(key)
            if present and contact is not None:
                return contacts.render(contact, select, delta=True)
            return removed_entry(key, "#microsoft.graph.contact")

        select = render.parse_select(g.call.one("$select"), CONTACT_PROPERTIES, "microsoft.graph.contact")
        return self._delta(g, "contacts", source, f"{g.link_base}/contacts/delta", select, entry)

    def _delta(
        self,
        g: GraphCall,
        collection: str,
        source: Source,
        link: str,
        select: list[str] | None,
        entry: Callable[[str, bool, list[str] | None], dict[str, Any]],
    ) -> Response:
        state = self.double.delta
        owner = g.owner.address.lower()
        skip = g.call.one("$skiptoken")
        delta_token = g.call.one("$deltatoken")
        if skip is not None or delta_token:
            token = skip if skip is not None else delta_token
            assert token is not None
            lineage, generation = state.resume(
                token, owner, collection, source, lambda: f"{link}?$deltatoken="
            )
        else:
            top_raw = g.call.one("$top")
            top = _int_param(top_raw, "$top", DEFAULT_TOP, 1, MAX_TOP) if top_raw else None
            lineage, generation = state.start(
                owner, collection, select, g.call.one("changeType"), top, source
            )
        prefer = g.call.prefer()
        page_size = None
        if "odata.maxpagesize" in prefer:
            page_size = _int_param(prefer["odata.maxpagesize"], "odata.maxpagesize", DEFAULT_TOP, 1, 10**6)
        page = state.page(lineage, generation, page_size, source)
        kind = "contact" if collection == "contacts" else "message"
        if collection.startswith(calendar.COLLECTION_PREFIX):
            kind = "event"
        body: dict[str, Any] = {"@odata.context": f"{g.call.origin}/v1.0/$metadata#Collection({kind})"}
        if page.complete:
            body["@odata.deltaLink"] = f"{link}?$deltatoken={page.token}"
        else:
            body["@odata.nextLink"] = f"{link}?$skiptoken={page.token}"
        body["value"] = [entry(key, present, lineage.select) for key, present in page.entries]
        applied = _preference(g, page_size)
        return Response.json(200, body, applied)

    # ------------------------------------------------------------------ calendar

    def calendar_delta(self, g: GraphCall) -> Response:
        """calendarView/delta: the window comes from the first request, then from the token."""
        calendars, state = self.double.calendars, self.double.delta
        book = calendars.book(g.owner.address)
        token = g.call.one("$skiptoken") or g.call.one("$deltatoken")
        if token:
            found = state.tokens.get(token)
            lineage = state.lineages.get(found[0]) if found else None
            name = lineage.collection if lineage is not None else calendar.collection(*_epoch_window())
            if not name.startswith(calendar.COLLECTION_PREFIX):
                name = calendar.collection(*_epoch_window())
        else:
            try:
                start = calendar.read_time({"dateTime": g.call.one("startDateTime") or "", "timeZone": "UTC"})
                end = calendar.read_time({"dateTime": g.call.one("endDateTime") or "", "timeZone": "UTC"})
            except GraphError:
                raise GraphError(
                    400,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the query string parameters "
                    "StartDateTime and EndDateTime.",
                ) from None
            name = calendar.collection(start, end)
        source = calendar.CalendarSource(calendars, book, *calendar.window_of(name))

        def entry(key: str, present: bool, select: list[str] | None) -> dict[str, Any]:  # noqa: ARG001
            event = book.events.get(key)
            if present and event is not None:
                return calendars.render(event, delta=True)
            return removed_entry(key, "#microsoft.graph.event")

        return self._delta(g, name, source, f"{g.link_base}/calendarView/delta", None, entry)

    def get_event(self, g: GraphCall) -> Response:
        calendars = self.double.calendars
        return Response.json(200, calendars.render(calendars.find(g.owner.address, g.params["id"])))

    def create_event(self, g: GraphCall) -> Response:
        body = _json_body(g.call)
        if not isinstance(body, dict):
            raise bad_request(INVALID_JSON, "BadRequest")
        calendars = self.double.calendars
        event = calendars.create(g.owner.address, body)
        return Response.json(201, calendars.render(event))

    def update_event(self, g: GraphCall) -> Response:
        body = _json_body(g.call)
        if not isinstance(body, dict):
            raise bad_request(INVALID_JSON, "BadRequest")
        calendars = self.double.calendars
        event = calendars.update(g.owner.address, g.params["id"], body, g.call.headers.get("if-match"))
        return Response.json(200, calendars.render(event))

    def delete_event(self, g: GraphCall) -> Response:
        self.double.calendars.remove(g.owner.address, g.params["id"], g.call.headers.get("if-match"))
        return Response.empty(204)

    # ------------------------------------------------------------------ contacts

    def list_contacts(self, g: GraphCall) -> Response:
        contacts = self.double.contacts
        select = render.parse_select(g.call.one("$select"), CONTACT_PROPERTIES, "microsoft.graph.contact")
        book = contacts.book(g.owner.address)
        items = sorted(
            book.contacts.values(), key=lambda c: (str(c.fields.get("displayName") or "").lower(), c.id)
        )
        return self._paged(g, [contacts.render(c, select) for c in items], "contacts", "contacts")

    def get_contact(self, g: GraphCall) -> Response:
        contacts = self.double.contacts
        contact = contacts.find(g.owner.address, g.params["id"])
        select = render.parse_select(g.call.one("$select"), CONTACT_PROPERTIES, "microsoft.graph.contact")
        return Response.json(200, contacts.render(contact, select))

    # ------------------------------------------------------------------ subscriptions

    def subscriptions(self, call: Call, path: str, token: AccessToken, user: User) -> Response:
        """Create (with the validation handshake, outside the double's lock), list, get, renew,
        delete, reauthorize."""
        double = self.double
        subs = double.subscriptions
        parts = [p for p in path.split("/") if p]
        if len(parts) == 1 and call.method == "POST":
            body = _json_body(call)
            with double.lock:
                mailbox = double.mail.mailboxes.get(user.address.lower())

                def folder_id(ref: str) -> str | None:
                    if mailbox is None:
                        return None
                    try:
                        return double.mail.folder(mailbox, ref).id
                    except GraphError:
                        return None

                parts_ok = subs.check_request(body, folder_id)
                owner_ref = parts_ok["owner_ref"]
                if owner_ref != "me" and self._user(owner_ref) is not user:
                    raise access_denied()
                needed = READ_MAIL if parts_ok["kind"] == "messages" else READ_CONTACTS
                if not token.scopes & set(needed):
                    raise GraphError(
                        403,
                        "ExtensionError",
                        "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is "
                        "denied. Check credentials and try again.]",
                    )
            subs.validate(parts_ok["notification_url"])
            if parts_ok["lifecycle_url"] is not None:
                subs.validate(parts_ok["lifecycle_url"])
            with double.lock:
                immutable = call.prefer().get("idtype", "").lower() == "immutableid"
                created = subs.add(
                    parts_ok, token.client_id, user.address, user.oid, user.tid, immutable, token.expires_at
                )
                out = {
                    "@odata.context": f"{call.origin}/v1.0/$metadata#subscriptions/$entity"
                } | created.json()
            return Response.json(201, out)
        with double.lock:
            if len(parts) == 1 and call.method == "GET":
                mine = [
                    s.json()
                    for s in subs.subscriptions.values()
                    if s.app_id == token.client_id and s.creator_oid == user.oid
                ]
                return Response.json(
                    200, {"@odata.context": f"{call.origin}/v1.0/$metadata#subscriptions", "value": mine}
                )
            if len(parts) < 2:
                raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")
            subscription = subs.owned(parts[1], token.client_id)
            if len(parts) == 3 and parts[2].lower() == "reauthorize" and call.method == "POST":
                subs.reauthorize(subscription, token.expires_at)
                return Response.empty(204)
            if len(parts) == 2 and call.method == "GET":
                return Response.json(
                    200,
                    {"@odata.context": f"{call.origin}/v1.0/$metadata#subscriptions/$entity"}
                    | subscription.json(),
                )
            if len(parts) == 2 and call.method == "PATCH":
                subs.renew(subscription, _json_body(call), token.expires_at)
                return Response.json(
                    200,
                    {"@odata.context": f"{call.origin}/v1.0/$metadata#subscriptions/$entity"}
                    | subscription.json(),
                )
            if len(parts) == 2 and call.method == "DELETE":
                subs.delete(subscription)
                return Response.empty(204)
        raise GraphError(405, "ErrorInvalidRequest", "The OData request is not supported.")

    # ------------------------------------------------------------------ $batch

    def batch(self, call: Call) -> Response:
        """JSON batching: up to 20 requests, each answered with its own status [D: json-batching]."""
        ctx = self.double.ctx
        try:
            body = json.loads(call.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return bad_request(INVALID_JSON).response(ctx)
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return bad_request("Invalid batch payload format.", "BadRequest").response(ctx)
        if len(requests) > MAX_BATCH:
            return bad_request(
                f"Number of requests exceeds the maximum of {MAX_BATCH}.", "BadRequest"
            ).response(ctx)
        ids = [str((r or {}).get("id", "")) for r in requests]
        if any(not i for i in ids) or len({i.lower() for i in ids}) != len(ids):
            return bad_request("Batch request ids must be unique and not empty.", "BadRequest").response(ctx)
        statuses: dict[str, int] = {}
        responses: list[dict[str, Any]] = []
        for item in requests:
            item_id = str(item["id"])
            depends = [str(d) for d in item.get("dependsOn") or []]
            if any(statuses.get(d.lower(), 0) >= 400 or d.lower() not in statuses for d in depends):
                statuses[item_id.lower()] = 424
                responses.append(
                    {
                        "id": item_id,
                        "status": 424,
                        "headers": {},
                        "body": GraphError(424, "FailedDependency", "Failed dependency.").body(ctx),
                    }
                )
                continue
            inner = self._inner_call(call, item)
            if isinstance(inner, Response):
                response = inner
            else:
                response = self.execute(inner, normalize(inner.path[len("/v1.0") :]))
            statuses[item_id.lower()] = response.status
            responses.append(_batch_item(item_id, response))
        order = list(range(len(responses)))
        self.double.ids.shuffle(order)
        return Response.json(200, {"responses": [responses[i] for i in order]})

    def _inner_call(self, outer: Call, item: dict[str, Any]) -> Call | Response:
        ctx = self.double.ctx
        method = str(item.get("method") or "").upper()
        url = str(item.get("url") or "")
        if method not in ("GET", "POST", "PATCH", "PUT", "DELETE") or not url:
            return bad_request("Invalid method or url in batch request.", "BadRequest").response(ctx)
        if "://" in url:
            return bad_request("The url of a batch request must be relative.", "BadRequest").response(ctx)
        parts = urlsplit(url if url.startswith("/") else "/" + url)
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        raw_body = item.get("body")
        body = b""
        if raw_body is not None:
            if "content-type" not in headers:
                return bad_request(
                    "Content-Type header must be specified when a body is included.", "BadRequest"
                ).response(ctx)
            if isinstance(raw_body, dict | list):
                body = json.dumps(raw_body).encode()
            else:
                body = str(raw_body).encode()
        headers["authorization"] = outer.headers.get("authorization", "")
        return Call(
            method=method,
            path="/v1.0" + parts.path,
            params={},
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
            scheme=outer.scheme,
            host=outer.host,
        )


def _epoch_window() -> tuple[datetime, datetime]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch, epoch


def _batch_item(item_id: str, response: Response) -> dict[str, Any]:
    headers = dict(response.headers)
    out: dict[str, Any] = {"id": item_id, "status": response.status, "headers": headers}
    if response.body:
        if "json" in headers.get("Content-Type", ""):
            out["body"] = json.loads(response.body)
        else:
            out["body"] = base64.b64encode(response.body).decode("ascii")
    return out


def _json_body(call: Call) -> Any:
    try:
        return call.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request(INVALID_JSON) from None


def _is_mime(call: Call) -> bool:
    return call.headers.get("content-type", "").lower().startswith("text/plain")


def _mime_body(call: Call) -> bytes:
    """The base64 MIME of sendMail / create message; malformed -> the documented 400 [D: user-sendmail]."""
    text = re.sub(rb"\s", b"", call.body)
    try:
        raw = base64.b64decode(text, validate=True) if text else b""
    except (binascii.Error, ValueError):
        raw = b""
    if not raw.strip() or b":" not in raw.split(b"\n", 1)[0]:
        raise GraphError(
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
            with_inner=False,
        )
    return raw


def _int_param(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise bad_request(f"Invalid value '{value}' for query parameter '{name}'.", "BadRequest")
    return min(max(int(value), low), high)


def _preference(g: GraphCall, page_size: int | None = None) -> dict[str, str]:
    applied = []
    if page_size is not None:
        applied.append(f"odata.maxpagesize={page_size}")
    if g.immutable:
        applied.append('IdType="ImmutableId"')
    return {"Preference-Applied": ", ".join(applied)} if applied else {}


_COMPARISONS: dict[str, Callable[[datetime, datetime], bool]] = {
    "ge": operator.ge,
    "gt": operator.gt,
    "le": operator.le,
    "lt": operator.lt,
}
_FILTER = re.compile(
    r"(isRead)\s+eq\s+(true|false)|(receivedDateTime)\s+(ge|gt|le|lt)\s+(\S+)", re.IGNORECASE
)


def _filter(messages: list[Any], expression: str | None) -> list[Any]:
    """The few `$filter` forms the double answers, joined by `and`: `isRead eq true|false` and
    `receivedDateTime ge|gt|le|lt <iso>`. Anything else is 501 NotImplemented (Graph supports more;
    the double says so instead of guessing)."""
    if not expression:
        return messages
    out = list(messages)
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = _FILTER.fullmatch(clause.strip())
        if match is None:
            raise GraphError(501, "NotImplemented", f"The double does not implement the filter '{clause}'.")
        if match.group(1):
            wanted = match.group(2).lower() == "true"
            out = [m for m in out if m.is_read == wanted]
            continue
        comparison, raw = match.group(4).lower(), match.group(5)
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise bad_request(f"Invalid date-time '{raw}' in $filter.", "BadRequest") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        compare = _COMPARISONS[comparison]
        out = [m for m in out if compare(m.received, when)]
    return out
