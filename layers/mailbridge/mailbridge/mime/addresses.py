"""Address headers -> EmailAddress lists, groups flattened, display names decoded."""

from __future__ import annotations

from email.headerregistry import AddressHeader
from email.message import Message
from email.utils import getaddresses

from mailbridge.mime.headers import decode_raw, raw_values
from mailbridge.mime.text import clean_header_text
from mailbridge.models.email import EmailAddress


def make_address(name: str | None, local: str, domain: str) -> EmailAddress | None:
    local = clean_header_text(local)
    domain = clean_header_text(domain).lower().strip(".")
    display = clean_header_text(name).strip("\"' ") if name else ""
    # Without a domain it is a phrase or a local-only name ("Moderator-Address", "undisclosed"):
    # nothing a reply or a CRM contact could use.
    if not local or not domain:
        return None
    return EmailAddress(name=display or None, address=f"{local}@{domain}")


def _split_addr_spec(spec: str) -> tuple[str, str]:
    local, sep, domain = spec.strip().strip("<>").rpartition("@")
    return (local, domain) if sep else (domain, "")


def _parsed(msg: Message, name: str) -> list[EmailAddress]:
    out: list[EmailAddress] = []
    for header in msg.get_all(name) or []:
        if not isinstance(header, AddressHeader):
            raise TypeError("not an address header")
        for addr in header.addresses:
            made = make_address(addr.display_name, addr.username, addr.domain)
            if made is not None:
                out.append(made)
    return out


def _fallback(msg: Message, name: str) -> list[EmailAddress]:
    out: list[EmailAddress] = []
    for display, spec in getaddresses(raw_values(msg, name)):
        local, domain = _split_addr_spec(spec)
        made = make_address(decode_raw(display) if display else None, local, domain)
        if made is not None:
            out.append(made)
    return out


def addresses(msg: Message, name: str, defects: list[str]) -> list[EmailAddress]:
    try:
        return _parsed(msg, name)
    except Exception:  # noqa: BLE001 - policy.default's address parser has edge cases that raise
        defects.append(f"header_fallback:{name.lower()}")
    try:
        return _fallback(msg, name)
    except Exception:  # noqa: BLE001 - nothing usable in the header: keep the message, drop the field
        defects.append(f"header_unreadable:{name.lower()}")
        return []
