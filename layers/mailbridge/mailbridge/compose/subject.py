"""`Re: ` and `Fwd: ` exactly once, recognising the prefixes other mailers write.

The word lists follow `mailbridge.mime.subject` (which strips them all for threading) but are
split by meaning: replying to "AW: x" gives "Re: x", replying to "Fwd: x" gives "Re: Fwd: x",
as mail clients do.
"""

from __future__ import annotations

import re

_REPLY_WORDS = (
    "re|aw|sv|vs|antw|antwort|r|rif|res|odp|ynt|atb|yml|"
    "\u041e\u0442\u0432\u0435\u0442|\u043e\u0442\u0432|\u56de\u590d|\u7b54\u590d|\u8fd4\u4fe1"
)
_FORWARD_WORDS = "fwd|fw|wg|tr|enc|doorst|pd|ilt|vb|\u8f6c\u53d1|\u8ee2\u9001"
# A prefix word, an optional counter ("Re[2]:", "Re(2):", "Re^2:"), then an ASCII or full-width colon.
_PREFIX = r"(?:{words})\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:\uff1a]\s*"
_REPLY = re.compile(_PREFIX.format(words=_REPLY_WORDS), re.IGNORECASE)
_FORWARD = re.compile(_PREFIX.format(words=_FORWARD_WORDS), re.IGNORECASE)
_BLOB = re.compile(r"\[[^\[\]]*\]\s*")
_WS = re.compile(r"\s+")


def _strip_leading(pattern: re.Pattern[str], subject: str) -> tuple[str, bool]:
    stripped = False
    while match := pattern.match(subject):
        subject = subject[match.end() :]
        stripped = True
    return subject, stripped


def _with_prefix(subject: str | None, pattern: re.Pattern[str], prefix: str) -> str:
    text = _WS.sub(" ", subject or "").strip()
    # A list tag in front ("[team] Re: x") already carries the prefix after it: leave it alone.
    blob = _BLOB.match(text)
    if blob and pattern.match(text[blob.end() :]):
        return text
    rest, _ = _strip_leading(pattern, text)
    return f"{prefix}{rest}" if rest else prefix.rstrip()


def reply_subject(subject: str | None) -> str:
    """`x` -> `Re: x`; `Re: x`, `RE: Re: x`, `AW: x` -> `Re: x`; `Fwd: x` -> `Re: Fwd: x`."""
    return _with_prefix(subject, _REPLY, "Re: ")


def forward_subject(subject: str | None) -> str:
    """`x` -> `Fwd: x`; `FW: x`, `Fwd: Fwd: x`, `WG: x` -> `Fwd: x`; `Re: x` -> `Fwd: Re: x`."""
    return _with_prefix(subject, _FORWARD, "Fwd: ")
