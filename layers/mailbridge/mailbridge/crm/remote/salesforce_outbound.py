"""Salesforce outbound messages in: parse the SOAP `notifications` request, check the org, answer.

Pure functions, no I/O: the `webhooks` function (not built here) reads the body, calls
`parse_outbound_message`, enqueues the notifications it has not seen (`unseen`) and answers
`NOTIFICATIONS_RESPONSE`, or `soap_fault(error)` with the error's HTTP status when it refuses.

Sources: Salesforce Help "Outbound Messaging" / developer.salesforce.com "Understanding
Notifications" (the outbound WSDL, namespace `http://soap.sforce.com/2005/09/outbound`), and the
captured envelopes and answers in `../shared/data/providers/salesforce` (notes.md):

* the request is a SOAP 1.1 envelope whose Body holds `<notifications>`: `OrganizationId`,
  `ActionId`, `SessionId` (empty or `xsi:nil` unless the action sends a session id),
  `EnterpriseUrl`, `PartnerUrl`, then 1..100 `<Notification>`, each an `<Id>` (the notification
  id) and an `<sObject xsi:type="sf:Contact">` holding `sf:Id` and the chosen fields;
* the endpoint must answer HTTP 200 with `<notificationsResponse><Ack>true</Ack>`; anything else
  (a fault, another status) is a failure and Salesforce sends the message again, with the same
  notification ids, for up to 24 hours: delivery is at least once and out of order, so a caller
  drops notifications whose `id` it has already taken;
* the OrganizationId must be checked against the org the integration connected.

XML safety: the stdlib's expat parser, driven directly, with any document type declaration
refused before it is read on: no DTD means no entity can be declared, so neither an external
entity (XXE) nor an entity expansion bomb ("billion laughs") can be expressed. `defusedxml` is
not in the layer's dependencies, and expat with a DOCTYPE handler that raises is what it does
for this case. Bodies over `MAX_BODY_BYTES` are refused before parsing.

Errors (all 4xx, `mailbridge.errors`; messages are fixed text, never a value from the body):
`PayloadTooLarge` `outbound_message_too_large` (413); `Invalid` (400) `xml_dtd_refused`,
`malformed_xml`, `not_outbound_message`, `missing_element`, `invalid_salesforce_id`,
`no_notifications`, `too_many_notifications`, `invalid_field_name`; `Forbidden` (403)
`organization_mismatch`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from typing import Any, NoReturn
from xml.parsers import expat
from xml.sax.saxutils import escape

from pydantic import ConfigDict, Field, SecretStr

from mailbridge.errors import Forbidden, Invalid, MailbridgeError, PayloadTooLarge
from mailbridge.models.base import Model

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100  # per message [D: Understanding Notifications]
MAX_BODY_BYTES = 4 * 1024 * 1024
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")

NOTIFICATIONS_RESPONSE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    b'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    b" <soapenv:Body>\n"
    b'  <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">\n'
    b"   <Ack>true</Ack>\n"
    b"  </notificationsResponse>\n"
    b" </soapenv:Body>\n"
    b"</soapenv:Envelope>\n"
)
"""The answer Salesforce requires (HTTP 200, `text/xml; charset=utf-8`): the bytes of
providers/salesforce/Messages__NotificationResponse.xml without its byte order mark."""

_FAULT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    " <soapenv:Body>\n"
    "  <soapenv:Fault>\n"
    "   <faultcode>soapenv:Client</faultcode>\n"
    "   <faultstring>{0}</faultstring>\n"
    "   <detail />\n"
    "  </soapenv:Fault>\n"
    " </soapenv:Body>\n"
    "</soapenv:Envelope>\n"
)


class OutboundNotification(Model):
    """One `<Notification>`: its id (the dedup key), the sObject type from `xsi:type`
    (`sf:Contact` -> `Contact`), the record id (`sf:Id`, None when the action left it out) and
    every field sent, by API name, as text (`xsi:nil="true"` -> None)."""

    model_config = ConfigDict(frozen=True)

    id: str
    sobject_type: str
    record_id: str | None = None
    fields: dict[str, str | None] = Field(default_factory=dict)


class OutboundMessage(Model):
    """One outbound message: the org and action it came from, and its notifications in order.
    `session_id` is a Salesforce session (a credential): a `SecretStr`, never logged or shown."""

    model_config = ConfigDict(frozen=True)

    organization_id: str
    action_id: str
    session_id: SecretStr | None = None
    enterprise_url: str | None = None
    partner_url: str | None = None
    notifications: list[OutboundNotification]

    @property
    def notification_ids(self) -> list[str]:
        """Each notification's `Id`, in message order: the keys a caller dedupes on."""
        return [n.id for n in self.notifications]

    def unseen(self, seen: Collection[str]) -> list[OutboundNotification]:
        """The notifications whose id is not in `seen` (and not repeated earlier in this message)."""
        taken = set(seen)
        out: list[OutboundNotification] = []
        for notification in self.notifications:
            if notification.id not in taken:
                taken.add(notification.id)
                out.append(notification)
        return out


def same_org(a: str, b: str) -> bool:
    """True when two Salesforce org ids name one org: 15-character ids are case-sensitive and an
    18-character id is the 15 plus a 3-character case suffix, so the first 15 decide."""
    return bool(_SALESFORCE_ID.fullmatch(a) and _SALESFORCE_ID.fullmatch(b)) and a[:15] == b[:15]


