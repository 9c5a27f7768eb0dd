"""Raw RFC 5322 bytes -> ParsedMessage plus attachment bytes.

`structure` splits the message into parts without decoding anything; this module decodes only
the headers and parts it uses, decides what each part means for us (body, attachment, calendar,
bounce, TNEF), bounds what one message may expand to, and turns every failure into one MimeError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from mailbridge.mime import errors
from mailbridge.mime.addresses import addresses
from mailbridge.mime.attachments import (
    clean_filename,
    content_id,
    filename,
    is_inline,
    make_meta,
)
from mailbridge.mime.bodies import (
    choose_bodies,
    embedded_message,
    is_attachment_disposition,
    part_bytes,
    part_text,
    snippet,
)
from mailbridge.mime.dates import pick_date
from mailbridge.mime.errors import MimeError
from mailbridge.mime.headers import header_text, header_texts, raw_values
from mailbridge.mime.html_text import html_to_text
from mailbridge.mime.identifiers import first_id, in_reply_to, message_ids
from mailbridge.mime.listinfo import interesting_headers, list_info
from mailbridge.mime.reports import (
    calendar,
    delivery_status,
    feedback_report,
    original_message_id,
    original_recipients,
)
from mailbridge.mime.sanitize import sanitize_html
from mailbridge.mime.structure import Part, TooComplex, parse_structure
from mailbridge.mime.tnef import unpack_tnef
from mailbridge.models.email import (
    AttachmentMeta,
    BounceReport,
    CalendarPart,
    EmailAddress,
    FeedbackReport,
    ParsedMessage,
)

DEFAULT_MAX_SIZE = 50 * 1024 * 1024
# Bounds on what one message may expand to; past one, the message is quarantined with the code
# in brackets (the raw size itself is bounded by `max_size` [too_large]). The memory figures are
# peaks measured above the process baseline (benchmarks/bench_mime.py's method).
# - parts: structure.MAX_PARTS (10,000) in all and structure.MAX_DEPTH (60) levels [too_complex];
#   MAX_PARTS of them outside embedded messages, the ones that are read [too_complex].
MAX_PARTS = 1000
# - decoded octets of all parts read (attachments, bodies, TNEF contents) [too_large]: base64,
#   quoted-printable and uuencode never grow, so only TNEF contents can get near it.
MAX_DECODED_BYTES = DEFAULT_MAX_SIZE
# - characters of text decoded from text parts (bodies, inline text, calendar) [too_large]:
#   about 11 MB of peak per million.
MAX_TEXT_CHARS = 4_000_000
# - characters of the HTML body, which is sanitized and turned into text [too_large]: about
#   25 MB of peak per million.
MAX_HTML_CHARS = 2_000_000
# - characters of one address field (all its headers) [too_large]: up to about 65 MB of peak
#   per million (comments or groups in it; 30 MB without).
MAX_ADDRESS_CHARS = 256 * 1024
# - a winmail.dat (TNEF) larger than this is not unpacked and stays an opaque attachment (defect
#   `tnef_too_large`); unpacking copies its contents once, and the compressed RTF body is never
#   decompressed (tnefparse does that only when `rtfbody` is read).
MAX_TNEF_BYTES = 16 * 1024 * 1024

_TNEF_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}
_EMBEDDED_MESSAGE_TYPES = {"message/rfc822", "message/global"}
_REPORT_HEADER_TYPES = {"text/rfc822-headers", "message/rfc822-headers"}
_BOM = b"\xef\xbb\xbf"
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The blank line after the header block (`\r?\n\r?\n`), found by its first LF: a pattern that
# starts with a literal byte is searched for with a fast scan for that byte, one that starts
# with `\r?` is tried at every position (16 ms against 0.5 ms per pass over the shared corpus).
_HEADER_END_LF = re.compile(rb"\n\r?\n")
_OBS_FIELD = re.compile(rb"(?m)^([!-9;-~]+)[ \t]+:")
# The same, split into its two places (the first line; after a LF, where `(?m)^` matches) so that
# the search runs from LF to LF instead of trying `^` at every byte.
_OBS_FIELD_FIRST = re.compile(rb"[!-9;-~]+[ \t]+:")
_OBS_FIELD_NEXT = re.compile(rb"\n[!-9;-~]+[ \t]+:")
_BARE_CR = re.compile(rb"\r(?!\n)")


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
    feedback: FeedbackReport | None = None
    tnef_text: str | None = None
    tnef_html: str | None = None
    parts_seen: int = 0
    decoded_bytes: int = 0
    text_chars: int = 0


def _too_large(what: str) -> MimeError:
    return MimeError(f"{what} larger than the allowed size", code=errors.TOO_LARGE)


def _embedded_name(part: Part, defects: list[str]) -> str | None:
    name = filename(part, defects)
    if name:
        return name
    inner = part.children[0] if part.children else None
    subject = header_text(inner, "Subject", defects) if inner is not None else None
    return clean_filename(f"{subject}.eml") if subject else None


class _Walker:
    def __init__(self, text_part: Part | None, html_part: Part | None, defects: list[str]) -> None:
        self.text_part = text_part
        self.html_part = html_part
        self.defects = defects
        self.found = _Collected()
        self._report_original: str | None = None
        self._report_original_to: list[str] = []

    def count(self, data: bytes) -> bytes:
        self.found.decoded_bytes += len(data)
        if self.found.decoded_bytes > MAX_DECODED_BYTES:
            raise _too_large("decoded parts")
        return data

    def _add(self, data: bytes, *, name: str | None, ctype: str, cid: str | None, inline: bool) -> None:
        meta = make_meta(len(self.found.attachments), data, name=name, ctype=ctype, cid=cid, inline=inline)
        self.found.attachments.append((meta, data))

    def walk(self, part: Part, parent_type: str | None = None) -> None:
        self.found.parts_seen += 1
        if self.found.parts_seen > MAX_PARTS:
            raise MimeError("too many MIME parts or too deeply nested", code=errors.TOO_COMPLEX)
        ctype = part.ctype
        if part.is_multipart() and not ctype.startswith("message/"):
            if ctype == "multipart/report":
                self._report_original = self._find_original_id(part)
            for child in part.children:
                self.walk(child, ctype)
            return
        if part is self.text_part or part is self.html_part:
            return
        self._leaf(part, ctype, parent_type)

    def _find_original_id(self, part: Part) -> str | None:
        for child in part.children:
            if child.ctype in (_EMBEDDED_MESSAGE_TYPES | _REPORT_HEADER_TYPES):
                if child.ctype in _EMBEDDED_MESSAGE_TYPES:
                    self._report_original_to = original_recipients(child)
                return original_message_id(child, self.defects)
        return None

    def _leaf(self, part: Part, ctype: str, parent_type: str | None) -> None:
        name = filename(part, self.defects)
        cid = content_id(part)
        attachment = is_attachment_disposition(part)
        if (
            ctype in ("message/delivery-status", "message/global-delivery-status")
            and self.found.bounce is None
        ):
            self.found.bounce = delivery_status(part, self._report_original, self.defects)
            return
        if ctype == "message/feedback-report" and self.found.feedback is None:
            # Kept as an attachment too (categorization reads report types from attachments).
            self.found.feedback = feedback_report(
                part, self._report_original, self._report_original_to, self.defects
            )
        if ctype == "text/calendar" and self.found.calendar is None:
            self.found.calendar = calendar(part, self.text(part), self.defects)
            if not attachment and not name:
                return
        is_tnef = ctype in _TNEF_TYPES or (name or "").lower() == "winmail.dat"
        if is_tnef and self._tnef(part):
            return
        if ctype in _EMBEDDED_MESSAGE_TYPES:
            self._add(
                self.count(embedded_message(part, self.defects)),
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
            self.found.extra_text.append(self.text(part))
            return
        data = self.count(part_bytes(part, self.defects))
        self._add(data, name=name, ctype=ctype, cid=cid, inline=is_inline(part, cid))

    def text(self, part: Part) -> str:
        text = part_text(part, self.defects)
        self.count(part.body)
        self.found.text_chars += len(text)
        if self.found.text_chars > MAX_TEXT_CHARS:
            raise _too_large("decoded text")
        return text

    def _tnef(self, part: Part) -> bool:
        data = part_bytes(part, self.defects)
        if len(data) > MAX_TNEF_BYTES:
            self.defects.append("tnef_too_large")
            return False
        try:
            content = unpack_tnef(data)
        except Exception:  # noqa: BLE001 - a broken winmail.dat stays an opaque attachment
            self.defects.append("tnef_unreadable")
            return False
        for item in content.files:
            meta = make_meta(
                len(self.found.attachments),
                self.count(item.data),
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


def _header_end(raw: bytes) -> int:
    """Where `\r?\n\r?\n` first matches (the end of the header block), or len(raw): its
    leftmost match starts at the first LF followed by `\r?\n`, or at the CR just before it."""
    found = _HEADER_END_LF.search(raw)
    if found is None:
        return len(raw)
    start = found.start()
    return start - 1 if start > 0 and raw[start - 1] == 0x0D else start


def _repair(raw: bytes, defects: list[str]) -> bytes:
    """Fix what the structure parser would misread in the message's own header block."""
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
        defects.append("utf8_bom")
    head = raw[: _header_end(raw)]
    fixed = head
    # RFC 5322 section 2.2: lines end at CRLF. A bare CR inside the header block is no line
    # break (that is how MTAs, DKIM and other clients read it), so it cannot start a header of
    # its own: it reads as a space. Mail that uses only CR as line end (no LF anywhere) keeps it.
    if b"\r" in fixed and b"\n" in raw and _BARE_CR.search(fixed):
        fixed = _BARE_CR.sub(b" ", fixed)
        defects.append("bare_cr_in_header")
    # RFC 5322 4.5.5 obs-optional allows space before the colon ("Subject : x"); the stdlib
    # feedparser rules do not, and would take the whole header block for body text.
    if _OBS_FIELD_FIRST.match(fixed) or _OBS_FIELD_NEXT.search(fixed):
        fixed = _OBS_FIELD.sub(rb"\1:", fixed)
        defects.append("obsolete_header_syntax")
    return fixed + raw[len(head) :] if fixed is not head else raw


