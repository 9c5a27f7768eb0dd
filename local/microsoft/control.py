"""The double's own control surface under /__double__/ (for the local runner and `make mailbox`).

JSON in, JSON out; the same operations as MicrosoftDouble's Python methods. Loopback only and
unauthenticated: a development tool, never deployed.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Any

from local.microsoft.errors import GraphError, bad_request
from local.microsoft.mail import Message
from local.microsoft.render import iso
from local.microsoft.server import Call, Response, Route, route

if TYPE_CHECKING:
    from local.microsoft.double import MicrosoftDouble

PREFIX = "/__double__"


class ControlApi:
    def __init__(self, double: MicrosoftDouble) -> None:
        self.double = double

    def routes(self) -> list[Route]:
        user = PREFIX + "/users/{address}"
        message = user + "/messages/{id}"
        return [
            route("GET", PREFIX, self.state),
            route("GET", PREFIX + "/", self.state),
            route("POST", PREFIX + "/apps", self.app),
            route("POST", PREFIX + "/users", self.user),
            route("POST", user + "/sign-in", self.sign_in),
            route("POST", user + "/messages", self.deliver),
            route("GET", message, self.message),
            route("PATCH", message, self.update),
            route("POST", message + "/move", self.move),
            route("DELETE", message, self.delete),
            route("GET", user + "/folders/{folder}", self.folder),
            route("POST", user + "/folders", self.create_folder),
            route("GET", user + "/sent", self.sent),
            route("POST", user + "/revoke", self.revoke),
            route("POST", user + "/delta", self.delta),
            route("POST", user + "/contacts", self.contact),
            route("GET", PREFIX + "/subscriptions", self.subscriptions),
            route("POST", PREFIX + "/subscriptions/{id}/lifecycle", self.lifecycle),
            route("POST", PREFIX + "/notifications", self.notifications),
            route("GET", PREFIX + "/deliveries", self.deliveries),
            route("POST", PREFIX + "/faults", self.fault),
            route("POST", PREFIX + "/clock/advance", self.advance),
        ]

    def _body(self, call: Call) -> dict[str, Any]:
        try:
            value = call.json()
        except ValueError:
            raise bad_request("Invalid JSON.") from None
        if not isinstance(value, dict):
            raise bad_request("A JSON object is expected.")
        return value

    def _run(self, action: Any) -> Any:
        try:
            return action()
        except KeyError as exc:
            raise GraphError(404, "NotFound", f"Unknown {exc}.") from None
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    def state(self, _call: Call) -> Response:
        with self.double.lock:
            users = sorted(self.double.identity.users)
            apps = sorted(self.double.identity.apps)
        return Response.json(
            200, {"urls": self.double.urls(), "users": users, "apps": apps, "now": iso(self.double.now())}
        )

    def app(self, call: Call) -> Response:
        body = self._body(call)
        app = self._run(
            lambda: self.double.register_app(
                [str(u) for u in body.get("redirect_uris") or []],
                body.get("client_id"),
                body.get("client_secret"),
                str(body.get("audience") or "AzureADandPersonalMicrosoftAccount"),
            )
        )
        return Response.json(
            201,
            {
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "redirect_uris": app.redirect_uris,
                "audience": app.audience,
            },
        )

    def user(self, call: Call) -> Response:
        body = self._body(call)
        address = str(body.get("address") or "")
        if "@" not in address:
            raise bad_request("address is required")
        mailbox = self.double.add_user(
            address, body.get("name"), bool(body.get("personal", False)), body.get("tenant")
        )
        user = self.double.identity.users[address.lower()]
        return Response.json(201, {"address": mailbox.address, "id": user.oid, "tenantId": user.tid})

    def sign_in(self, call: Call) -> Response:
        self._run(lambda: self.double.sign_in(call.params["address"]))
        return Response.empty()

    def deliver(self, call: Call) -> Response:
        body = self._body(call)
        if "raw_base64" in body:
            try:
                raw = base64.b64decode(str(body["raw_base64"]), validate=True)
            except (binascii.Error, ValueError):
                raise bad_request("raw_base64 is not base64") from None
        else:
            raw = str(body.get("raw") or "").encode()
        if not raw.strip():
            raise bad_request("raw (text) or raw_base64 is required")
        received = body.get("received")
        when = datetime.fromisoformat(str(received).replace("Z", "+00:00")) if received else None
        message = self._run(
            lambda: self.double.deliver(
                call.params["address"],
                raw,
                str(body.get("folder") or "inbox"),
                when,
                bool(body.get("is_read", False)),
            )
        )
        return Response.json(201, _message(message))

    def message(self, call: Call) -> Response:
        return Response.json(
            200, _message(self._run(lambda: self.double.message(call.params["address"], call.params["id"])))
        )

    def update(self, call: Call) -> Response:
        body = self._body(call)
        address, message_id = call.params["address"], call.params["id"]
        message: Message | None = None
        if "is_read" in body:
            message = self._run(lambda: self.double.mark_read(address, message_id, bool(body["is_read"])))
        if "flag" in body:
            message = self._run(lambda: self.double.flag(address, message_id, str(body["flag"])))
        if message is None:
            raise bad_request("is_read or flag is required")
        return Response.json(200, _message(message))

    def move(self, call: Call) -> Response:
        folder = str(self._body(call).get("folder") or "")
        message = self._run(lambda: self.double.move(call.params["address"], call.params["id"], folder))
        return Response.json(200, _message(message))

    def delete(self, call: Call) -> Response:
        if (call.one("purge") or "").lower() == "true":
            self._run(lambda: self.double.purge(call.params["address"], call.params["id"]))
            return Response.empty()
        message = self._run(lambda: self.double.delete(call.params["address"], call.params["id"]))
        return Response.json(200, _message(message))

    def folder(self, call: Call) -> Response:
        messages = self._run(
            lambda: self.double.folder_contents(call.params["address"], call.params["folder"])
        )
        return Response.json(200, [_message(m) for m in messages])

    def create_folder(self, call: Call) -> Response:
        body = self._body(call)
        folder_id = self._run(
            lambda: self.double.create_folder(
                call.params["address"], str(body.get("name") or ""), body.get("parent")
            )
        )
        return Response.json(201, {"id": folder_id})

    def sent(self, call: Call) -> Response:
        sent = self._run(lambda: self.double.sent(call.params["address"]))
        return Response.json(
            200,
            [
                {
                    "internetMessageId": s.internet_message_id,
                    "recipients": s.recipients,
                    "at": iso(s.at),
                    "savedToSentItems": s.saved_to_sent_items,
                    "raw": s.raw.decode("utf-8", "replace"),
                }
                for s in sent
            ],
        )

    def revoke(self, call: Call) -> Response:
        body = self._body(call)
        kind = str(body.get("kind") or "sessions")
        address = call.params["address"]
        if kind == "sessions":
            self._run(lambda: self.double.revoke(address))
            return Response.json(200, {"revoked": "sessions"})
        if kind == "consent":
            count = self._run(lambda: self.double.withdraw_consent(address, body.get("client_id")))
            return Response.json(200, {"revoked": "consent", "grants": count})
        if kind == "access_tokens":
            return Response.json(
                200, {"expired": self._run(lambda: self.double.expire_access_tokens(address))}
            )
        raise bad_request("kind is sessions, consent or access_tokens")

    def delta(self, call: Call) -> Response:
        body = self._body(call)
        action, folder, address = str(body.get("action") or ""), body.get("folder"), call.params["address"]
        if action == "expire":
            return Response.json(
                200, {"expired": self._run(lambda: self.double.expire_delta_tokens(address, folder))}
            )
        if action == "reset":
            return Response.json(200, {"reset": self._run(lambda: self.double.reset_delta(address, folder))})
        if action == "replay":
            self._run(lambda: self.double.inject_replays(address, int(body.get("pages", 1))))
            return Response.empty()
        raise bad_request("action is expire, reset or replay")

    def contact(self, call: Call) -> Response:
        body = self._body(call)
        contact = self._run(
            lambda: self.double.add_contact(
                call.params["address"],
                name=body.get("name"),
                emails=body.get("emails"),
                company=body.get("company"),
                title=body.get("title"),
                phones=body.get("phones"),
                contact_id=body.get("id"),
            )
        )
        return Response.json(201, {"id": contact.id})

    def subscriptions(self, _call: Call) -> Response:
        with self.double.lock:
            values = [
                s.json() | {"owner": s.owner, "paused": s.paused}
                for s in self.double.subscriptions.subscriptions.values()
            ]
        return Response.json(200, values)

    def lifecycle(self, call: Call) -> Response:
        event = str(self._body(call).get("event") or "")
        self._run(lambda: self.double.send_lifecycle(call.params["id"], event))
        return Response.empty()

    def notifications(self, call: Call) -> Response:
        body = self._body(call)
        if body.get("drop"):
            self.double.drop_notifications(int(body["drop"]))
        return Response.empty()

    def deliveries(self, _call: Call) -> Response:
        return Response.json(
            200,
            [
                {
                    "url": d.url,
                    "kind": d.kind,
                    "count": d.count,
                    "status": d.status,
                    "error": d.error,
                    "attempt": d.attempt,
                    "at": iso(d.at),
                }
                for d in self.double.deliveries()
            ],
        )

    def fault(self, call: Call) -> Response:
        body = self._body(call)
        self._run(
            lambda: self.double.fail_next(
                int(body.get("count", 1)), int(body.get("status", 503)), body.get("match")
            )
        )
        return Response.empty()

    def advance(self, call: Call) -> Response:
        self._run(lambda: self.double.advance(float(self._body(call).get("seconds", 0))))
        return Response.json(200, {"now": iso(self.double.now())})


def _message(message: Message) -> dict[str, Any]:
    return {
        "id": message.rest_id,
        "immutableId": message.immutable_id,
        "folderId": message.folder_id,
        "conversationId": message.conversation_id,
        "internetMessageId": message.internet_message_id,
        "isRead": message.is_read,
        "flag": message.flag.get("flagStatus"),
    }
