"""Salesforce outbound messages in (`mailbridge.crm.remote.salesforce_outbound`): every stored
envelope and answer in providers/salesforce (read from the corpus path), the exact Ack and fault
bytes, the org check, dedup keys, and the XML attacks refused with a typed 4xx."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailbridge.crm.remote.salesforce_outbound import (
    MAX_BODY_BYTES,
    NOTIFICATIONS_RESPONSE,
    parse_outbound_message,
    same_org,
    soap_fault,
)
from mailbridge.errors import Forbidden, Invalid, MailbridgeError, PayloadTooLarge

_CORPUS = os.environ.get("MAILBRIDGE_CORPUS")
DATA = Path(_CORPUS or Path(__file__).resolve().parents[4] / "shared" / "data") / "providers" / "salesforce"
NO_CORPUS = "corpus not found: set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data"
needs_corpus = pytest.mark.skipif(not DATA.is_dir(), reason=NO_CORPUS)
BOM = b"\xef\xbb\xbf"
ORG_1 = "0123456789ABCDENNN"  # OutboundMessage1.xml
ORG_2 = "012345678901234"  # RequestBodies__Salesforce.xml (a 15-character id)

# What each stored file is: (the org it comes from, the outcome): notification ids, or the refusal code.
EXPECTED: dict[str, tuple[str, list[str] | str]] = {
    "OutboundMessage1.xml": (ORG_1, ["04l37000000L0E5AAK", "14l37000123L0E5AAK", "24l37123450L0E5AAK"]),
    "RequestBodies__Salesforce.xml": (ORG_2, ["04l1I000000fztEQAQ", "04l1I000000fzt9QAA"]),
    "OutboundMessage2.xml": (ORG_1, "no_notifications"),
    "RequestBodies__Salesforce.Empty.xml": (ORG_1, "no_notifications"),
    "Messages__NotificationResponse.xml": (ORG_1, "not_outbound_message"),
    "ResponseBodies__Salesforce.xml": (ORG_1, "not_outbound_message"),
    "Messages__FaultResponse.xml": (ORG_1, "not_outbound_message"),
}


def envelope(notifications: str, org: str = ORG_2, session: str = '<SessionId xsi:nil="true"/>') -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k1I000000bmsHQAQ</ActionId>{session}"
        "<EnterpriseUrl>https://na73.salesforce.com/services/Soap/c/41.0/00D1I000003qqqE</EnterpriseUrl>"
        "<PartnerUrl>https://na73.salesforce.com/services/Soap/u/41.0/00D1I000003qqqE</PartnerUrl>"
        f"{notifications}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def notification(notification_id: str, fields: str = "<sf:LastName>Black</sf:LastName>") -> str:
    return (
        f"<Notification><Id>{notification_id}</Id>"
        '<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>0031I0000081tbPQAQ</sf:Id>{fields}</sObject></Notification>"
    )


def refusal(body: bytes, org: str = ORG_2) -> MailbridgeError:
    with pytest.raises(MailbridgeError) as raised:
        parse_outbound_message(body, expected_org_id=org)
    return raised.value


# ---------------------------------------------------------------------------- the stored files


@needs_corpus
def test_every_stored_file_is_known():
    # Given the stored Salesforce files; Then each one has its expected outcome below
    assert sorted(p.name for p in DATA.glob("*.xml")) == sorted(EXPECTED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_stored_file_parses_or_is_refused_with_its_code(name: str):
    # Given a stored envelope or answer, and the org it names
    org, outcome = EXPECTED[name]
    body = (DATA / name).read_bytes()
    if isinstance(outcome, str):
        # When it is parsed, Then it is refused with a 400 and its code
        error = refusal(body, org)
        assert isinstance(error, Invalid)
        assert error.code == outcome
        return
    # When it is parsed
    message = parse_outbound_message(body, expected_org_id=org)
    # Then each notification id comes back in order, with the record's type, id and fields
    assert message.notification_ids == outcome
    assert message.organization_id == org
    assert message.session_id is not None
    assert message.partner_url is not None
    assert message.partner_url.startswith("https://")
    assert all(n.record_id and n.fields["Id"] == n.record_id for n in message.notifications)


@needs_corpus
def test_the_stored_fields_are_read_by_api_name():
    # When the two stored messages are parsed
    leads = parse_outbound_message((DATA / "OutboundMessage1.xml").read_bytes(), expected_org_id=ORG_1)
    contacts = parse_outbound_message(
        (DATA / "RequestBodies__Salesforce.xml").read_bytes(), expected_org_id=ORG_2
    )
    # Then the sObject types come from xsi:type and the values from the sf: elements
    assert [n.sobject_type for n in leads.notifications] == ["Lead1", "Lead2", "Lead3"]
    assert leads.notifications[0].fields["LastName"] == "Nielsen"
    assert leads.notifications[0].fields["IsConverted"] == "false"
    assert [n.sobject_type for n in contacts.notifications] == ["Contact", "Contact"]
    assert contacts.notifications[1].record_id == "0031I0000081tb0QAA"
    assert contacts.notifications[1].fields["Email"] == "drb24@cornell.edu"
    assert "Email" not in contacts.notifications[0].fields  # a field without a value is left out


@needs_corpus
def test_the_ack_is_the_stored_notifications_response_byte_for_byte():
    # Then the answer is the stored notificationsResponse (its byte order mark aside)
    stored = (DATA / "Messages__NotificationResponse.xml").read_bytes()
    assert stored.removeprefix(BOM) == NOTIFICATIONS_RESPONSE
    assert (DATA / "ResponseBodies__Salesforce.xml").read_bytes() == NOTIFICATIONS_RESPONSE


@needs_corpus
def test_a_refusal_is_the_stored_fault_with_the_code_and_no_value_from_the_body():
    # Given a message from another org
    body = envelope(notification("04l1I000000fztEQAQ"), org="00D000000000001AAA")
    error = refusal(body)
    # When the fault is built
    fault = soap_fault(error)
    # Then it is the stored fault with the code and the fixed message, escaped, and no org id
    template = (DATA / "Messages__FaultResponse.xml").read_bytes().removeprefix(BOM)
    assert fault == template.replace(
        b"{0}", b"organization_mismatch: the message comes from another Salesforce org"
    )
    assert b"00D000000000001" not in fault
    escaped = soap_fault(Invalid("a <b> & c", code="x"))
    assert b"<faultstring>x: a &lt;b&gt; &amp; c</faultstring>" in escaped


# ---------------------------------------------------------------------------- the org and the ids


def test_the_org_is_checked_on_its_15_case_sensitive_characters():
    body = envelope(notification("04l1I000000fztEQAQ"))
    # When the expected org is the 15-character id, or its 18-character form
    # Then the message is taken
    assert parse_outbound_message(body, expected_org_id=ORG_2).organization_id == ORG_2
    assert parse_outbound_message(body, expected_org_id=ORG_2 + "AAA").notification_ids == [
        "04l1I000000fztEQAQ"
    ]
    # And another org, or the same letters in another case, is refused with a 403
    for other in ("012345678901235", "00D1I000003qqqE", "00d1i000003QQQe"):
        error = refusal(envelope(notification("04l1I000000fztEQAQ"), org=other))
        assert isinstance(error, Forbidden)
        assert error.code == "organization_mismatch"
    assert same_org("00D1I000003qqqE", "00D1I000003qqqEUAQ")
    assert not same_org("00D1I000003qqqE", "00d1I000003qqqE")
    assert not same_org("00D1I000003qqqE'", "00D1I000003qqqE'")


def test_notification_ids_dedupe_repeats_across_and_within_messages():
    # Given a message holding two notifications and one of them twice
    body = envelope(
        notification("04l1I000000fztEQAQ")
        + notification("04l1I000000fzt9QAA")
        + notification("04l1I000000fztEQAQ")
    )
    message = parse_outbound_message(body, expected_org_id=ORG_2)
    # Then every id is returned in order, and only the ones not seen yet are new
    assert message.notification_ids == ["04l1I000000fztEQAQ", "04l1I000000fzt9QAA", "04l1I000000fztEQAQ"]
    assert [n.id for n in message.unseen([])] == ["04l1I000000fztEQAQ", "04l1I000000fzt9QAA"]
    assert [n.id for n in message.unseen({"04l1I000000fztEQAQ"})] == ["04l1I000000fzt9QAA"]
    assert message.unseen(message.notification_ids) == []


def test_the_session_id_is_kept_secret_and_a_nil_session_is_none():
    # Given a message with a session id, and one with a nil session id and a nil field
    secret = "00D1I000003qqqE!AQsAQOjGFnFJzGPA12yhUGL9Aii0N6lADjH2b"
    with_session = parse_outbound_message(
        envelope(notification("04l1I000000fztEQAQ"), session=f"<SessionId>{secret}</SessionId>"),
        expected_org_id=ORG_2,
    )
    nil = parse_outbound_message(
        envelope(notification("04l1I000000fztEQAQ", '<sf:Email xsi:nil="true"/>')), expected_org_id=ORG_2
    )
    # Then the session is readable only on purpose, never in a repr or a dump
    assert with_session.session_id is not None
    assert with_session.session_id.get_secret_value() == secret
    assert secret not in repr(with_session)
    assert secret not in with_session.model_dump_json()
    assert secret not in str(with_session.model_dump())
    assert nil.session_id is None
    assert nil.notifications[0].fields["Email"] is None


# ---------------------------------------------------------------------------- refusals


def test_external_entities_and_entity_expansion_are_refused_before_expansion():
    # Given an XXE read of a local file, an external DTD, and a billion-laughs bomb
    xxe = envelope(notification("04l1I000000fztEQAQ", "<sf:LastName>&xxe;</sf:LastName>"))
    xxe = xxe.replace(b"?>", b'?><!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', 1)
    external = b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/evil.dtd"><x/>'
    laughs = [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)]
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY l0 "lol">' + "".join(laughs) + "]><lolz>&l9;</lolz>"
    ).encode()
    # When each is parsed, Then each is a 400 xml_dtd_refused
    for body in (xxe, external, bomb):
        error = refusal(body)
        assert isinstance(error, Invalid)
        assert error.code == "xml_dtd_refused"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "malformed_xml"),
        (b"<html><body>not a SOAP message</body></html>", "not_outbound_message"),
        (b"<a><b></a>", "malformed_xml"),
        (b"<x>&undeclared;</x>", "malformed_xml"),
        (envelope(notification("not-an-id!")), "invalid_salesforce_id"),
        (envelope(notification("04l1I000000fztEQAQ"), org="0123"), "invalid_salesforce_id"),
        (envelope(notification("04l1I000000fztEQAQ").replace("sf:Contact", "")), "missing_element"),
        (envelope("<Notification><Id>04l1I000000fztEQAQ</Id></Notification>"), "missing_element"),
    ],
)
def test_bodies_that_are_not_outbound_messages_are_400s(body: bytes, code: str):
    # When a body that is not a well-formed outbound message is parsed
    error = refusal(body)
    # Then it is refused with a 400 and its code
    assert isinstance(error, Invalid)
    assert error.code == code


def test_at_most_100_notifications():
    # Given a message of 100 notifications and one of 101
    hundred = envelope("".join(notification(f"04l1I00000{i:08d}") for i in range(100)))
    too_many = envelope("".join(notification(f"04l1I00000{i:08d}") for i in range(101)))
    # Then the first is taken and the second refused
    assert len(parse_outbound_message(hundred, expected_org_id=ORG_2).notifications) == 100
    error = refusal(too_many)
    assert isinstance(error, Invalid)
    assert error.code == "too_many_notifications"


def test_a_body_over_the_limit_is_a_413_before_parsing():
    # Given a body one byte over the limit (not even XML)
    body = b"x" * (MAX_BODY_BYTES + 1)
    # Then it is refused as too large
    error = refusal(body)
    assert isinstance(error, PayloadTooLarge)
    assert error.code == "outbound_message_too_large"
