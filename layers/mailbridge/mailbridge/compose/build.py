"""Draft -> RFC 5322 bytes for SMTP DATA: the counterpart of `mailbridge.mime.normalize`.

Structure (each level only when needed):

    multipart/mixed
      multipart/alternative
        text/plain                (derived from the HTML when only HTML is given)
        multipart/related
          text/html
          image/png; Content-ID   (inline attachments with a content_id)
      application/pdf             (attachments)
      message/rfc822              (forward as attachment: the original bytes, verbatim)

The stdlib does the MIME work with `policy.SMTP` (CRLF, RFC 2047 headers, RFC 2231 file names)
and 7-bit transfer encodings, so the output is plain ASCII unless a forwarded original carries
8-bit bytes or an address has a non-ASCII local part (then the sender needs 8BITMIME/SMTPUTF8,
which `mailbridge.providers.smtp` asks for). Two things are spliced in after generation because
the generator would damage them: embedded messages (kept byte for byte) and In-Reply-To /
References (the stdlib encodes a message id longer than a line as an encoded word).
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime

from email_validator import validate_email

from mailbridge.compose.models import (
    MAX_REFERENCES,
    ComposedMessage,
    Draft,
    OriginalMessage,
    OutgoingAttachment,
    normalize_message_id,
)
from mailbridge.compose.subject import forward_subject, reply_subject
from mailbridge.errors import Invalid
from mailbridge.mime.html_text import html_to_text
from mailbridge.mime.identifiers import message_ids
from mailbridge.models.email import EmailAddress

MAX_MESSAGE_BYTES = 25 * 1024 * 1024

HEADER_INJECTION = "header_injection"
MESSAGE_TOO_LARGE = "message_too_large"
ORIGINAL_REQUIRED = "original_required"

_POLICY: EmailPolicy[EmailMessage] = email_policy.SMTP.clone(cte_type="7bit")
_POLICY_UTF8: EmailPolicy[EmailMessage] = email_policy.SMTPUTF8.clone(cte_type="7bit")
# Everything str.splitlines() breaks on, and NUL: none of it belongs in a header value.
_LINE_BREAKS = re.compile(r"[\r\n\x00\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_EOL = re.compile(rb"\r\n|\r|\n")
_HEADER_END = b"\r\n\r\n"
_FOLD_AT = 78
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"[\\/:*?\"<>|\x00-\x1f]")
_WS = re.compile(r"\s+")
_MIME_VERSION = b"\r\nMIME-Version: 1.0\r\n"

_Fill = Callable[[MIMEPart], None]


# -- checks -----------------------------------------------------------------------------------------


def _check_header(field: str, value: str | None) -> None:
    if value and _LINE_BREAKS.search(value):
        # The field name only: the value is user content.
        raise Invalid(f"line break in the {field} header", code=HEADER_INJECTION, details={"field": field})


def _check_addresses(field: str, values: Iterable[EmailAddress]) -> None:
    for value in values:
        _check_header(field, value.name)
        _check_header(field, value.address)


def _check_draft(draft: Draft) -> None:
    _check_header("subject", draft.subject)
    _check_addresses("from", [draft.from_])
    for field, values in (
        ("to", draft.to),
        ("cc", draft.cc),
        ("bcc", draft.bcc),
        ("reply_to", draft.reply_to),
    ):
        _check_addresses(field, values)
    for index, attachment in enumerate(draft.attachments):
        _check_header(f"attachments[{index}].filename", attachment.filename)


def _too_large(size: int) -> Invalid:
    return Invalid(
        f"the message would be larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB",
        code=MESSAGE_TOO_LARGE,
        details={"size": size, "limit": MAX_MESSAGE_BYTES},
    )


# -- addresses and ids ------------------------------------------------------------------------------


def _ascii_domain(address: str) -> str:
    return validate_email(address, check_deliverability=False).ascii_domain


def _header_address(value: EmailAddress) -> Address:
    # username/domain rather than addr_spec: the addr_spec parser refuses a UTF-8 local part.
    local, _, domain = value.address.rpartition("@")
    return Address(display_name=value.name or "", username=local, domain=domain)


def _envelope(draft: Draft) -> list[str]:
    seen: dict[str, None] = {}
    for value in [*draft.to, *draft.cc, *draft.bcc]:
        local, _, domain = value.address.rpartition("@")
        seen.setdefault(f"{local}@{domain.lower()}", None)
    return list(seen)


def _valid_ids(values: Iterable[str | None]) -> list[str]:
    out: list[str] = []
    for value in values:
        for candidate in message_ids(value):
            try:
                normalized = normalize_message_id(candidate)
            except ValueError:
                continue  # a malformed id from someone else's mailer: leave it out of our headers
            if normalized not in out:
                out.append(normalized)
    return out


def _threading(original: OriginalMessage) -> tuple[str | None, list[str]]:
    parent = next(iter(_valid_ids([original.message_id])), None)
    references = [ref for ref in _valid_ids(original.references) if ref != parent]
    if parent is not None:
        references.append(parent)
    if len(references) > MAX_REFERENCES:
        # Keep the thread root (JWZ threading starts from it) and the most recent ancestors.
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    return parent, references


def _fold_ids(name: str, ids: list[str]) -> bytes:
    lines: list[str] = []
    line = f"{name}:"
    for value in ids:
        token = f"<{value}>"
        if len(line) + 1 + len(token) > _FOLD_AT and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


# -- bodies ----------------------------------------------------------------------------------------


def _display(value: EmailAddress) -> str:
    return f"{value.name} <{value.address}>" if value.name else value.address


def _forward_block(original: OriginalMessage) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if original.from_ is not None:
        rows.append(("From", _display(original.from_)))
    if original.date is not None:
        rows.append(("Date", format_datetime(original.date)))
    if original.subject:
        rows.append(("Subject", original.subject))
    if original.to:
        rows.append(("To", ", ".join(_display(value) for value in original.to)))
    if original.cc:
        rows.append(("Cc", ", ".join(_display(value) for value in original.cc)))
    return rows


_FORWARD_RULE = "---------- Forwarded message ---------"


def _quote_text(original: OriginalMessage) -> str:
    head = "\n".join(f"{name}: {value}" for name, value in _forward_block(original))
    return f"\n\n{_FORWARD_RULE}\n{head}\n\n{original.text or ''}".rstrip() + "\n"


def _quote_html(original: OriginalMessage) -> str:
    head = "<br>\n".join(
        f"{html.escape(name)}: {html.escape(value)}" for name, value in _forward_block(original)
    )
    body = "<br>\n".join(html.escape(line) for line in (original.text or "").splitlines())
    return (
        f'<br><div class="mailbridge-forward">{html.escape(_FORWARD_RULE)}<br>\n{head}<br><br>\n'
        f"<blockquote>{body}</blockquote></div>"
    )


def _bodies(draft: Draft, original: OriginalMessage | None) -> tuple[str, str | None]:
    text, markup = draft.text, draft.html
    if draft.mode == "forward" and draft.forward_as == "inline" and original is not None:
        if text is not None:
            text += _quote_text(original)
        if markup is not None:
            quoted = _quote_html(original)
            end = _BODY_END.search(markup)
            markup = markup[: end.start()] + quoted + markup[end.start() :] if end else markup + quoted
    if text is None:
        text = html_to_text(markup or "")
    return text, markup


# -- MIME tree -------------------------------------------------------------------------------------


class _Splices:
    """Verbatim bytes that replace placeholder payloads after generation."""

    def __init__(self) -> None:
        self.items: dict[bytes, bytes] = {}

    def add(self, data: bytes) -> str:
        token = f"mailbridge-splice-{secrets.token_hex(16)}"
        self.items[token.encode("ascii")] = data
        return token

    def apply(self, raw: bytes) -> bytes:
        for token, data in self.items.items():
            before, found, after = raw.partition(token)
            if not found:
                raise AssertionError("splice placeholder missing from the generated message")
            raw = before + data + after
        return raw


def _text(content: str, subtype: str) -> _Fill:
    def fill(part: MIMEPart) -> None:
        part.set_content(content, subtype=subtype, charset="utf-8")

    return fill


def _file(attachment: OutgoingAttachment, splices: _Splices) -> _Fill:
    maintype, _, subtype = attachment.content_type.partition("/")
    if maintype == "message":
        return _embedded(attachment.data, attachment.filename, splices, ctype=attachment.content_type)
    disposition = "inline" if attachment.inline else "attachment"
    cid = f"<{attachment.content_id}>" if attachment.content_id else None

    def fill(part: MIMEPart) -> None:
        part.set_content(
            attachment.data,
            maintype,
            subtype,
            disposition=disposition,
            filename=attachment.filename,
            cid=cid,
        )

    return fill


def _embedded(raw: bytes, filename: str | None, splices: _Splices, *, ctype: str = "message/rfc822") -> _Fill:
    # RFC 2046 5.2.1: no base64/QP for message/rfc822, so 8-bit originals stay 8bit. Line ends
    # become CRLF (the canonical form; bare LF in DATA is refused by many servers).
    data = _EOL.sub(b"\r\n", raw)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"

    def fill(part: MIMEPart) -> None:
        part["Content-Type"] = ctype
        part["Content-Transfer-Encoding"] = "7bit" if data.isascii() else "8bit"
        part["Content-Disposition"] = "attachment"
        if filename:
            part.set_param("filename", filename, header="Content-Disposition")
        part.set_payload(splices.add(data))

    return fill


def _multipart(subtype: str, children: list[_Fill]) -> _Fill:
    def fill(part: MIMEPart) -> None:
        part["Content-Type"] = f"multipart/{subtype}"
        part.set_param("boundary", f"mb-{secrets.token_hex(16)}")
        for child in children:
            sub = MIMEPart(policy=part.policy)
            child(sub)
            part.attach(sub)

    return fill


def _eml_name(subject: str | None) -> str:
    name = _WS.sub(" ", _UNSAFE_NAME.sub(" ", subject or "")).strip()[:100].strip()
    return f"{name or 'forwarded message'}.eml"


def _tree(draft: Draft, original: OriginalMessage | None, splices: _Splices) -> _Fill:
    text, markup = _bodies(draft, original)
    related = [a for a in draft.attachments if a.inline and a.content_id and markup is not None]
    others = [a for a in draft.attachments if not any(a is r for r in related)]

    body: _Fill = _text(text, "plain")
    if markup is not None:
        html_part = _text(markup, "html")
        if related:
            html_part = _multipart("related", [html_part, *(_file(a, splices) for a in related)])
        body = _multipart("alternative", [body, html_part])

    files = [_file(a, splices) for a in others]
    if draft.mode == "forward" and draft.forward_as == "attachment" and original is not None:
        if original.raw is None:
            raise Invalid(
                "forwarding as an attachment needs the original's raw bytes", code=ORIGINAL_REQUIRED
            )
        files.append(_embedded(original.raw, _eml_name(original.subject), splices))
    return _multipart("mixed", [body, *files]) if files else body


# -- entry point -----------------------------------------------------------------------------------


def _subject(draft: Draft, original: OriginalMessage | None) -> str:
    subject = draft.subject.strip()
    if draft.mode == "new" or original is None:
        return subject
    base = subject or original.subject
    _check_header("subject", base)
    return reply_subject(base) if draft.mode == "reply" else forward_subject(base)


def _estimated_size(draft: Draft, original: OriginalMessage | None) -> int:
    size = sum(len(a.data) for a in draft.attachments)
    size += len(draft.text or "") + len(draft.html or "")
    if original is not None and original.raw is not None and draft.mode == "forward":
        size += len(original.raw)
    return size


def compose_message(
    draft: Draft,
    *,
    original: OriginalMessage | None = None,
    now: datetime | None = None,
) -> ComposedMessage:
    """Build the outbound message. `original` is required for reply and forward, ignored for new.

    Raises `Invalid` with code header_injection (CR/LF in a header value), message_too_large
    (over MAX_MESSAGE_BYTES encoded) or original_required.
    """
    if draft.mode != "new" and original is None:
        raise Invalid(f"a {draft.mode} needs the original message", code=ORIGINAL_REQUIRED)
    _check_draft(draft)
    if (estimate := _estimated_size(draft, original)) > MAX_MESSAGE_BYTES:
        raise _too_large(estimate)

    header_addresses = [draft.from_, *draft.to, *draft.cc, *draft.reply_to]
    utf8 = any(not value.address.rpartition("@")[0].isascii() for value in header_addresses)
    msg = EmailMessage(policy=_POLICY_UTF8 if utf8 else _POLICY)

    subject = _subject(draft, original)
    message_id = draft.message_id or f"{secrets.token_hex(16)}@{_ascii_domain(draft.from_.address)}"
    msg["From"] = _header_address(draft.from_)
    if draft.to:
        msg["To"] = [_header_address(value) for value in draft.to]
    if draft.cc:
        msg["Cc"] = [_header_address(value) for value in draft.cc]
    if draft.reply_to:
        msg["Reply-To"] = [_header_address(value) for value in draft.reply_to]
    msg["Subject"] = subject
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = f"<{message_id}>"
    msg["MIME-Version"] = "1.0"

    splices = _Splices()
    body = _tree(draft, original, splices)
    body(msg)
    raw = msg.as_bytes()

    if draft.mode == "reply" and original is not None:
        parent, references = _threading(original)
        extra = (_fold_ids("In-Reply-To", [parent]) if parent else b"") + (
            _fold_ids("References", references) if references else b""
        )
        # Beside Message-ID, before the MIME headers (MIME-Version is the first we set).
        head = raw[: raw.index(_HEADER_END) + 2]
        at = head.index(_MIME_VERSION) + 2
        raw = raw[:at] + extra + raw[at:]
    raw = splices.apply(raw)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise _too_large(len(raw))
    return ComposedMessage(
        raw=raw,
        message_id=message_id,
        envelope_from=draft.from_.address,
        recipients=_envelope(draft),
        subject=subject,
    )
