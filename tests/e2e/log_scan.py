"""Issue 20 point 4: no line the local runner or its functions print carries personal data.

What counts (DESIGN/STYLE: "never log request values, message bodies, tokens or full addresses"):

* `address`: any RFC 5322 addr-spec (section 3.4.1, dot-atom local part) in full; the redacted form
  `a***@example.com` (mailbridge.observability.redact_address) does not match, and ALLOWED_ADDRESSES
  lists the documented non-personal ones.
* `body`: a CANARY phrase the scenarios seed in message bodies, subjects and names (BODY_CANARIES).
* `bearer_token`: a JWT (RFC 7519 compact form, `eyJ<header>.<payload>.<signature>`).
* `oauth_token`: the Google double's access/refresh tokens (`ya29.a0...`, `1//0...`; local/google/ids.py)
  and the Microsoft double's (`EwB...`, `M.C5..._BL2.`/`_BAY.`, `1.A...`; local/microsoft/ids.py).
* `password`: a value after a `password` key, and every password the e2e fixtures handed out
  (the SMTP sink's, each Dovecot user's: registered with `remember_secret`).
* `api_key`: a value after an `api_key`/`x-api-key` key, and the enrichment double's key.

A finding names where it is and its kind, never the value (the report must not leak it either).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# RFC 5322 3.4.1 addr-spec with a dot-atom local part and a dotted domain; `*` is an atext
# character but is left out so that the redacted `a***@example.com` is not a finding.
_ADDRESS = re.compile(
    r"(?<![A-Za-z0-9!#$%&'+/=?^_`{|}~.-])[A-Za-z0-9!#$%&'+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
# Addresses that are no one's: none needed so far (add with the reason when one is).
ALLOWED_ADDRESSES: frozenset[str] = frozenset()

BODY_CANARIES: tuple[str, ...] = ("zq8probe", "bodycanary7k")  # compared case-insensitively
BODY_CANARY = "BodyCanary7k"  # seed it in a scenario's bodies: it must never be printed

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("bearer_token", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
    (
        "oauth_token",
        re.compile(
            r"ya29\.a0[A-Za-z0-9_-]{20,}|1//0[A-Za-z0-9_-]{20,}|EwB[A-Za-z0-9_-]{40,}|M\.C5\w*_B(?:L2|AY)\.|\b1\.A[A-Za-z0-9_-]{100,}"
        ),
    ),
    # a key named password/passwd with a value that is not a mask (`***`) or empty
    ("password", re.compile(r"(?i)pass(?:word|wd)[\"']?\s*[:=]\s*[\"']?(?![\"'*\s,}]|None\b|null\b)")),
    ("api_key", re.compile(r"(?i)(?:x-)?api[_-]key[\"']?\s*[:=]\s*[\"']?(?![\"'*\s,}]|None\b|null\b)")),
)

_SECRETS: dict[str, set[str]] = {"password": set(), "api_key": {"local-enrichment-key"}}


def remember_secret(kind: str, value: str) -> None:
    """Register a credential the fixtures handed out (`password`, `api_key`): it must never be printed."""
    if len(value) >= 6:  # shorter values would match ordinary words
        _SECRETS.setdefault(kind, set()).add(value)


@dataclass(frozen=True)
class Finding:
    where: str  # "file:line" or "test id [section]:line"
    kind: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}"


def kinds_in(line: str) -> list[str]:
    """The kinds of personal data in one printed line (each kind once), in a fixed order."""
    found: list[str] = []
    if any(a not in ALLOWED_ADDRESSES for a in _ADDRESS.findall(line)):
        found.append("address")
    lowered = line.lower()
    if any(c in lowered for c in BODY_CANARIES):
        found.append("body")
    for kind, pattern in _PATTERNS:
        if kind not in found and pattern.search(line):
            found.append(kind)
    for kind, values in _SECRETS.items():
        if kind not in found and any(v in line for v in values):
            found.append(kind)
    return found


# The runner's banner (local/__main__.py) prints, on purpose, the local demo owner's bearer token
# (from the runner's own dev issuer, on the line after its title) and the enrichment double's
# documented key in a sample command: those two lines, exactly, are not findings.
_BANNER_TOKEN_TITLE = "Bearer token (tenant demo, role owner):"
_BANNER_TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BANNER_ENRICHMENT = re.compile(
    r"  curl -s -X PUT -H \"Authorization: Bearer \$TOKEN\" \"\$API/ai/enrichment\" -d "
    r"'\{\"enabled\": true, \"base_url\": \"http://127\.0\.0\.1:\d+\", "
    r"\"api_key\": \"local-enrichment-key\"\}'"
)


def _banner_line(previous: str, line: str) -> bool:
    return bool(
        (previous == _BANNER_TOKEN_TITLE and _BANNER_TOKEN.fullmatch(line))
        or _BANNER_ENRICHMENT.fullmatch(line)
    )


def scan(where: str, text: str) -> list[Finding]:
    """Every finding in `text` (lines numbered from 1), located as `where:line`."""
    lines = text.splitlines()
    return [
        Finding(f"{where}:{n}", kind)
        for n, (previous, line) in enumerate(zip(["", *lines], lines, strict=False), 1)
        if not _banner_line(previous, line)
        for kind in kinds_in(line)
    ]


def report(findings: Iterable[Finding]) -> str:
    lines = [str(f) for f in findings]
    return "personal data in the runner's output (issue 20 point 4):\n" + "\n".join(lines)
