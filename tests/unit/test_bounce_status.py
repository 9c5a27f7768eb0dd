"""Which permanent failures put a recipient on the suppression list: those that say the address
or mailbox fails for good (RFC 3463 subjects X.1 and X.2.1; RFC 5321 550/551/553 without an
enhanced code), not those about the sender, the message, a policy or the receiving system."""

from __future__ import annotations

import pytest

from mailbridge.campaigns.suppression import address_failed_for_good, hard_bounced, reply_failed_for_good


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("5.1.1", True),  # bad destination mailbox address
        ("5.1.2", True),  # bad destination system address
        ("5.1.3", True),  # bad destination mailbox address syntax
        ("5.1.6", True),  # destination mailbox has moved, no forwarding address
        ("5.1.10", True),  # recipient address has null MX (RFC 7505)
        ("5.2.1", True),  # mailbox disabled, not accepting messages
        ("5.1.1 (user unknown)", True),  # a comment after the code
        ("5.1.7", False),  # the sender's mailbox address syntax
        ("5.1.8", False),  # the sender's system address
        ("5.2.2", False),  # mailbox full
        ("5.2.3", False),  # message too long
        ("5.3.4", False),  # message too big for the system
        ("5.4.4", False),  # unable to route
        ("5.6.1", False),  # media not supported
        ("5.7.1", False),  # delivery not authorized (policy: DMARC, spam blocks)
        ("5.7.26", False),  # multiple authentication checks failed (RFC 7372)
        ("4.1.1", False),  # transient
        ("4.2.2", False),
        ("", False),
        ("failed", False),
        ("55.1.1", False),
    ],
)
def test_an_enhanced_status_suppresses_only_when_it_is_about_the_address(status: str, expected: bool) -> None:
    assert address_failed_for_good(status) is expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("550 5.1.1 No such user", True),
        ("550-5.1.1 The email account that you tried to reach does not exist", True),
        ("553 5.1.3 Bad recipient address syntax", True),
        ("550 5.7.1 Message rejected as spam", False),
        ("550 5.7.26 Unauthenticated email is not accepted", False),
        ("552 5.2.2 Mailbox full", False),
        ("554 5.4.4 Unable to route", False),
        ("550 Requested action not taken: mailbox unavailable", True),  # no enhanced code
        ("551 User not local", True),
        ("553 Mailbox name not allowed", True),
        ("552 Requested mail action aborted: exceeded storage allocation", False),
        ("554 Transaction failed", False),
        ("452 4.2.2 Mailbox full", False),
        ("450 Mailbox busy", False),
        ("garbage", False),
    ],
)
def test_an_smtp_refusal_suppresses_only_when_it_is_about_the_address(reply: str, expected: bool) -> None:
    assert reply_failed_for_good(reply) is expected


def test_a_dsn_lists_only_the_recipients_whose_address_failed_for_good() -> None:
    bounce = {
        "recipients": [
            {"final_recipient": "Gone@Customer.Example", "status": "5.1.1"},
            {"final_recipient": "blocked@customer.example", "status": "5.7.1"},
            {"original_recipient": "disabled@customer.example", "status": "5.2.1"},
            {"final_recipient": "full@customer.example", "status": "5.2.2"},
        ]
    }
    assert hard_bounced(bounce) == ["gone@customer.example", "disabled@customer.example"]
