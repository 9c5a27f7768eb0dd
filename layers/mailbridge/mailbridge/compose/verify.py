"""Read the composed bytes back and compare them with what compose meant to write.

Run on every composed message (`compose_message` calls `check_composed` last), so a message
whose header block says anything else than the draft is never stored or sent.
"""

from __future__ import annotations

import email
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import AddressHeader
from email.message import EmailMessage, Message

from mailbridge.compose.headers import Mailbox
from mailbridge.errors import Invalid
from mailbridge.mime import NormalizeResult, normalize
from mailbridge.mime.addresses import make_address
from mailbridge.mime.attachments import clean_filename
from mailbridge.mime.text import clean_header_text
from mailbridge.models.email import EmailAddress
from mailbridge.models.fields import has_control

HEADER_INJECTION = "header_injection"

ADDRESS_FIELDS = ("From", "To", "Cc", "Reply-To")
_TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")


@dataclass(frozen=True)
class PartIntent:
    """What compose wrote into one MIME part it built (the file name and Content-ID as given)."""

    filename: str | None = None
    content_id: str | None = None


@dataclass
class Intended:
    """Everything `check_composed` compares: the built tree and the values written into it."""

    message: EmailMessage
    mailboxes: dict[str, list[Mailbox]]
    subject: str
    date: datetime
    message_id: str
    in_reply_to: str | None
    references: list[str]
    parts: dict[int, PartIntent] = field(default_factory=dict)

    def part(self, built: Message) -> PartIntent:
        return self.parts.get(id(built), PartIntent())


def _mismatch(field_name: str) -> Invalid:
    # The field name only: the values are user content.
    return Invalid(
        f"the composed message does not read back as written ({field_name}); nothing was sent",
        code=HEADER_INJECTION,
        details={"field": field_name},
    )


def _walk(part: Message) -> Iterator[Message]:
    """The parts compose built, depth first; an embedded message/* is one part, not entered."""
    yield part
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        for child in part.get_payload():
            if isinstance(child, Message):
                yield from _walk(child)


def _names(part: Message) -> list[str]:
    return sorted(name.lower() for name in part)


def _utf8(value: str) -> str:
    # The parser reads 8-bit header bytes (RFC 6532 UTF-8 addresses) as surrogate escapes.
    return value.encode("utf-8", "surrogateescape").decode("utf-8")


def _stdlib_mailboxes(parsed: Message, name: str) -> list[tuple[str, str]]:
    header = parsed[name]
    if not isinstance(header, AddressHeader):
        raise TypeError("not an address field")
    if any(group.display_name is not None for group in header.groups):
        raise ValueError("a group where compose wrote mailboxes")
    return [(address.display_name, _utf8(address.addr_spec)) for address in header.addresses]


def _ids(value: object) -> list[str]:
    return str(value).split() if value is not None else []


def _check_stdlib(raw: bytes, intended: Intended) -> None:
    parsed = email.message_from_bytes(raw, policy=email_policy.default)
    built_names = _names(intended.message)
    if len(set(built_names)) != len(built_names) or _names(parsed) != built_names:
        raise _mismatch("header fields")
    for name in ADDRESS_FIELDS:
        mailboxes = intended.mailboxes.get(name, [])
        if not mailboxes:
            continue
        try:
            got = _stdlib_mailboxes(parsed, name)
        except Exception:  # noqa: BLE001 - any parser failure on our own field is a mismatch
            raise _mismatch(name.lower()) from None
        if got != [(m.stdlib_name, m.address) for m in mailboxes] or any(has_control(n) for n, _ in got):
            raise _mismatch(name.lower())
    try:
        subject = str(parsed["Subject"])
        date = parsed["Date"].datetime
        message_id = str(parsed["Message-ID"])
    except Exception:  # noqa: BLE001 - as above
        raise _mismatch("subject, date or message-id") from None
    if subject != intended.subject or has_control(subject):
        raise _mismatch("subject")
    if date != intended.date:
        raise _mismatch("date")
    if message_id != f"<{intended.message_id}>":
        raise _mismatch("message-id")
    parent = [f"<{intended.in_reply_to}>"] if intended.in_reply_to else []
    if _ids(parsed["In-Reply-To"]) != parent:
        raise _mismatch("in-reply-to")
    if _ids(parsed["References"]) != [f"<{ref}>" for ref in intended.references]:
        raise _mismatch("references")
    _check_parts(parsed, intended)