def _parse(raw: bytes, defects: list[str]) -> Part:
    if raw.startswith(_OLE_SIGNATURE):
        raise MimeError("an Outlook .msg (OLE) file, not RFC 5322", code=errors.NOT_RFC822)
    try:
        msg = parse_structure(_repair(raw, defects))
    except TooComplex as exc:
        raise MimeError("too many MIME parts or too deeply nested", code=errors.TOO_COMPLEX) from exc
    if not msg.keys():
        raise MimeError("no RFC 5322 header found", code=errors.NOT_RFC822)
    return msg


def _addresses(msg: Part, name: str) -> list[EmailAddress]:
    values = raw_values(msg, name)
    if not values:
        return []
    if sum(map(len, values)) > MAX_ADDRESS_CHARS:
        raise _too_large(f"the {name} field")
    return addresses(msg, name)


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def _defect_names(msg: Part, extra: list[str]) -> list[str]:
    """The structure's defects (stdlib names), part by part, then ours; each name once."""
    names: list[str] = []
    pending: list[Part] = [msg]
    while pending:  # depth first, parents before children (Message.walk's order)
        part = pending.pop()
        names.extend(part.defect_names)
        pending.extend(reversed(part.children))
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

    text_body = walker.text(text_part) if text_part is not None else None
    html_raw = walker.text(html_part) if html_part is not None else found.tnef_html
    if html_raw is not None and len(html_raw) > MAX_HTML_CHARS:
        raise _too_large("the HTML body")
    if text_body is not None and found.extra_text:
        text_body = "\n\n".join([text_body, *found.extra_text])
    html_body = sanitize_html(html_raw) if html_raw else None
    if text_body is None and html_raw:
        text_body = html_to_text(html_raw)
    if text_body is None and found.tnef_text:
        text_body = found.tnef_text

    date, date_source = pick_date(header_text(msg, "Date", defects), internal_date)
    sender = _addresses(msg, "Sender")
    return_path = header_text(msg, "Return-Path", defects)
    message = ParsedMessage(
        message_id=first_id(header_text(msg, "Message-ID", defects)),
        in_reply_to=in_reply_to(header_text(msg, "In-Reply-To", defects)),
        references=message_ids(" ".join(header_texts(msg, "References", defects))),
        subject=header_text(msg, "Subject", defects),
        from_=_addresses(msg, "From"),
        sender=sender[0] if sender else None,
        reply_to=_addresses(msg, "Reply-To"),
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        bcc=_addresses(msg, "Bcc"),
        date=date,
        date_source=date_source,
        text_body=text_body,
        html_body=html_body,
        snippet=snippet(text_body),
        attachments=[meta for meta, _ in found.attachments],
        calendar=found.calendar,
        bounce=found.bounce,
        feedback=found.feedback,
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