def organization_of(body: bytes) -> str:
    """The `OrganizationId` of a `notifications` request, to find the integration it is for
    before `parse_outbound_message` checks it (same errors, but not `organization_mismatch`)."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("the outbound message is too large", code="outbound_message_too_large")
    root = _parse_xml(body)
    soap_body = root.find(f"{{{SOAP_NS}}}Body") if root.tag == f"{{{SOAP_NS}}}Envelope" else None
    notifications = None if soap_body is None else soap_body.find(f"{{{OUTBOUND_NS}}}notifications")
    if notifications is None:
        _refuse("the SOAP body holds no outbound notifications element", "not_outbound_message")
    return _id(_text(notifications, "OrganizationId", required=True))


def parse_outbound_message(body: bytes, *, expected_org_id: str) -> OutboundMessage:
    """Parse a `notifications` request and check it comes from `expected_org_id`.

    `body`: the raw request bytes (UTF-8, a byte order mark allowed). Returns the message with
    1..100 notifications. Raises (see the module doc for the codes) `PayloadTooLarge`,
    `Invalid` for anything that is not a well-formed outbound message (a DOCTYPE included), and
    `Forbidden` `organization_mismatch` when another org sent it.
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("the outbound message is too large", code="outbound_message_too_large")
    root = _parse_xml(body)
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        _refuse("not a SOAP envelope", "not_outbound_message")
    soap_body = root.find(f"{{{SOAP_NS}}}Body")
    notifications = None if soap_body is None else soap_body.find(f"{{{OUTBOUND_NS}}}notifications")
    if notifications is None:
        _refuse("the SOAP body holds no outbound notifications element", "not_outbound_message")
    items = notifications.findall(f"{{{OUTBOUND_NS}}}Notification")
    if not items:
        _refuse("the message holds no notification", "no_notifications")
    organization_id = _id(_text(notifications, "OrganizationId", required=True))
    if not same_org(organization_id, expected_org_id):
        raise Forbidden("the message comes from another Salesforce org", code="organization_mismatch")
    action_id = _id(_text(notifications, "ActionId", required=True))
    if len(items) > MAX_NOTIFICATIONS:
        _refuse("the message holds more than 100 notifications", "too_many_notifications")
    session = _text(notifications, "SessionId")
    return OutboundMessage(
        organization_id=organization_id,
        action_id=action_id,
        session_id=SecretStr(session) if session else None,
        enterprise_url=_text(notifications, "EnterpriseUrl"),
        partner_url=_text(notifications, "PartnerUrl"),
        notifications=[_notification(item) for item in items],
    )


def soap_fault(error: MailbridgeError) -> bytes:
    """The SOAP 1.1 fault Salesforce understands as a refusal (providers/salesforce/
    Messages__FaultResponse.xml, without its byte order mark): `faultcode` `soapenv:Client`,
    `faultstring` the error's code and message (fixed text, escaped)."""
    return _FAULT.replace("{0}", escape(f"{error.code}: {error}")).encode()


# ---------------------------------------------------------------------------- XML


def _parse_xml(body: bytes) -> ET.Element:
    """A namespace-aware tree from expat, refusing any DOCTYPE (hence any entity declaration)."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def name(raw: str) -> str:
        uri, _, local = raw.rpartition(" ")
        return f"{{{uri}}}{local}" if uri else local

    def start(tag: str, attributes: dict[str, str]) -> None:
        builder.start(name(tag), {name(k): v for k, v in attributes.items()})

    def refuse_dtd(*_args: Any) -> NoReturn:
        raise Invalid("document type declarations are refused", code="xml_dtd_refused")

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    parser.ExternalEntityRefHandler = refuse_dtd
    try:
        parser.Parse(body, True)
    except expat.ExpatError:
        raise Invalid("the body is not well-formed XML", code="malformed_xml") from None
    try:
        return builder.close()
    except AssertionError:  # TreeBuilder.close on an empty document
        raise Invalid("the body is not well-formed XML", code="malformed_xml") from None


def _refuse(message: str, code: str) -> NoReturn:
    raise Invalid(message, code=code)


def _text(parent: ET.Element, local: str, *, required: bool = False) -> str | None:
    element = parent.find(f"{{{OUTBOUND_NS}}}{local}")
    value = None if element is None or _nil(element) else (element.text or "").strip() or None
    if value is None and required:
        _refuse("a required element of the outbound message is missing", "missing_element")
    return value


def _nil(element: ET.Element) -> bool:
    return element.get(f"{{{XSI_NS}}}nil") in ("true", "1")


def _id(value: str | None) -> str:
    if value is None or not _SALESFORCE_ID.fullmatch(value):
        _refuse("not a Salesforce id (15 or 18 letters and digits)", "invalid_salesforce_id")
    return value


def _notification(item: ET.Element) -> OutboundNotification:
    notification_id = _id(_text(item, "Id", required=True))
    sobject = item.find(f"{{{OUTBOUND_NS}}}sObject")
    if sobject is None:
        _refuse("a notification holds no sObject", "missing_element")
    sobject_type = (sobject.get(f"{{{XSI_NS}}}type") or "").rpartition(":")[2]
    if not _NAME.fullmatch(sobject_type):
        _refuse("a notification's sObject has no valid xsi:type", "missing_element")
    fields: dict[str, str | None] = {}
    for child in sobject:
        local = child.tag.rpartition("}")[2]
        if not _NAME.fullmatch(local):
            _refuse("an sObject field name is not an API name", "invalid_field_name")
        fields[local] = None if _nil(child) else (child.text or "")
    record_id = fields.get("Id")
    if record_id is not None:
        _id(record_id)
    return OutboundNotification(
        id=notification_id, sobject_type=sobject_type, record_id=record_id, fields=fields
    )
