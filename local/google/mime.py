"""Render a stored RFC 5322 message the way Gmail's messages.get does.

Shapes from the gmail.v1 discovery document (Message, MessagePart, MessagePartBody) and the stored
`messages_get_format_*.schema-derived.json` payloads [D]:

* `raw`: the whole message, base64url (RFC 4648 §5) with padding, as in the stored raw sample.
* `payload`: partId ("" for the top part, then "0", "1", "0.1" ...), mimeType, filename,
  headers [{name, value}] in message order with folding kept, body {size, data | attachmentId};
  container parts have body {size: 0} and `parts`.
* Parts with a filename (attachments) carry an `attachmentId` instead of `data`, fetched with
  messages.attachments.get [D].
"""

from __future__ import annotations

import base64
import email
import email.message
import hashlib
import html
import re
from email import policy
from typing import Any

SNIPPET_CHARS = 200  # Gmail snippets run to roughly this length [R]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding (Gmail accepts both in `raw`)."""
    cleaned = text.strip().replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def header_block(raw: bytes) -> list[tuple[str, str]]:
    """Top-level header fields in order, values as written (folding kept, CRLF line breaks)."""
    end = re.search(rb"\r?\n\r?\n", raw)
    block = raw[: end.start()] if end else raw
    text = block.decode("utf-8", "replace")
    fields: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n", text):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + "\r\n" + line)
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip(), value.lstrip(" \t")))
    return fields


def header(raw: bytes, name: str) -> str | None:
    for key, value in header_block(raw):
        if key.lower() == name.lower():
            return value
    return None


def message_ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _part_headers(part: email.message.Message) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in part.items()]


def _attachment_id(message_id: str, part_id: str) -> str:
    digest = hashlib.sha256(f"{message_id}/{part_id}".encode()).digest()
    return "ANGjdJ" + base64.urlsafe_b64encode(digest * 3).decode().rstrip("=")


def payload(message_id: str, raw: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The `payload` MessagePart tree and the attachment bodies by attachmentId."""
    parsed = email.message_from_bytes(raw, policy=policy.compat32)
    attachments: dict[str, bytes] = {}

    def render(part: email.message.Message, part_id: str, top: bool) -> dict[str, Any]:
        filename = part.get_filename() or ""
        node: dict[str, Any] = {
            "partId": part_id,
            "mimeType": part.get_content_type(),
            "filename": filename,
            "headers": [{"name": k, "value": v} for k, v in header_block(raw)]
            if top
            else _part_headers(part),
        }
        if part.is_multipart():
            node["body"] = {"size": 0}
            children = part.get_payload()
            assert isinstance(children, list)
            node["parts"] = [
                render(child, f"{part_id}.{i}" if part_id else str(i), False)
                for i, child in enumerate(children)
            ]
            return node
        data = part.get_payload(decode=True)
        body = data if isinstance(data, bytes) else b""
        if filename and body:
            attachment_id = _attachment_id(message_id, part_id or "0")
            attachments[attachment_id] = body
            node["body"] = {"attachmentId": attachment_id, "size": len(body)}
        elif body:
            node["body"] = {"size": len(body), "data": b64url(body)}
        else:
            node["body"] = {"size": 0}
        return node

    return render(parsed, "", True), attachments


def metadata_payload(raw: bytes, wanted: list[str]) -> dict[str, Any]:
    """format=metadata: mimeType and the top-level headers, filtered by `metadataHeaders` [D]."""
    parsed = email.message_from_bytes(raw, policy=policy.compat32)
    names = {w.lower() for w in wanted}
    headers = [{"name": k, "value": v} for k, v in header_block(raw) if not names or k.lower() in names]
    return {"mimeType": parsed.get_content_type(), "headers": headers}


def snippet(raw: bytes) -> str:
    """A short, HTML-escaped extract of the first text part, whitespace collapsed [R]."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    text = ""
    for part in parsed.walk():
        if part.get_content_maintype() == "text" and not part.get_filename():
            try:
                content = part.get_content()
            except (LookupError, ValueError):
                continue
            if part.get_content_subtype() == "html":
                content = re.sub(r"<[^>]+>", " ", str(content))
            text = str(content)
            break
    collapsed = " ".join(html.unescape(text).split())[:SNIPPET_CHARS]
    return html.escape(collapsed)


def normalized_subject(raw_subject: str | None) -> str:
    """Subject with reply/forward prefixes and case removed, for Gmail's subject-match rule."""
    subject = " ".join((raw_subject or "").split()).lower()
    while True:
        stripped = re.sub(r"^(re|fwd?|aw|wg)\s*:\s*", "", subject)
        if stripped == subject:
            return subject
        subject = stripped
