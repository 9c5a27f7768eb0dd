"""Raw RFC 5322 bytes -> ParsedMessage plus attachment bytes.

The stdlib parser (policy.default) does the MIME work; this module decides what each part means
for us (body, attachment, calendar, bounce, TNEF) and turns every failure into one MimeError.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy

from mailbridge.mime import errors
from mailbridge.mime.addresses import addresses
from mailbridge.mime.attachments import (
    clean_filename,
    content_id,
    content_type,
    filename,
    is_inline,
    make_meta,
)
from mailbridge.mime.bodies import choose_bodies, is_attachment_disposition, part_bytes, part_text, snippet
from mailbridge.mime.dates import pick_date
from mailbridge.mime.errors import MimeError
from mailbridge.mime.headers import header_text, header_texts
from mailbridge.mime.html_text import html_to_text
from mailbridge.mime.identifiers import first_id, in_reply_to, message_ids
from mailbridge.mime.listinfo import interesting_headers, list_info
from mailbridge.mime.reports import calendar, delivery_status, original_message_id
from mailbridge.mime.sanitize import sanitize_html
from mailbridge.mime.tnef import unpack_tnef
from mailbridge.models.email import AttachmentMeta, BounceReport, CalendarPart, ParsedMessage

DEFAULT_MAX_SIZE = 50 * 1024 * 1024
MAX_PARTS = 1000
MAX_DEPTH = 60

_TNEF_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}
_EMBEDDED_MESSAGE_TYPES = {"message/rfc822", "message/global"}
_REPORT_HEADER_TYPES = {"text/rfc822-headers", "message/rfc822-headers"}
_BOM = b"\xef\xbb\xbf"
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_OBS_FIELD = re.compile(rb"(?m)^([!-9;-~]+)[ \t]+:")


@dataclass(frozen=True)
class NormalizeResult:
    message: ParsedMessage
    attachments: list[tuple[AttachmentMeta, bytes]]


@dataclass
class _Collected:
    """What the part walk found besides the two chosen bodies."""

    attachments: list[tuple[AttachmentMeta, bytes]] = field(default_factory=list)
    extra_text: list[str] = field(default_factory=list)
    calendar: CalendarPart | None = None
    bounce: BounceReport | None = None
    tnef_text: str | None = None
    tnef_html: str | None = None
    parts_seen: int = 0


def _message_bytes(part: Message) -> bytes:
    """An embedded message/rfc822 re-serialized; the stdlib does not keep the original slice."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return part_bytes(part)
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=policy.compat32).flatten(inner)
    except Exception:  # noqa: BLE001 - re-folding odd headers can fail; the decoded text still helps
        return inner.as_string(policy=policy.compat32).encode("utf-8", errors="surrogateescape")
    return buffer.getvalue()


def _embedded_name(part: Message, defects: list[str]) -> str | None:
    name = filename(part, defects)
    if name:
        return name
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    subject = header_text(inner, "Subject", defects) if isinstance(inner, Message) else None
    return clean_filename(f"{subject}.eml") if subject else None


