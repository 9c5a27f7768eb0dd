"""`mailbridge.crm.remote.salesforce_outbound` against what the double's outbound sender sends:
the parser reads its messages, its Ack is what the double accepts, and its forgeries are refused
or recognised as repeats."""

from __future__ import annotations

import pytest

from local.salesforce import SalesforceDouble
from mailbridge.crm.remote.salesforce_outbound import (
    NOTIFICATIONS_RESPONSE,
    OutboundMessage,
    parse_outbound_message,
    soap_fault,
)
from mailbridge.errors import Forbidden, Invalid, MailbridgeError
from tests.integration.local_salesforce.conftest import SoapReceiver


def parse(salesforce: SalesforceDouble, body: bytes) -> OutboundMessage:
    return parse_outbound_message(body, expected_org_id=salesforce.org_id)


def test_the_double_s_messages_parse_and_our_ack_is_accepted(
    salesforce: SalesforceDouble, receiver: SoapReceiver
):
    # Given an outbound message on Contact that sends a session, and a receiver answering our Ack
    action = salesforce.watch("Contact", ["FirstName", "LastName", "Email"], receiver.url, send_session=True)
    receiver.default = (200, NOTIFICATIONS_RESPONSE)
    # When a user creates a contact
    contact = salesforce.create("Contact", FirstName="Ada", LastName="Lovelace", Email="ada@example.com")
    deliveries = salesforce.flush()
    # Then the double counts the message delivered on its first attempt (nothing is resent)
    assert [(d.attempt, d.accepted) for d in deliveries] == [(1, True)]
    # And the parser reads the org, the action, the session and the record as it was sent
    message = parse(salesforce, receiver.received[0].body)
    assert message.action_id == action.id
    assert message.session_id is not None
    assert message.session_id.get_secret_value()
    (notification,) = message.notifications
    assert (notification.sobject_type, notification.record_id) == ("Contact", contact)
    assert notification.fields["Email"] == "ada@example.com"
    assert notification.fields["LastName"] == "Lovelace"


def test_a_fault_is_not_an_ack_and_the_retry_carries_the_same_notification_ids(
    salesforce: SalesforceDouble, receiver: SoapReceiver
):
    # Given a receiver that first answers our SOAP fault, then our Ack
    salesforce.watch("Contact", ["LastName"], receiver.url)
    fault = soap_fault(Invalid("the message was refused", code="refused"))
    receiver.answers = [(500, fault)]
    receiver.default = (200, NOTIFICATIONS_RESPONSE)
    # When a contact is made, the first attempt is answered with the fault, and the retry is due
    salesforce.create("Contact", LastName="Retry")
    first = salesforce.flush()
    salesforce.advance(15)
    again = salesforce.flush()
    # Then the fault failed the delivery, and the retry's notification ids are all already seen
    assert [d.accepted for d in first] == [False]
    assert [d.accepted for d in again][-1] is True
    seen = parse(salesforce, receiver.received[0].body).notification_ids
    retry = parse(salesforce, receiver.received[-1].body)
    assert retry.notification_ids == seen
    assert retry.unseen(seen) == []


def test_a_duplicated_message_is_recognised_by_its_notification_ids(
    salesforce: SalesforceDouble, receiver: SoapReceiver
):
    # Given a message delivered, and the double's duplicate of it (the same bytes again)
    salesforce.watch("Contact", ["LastName"], receiver.url)
    receiver.default = (200, NOTIFICATIONS_RESPONSE)
    salesforce.create("Contact", LastName="Once")
    salesforce.flush()
    first = parse(salesforce, receiver.received[0].body)
    duplicate = parse(salesforce, salesforce.forge_outbound("duplicate").body)
    # Then the duplicate holds nothing new
    assert duplicate.notification_ids == first.notification_ids
    assert duplicate.unseen(first.notification_ids) == []


@pytest.mark.parametrize(
    ("forgery", "kind", "code"),
    [
        ("wrong_org", Forbidden, "organization_mismatch"),
        ("too_many", Invalid, "too_many_notifications"),
        ("empty", Invalid, "no_notifications"),
        ("not_soap", Invalid, "not_outbound_message"),
    ],
)
def test_the_double_s_forgeries_are_refused(
    salesforce: SalesforceDouble, receiver: SoapReceiver, forgery: str, kind: type[MailbridgeError], code: str
):
    # Given an outbound message action and one contact
    salesforce.watch("Contact", ["LastName"], receiver.url)
    salesforce.create("Contact", LastName="Real")
    # When the double forges a message
    forged = salesforce.forge_outbound(forgery)
    # Then the parser refuses it with its typed 4xx
    with pytest.raises(kind) as raised:
        parse(salesforce, forged.body)
    assert raised.value.code == code
