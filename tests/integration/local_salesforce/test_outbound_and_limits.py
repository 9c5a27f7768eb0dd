"""Outbound messages (SOAP + exact Ack, retries, forgeries) and the org's API request limit."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from local.clock import ManualClock
from local.double_server import Attempt
from local.salesforce import SalesforceDouble
from local.salesforce.oauth import ConnectedApp
from local.salesforce.outbound import ack_ok
from tests.integration.local_salesforce.conftest import (
    ACK,
    DATA,
    HTTP,
    WRONG_ELEMENT,
    Rest,
    SoapReceiver,
    connect,
)

NS = {
    "s": "http://schemas.xmlsoap.org/soap/envelope/",
    "o": "http://soap.sforce.com/2005/09/outbound",
    "sf": "urn:sobject.enterprise.soap.sforce.com",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}


def notifications(body: bytes) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.fromstring(body)
    envelope = root.find("s:Body/o:notifications", NS)
    assert envelope is not None
    return envelope, envelope.findall("o:Notification", NS)


def test_the_shared_answers_are_judged_as_salesforce_judges_them():
    # Given the stored answers: the exact Ack, a fault, and a 200 with the wrong element
    ack = Path(DATA, "Messages__NotificationResponse.xml").read_bytes().lstrip(b"\xef\xbb\xbf")
    fault = Path(DATA, "Messages__FaultResponse.xml").read_bytes().lstrip(b"\xef\xbb\xbf")
    # Then only the notificationsResponse with Ack true on a 200 counts as delivered
    assert ack_ok(Attempt(200, ack)) is True
    assert ack_ok(Attempt(500, ack)) is False
    assert ack_ok(Attempt(200, fault)) is False
    assert ack_ok(Attempt(200, WRONG_ELEMENT)) is False
    assert ack_ok(Attempt(200, ACK.replace(b"<Ack>true", b"<Ack>false"))) is False


def test_a_change_is_posted_and_retried_until_the_exact_ack(
    salesforce: SalesforceDouble, receiver: SoapReceiver, clock: ManualClock
):
    # Given an outbound message on Contact and a receiver that first answers the wrong element
    action = salesforce.watch("Contact", ["FirstName", "LastName", "Email", "SystemModstamp"], receiver.url)
    receiver.answers = [(200, WRONG_ELEMENT)]
    # When a user creates a contact
    contact = salesforce.create("Contact", FirstName="Ada", LastName="Lovelace", Email="ada@example.com")
    first = salesforce.flush()
    # Then one SOAP notifications message arrives and is not acknowledged
    assert [(d.attempt, d.accepted) for d in first] == [(1, False)]
    envelope, items = notifications(receiver.received[0].body)
    assert receiver.received[0].headers["content-type"].startswith("text/xml")
    assert envelope.findtext("o:OrganizationId", namespaces=NS) == salesforce.org_id
    assert envelope.findtext("o:ActionId", namespaces=NS) == action.id
    session = envelope.find("o:SessionId", NS)
    assert session is not None
    assert session.get(f"{{{NS['xsi']}}}nil") == "true"
    assert len(items) == 1
    sobject = items[0].find("o:sObject", NS)
    assert sobject is not None
    assert sobject.get(f"{{{NS['xsi']}}}type") == "sf:Contact"
    assert sobject.findtext("sf:Id", namespaces=NS) == contact
    assert sobject.findtext("sf:Email", namespaces=NS) == "ada@example.com"
    notification_id = items[0].findtext("o:Id", namespaces=NS)
    # When 14 s pass nothing is retried; at 15 s the same notification comes again
    clock.advance(14)
    assert len(salesforce.flush()) == 1
    salesforce.update("Contact", contact, Email="ada@lovelace.example")
    clock.advance(1)
    second = [d for d in salesforce.flush() if d.key == first[0].key]
    # Then the retry carries the same notification id with the values as they are now, and is
    # acknowledged; nothing more is sent for it
    assert [(d.attempt, d.accepted) for d in second] == [(1, False), (2, True)]
    _, again = notifications(second[1].request.body)
    assert again[0].findtext("o:Id", namespaces=NS) == notification_id
    assert again[0].findtext("o:sObject/sf:Email", namespaces=NS) == "ada@lovelace.example"
    clock.advance(3600)
    assert len([d for d in salesforce.flush() if d.key == first[0].key]) == 2


def test_messages_batch_up_to_100_and_can_send_a_session(
    salesforce: SalesforceDouble, rest: Rest, receiver: SoapReceiver
):
    # Given a watch that sends a session id
    salesforce.watch("Contact", ["LastName"], receiver.url, send_session=True)
    # When 150 contacts are created in one composite call
    records = [{"attributes": {"type": "Contact"}, "LastName": f"L{i}"} for i in range(150)]
    assert rest.post("/composite/sobjects", {"records": records}).status_code == 200
    salesforce.flush()
    # Then the notifications come in messages of at most 100, and the session id works on the REST API
    counts = [len(notifications(r.body)[1]) for r in receiver.received]
    assert sum(counts) == 150
    assert max(counts) <= 100
    assert len(counts) == 2
    session = notifications(receiver.received[0].body)[0].findtext("o:SessionId", namespaces=NS)
    assert session
    assert Rest(salesforce, session).get("/limits").status_code == 200


def test_forged_envelopes_are_distinguishable(salesforce: SalesforceDouble, receiver: SoapReceiver):
    # Given a delivered message
    salesforce.watch("Contact", ["LastName"], receiver.url)
    salesforce.create("Contact", LastName="Real")
    salesforce.flush()
    delivered_ids = [n.findtext("o:Id", namespaces=NS) for n in notifications(receiver.received[0].body)[1]]
    # When forgeries are built
    wrong_org = salesforce.forge_outbound("wrong_org")
    duplicate = salesforce.forge_outbound("duplicate")
    too_many = salesforce.forge_outbound("too_many")
    empty = salesforce.forge_outbound("empty")
    # Then each differs from a real message the way a receiver can check
    assert notifications(wrong_org.body)[0].findtext("o:OrganizationId", namespaces=NS) != salesforce.org_id
    assert duplicate.body == receiver.received[0].body
    assert [n.findtext("o:Id", namespaces=NS) for n in notifications(duplicate.body)[1]] == delivered_ids
    assert len(notifications(too_many.body)[1]) == 101
    assert notifications(empty.body)[1] == []
    with pytest.raises(ValueError):
        salesforce.forge_outbound("nonsense")


def test_daily_request_limit_then_recovery(
    salesforce: SalesforceDouble, app: ConnectedApp, rest: Rest, clock: ManualClock
):
    # Given an org allowed 5 API requests a day, 3 of them used by another integration
    salesforce.set_daily_api_requests(5)
    salesforce.spend_api_requests(3)
    # When the client makes three calls
    first, second, third = rest.get("/limits"), rest.get("/limits"), rest.get("/limits")
    # Then the header counts usage, the third is refused with REQUEST_LIMIT_EXCEEDED
    assert first.headers["sforce-limit-info"] == "api-usage=4/5"
    assert second.headers["sforce-limit-info"] == "api-usage=5/5"
    assert third.status_code == 403
    assert third.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    # When the rolling 24 hours have passed (the idle session has expired meanwhile: connect again)
    clock.advance(24 * 3600)
    assert rest.get("/limits").status_code == 401
    # Then calls work again
    again = Rest(salesforce, connect(salesforce, app)["access_token"]).get("/limits")
    assert again.status_code == 200
    assert again.headers["sforce-limit-info"] == "api-usage=1/5"
    assert again.json()["DailyApiRequests"] == {"Max": 5, "Remaining": 4}


def test_injected_server_errors(salesforce: SalesforceDouble, rest: Rest):
    # Given a fault on query calls
    HTTP.post(salesforce.base_url + "/__double__/faults", json={"count": 1, "status": 503, "match": "/query"})
    # When the client queries twice
    failed, ok = rest.query("SELECT Id FROM Contact"), rest.query("SELECT Id FROM Contact")
    # Then the first is a 503 in Salesforce's shape and the second works
    assert (failed.status_code, failed.json()[0]["errorCode"]) == (503, "SERVER_UNAVAILABLE")
    assert ok.status_code == 200