class _Walker:
    def __init__(self, text_part: Message | None, html_part: Message | None, defects: list[str]) -> None:
        self.text_part = text_part
        self.html_part = html_part
        self.defects = defects
        self.found = _Collected()
        self._report_original: str | None = None

    def _add(self, data: bytes, *, name: str | None, ctype: str, cid: str | None, inline: bool) -> None:
        meta = make_meta(len(self.found.attachments), data, name=name, ctype=ctype, cid=cid, inline=inline)
        self.found.attachments.append((meta, data))

    def walk(self, part: Message, depth: int = 0, parent_type: str | None = None) -> None:
        self.found.parts_seen += 1
        if self.found.parts_seen > MAX_PARTS or depth > MAX_DEPTH:
            raise MimeError("too many MIME parts or too deeply nested", code=errors.TOO_COMPLEX)
        ctype = content_type(part)
        if part.is_multipart() and ctype not in _EMBEDDED_MESSAGE_TYPES and not ctype.startswith("message/"):
            payload = part.get_payload()
            if ctype == "multipart/report":
                self._report_original = self._find_original_id(payload)
            for child in payload if isinstance(payload, list) else []:
                if isinstance(child, Message):
                    self.walk(child, depth + 1, ctype)
            return
        if part is self.text_part or part is self.html_part:
            return
        self._leaf(part, ctype, parent_type)

    def _find_original_id(self, payload: object) -> str | None:
        for child in payload if isinstance(payload, list) else []:
            if isinstance(child, Message) and content_type(child) in (
                _EMBEDDED_MESSAGE_TYPES | _REPORT_HEADER_TYPES
            ):
                return original_message_id(child)
        return None

    def _leaf(self, part: Message, ctype: str, parent_type: str | None) -> None:
        name = filename(part, self.defects)
        cid = content_id(part)
        attachment = is_attachment_disposition(part)
        if (
            ctype in ("message/delivery-status", "message/global-delivery-status")
            and self.found.bounce is None
        ):
            self.found.bounce = delivery_status(part, self._report_original)
            return
        if ctype == "text/calendar" and self.found.calendar is None:
            self.found.calendar = calendar(part, part_text(part, self.defects))
            if not attachment and not name:
                return
        is_tnef = ctype in _TNEF_TYPES or (name or "").lower() == "winmail.dat"
        if is_tnef and self._tnef(part):
            return
        if ctype in _EMBEDDED_MESSAGE_TYPES:
            self._add(
                _message_bytes(part),
                name=_embedded_name(part, self.defects),
                ctype=ctype,
                cid=cid,
                inline=False,
            )
            return
        if (
            ctype == "text/plain"
            and not attachment
            and not name
            and parent_type in (None, "multipart/mixed")
            and self.text_part is not None
        ):
            # Mailing-list footers and multi-part plain mail: clients show these inline, in order.
            self.found.extra_text.append(part_text(part, self.defects))
            return
        data = part_bytes(part)
        self._add(data, name=name, ctype=ctype, cid=cid, inline=is_inline(part, cid))

    def _tnef(self, part: Message) -> bool:
        try:
            content = unpack_tnef(part_bytes(part))
        except Exception:  # noqa: BLE001 - a broken winmail.dat stays an opaque attachment
            self.defects.append("tnef_unreadable")
            return False
        for item in content.files:
            meta = make_meta(
                len(self.found.attachments),
                item.data,
                name=item.filename,
                ctype="application/octet-stream",
                cid=None,
                inline=False,
                from_tnef=True,
            )
            self.found.attachments.append((meta, item.data))
        self.found.tnef_text = self.found.tnef_text or content.text_body
        self.found.tnef_html = self.found.tnef_html or content.html_body
        return True


class _MemoHeaderRegistry(HeaderRegistry):
    """policy.default re-parses a structured header on every access (the parser alone asks for
    each part's Content-Type several times); parsed headers are immutable, so one per value is
    enough. One registry per message keeps the memo from outliving it."""

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: str) -> BaseHeader:
        key = (name.lower(), value)
        header = self._memo.get(key)
        if header is None:
            header = super().__call__(name, value)
            self._memo[key] = header
        return header


def _message_policy() -> EmailPolicy[EmailMessage]:
    return policy.default.clone(header_factory=_MemoHeaderRegistry())


