"""What an erase or export does with one stored item: pure functions over DynamoDB items.

The subject of a request is described by its `Needles`: the e-mail addresses (lower-cased), the
CRM contact ids, and the ids of the emails and drafts that name one of the addresses as a
participant (`is_target`). An item is

- `delete`: one of its key attributes (`pk`, `sk`, `id`, any `gsi*`) holds a needle (the contact,
  the `EMAIL#{address}` lookup, an erased email and everything keyed by its id: links, tracking,
  flags, snoozes, nudges, template sends ...), or one of its values outside a list names an erased
  email or draft (a record derived from it: a location, a notification, an AI result, a run);
- `scrub`: a needle appears only inside it (a deal's `contact_ids`, a calendar event's attendees,
  another email's snippet): list elements that mention a needle are dropped, an attribute that
  holds the contact id is removed, and every other occurrence of an address in a string becomes
  `[erased]`; the record itself stays;
- `keep`: nothing in it mentions the subject.

Addresses match on their own (`ann@x.test` is not found in `joann@x.test`), case-insensitively,
also percent-encoded (keys escape `@` as `%40`) and as the 32-hex SHA-256 prefix the stores key
senders by (`store/keys.digest`, e.g. the emails table's gsi5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal
from urllib.parse import quote

from mailbridge.store.keys import digest

Verdict = Literal["keep", "delete", "scrub"]
REDACTED = "[erased]"
# The header fields of an email or draft item that list its participants (RFC 5322 section 3.6.2,
# 3.6.3; sync/ingest.py and drafts/service.py store them as lists of {name, address} or strings).
PARTICIPANT_FIELDS = ("from", "sender", "reply_to", "to", "cc", "bcc")
# Item kinds of the emails table that can be a target (store/emails.py, store/drafts.py).
TARGET_PREFIXES = ("EMAIL#", "DRAFT#")


def is_key_attribute(name: str) -> bool:
    return name in ("pk", "sk", "id") or name.startswith("gsi")


class _Derived(Exception):
    """Raised inside the walk: the item names an erased email or draft outside a list."""


_DROP = object()


@dataclass(frozen=True)
class Needles:
    """What identifies the subject: addresses (lower-cased), contact ids, email and draft ids."""

    addresses: frozenset[str]
    contact_ids: frozenset[str] = frozenset()
    target_ids: frozenset[str] = frozenset()

    def with_targets(self, target_ids: Iterable[str]) -> Needles:
        return Needles(self.addresses, self.contact_ids, frozenset(target_ids))

    @cached_property
    def _address_pattern(self) -> re.Pattern[str] | None:
        forms = set()
        for address in self.addresses:
            forms |= {address, quote(address, safe=""), digest(address)}
        if not forms:
            return None
        alternatives = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        # Not preceded by a character an address or hex digest could continue with; not followed
        # by one either (a dot followed by a letter would make it a longer domain).
        return re.compile(rf"(?<![\w.%+-])(?:{alternatives})(?![\w-]|\.\w)", re.IGNORECASE)

    @staticmethod
    def _ids_pattern(ids: frozenset[str]) -> re.Pattern[str] | None:
        if not ids:
            return None
        alternatives = "|".join(re.escape(i) for i in sorted(ids))
        return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")

    @cached_property
    def _contact_pattern(self) -> re.Pattern[str] | None:
        return self._ids_pattern(self.contact_ids)

    @cached_property
    def _target_pattern(self) -> re.Pattern[str] | None:
        return self._ids_pattern(self.target_ids)

    def names_address(self, text: str) -> bool:
        pattern = self._address_pattern
        return pattern is not None and pattern.search(text) is not None

    def names_contact(self, text: str) -> bool:
        pattern = self._contact_pattern
        return pattern is not None and pattern.search(text) is not None

    def names_target(self, text: str) -> bool:
        pattern = self._target_pattern
        return pattern is not None and pattern.search(text) is not None

    def names_any(self, text: str) -> bool:
        return self.names_address(text) or self.names_contact(text) or self.names_target(text)

    def redact(self, text: str) -> str:
        pattern = self._address_pattern
        return text if pattern is None else pattern.sub(REDACTED, text)


def mentions(value: Any, needles: Needles) -> bool:
    """Whether any string anywhere in `value` (keys of maps included) names the subject."""
    if isinstance(value, str):
        return needles.names_any(value)
    if isinstance(value, Mapping):
        return any(mentions(k, needles) or mentions(v, needles) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(mentions(v, needles) for v in value)
    return False


def is_target(item: Mapping[str, Any], addresses: Needles) -> bool:
    """An email or draft item of the emails table that names one of the addresses as a participant
    (From, Sender, Reply-To, To, Cc, Bcc)."""
    sk = item.get("sk")
    if not isinstance(sk, str) or not sk.startswith(TARGET_PREFIXES):
        return False
    return any(mentions(item.get(name), addresses) for name in PARTICIPANT_FIELDS)


def target_id(item: Mapping[str, Any]) -> str:
    """The email or draft id of a target item (its sort key after the kind)."""
    return str(item["sk"]).split("#", 1)[1]


def _walk(value: Any, needles: Needles) -> Any:
    if isinstance(value, str):
        if needles.names_target(value):
            raise _Derived
        if needles.names_contact(value):
            return _DROP
        return needles.redact(value)
    if isinstance(value, Mapping):
        out = {}
        for key, inner in value.items():
            if isinstance(key, str) and needles.names_any(key):
                continue
            walked = _walk(inner, needles)
            if walked is not _DROP:
                out[key] = walked
        return out
    if isinstance(value, list | tuple):
        return [_walk(e, needles) for e in value if not mentions(e, needles)]
    if isinstance(value, set | frozenset):
        kept = {e for e in value if not mentions(e, needles)}
        # DynamoDB refuses an empty set: the attribute goes instead.
        return kept or _DROP
    return value


def judge(item: Mapping[str, Any], needles: Needles) -> tuple[Verdict, dict[str, Any] | None]:
    """The verdict on one item and, for `scrub`, the item as it is to be written back."""
    for name, value in item.items():
        if is_key_attribute(name) and isinstance(value, str) and needles.names_any(value):
            return "delete", None
    if not mentions(item, needles):
        return "keep", None
    try:
        scrubbed = _walk(item, needles)
    except _Derived:
        return "delete", None
    return "scrub", scrubbed
