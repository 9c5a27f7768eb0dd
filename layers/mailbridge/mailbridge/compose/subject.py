"""`Re: ` and `Fwd: ` exactly once, recognising the prefixes other mailers write.

The words come from the one table in `mailbridge.mime.subject` (which strips them all for
threading), split by meaning: replying to "AW: x" or "회신: x" gives "Re: x", replying to
"Fwd: x" gives "Re: Fwd: x", as mail clients do.
"""

from __future__ import annotations

import re

from mailbridge.mime.subject import FORWARD_PREFIXES, REPLY_PREFIXES, prefix_pattern

_REPLY = prefix_pattern(REPLY_PREFIXES)
_FORWARD = prefix_pattern(FORWARD_PREFIXES)
_BLOB = re.compile(r"\[[^\[\]]*\]\s*")
_WS = re.compile(r"\s+")


def _strip_leading(pattern: re.Pattern[str], subject: str) -> str:
    while match := pattern.match(subject):
        subject = subject[match.end() :]
    return subject


def _with_prefix(subject: str | None, pattern: re.Pattern[str], prefix: str) -> str:
    text = _WS.sub(" ", subject or "").strip()
    # A list tag in front ("[team] Re: x") already carries the prefix after it: leave it alone.
    blob = _BLOB.match(text)
    if blob and pattern.match(text[blob.end() :]):
        return text
    rest = _strip_leading(pattern, text)
    return f"{prefix}{rest}" if rest else prefix.rstrip()


def reply_subject(subject: str | None) -> str:
    """`x` -> `Re: x`; `Re: x`, `RE: Re: x`, `AW: x`, `회신: x` -> `Re: x`; `Fwd: x` -> `Re: Fwd: x`."""
    return _with_prefix(subject, _REPLY, "Re: ")


def forward_subject(subject: str | None) -> str:
    """`x` -> `Fwd: x`; `FW: x`, `Fwd: Fwd: x`, `WG: x`, `전달: x` -> `Fwd: x`; `Re: x` -> `Fwd: Re: x`."""
    return _with_prefix(subject, _FORWARD, "Fwd: ")