def _check_parts(parsed: Message, intended: Intended) -> None:
    built_parts, parsed_parts = list(_walk(intended.message)), list(_walk(parsed))
    if len(built_parts) != len(parsed_parts):
        raise _mismatch("mime structure")
    for index, (built, got) in enumerate(zip(built_parts, parsed_parts, strict=True)):
        where = f"part {index}"
        if got.get_content_type() != built.get_content_type() or _names(got) != _names(built):
            raise _mismatch(where)
        intent = intended.part(built)
        try:
            filename = got.get_filename()
            cid = got.get("Content-ID")
        except Exception:  # noqa: BLE001 - as above
            raise _mismatch(where) from None
        if filename != intent.filename or (filename is not None and has_control(filename)):
            raise _mismatch(f"{where} filename")
        if (str(cid) if cid is not None else None) != (
            f"<{intent.content_id}>" if intent.content_id else None
        ):
            raise _mismatch(f"{where} content-id")


def _normalized_mailbox(value: Mailbox) -> set[EmailAddress | None]:
    local, _, domain = value.address.rpartition("@")
    return {make_address(name, local, domain) for name in (value.name, value.stdlib_name)}


def _check_normalized(raw: bytes, intended: Intended) -> NormalizeResult:
    result = normalize(raw)
    message = result.message
    fields = {"From": message.from_, "To": message.to, "Cc": message.cc, "Reply-To": message.reply_to}
    for name, got in fields.items():
        mailboxes = intended.mailboxes.get(name, [])
        if len(got) != len(mailboxes) or any(
            value not in _normalized_mailbox(mailbox) for value, mailbox in zip(got, mailboxes, strict=True)
        ):
            raise _mismatch(name.lower())
    if message.bcc:
        raise _mismatch("bcc")
    if (message.subject or "") != clean_header_text(intended.subject):
        raise _mismatch("subject")
    if message.message_id != intended.message_id:
        raise _mismatch("message-id")
    if message.in_reply_to != intended.in_reply_to:
        raise _mismatch("in-reply-to")
    if message.references != intended.references:
        raise _mismatch("references")
    # normalize interprets attachments (TNEF unpacked, bodies picked): every name it shows must
    # be one compose wrote; the exact per-part comparison is the stdlib's above.
    written = {clean_filename(intent.filename) for intent in intended.parts.values() if intent.filename}
    for meta, _data in result.attachments:
        if meta.from_tnef or meta.content_type in _TNEF_TYPES:
            continue
        if meta.filename is not None and meta.filename not in written:
            raise _mismatch("attachment filename")
    return result


def check_composed(raw: bytes, intended: Intended) -> NormalizeResult:
    """Raise `Invalid(code="header_injection")` unless `raw` reads back as exactly what was meant.

    `raw` is parsed twice, by the stdlib (`policy.default`) and by `mailbridge.mime.normalize`,
    and compared with the intent:

    - the top-level header fields are exactly the ones compose wrote, each once (RFC 5322
      section 3.6: one From, Subject, Message-ID ...; no Bcc or other field smuggled in through a
      line break a decoder produced, RFC 5322 section 2.2);
    - From, To, Cc and Reply-To hold exactly the draft's mailboxes, names and addresses, in
      order (an encoded word is one word, never a separator: RFC 2047 section 5(3));
    - Subject decodes to the subject (RFC 2047 section 6), Date to the date, Message-ID,
      In-Reply-To and References to the ids meant;
    - no decoded subject, display name or file name holds a control character, even one the
      draft had (that check is `compose_message`'s first, this is the second);
    - every MIME part compose built has the content type and header fields it was given, and its
      file name and Content-ID read back as written.

    The stdlib comparison is exact. normalize cleans what it reads (white space collapsed,
    control characters dropped), so its values are compared with the same cleaning applied to
    the intent. Raises `MimeError` (an `Invalid`) when normalize cannot read the message at all.
    Returns what normalize read, for a caller that stores the message.
    """
    _check_stdlib(raw, intended)
    return _check_normalized(raw, intended)
