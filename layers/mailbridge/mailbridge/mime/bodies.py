"""Text and HTML bodies: which parts they are, and their text under a trustworthy charset."""

from __future__ import annotations

from email.message import EmailMessage, Message

from mailbridge.mime.text import clean_body_text, collapse_ws, decode_bytes

SNIPPET_LENGTH = 200


def part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def part_text(part: Message, defects: list[str]) -> str:
    charset = part.get_content_charset()
    text, fell_back = decode_bytes(part_bytes(part), charset)
    if fell_back:
        defects.append("charset_fallback")
    return clean_body_text(text)


def is_attachment_disposition(part: Message) -> bool:
    return (part.get_content_disposition() or "") == "attachment"


def _first_leaf(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type and not is_attachment_disposition(part):
            return part
    return None


def choose_bodies(msg: Message, defects: list[str]) -> tuple[Message | None, Message | None]:
    """The text/plain and text/html parts a mail client would display, by RFC 2046 rules."""
    if isinstance(msg, EmailMessage):
        try:
            return msg.get_body(preferencelist=("plain",)), msg.get_body(preferencelist=("html",))
        except Exception:  # noqa: BLE001 - get_body trips over some broken structures; walk instead
            defects.append("body_fallback")
    return _first_leaf(msg, "text/plain"), _first_leaf(msg, "text/html")


def snippet(text: str | None) -> str:
    if not text:
        return ""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    collapsed = collapse_ws("\n".join(lines)) or collapse_ws(text)
    if len(collapsed) <= SNIPPET_LENGTH:
        return collapsed
    cut = collapsed[:SNIPPET_LENGTH]
    space = cut.rfind(" ")
    return (cut[:space] if space > SNIPPET_LENGTH // 2 else cut).rstrip() + "\u2026"
