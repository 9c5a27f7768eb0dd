"""Property tests of every parser that reads outside input: MIME normalization, the webhook bodies
(Gmail push, Graph notifications and validationToken, Salesforce outbound SOAP, HubSpot events),
ICS import and JSON-Logic rules. For any input, each returns a well-typed value or raises its
documented error with a documented code; no other exception escapes.

Inputs are built from each format's own vocabulary (header lines and boundaries, SOAP elements,
event fields, iCalendar properties, JSON-Logic operators) mixed with arbitrary text and bytes, so
generated cases reach past the first syntax check. Examples per test: HYPOTHESIS_PROFILE
(tests/fuzzing.py): few in `make test`, many in `make fuzz`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.automations.conditions import OPERATORS, evaluate
from mailbridge.automations.errors import LogicError
from mailbridge.calendar.ics import (
    IcsError,
    ParsedEvent,
    ParsedFile,
    SkippedEvent,
    parse_calendar,
    parse_reply,
)
from mailbridge.crm.remote.hubspot_webhooks import HubSpotEvent, parse_events
from mailbridge.crm.remote.salesforce_outbound import OutboundMessage, parse_outbound_message
from mailbridge.errors import Forbidden, Invalid, MailbridgeError, PayloadTooLarge
from mailbridge.mime import errors as mime_errors
from mailbridge.mime.errors import MimeError
from mailbridge.mime.parse import NormalizeResult, normalize
from mailbridge.models.email import ParsedMessage
from mailbridge.webhooks import gmail, graph
from tests.events import load_event
from tests.fuzzing import FUZZ
from tests.unit.mime.test_mime_structure import messages


def outcome(call: Callable[[], Any], allowed: tuple[type[MailbridgeError], ...], codes: set[str]) -> Any:
    """`call()`'s value, or None when it raised one of `allowed` with a code in `codes`; any other
    exception (or code) fails the test."""
    try:
        return call()
    except allowed as refused:
        code = refused.code
    assert code in codes, code
    return None


# JSON values, and JSON text that is sometimes not JSON at all.
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def mutated_json(sample: Any) -> st.SearchStrategy[Any]:
    """`sample` with some of its values (at any depth) replaced by arbitrary JSON, or keys dropped."""

    def walk(node: Any) -> st.SearchStrategy[Any]:
        if isinstance(node, dict):
            items = {k: st.one_of(walk(v), json_values) for k, v in node.items()}
            return st.fixed_dictionaries({}, optional=items)
        if isinstance(node, list):
            return st.lists(st.one_of(*[walk(v) for v in node]) if node else json_values, max_size=3)
        return st.just(node) | json_values

    return walk(sample)


def texts_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    return values.map(json.dumps) | st.text(max_size=200)


# ------------------------------------------------------------------------------------- MIME

MIME_CODES = {
    mime_errors.EMPTY,
    mime_errors.NOT_RFC822,
    mime_errors.TOO_LARGE,
    mime_errors.TOO_COMPLEX,
    mime_errors.UNPARSEABLE,
}


@settings(FUZZ)
@given(messages() | st.binary(max_size=600))
def test_normalize_returns_a_typed_message_or_a_mime_error(raw: bytes) -> None:
    result = outcome(lambda: normalize(raw, max_size=4096), (MimeError,), MIME_CODES)
    if result is not None:
        assert isinstance(result, NormalizeResult)
        # The model validates again from its own dump: every field has its declared type.
        assert ParsedMessage.model_validate(result.message.model_dump()) == result.message
        assert all(isinstance(data, bytes) for _, data in result.attachments)


# ------------------------------------------------------------------------------------ Gmail

GMAIL_SAMPLE = json.loads(load_event("webhooks/gmail-push.json")["body"])


@settings(FUZZ)
@given(texts_of(mutated_json(GMAIL_SAMPLE)))
def test_a_gmail_push_body_is_read_or_invalid_push(body: str) -> None:
    notice = outcome(lambda: gmail.parse(body), (Invalid,), {"invalid_push"})
    if notice is not None:
        assert isinstance(notice, gmail.PushNotice)
        assert notice.email_address
        assert notice.history_id


# ------------------------------------------------------------------------------------ Graph

GRAPH_SAMPLE = json.loads(load_event("webhooks/graph-notification.json")["body"])


@settings(FUZZ)
@given(texts_of(mutated_json(GRAPH_SAMPLE)) | st.none())
def test_a_graph_notification_batch_is_read_or_invalid_notification(body: str | None) -> None:
    items = outcome(lambda: graph.parse(body), (Invalid,), {"invalid_notification"})
    if items is not None:
        assert isinstance(items, list)
        assert all(isinstance(item.subscription_id, str) for item in items)


@settings(FUZZ)
@given(st.text(max_size=300))
def test_a_graph_validation_token_is_echoed_or_invalid(token: str) -> None:
    answer = outcome(lambda: graph.validation_answer(token), (Invalid,), {"invalid_validation_token"})
    if answer is not None:
        assert answer == token


# ------------------------------------------------------------------------------- Salesforce

ORG = "00D1I000003qqqE"
SF_ELEMENTS = [
    "OrganizationId",
    "ActionId",
    "SessionId",
    "EnterpriseUrl",
    "PartnerUrl",
    "Notification",
    "Id",
    "sObject",
    "sf:Id",
    "sf:LastName",
]
SF_TEXT = st.sampled_from([ORG, "04k1I000000bmsHQAQ", "04l1I000000fztEQAQ", "", "x", "&amp;", "<!--c-->"])
SF_TEXT = SF_TEXT | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)


@st.composite
def sf_children(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(SF_ELEMENTS))
        inner = draw(sf_children(depth + 1)) if depth < 2 and draw(st.booleans()) else draw(SF_TEXT)
        attrs = draw(st.sampled_from(["", ' xsi:nil="true"', ' xsi:type="sf:Contact"']))
        parts.append(f"<{name}{attrs}>{inner}</{name}>")
    return "".join(parts)


@st.composite
def soap_envelopes(draw: st.DrawFn) -> bytes:
    body = draw(sf_children())
    wrapper = draw(st.sampled_from(["notifications", "other"]))
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><soapenv:Body>'
        f'<{wrapper} xmlns="http://soap.sforce.com/2005/09/outbound">{body}</{wrapper}>'
        "</soapenv:Body></soapenv:Envelope>"
    )
    data = text.encode()
    if draw(st.booleans()):  # cut or spliced bytes
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8)) + data[cut:]
    return data


SF_CODES = {
    "outbound_message_too_large",
    "malformed_xml",
    "xml_dtd_refused",
    "not_outbound_message",
    "no_notifications",
    "organization_mismatch",
    "too_many_notifications",
    "invalid_field_name",
    "invalid_salesforce_id",
    "missing_element",
}


@settings(FUZZ)
@given(soap_envelopes() | st.binary(max_size=300))
def test_a_salesforce_outbound_message_is_read_or_refused_with_its_code(body: bytes) -> None:
    message = outcome(
        lambda: parse_outbound_message(body, expected_org_id=ORG),
        (Invalid, Forbidden, PayloadTooLarge),
        SF_CODES,
    )
    if message is not None:
        assert isinstance(message, OutboundMessage)
        assert 1 <= len(message.notifications) <= 100


# ---------------------------------------------------------------------------------- HubSpot

HUBSPOT_EVENT = {
    "objectId": 1246965,
    "propertyName": "lifecyclestage",
    "propertyValue": "subscriber",
    "changeSource": "CRM_UI",
    "eventId": 3816279340,
    "subscriptionId": 25,
    "portalId": 33,
    "appId": 1160452,
    "occurredAt": 1893488400000,
    "subscriptionType": "contact.propertyChange",
    "attemptNumber": 0,
}
HUBSPOT_CODES = {
    "webhook_body_too_large",
    "invalid_json",
    "invalid_webhook_events",
    "no_events",
    "too_many_events",
    "portal_mismatch",
}


@settings(FUZZ)
@given(
    st.lists(mutated_json(HUBSPOT_EVENT), max_size=4).map(lambda v: json.dumps(v).encode())
    | texts_of(json_values).map(str.encode)
    | st.binary(max_size=100),
    st.sampled_from([None, 33]),
)
def test_hubspot_events_are_read_or_refused_with_their_code(body: bytes, portal: int | None) -> None:
    events = outcome(
        lambda: parse_events(body, portal_id=portal), (Invalid, Forbidden, PayloadTooLarge), HUBSPOT_CODES
    )
    if events is not None:
        assert events
        assert all(isinstance(e, HubSpotEvent) for e in events)


# -------------------------------------------------------------------------------------- ICS

ICS_LINES = [
    "BEGIN:VCALENDAR",
    "END:VCALENDAR",
    "VERSION:2.0",
    "METHOD:REQUEST",
    "METHOD:REPLY",
    "BEGIN:VEVENT",
    "END:VEVENT",
    "BEGIN:VTIMEZONE",
    "END:VTIMEZONE",
    "TZID:Europe/Paris",
    "UID:u1@example.com",
    "UID:u2@example.com",
    "SUMMARY:Kickoff",
    "DTSTAMP:20260101T090000Z",
    "DTSTART:20260105T090000Z",
    "DTSTART;VALUE=DATE:20260105",
    "DTSTART;TZID=Europe/Paris:20260105T090000",
    "DTSTART;TZID=Nowhere/Else:20260105T090000",
    "DTEND:20260105T100000Z",
    "DTEND:20250105T100000Z",
    "DURATION:PT1H",
    "DURATION:-P1D",
    "RRULE:FREQ=WEEKLY;COUNT=3",
    "RRULE:FREQ=DAILY;UNTIL=20260101",
    "RRULE:FREQ=YEARLY;BYDAY=XX",
    "EXDATE:20260112T090000Z",
    "RDATE;VALUE=PERIOD:20260120T090000Z/PT1H",
    "RECURRENCE-ID:20260112T090000Z",
    "SEQUENCE:2",
    "SEQUENCE:x",
    "STATUS:CANCELLED",
    "ORGANIZER;CN=Ada:mailto:ada@example.com",
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com",
    "ATTENDEE:not-an-address",
    " folded continuation",
    "X-WR-TIMEZONE:America/New_York",
]


@st.composite
def calendars(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.sampled_from(ICS_LINES) | st.text(max_size=30), max_size=30))
    if draw(st.booleans()):
        lines = ["BEGIN:VCALENDAR", "BEGIN:VEVENT", *lines, "END:VEVENT", "END:VCALENDAR"]
    return draw(st.sampled_from(["\r\n", "\n"])).join(lines)


ICS_CODES = {"not_icalendar", "too_deep", "too_many_events"}


@settings(FUZZ)
@given(calendars() | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_an_ics_file_is_read_or_refused_as_not_icalendar(text: str) -> None:
    parsed = outcome(lambda: parse_calendar(text), (IcsError,), ICS_CODES)
    if parsed is not None:
        assert isinstance(parsed, ParsedFile)
        assert all(isinstance(e, ParsedEvent) for e in parsed.events)
        assert all(isinstance(s, SkippedEvent) for s in parsed.skipped)
    replies = outcome(lambda: parse_reply(text), (IcsError,), ICS_CODES)
    if replies is not None:
        assert isinstance(replies, list)


# ------------------------------------------------------------------------------- JSON-Logic

LOGIC_CODES = {
    "invalid_logic",
    "unknown_operator",
    "logic_too_deep",
    "logic_too_costly",
    "invalid_data",
    "logic_evaluation_failed",
}
operators = st.sampled_from(sorted(OPERATORS)) | st.sampled_from(["nope", "", "var "])
rules = st.recursive(
    json_scalars | st.fixed_dictionaries({"var": st.sampled_from(["a", "b.c", "", 0, ["a", 1]])}),
    lambda inner: (
        st.builds(lambda op, args: {op: args}, operators, inner | st.lists(inner, max_size=4))
        | st.lists(inner, max_size=3)
    ),
    max_leaves=25,
)


@settings(FUZZ)
@given(rules, json_values | st.fixed_dictionaries({"a": json_values, "b": json_values}))
def test_a_json_logic_rule_evaluates_or_raises_a_logic_error(rule: Any, data: Any) -> None:
    outcome(lambda: evaluate(rule, data), (LogicError,), LOGIC_CODES)


def test_outcome_fails_on_an_undocumented_exception() -> None:
    # The helper every property above relies on: another exception type, or another code, fails.
    def crash() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        outcome(crash, (Invalid,), {"x"})
    with pytest.raises(AssertionError):
        outcome(lambda: (_ for _ in ()).throw(Invalid("m", code="other")), (Invalid,), {"x"})
