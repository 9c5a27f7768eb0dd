"""Each header rule decides its own case (and only its rule names it in `reasons`)."""

from __future__ import annotations

import pytest

from mailbridge.ai import rules
from mailbridge.ai.categorize import categorize

DSN = (
    "--B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
    "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
    "Final-Recipient: rfc822; x@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "--B--\r\n"
)
MDN = (
    "--B\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
    "--B\r\nContent-Type: message/disposition-notification\r\n\r\n"
    "Final-Recipient: rfc822; x@example.org\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n"
    "--B--\r\n"
)
ICS = (
    "--C\r\nContent-Type: text/plain\r\n\r\nInvitation.\r\n"
    "--C\r\nContent-Type: text/calendar; method=CANCEL\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\n"
    "BEGIN:VEVENT\r\nUID:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n--C--\r\n"
)

CASES = [
    # rule, how the message is built, the reason, (category, is_bulk, is_automated)
    (
        rules.delivery_status,
        {"content_type": 'multipart/report; report-type=delivery-status; boundary="B"', "body": DSN},
        "dsn:delivery-status",
        ("notification", False, True),
    ),
    (
        rules.other_reports,
        {"content_type": 'multipart/report; report-type=disposition-notification; boundary="B"', "body": MDN},
        "report:disposition-notification",
        ("notification", False, True),
    ),
    (
        rules.mailer_daemon,
        {"sender": "Mail System <postmaster@mx.example>", "subject": "Your message"},
        "header:from-mailer-daemon",
        ("notification", False, True),
    ),
    (
        rules.bounce_subject,
        {"subject": "Returned mail: see transcript for details"},
        "subject:bounce",
        ("notification", False, True),
    ),
    (
        rules.bounce_body,
        {
            "subject": "",
            "body": "Delivery has failed to these recipients or groups:\r\n\r\nx@example.org\r\n",
        },
        "body:bounce",
        ("notification", False, True),
    ),
    (
        rules.auto_submitted,
        {"headers": ("Auto-Submitted: auto-generated",)},
        "header:auto-submitted",
        ("automated", False, True),
    ),
    (
        rules.autoreply_headers,
        {"headers": ("X-Autoreply: yes",)},
        "header:x-autoreply",
        ("automated", False, True),
    ),
    (
        rules.auto_reply_subject,
        {"subject": "Out of Office: back on Monday"},
        "subject:auto-reply",
        ("automated", False, True),
    ),
    (
        rules.noreply_sender,
        {"sender": "Shop <no-reply@shop.example>", "subject": "Your order has shipped"},
        "header:from-noreply",
        ("notification", False, True),
    ),
    (
        rules.list_headers,
        {"headers": ("List-Id: Team <team.lists.example>",)},
        "header:list-id",
        ("newsletter", True, False),
    ),
    (
        rules.feedback_id,
        {"headers": ("Feedback-ID: 1:campaign:sender",)},
        "header:feedback-id",
        ("newsletter", True, False),
    ),
    (
        rules.precedence,
        {"headers": ("Precedence: bulk",)},
        "header:precedence-bulk",
        ("newsletter", True, False),
    ),
    (
        rules.calendar_part,
        {"content_type": 'multipart/mixed; boundary="C"', "body": ICS},
        "calendar:cancel",
        ("calendar", False, False),
    ),
]


def _build(message, spec):
    spec = dict(spec)
    headers = spec.pop("headers", ())
    return message(*headers, **spec)


@pytest.mark.parametrize(("rule", "spec", "reason", "expected"), CASES, ids=[c[2] for c in CASES])
def test_rule_decides_its_case(message, rule, spec, reason, expected):
    # Given a message that carries exactly this rule's evidence
    parsed = _build(message, spec)
    # When it is categorized
    result = categorize(parsed)
    # Then the rule is named, and the category and flags follow from it
    assert reason in result.reasons
    assert (result.category, result.is_bulk, result.is_automated) == expected


@pytest.mark.parametrize(("rule", "spec", "reason", "expected"), CASES, ids=[c[2] for c in CASES])
def test_without_the_rule_its_reason_is_gone(message, rule, spec, reason, expected):
    # Given the same message, and the rule set without this rule
    parsed = _build(message, spec)
    others = tuple(r for r in rules.RULES if r is not rule)
    # When the header evidence is gathered
    found = [e.reason for e in rules.header_evidence(parsed, others)]
    # Then no other rule claims this rule's reason (each rule is the only one deciding it)
    assert reason not in found
    assert reason in [e.reason for e in rules.header_evidence(parsed)]


def test_plain_person_mail_has_no_header_evidence(message):
    # Given an ordinary message between two people
    parsed = message()
    # Then no rule fires
    assert rules.header_evidence(parsed) == []


def test_auto_submitted_no_is_not_automated(message):
    # Given Auto-Submitted: no (RFC 3834 section 5: explicitly not automatic)
    parsed = message("Auto-Submitted: no")
    # Then no rule fires
    assert rules.auto_submitted(parsed) is None


def test_quoted_bounce_in_a_reply_is_a_person(message):
    # Given a person forwarding bounce text in a reply
    parsed = message(subject="Re: problem", body="Delivery has failed to these recipients or groups:\r\n")
    # Then the bounce body rule does not fire
    assert rules.bounce_body(parsed) is None


def test_reply_to_a_bounce_is_a_person(message):
    # Given a person replying to a bounce ("Re: Undeliverable ...")
    parsed = message(subject="Re: Undeliverable: Contract draft")
    # Then the bounce subject rule does not fire
    assert rules.bounce_subject(parsed) is None


def test_list_mail_with_auto_submitted_is_bulk_not_automated_category(message):
    # Given list mail that also says Auto-Submitted (list software, digests)
    parsed = message("List-Id: Team <team.lists.example>", "Auto-Submitted: auto-generated")
    # When it is categorized
    result = categorize(parsed)
    # Then it is bulk mail in a bulk category, still flagged automated
    assert result.category in ("newsletter", "marketing")
    assert result.is_bulk
    assert result.is_automated
