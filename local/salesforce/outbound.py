"""Outbound messages: a workflow rule watches an object and POSTs SOAP `notifications` envelopes.

Sources: providers/salesforce in the shared data (notes.md and the stored envelopes and answers)
[D]; Salesforce Help "Outbound Messaging" and "Understanding Notifications" [D as quoted there]:
* the request is SOAP 1.1: `<notifications xmlns="http://soap.sforce.com/2005/09/outbound">` with
  OrganizationId, ActionId, SessionId (nil unless the action sends a session id), EnterpriseUrl,
  PartnerUrl, then 1..100 `<Notification><Id/><sObject xsi:type="sf:Contact"
  xmlns:sf="urn:sobject.enterprise.soap.sforce.com">` holding `sf:Id` and the chosen fields (a field
  without a value is left out [R]);
* the endpoint must answer HTTP 200 with `<notificationsResponse>` holding `<Ack>true</Ack>`;
  anything else (another status, a SOAP fault, `<notifications>` instead of
  `<notificationsResponse>`, Ack false, no answer within 60 s [R]) is a failure, and the message is
  sent again later with the same notification ids;
* retries back off exponentially, at most 2 hours apart; a message still undelivered 24 hours
  after it was queued is dropped; delivery is at least once and out of order; the message carries
  the field values as they are when it is sent, not when the change happened.
The first retry waits 15 seconds and each wait doubles [R: the interval is not documented].
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from local.double_server import Attempt, Outbox, Outgoing, RetryPolicy
from local.salesforce.ids import Ids
from local.salesforce.schema import to_text
from local.salesforce.store import Org, Record

NS = "http://soap.sforce.com/2005/09/outbound"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_NOTIFICATIONS = 100
FIRST_RETRY = timedelta(seconds=15)
MAX_RETRY = timedelta(hours=2)
GIVE_UP_AFTER = timedelta(hours=24)
TIMEOUT = 60.0
HEADERS = {
    "Content-Type": "text/xml; charset=utf-8",
    "SOAPAction": '""',
    "User-Agent": "Jakarta Commons-HttpClient/3.1",  # [R]
}
FORGERIES = ("wrong_org", "duplicate", "too_many", "empty", "not_soap", "wrong_action")


@dataclass
class OutboundAction:
    id: str
    name: str
    object: str
    fields: list[str]
    endpoint_url: str
    send_session: bool
    user_id: str
    on: tuple[str, ...] = ("created", "updated")
    active: bool = True


@dataclass
class Notification:
    id: str
    object: str
    record_id: str


@dataclass
class Message:
    """One SOAP message (up to 100 notifications of one action); `sent` once its first POST went out."""

    key: str
    action: OutboundAction
    notifications: list[Notification] = field(default_factory=list)
    sent: bool = False
    bodies: list[bytes] = field(default_factory=list)


def ack_ok(attempt: Attempt) -> bool:
    """HTTP 200 and a SOAP body whose notificationsResponse holds Ack true (nothing else will do)."""
    if attempt.status != 200 or not attempt.body:
        return False
    try:
        root = ET.fromstring(attempt.body)  # noqa: S314 - the receiver under test answers, on loopback
    except ET.ParseError:
        return False
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        return False
    body = root.find(f"{{{SOAP_NS}}}Body")
    if body is None:
        return False
    response = body.find(f"{{{NS}}}notificationsResponse")
    if response is None:
        return False
    ack = response.find(f"{{{NS}}}Ack")
    return ack is not None and (ack.text or "").strip() == "true"


def backoff(failures: int, _attempt: Attempt | None = None) -> timedelta:
    wait: timedelta = FIRST_RETRY * 2 ** (failures - 1)
    return min(wait, MAX_RETRY)


def envelope(
    org_id: str,
    action_id: str,
    session_id: str | None,
    base_url: str,
    version: str,
    notifications: list[tuple[str, str, dict[str, Any]]],
) -> bytes:
    """The SOAP request for (notification id, sObject type, fields) triples, as Salesforce writes it."""
    org15 = org_id[:15]
    session = f"<SessionId>{escape(session_id)}</SessionId>" if session_id else '<SessionId xsi:nil="true"/>'
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        " <soapenv:Body>\n"
        f'  <notifications xmlns="{NS}">\n'
        f"   <OrganizationId>{escape(org_id)}</OrganizationId>\n"
        f"   <ActionId>{escape(action_id)}</ActionId>\n"
        f"   {session}\n"
        f"   <EnterpriseUrl>{escape(base_url)}/services/Soap/c/{version}/{org15}</EnterpriseUrl>\n"
        f"   <PartnerUrl>{escape(base_url)}/services/Soap/u/{version}/{org15}</PartnerUrl>\n"
    ]
    for notification_id, type_name, values in notifications:
        parts.append(
            "   <Notification>\n"
            f"    <Id>{escape(notification_id)}</Id>\n"
            f"    <sObject xsi:type={quoteattr('sf:' + type_name)} "
            'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n'
        )
        for name, value in values.items():
            if value is None:
                continue
            parts.append(f"     <sf:{name}>{escape(to_text(value))}</sf:{name}>\n")
        parts.append("    </sObject>\n   </Notification>\n")
    parts.append("  </notifications>\n </soapenv:Body>\n</soapenv:Envelope>\n")
    return "".join(parts).encode()


class Outbound:
    """Every outbound message action, the queue of SOAP messages, and forgeries for webhook tests."""

    def __init__(
        self,
        ids: Ids,
        org: Org,
        now: Callable[[], datetime],
        base_url: Callable[[], str],
        version: str,
        session_for: Callable[[str], str],
        lock: threading.RLock,
    ) -> None:
        self.lock = lock
        self.ids = ids
        self.org = org
        self.now = now
        self.base_url = base_url
        self.version = version
        self.session_for = session_for
        self.actions: dict[str, OutboundAction] = {}
        self.messages: list[Message] = []
        self._open: dict[str, Message] = {}  # action id -> the message still collecting notifications
        self.outbox = Outbox(
            now,
            RetryPolicy(
                judge=ack_ok,
                retryable=lambda _attempt: True,
                backoff=backoff,
                give_up_after=GIVE_UP_AFTER,
                timeout=TIMEOUT,
            ),
            name="salesforce-outbound",
        )
        self._duplicate_next = 0
        org.listeners.append(self.on_change)

    def watch(
        self,
        object_name: str,
        fields: list[str],
        endpoint_url: str,
        send_session: bool = False,
        name: str | None = None,
        on: tuple[str, ...] = ("created", "updated"),
    ) -> OutboundAction:
        sobject = self.org.sobject(object_name)
        if sobject is None:
            raise ValueError(f"unknown sObject {object_name}")
        chosen: list[str] = ["Id"]
        for wanted in fields:
            spec = sobject.field(wanted)
            if spec is None:
                raise ValueError(f"{sobject.name} has no field {wanted}")
            if spec.name not in chosen:
                chosen.append(spec.name)
        action = OutboundAction(
            id=self.ids.record("04k"),
            name=name or f"{sobject.name} changes",
            object=sobject.name,
            fields=chosen,
            endpoint_url=endpoint_url,
            send_session=send_session,
            user_id=self.org.user_id,
            on=on,
        )
        self.actions[action.id] = action
        return action

    def on_change(self, type_name: str, record: Record, kind: str) -> None:
        for action in self.actions.values():
            if action.active and action.object == type_name and kind in action.on:
                self._add(action, Notification(self.ids.record("04l"), type_name, record["Id"]))

    def _add(self, action: OutboundAction, notification: Notification) -> None:
        message = self._open.get(action.id)
        if message is None or message.sent or len(message.notifications) >= MAX_NOTIFICATIONS:
            message = Message(key=self.ids.token(16), action=action)
            self._open[action.id] = message
            self.messages.append(message)
            copies = 2 if self._duplicate_next else 1
            self._duplicate_next = max(0, self._duplicate_next - 1)
            for _ in range(copies):
                self.outbox.enqueue(message.key, self._builder(message), payload=message)
        message.notifications.append(notification)

    def duplicate_next(self, count: int = 1) -> None:
        """The next `count` messages are delivered twice (at-least-once delivery)."""
        self._duplicate_next += count

    def _builder(self, message: Message) -> Callable[[int], Outgoing]:
        def build(_attempt: int) -> Outgoing:
            with self.lock:
                return self._render(message)

        return build

    def _render(self, message: Message) -> Outgoing:
        message.sent = True
        action = message.action
        triples: list[tuple[str, str, dict[str, Any]]] = []
        for notification in message.notifications:
            record = self.org.records[notification.object].get(notification.record_id) or {
                "Id": notification.record_id
            }
            values = {name: record.get(name) for name in action.fields}
            triples.append((notification.id, notification.object, values))
        session = self.session_for(action.user_id) if action.send_session else None
        body = envelope(self.org.org_id, action.id, session, self.base_url(), self.version, triples)
        message.bodies.append(body)
        return Outgoing(action.endpoint_url, dict(HEADERS), body)

    def forge(self, forgery: str, action_id: str | None = None, url: str | None = None) -> Outgoing:
        """A request shaped like Salesforce's that a receiver must refuse or dedupe (never sent by itself).

        * wrong_org: another org's OrganizationId; wrong_action: an ActionId the org never defined;
        * duplicate: the exact bytes of the last message already POSTed (same notification ids);
        * too_many: 101 notifications in one message; empty: no notification at all (as
          providers/salesforce/OutboundMessage2.xml); not_soap: a body that is not SOAP.
        """
        action = self.actions[action_id] if action_id else next(iter(self.actions.values()), None)
        target = url or (action.endpoint_url if action else "")
        if forgery == "duplicate":
            sent = [m for m in self.messages if m.bodies]
            if not sent:
                raise ValueError("no message was sent yet")
            return Outgoing(target, dict(HEADERS), sent[-1].bodies[-1])
        if forgery == "not_soap":
            return Outgoing(target, dict(HEADERS), b"<html><body>not a SOAP message</body></html>")
        object_name = action.object if action else "Contact"
        records = self.org.live(object_name)
        sample = records[0] if records else {"Id": self.ids.record("003"), "LastName": "Forged"}
        fields = action.fields if action else ["Id", "LastName"]
        values = {name: sample.get(name) for name in fields}
        count = {"too_many": MAX_NOTIFICATIONS + 1, "empty": 0}.get(forgery, 1)
        notes = [(self.ids.record("04l"), object_name, values) for _ in range(count)]
        org_id = self.org.org_id
        action_ref = action.id if action else self.ids.record("04k")
        if forgery == "wrong_org":
            org_id = "00D" + "9" * 12 + "AAA"
        elif forgery == "wrong_action":
            action_ref = self.ids.record("04k")
        elif forgery not in FORGERIES:
            raise ValueError(f"unknown forgery {forgery!r}; one of {FORGERIES}")
        body = envelope(org_id, action_ref, None, self.base_url(), self.version, notes)
        return Outgoing(target, dict(HEADERS), body)
