"""Machine-readable parts: delivery status notifications (RFC 3464), abuse reports (RFC 5965) and
calendar invitations."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from mailbridge.mime.addresses import parse_addresses
from mailbridge.mime.bodies import embedded_message, part_bytes, transfer_encoding
from mailbridge.mime.headers import decode_raw, raw_values
from mailbridge.mime.identifiers import first_id
from mailbridge.mime.params import param
from mailbridge.mime.structure import Part
from mailbridge.models.email import BounceRecipient, BounceReport, CalendarPart, FeedbackReport

_STATUS_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BLOCK_SPLIT = re.compile(r"\r?\n[ \t]*\r?\n")
_ICS_METHOD = re.compile(r"^METHOD:(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def _field(block: Message, name: str) -> str | None:
    values = raw_values(block, name)
    if not values:
        return None
    text = decode_raw(values[0])
    return text or None


def _strip_type(value: str | None) -> str | None:
    """'rfc822; user@example.com' -> 'user@example.com' (the address-type prefix is noise to us)."""
    if value is None:
        return None
    _, sep, rest = value.partition(";")
    cleaned = (rest if sep else value).strip().strip("<>")
    return cleaned or None


def _blocks(part: Part, defects: list[str]) -> list[Message]:
    if transfer_encoding(part) not in ("base64", "quoted-printable"):
        return list(part.children)
    # Some MTAs base64- or quoted-printable-encode the status body; its blocks are in the
    # decoded text (the structure parser read the encoded text as blocks).
    text = embedded_message(part, defects).decode("utf-8", errors="replace")
    parser = HeaderParser(policy=compat32)
    return [parser.parsestr(chunk) for chunk in _BLOCK_SPLIT.split(text.strip()) if chunk.strip()]


def delivery_status(part: Part, original_message_id: str | None, defects: list[str]) -> BounceReport:
    blocks = _blocks(part, defects)
    per_message = blocks[0] if blocks else Message()
    recipients: list[BounceRecipient] = []
    for block in blocks[1:]:
        status = _field(block, "Status")
        code = _STATUS_CODE.search(status) if status else None
        recipient = BounceRecipient(
            final_recipient=_strip_type(_field(block, "Final-Recipient")),
            original_recipient=_strip_type(_field(block, "Original-Recipient")),
            action=(_field(block, "Action") or "").lower() or None,
            status=".".join(code.groups()) if code else status,
            diagnostic_code=_field(block, "Diagnostic-Code"),
            remote_mta=_strip_type(_field(block, "Remote-MTA")),
        )
        if recipient.final_recipient or recipient.action or recipient.status:
            recipients.append(recipient)
    return BounceReport(
        reporting_mta=_strip_type(_field(per_message, "Reporting-MTA")),
        original_envelope_id=_field(per_message, "Original-Envelope-Id"),
        recipients=recipients,
        original_message_id=original_message_id,
    )


MAX_REPORT_RECIPIENTS = 100


def feedback_report(
    part: Part, original_message_id: str | None, original_to: list[str], defects: list[str]
) -> FeedbackReport:
    """A `message/feedback-report` part: its fields are one header block (RFC 5965 section 3.1)."""
    text = embedded_message(part, defects).decode("utf-8", errors="replace")
    fields = HeaderParser(policy=compat32).parsestr(text, headersonly=True)
    recipients = [
        address.address
        for value in (fields.get_all("Original-Rcpt-To") or [])[:MAX_REPORT_RECIPIENTS]
        for address in parse_addresses(decode_raw(str(value)))
    ]
    kind = fields.get("Feedback-Type")
    return FeedbackReport(
        feedback_type=" ".join(str(kind).split()).lower() or None if kind is not None else None,
        original_rcpt_to=recipients,
        original_to=original_to[:MAX_REPORT_RECIPIENTS],
        original_message_id=original_message_id,
    )


def original_recipients(part: Part) -> list[str]:
    """The `To` addresses of the returned message of a report (its message/rfc822 part)."""
    children = part.children
    if not children:
        return []
    return [a.address for value in raw_values(children[0], "To") for a in parse_addresses(decode_raw(value))]


def original_message_id(part: Part, defects: list[str]) -> str | None:
    """The Message-ID of the bounced message, from its message/rfc822 or text/rfc822-headers part."""
    children = part.children
    if children:
        values = raw_values(children[0], "Message-ID")
        return first_id(decode_raw(values[0])) if values else None
    raw = part_bytes(part, defects)
    headers = HeaderParser(policy=compat32).parsestr(raw.decode("utf-8", errors="replace"))
    value = headers.get("Message-ID")
    return first_id(str(value)) if value is not None else None


def calendar(part: Part, ics: str, defects: list[str]) -> CalendarPart:
    method = param(part, "Content-Type", "method", defects)
    if not method or not method.strip():
        found = _ICS_METHOD.search(ics)
        method = found.group(1) if found else None
    return CalendarPart(method=method.strip().upper() if method else None, ics=ics)
