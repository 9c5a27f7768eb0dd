"""Base subject for threading (RFC 5256 section 2.1), extended with common localized prefixes.

The result keeps the sender's case; compare with `casefold()`. Beyond the RFC's "re"/"fw"/"fwd",
we strip the reply/forward prefixes Outlook and others write in other languages (AW, SV, WG, ...),
because those are what real threads in a CRM contain.
"""

from __future__ import annotations

import re

_PREFIX_WORDS = (
    "re|fw|fwd|aw|wg|sv|vs|vb|antw|antwort|doorst|r|rif|tr|enc|res|odp|pd|ynt|ilt|atb|yml|"
    "\u041e\u0442\u0432\u0435\u0442|\u043e\u0442\u0432|\u8f6c\u53d1|\u56de\u590d|\u7b54\u590d|\u8fd4\u4fe1"
)
# subj-refwd: ("re" / "fw" / "fwd") *WSP [subj-blob] ":"; also "Re[2]:" / "Re(2):" counters.
_REFWD = re.compile(
    rf"^(?:{_PREFIX_WORDS})\s*(?:\[[^\[\]]*\]|\(\d+\)|\^\d+)?\s*[:\uff1a]\s*",
    re.IGNORECASE,
)
_BLOB = re.compile(r"^\[[^\[\]]*\]\s*")
_FWD_TRAILER = re.compile(r"\s*\(fwd\)\s*$", re.IGNORECASE)
_FWD_WRAPPER = re.compile(r"^\[fwd:\s*(.*)\]$", re.IGNORECASE | re.DOTALL)
_WS = re.compile(r"\s+")


def base_subject(subject: str | None) -> str:
    if not subject:
        return ""
    text = _WS.sub(" ", subject).strip()
    while True:
        previous = text
        # (2) trailing "(fwd)"
        while _FWD_TRAILER.search(text):
            text = _FWD_TRAILER.sub("", text)
        # (3)-(5) leading prefixes and blobs, until nothing changes; a blob is only removed when
        # something is left after it (RFC 5256: "[list] " alone is the whole subject).
        while True:
            inner = text
            text = _REFWD.sub("", text, count=1)
            stripped = _BLOB.sub("", text, count=1)
            if stripped:
                text = stripped
            if text == inner:
                break
        # (6) "[fwd: ...]" wrapper
        wrapped = _FWD_WRAPPER.match(text)
        if wrapped:
            text = wrapped.group(1).strip()
        if text == previous:
            return text.strip()
