"""Machine-readable parts: delivery status notifications (RFC 3464) and calendar invitations."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from mailbridge.mime.headers import decode_raw
from mailbridge.mime.identifiers import first_id
from mailbridge.mime.text import clean_header_text
from mailbridge.models.email import BounceRecipient, BounceReport, CalendarPart

_STATUS_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BLOCK_SPLIT = re.compile(r"\r?\n[ \t]*\r?\n")
_ICS_METHOD = re.compile(r"^METHOD:(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def _field(block: Message, name: str) -> str | None:
    raw = block.get(name)
    if raw is None:
        return None
    text = decode_raw(str(raw))
    return text or None


def _strip_type(value: str | None) -> str | None:
    """'rfc822; user@example.com' -> 'user@example.com' (the address-type prefix is noise to us)."""
    if value is None:
        return None
    _, sep, rest = value.partition(";")
    cleaned = (rest if sep else value).strip().strip("<>")
    return cleaned or None


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [p for p in payload if isinstance(p, Message)]
        if blocks:
            return blocks
    # Some MTAs encode the status body, which leaves the stdlib with one opaque string.
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(payload)
    parser = HeaderParser(policy=compat32)
    return [parser.parsestr(chunk) for chunk in _BLOCK_SPLIT.split(text.strip()) if chunk.strip()]


def delivery_status(part: Message, original_message_id: str | None) -> BounceReport:
    blocks = _blocks(part)
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


def original_message_id(part: Message) -> str | None:
    """The Message-ID of the bounced message, from its message/rfc822 or text/rfc822-headers part."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        value = payload[0].get("Message-ID")
        return first_id(clean_header_text(str(value))) if value is not None else None
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return None
    headers = HeaderParser(policy=compat32).parsestr(raw.decode("utf-8", errors="replace"))
    value = headers.get("Message-ID")
    return first_id(str(value)) if value is not None else None


def calendar(part: Message, ics: str) -> CalendarPart:
    method = part.get_param("method")
    if not isinstance(method, str) or not method.strip():
        found = _ICS_METHOD.search(ics)
        method = found.group(1) if found else None
    return CalendarPart(method=method.strip().upper() if method else None, ics=ics)
