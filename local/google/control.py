"""The double's own control surface under /__double__/ (for the local runner and `make mailbox`).

JSON in, JSON out; the same operations as GoogleDouble's Python methods. Loopback only and
unauthenticated: a development tool, never deployed.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from local.google import mime
from local.google.errors import bad_request
from local.google.server import Call, Response, Route, route

if TYPE_CHECKING:
    from local.google.double import GoogleDouble

PREFIX = "/__double__"


class ControlApi:
    def __init__(self, double: GoogleDouble) -> None:
        self.double = double

    def routes(self) -> list[Route]:
        user = PREFIX + "/users/{address}"
        return [
            route("GET", PREFIX, self.state),
            route("POST", PREFIX + "/clients", self.client),
            route("POST", PREFIX + "/users", self.user),
            route("GET", user, self.mailbox),
            route("GET", user + "/messages", self.messages),
            route("POST", user + "/messages", self.deliver),
            route("GET", user + "/messages/{id}", self.message),
            route("DELETE", user + "/messages/{id}", self.delete),
            route("POST", user + "/messages/{id}/labels", self.relabel),
            route("POST", user + "/messages/{id}/trash", self.trash),
            route("GET", user + "/sent", self.sent),
            route("POST", user + "/revoke", self.revoke),
            route("POST", user + "/truncate-history", self.truncate),
            route("POST", user + "/contacts", self.contact),
            route("POST", PREFIX + "/topics", self.topic),
            route("POST", PREFIX + "/faults", self.fault),
            route("POST", PREFIX + "/pushes", self.pushes),
            route("GET", PREFIX + "/pushes", self.deliveries),
            route("POST", PREFIX + "/clock/advance", self.advance),
        ]

    def state(self, _call: Call) -> Response:
        with self.double.lock:
            users = sorted(self.double.gmail.mailboxes)
            clients = sorted(self.double.oauth.clients)
        return Response.json(200, {"urls": self.double.urls(), "users": users, "clients": clients})

    def client(self, call: Call) -> Response:
        body = call.json()
        client = self.double.register_client(
            [str(u) for u in body.get("redirect_uris") or []],
            body.get("client_id"),
            body.get("client_secret"),
            str(body.get("project_id") or "mailbridge-local"),
        )
        return Response.json(201, client.__dict__)

    def user(self, call: Call) -> Response:
        body = call.json()
        address = str(body.get("address") or "")
        if "@" not in address:
            raise bad_request("address is required")
        mailbox = self.double.add_user(address, body.get("name"))
        return Response.json(201, {"address": mailbox.address, "historyId": str(mailbox.history_id)})

    def mailbox(self, call: Call) -> Response:
        with self.double.lock:
            mailbox = self.double.gmail.mailbox(call.params["address"])
            watch = mailbox.watch
            body: dict[str, Any] = self.double.gmail.profile(mailbox)
            body["watch"] = watch and {
                "topicName": watch.topic_name,
                "expiration": watch.expiration.isoformat(),
            }
        return Response.json(200, body)

    def deliver(self, call: Call) -> Response:
        body = call.json()
        if "raw_base64" in body:
            raw = base64.b64decode(str(body["raw_base64"]))
        else:
            raw = str(body.get("raw") or "").encode()
        if not raw.strip():
            raise bad_request("raw (text) or raw_base64 is required")
        internal_ms = body.get("internal_date")
        internal = datetime.fromtimestamp(int(internal_ms) / 1000, UTC) if internal_ms else None
        labels = [str(x) for x in body.get("labels") or ("INBOX", "UNREAD")]
        message_id = self.double.deliver(call.params["address"], raw, labels, internal)
        return self._message_json(call.params["address"], message_id, 201)

    def messages(self, call: Call) -> Response:
        """Every message of the mailbox, oldest first, with its labels and Subject: how a user of
        `make run` sees what a write-back did in Gmail (UNREAD gone, INBOX gone, TRASH added)."""
        with self.double.lock:
            mailbox = self.double.gmail.mailbox(call.params["address"])
            ordered = sorted(mailbox.messages.values(), key=lambda m: (m.internal_date, m.id))
            body = [
                {
                    "id": m.id,
                    "threadId": m.thread_id,
                    "labelIds": list(m.labels),
                    "historyId": str(m.history_id),
                    "subject": mime.header(m.raw, "Subject"),
                }
                for m in ordered
            ]
        return Response.json(200, body)

    def message(self, call: Call) -> Response:
        return self._message_json(call.params["address"], call.params["id"], 200)

    def _message_json(self, address: str, message_id: str, status: int) -> Response:
        with self.double.lock:
            mailbox = self.double.gmail.mailbox(address)
            message = self.double.gmail.find(mailbox, message_id)
            body = {
                "id": message.id,
                "threadId": message.thread_id,
                "labelIds": list(message.labels),
                "historyId": str(message.history_id),
            }
        return Response.json(status, body)

    def delete(self, call: Call) -> Response:
        self.double.delete(call.params["address"], call.params["id"])
        return Response.empty()

    def relabel(self, call: Call) -> Response:
        body = call.json()
        add = [str(x) for x in body.get("add") or []]
        remove = [str(x) for x in body.get("remove") or []]
        self.double.relabel(call.params["address"], call.params["id"], add, remove)
        return self._message_json(call.params["address"], call.params["id"], 200)

    def trash(self, call: Call) -> Response:
        self.double.trash(call.params["address"], call.params["id"])
        return self._message_json(call.params["address"], call.params["id"], 200)

    def sent(self, call: Call) -> Response:
        sent = self.double.sent(call.params["address"])
        return Response.json(
            200,
            [
                {
                    "id": s.message_id,
                    "recipients": s.recipients,
                    "at": s.at.isoformat(),
                    "raw": s.raw.decode("utf-8", "replace"),
                }
                for s in sent
            ],
        )

    def revoke(self, call: Call) -> Response:
        client_id = call.json().get("client_id")
        return Response.json(200, {"revoked": self.double.revoke(call.params["address"], client_id)})

    def truncate(self, call: Call) -> Response:
        self.double.truncate_history(call.params["address"])
        return Response.empty()

    def contact(self, call: Call) -> Response:
        body = call.json()
        contact = self.double.add_contact(
            call.params["address"],
            name=body.get("name"),
            emails=body.get("emails"),
            organization=body.get("organization"),
            title=body.get("title"),
            phones=body.get("phones"),
            resource_name=body.get("resourceName"),
        )
        return Response.json(201, {"resourceName": contact.resource_name})

    def topic(self, call: Call) -> Response:
        body = call.json()
        try:
            topic = self.double.create_topic(
                str(body.get("name") or ""),
                body.get("push_endpoint"),
                body.get("audience"),
                str(
                    body.get("service_account") or "mailbridge-push@mailbridge-local.iam.gserviceaccount.com"
                ),
                bool(body.get("gmail_can_publish", True)),
            )
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return Response.json(201, {"name": topic.name, "subscription": topic.subscription})

    def fault(self, call: Call) -> Response:
        body = call.json()
        try:
            self.double.fail_next(
                str(body.get("method")), int(body.get("count", 1)), int(body.get("status", 500))
            )
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        return Response.empty()

    def pushes(self, call: Call) -> Response:
        body = call.json()
        if body.get("drop"):
            self.double.pubsub.drop_next(int(body["drop"]))
        if body.get("duplicate"):
            self.double.pubsub.duplicate_next(int(body["duplicate"]))
        if body.get("delay_seconds"):
            self.double.pubsub.delay_next(float(body["delay_seconds"]), int(body.get("count", 1)))
        return Response.empty()

    def deliveries(self, _call: Call) -> Response:
        return Response.json(
            200,
            [
                {"messageId": d.message_id, "attempt": d.attempt, "status": d.status, "error": d.error}
                for d in self.double.pubsub.deliveries
            ],
        )

    def advance(self, call: Call) -> Response:
        self.double.advance(float(call.json().get("seconds", 0)))
        return Response.json(200, {"now": self.double.now().isoformat()})