def _repair(raw: bytes, defects: list[str]) -> bytes:
    """Fix what the stdlib parser would misread as "no headers at all"."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
        defects.append("utf8_bom")
    end = _HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    # RFC 5322 4.5.5 obs-optional allows space before the colon ("Subject : x"); the stdlib
    # feedparser does not, and would take the whole header block for body text.
    if _OBS_FIELD.search(head):
        raw = _OBS_FIELD.sub(rb"\1:", head) + raw[len(head) :]
        defects.append("obsolete_header_syntax")
    return raw


def _parse(raw: bytes, defects: list[str]) -> Message:
    if raw.startswith(_OLE_SIGNATURE):
        raise MimeError("an Outlook .msg (OLE) file, not RFC 5322", code=errors.NOT_RFC822)
    msg = BytesParser(policy=_message_policy()).parsebytes(_repair(raw, defects))
    if not msg.keys():
        raise MimeError("no RFC 5322 header found", code=errors.NOT_RFC822)
    return msg


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _defect_names(msg: Message, extra: list[str]) -> list[str]:
    names: list[str] = []
    for part in msg.walk():
        names.extend(type(defect).__name__ for defect in getattr(part, "defects", []))
    names.extend(extra)
    return list(dict.fromkeys(names))


def _normalize(raw: bytes, internal_date: datetime | None, max_size: int) -> NormalizeResult:
    if len(raw) > max_size:
        raise MimeError("message larger than the allowed size", code=errors.TOO_LARGE)
    if not raw.strip():
        raise MimeError("empty message", code=errors.EMPTY)
    defects: list[str] = []
    msg = _parse(raw, defects)

    text_part, html_part = choose_bodies(msg, defects)
    walker = _Walker(text_part, html_part, defects)
    walker.walk(msg)
    found = walker.found

    text_body = part_text(text_part, defects) if text_part is not None else None
    html_raw = part_text(html_part, defects) if html_part is not None else found.tnef_html
    if text_body is not None and found.extra_text:
        text_body = "\n\n".join([text_body, *found.extra_text])
    html_body = sanitize_html(html_raw) if html_raw else None
    if text_body is None and html_raw:
        text_body = html_to_text(html_raw)
    if text_body is None and found.tnef_text:
        text_body = found.tnef_text

    date, date_source = pick_date(header_text(msg, "Date", defects), internal_date)
    sender = addresses(msg, "Sender", defects)
    return_path = header_text(msg, "Return-Path", defects)
    message = ParsedMessage(
        message_id=first_id(header_text(msg, "Message-ID", defects)),
        in_reply_to=in_reply_to(header_text(msg, "In-Reply-To", defects)),
        references=message_ids(" ".join(header_texts(msg, "References", defects))),
        subject=header_text(msg, "Subject", defects),
        from_=addresses(msg, "From", defects),
        sender=sender[0] if sender else None,
        reply_to=addresses(msg, "Reply-To", defects),
        to=addresses(msg, "To", defects),
        cc=addresses(msg, "Cc", defects),
        bcc=addresses(msg, "Bcc", defects),
        date=date,
        date_source=date_source,
        text_body=text_body,
        html_body=html_body,
        snippet=snippet(text_body),
        attachments=[meta for meta, _ in found.attachments],
        calendar=found.calendar,
        bounce=found.bounce,
        auto_submitted=_lower(header_text(msg, "Auto-Submitted", defects)),
        precedence=_lower(header_text(msg, "Precedence", defects)),
        list_=list_info(msg, defects),
        return_path=return_path.strip("<> ") or None if return_path else None,
        headers_of_interest=interesting_headers(msg, defects),
        size=len(raw),
        defects=_defect_names(msg, defects),
    )
    return NormalizeResult(message=message, attachments=found.attachments)


def normalize(
    raw: bytes,
    *,
    internal_date: datetime | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> NormalizeResult:
    """Normalize one raw message. Raises MimeError (and nothing else) when that is not possible."""
    try:
        return _normalize(bytes(raw), internal_date, max_size)
    except MimeError:
        raise
    except RecursionError as exc:
        raise MimeError("MIME structure nested too deeply", code=errors.TOO_COMPLEX) from exc
    except Exception as exc:
        # The type name only: the exception text may quote message content.
        raise MimeError(f"parser failure: {type(exc).__name__}", code=errors.UNPARSEABLE) from exc
