"""Message-ID, In-Reply-To and References, normalized for threading: no brackets, case kept."""

from __future__ import annotations

import re

_BRACKETED = re.compile(r"<([^<>]*)>")
_WS = re.compile(r"\s+")


def normalize_id(value: str) -> str | None:
    cleaned = _WS.sub("", value).strip("<>")
    return cleaned or None


def message_ids(value: str | None) -> list[str]:
    """All ids in a header value: the bracketed ones, or whitespace-separated tokens when none are."""
    if not value:
        return []
    found = _BRACKETED.findall(value)
    tokens = found if found else value.split()
    out: list[str] = []
    for token in tokens:
        norm = normalize_id(token)
        if norm is not None and norm not in out:
            out.append(norm)
    return out


def first_id(value: str | None) -> str | None:
    ids = message_ids(value)
    return ids[0] if ids else None


def in_reply_to(value: str | None) -> str | None:
    # Some mailers put a phrase next to the id ("<id> (Fred's message)"); the last id is the parent.
    ids = message_ids(value)
    return ids[-1] if ids else None
