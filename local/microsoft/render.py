"""Turn stored RFC 5322 bytes into Graph's `message` resource, and build MIME from Graph's JSON.

Property names, types and the default property set are those of the v1.0 `message` resource
[D: graph/api/resources/message]; `$select` narrows them (`id` is always returned), and
`internetMessageHeaders` / `uniqueBody` come only when selected [D]. Exchange fills the values
from the MIME it stored: `subject` (RFC 2047 decoded), `from`/`sender` (Sender header, else From),
`toRecipients`/`ccRecipients`/`bccRecipients`/`replyTo`, `sentDateTime` (Date), `receivedDateTime`
(arrival), `internetMessageId` (Message-ID), `hasAttachments`, `bodyPreview` (first 255
characters of the text [D]), `body` (the HTML part when there is one, else the text part;
`Prefer: outlook.body-content-type="text"` asks for text [D]). Date-times are UTC with a `Z` and
no fraction, as Graph writes them [R].
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.message
import email.policy
import re
from datetime import UTC, datetime
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

from local.microsoft.errors import bad_request

DEFAULT_PROPERTIES = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)
SELECT_ONLY = ("internetMessageHeaders", "uniqueBody")
ALL_PROPERTIES = frozenset(p.lower() for p in (*DEFAULT_PROPERTIES, *SELECT_ONLY, "id"))
PREVIEW_CHARS = 255


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_select(value: str | None, allowed: frozenset[str], type_name: str) -> list[str] | None:
    """`$select=subject,isRead` -> ["subject", "isRead"] (names checked case-insensitively)."""
    if not value:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name.lower() not in allowed:
            raise bad_request(
                f"Could not find a property named '{name}' on type '{type_name}'.", "RequestBroker--ParseUri"
            )
    return names


def parse(raw: bytes) -> email.message.Message:
    """The MIME tree (compat32: fast, raw header values; decoding is done per field below)."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def decode_words(value: str) -> str:
    """RFC 2047 encoded-words decoded, folding whitespace collapsed."""
    try:
        decoded = str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, ValueError, UnicodeDecodeError, email.errors.HeaderParseError):
        decoded = value
    return " ".join(decoded.split())


def header_text(message: email.message.Message, name: str) -> str | None:
    value = message.get(name)
    return None if value is None else decode_words(str(value))


def recipients(message: email.message.Message, *names: str) -> list[dict[str, Any]]:
    values = [str(v) for name in names for v in message.get_all(name) or []]
    return [
        {"emailAddress": {"name": decode_words(display) or address, "address": address}}
        for display, address in getaddresses(values)
        if address
    ]


def _address(message: email.message.Message, name: str) -> dict[str, Any] | None:
    found = recipients(message, name)
    return found[0] if found else None


def _parts(message: email.message.Message) -> tuple[str | None, str | None, bool]:
    text = html = None
    attachments = False
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        if disposition == "attachment" or (part.get_filename() and disposition != "inline"):
            attachments = True
            continue
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        try:
            content = data.decode(part.get_content_charset() or "utf-8", "replace")
        except LookupError:
            content = data.decode("utf-8", "replace")
        if part.get_content_subtype() == "html" and html is None:
            html = content
        elif part.get_content_subtype() == "plain" and text is None:
            text = content
    return text, html, attachments


def _preview(text: str | None, html: str | None) -> str:
    source = text if text is not None else re.sub(r"<[^>]+>", " ", html or "")
    return " ".join(source.split())[:PREVIEW_CHARS]


def message_fields(raw: bytes, prefer_text: bool) -> dict[str, Any]:
    """Every property the MIME decides (the mailbox state adds isRead, flag, ids ...)."""
    parsed = parse(raw)
    text, html, attachments = _parts(parsed)
    sender = _address(parsed, "Sender") or _address(parsed, "From")
    sent = None
    date = header_text(parsed, "Date")
    if date:
        try:
            stamp = parsedate_to_datetime(date)
            sent = iso(stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
        except (TypeError, ValueError):
            sent = None
    if html is not None and not prefer_text:
        body = {"contentType": "html", "content": html}
    else:
        body = {"contentType": "text", "content": text if text is not None else _preview(None, html)}
    return {
        "subject": header_text(parsed, "Subject") or "",
        "bodyPreview": _preview(text, html),
        "body": body,
        "uniqueBody": body,
        "sender": sender,
        "from": _address(parsed, "From"),
        "toRecipients": recipients(parsed, "To"),
        "ccRecipients": recipients(parsed, "Cc"),
        "bccRecipients": recipients(parsed, "Bcc"),
        "replyTo": recipients(parsed, "Reply-To"),
        "sentDateTime": sent,
        "internetMessageId": header_text(parsed, "Message-ID"),
        "hasAttachments": attachments,
        "isDeliveryReceiptRequested": parsed.get("Return-Receipt-To") is not None,
        "isReadReceiptRequested": parsed.get("Disposition-Notification-To") is not None,
        "internetMessageHeaders": [{"name": k, "value": decode_words(str(v))} for k, v in parsed.items()],
    }


def message_ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def sender_address(raw: bytes) -> str | None:
    parsed = parse(raw)
    value = header_text(parsed, "From")
    return parseaddr(value)[1] if value else None


def build_mime(
    message: dict[str, Any], sender: str, sender_name: str, message_id: str, now: datetime
) -> bytes:
    """Graph JSON `message` -> the RFC 5322 bytes Exchange would store and send."""
    out = email.message.EmailMessage()

    def addresses(key: str) -> str:
        items = message.get(key) or []
        if not isinstance(items, list):
            raise bad_request(f"Invalid value for '{key}'.", "RequestBodyRead")
        rendered = []
        for item in items:
            address = (item or {}).get("emailAddress") or {}
            if not isinstance(address, dict) or not address.get("address"):
                raise bad_request(f"Invalid recipient in '{key}'.", "ErrorInvalidRecipients")
            name = address.get("name")
            rendered.append(f'"{name}" <{address["address"]}>' if name else str(address["address"]))
        return ", ".join(rendered)

    out["From"] = f'"{sender_name}" <{sender}>'
    for key, header in (
        ("toRecipients", "To"),
        ("ccRecipients", "Cc"),
        ("bccRecipients", "Bcc"),
        ("replyTo", "Reply-To"),
    ):
        value = addresses(key)
        if value:
            out[header] = value
    out["Subject"] = str(message.get("subject") or "")
    out["Date"] = format_datetime(now)
    out["Message-ID"] = str(message.get("internetMessageId") or message_id)
    for item in message.get("internetMessageHeaders") or []:
        name, value = str(item.get("name", "")), str(item.get("value", ""))
        if not name.lower().startswith("x-"):
            raise bad_request(
                "Only custom headers starting with 'x-' or 'X-' can be set.", "InvalidInternetMessageHeader"
            )
        out[name] = value
    body = message.get("body") or {}
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "text").lower() == "html":
        out.set_content(content, subtype="html")
    else:
        out.set_content(content)
    return bytes(out)
