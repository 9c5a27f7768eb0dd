"""Answers to a sent email, the one rule that nudges, template stats and engagement share.

- The candidates (`later_inbound`): the inbound emails of the sent email's thread dated after it.
- A reply (`is_automatic` false): a candidate that no process wrote. RFC 3834 section 5:
  `Auto-Submitted` other than `no` marks mail a process wrote; an out-of-office answer is no
  reply (the rule `mailbridge.nudges.service` clears a thread's nudge by).
- A bounce (`is_bounce`): a candidate that reports the sent email undelivered: a delivery status
  notification (RFC 3464 `multipart/report; report-type=delivery-status`, stored by ingest as
  `bounce`) whose returned message is the sent one (or names none), or a bounce the categorizer
  recognised in another form (its reasons `dsn:delivery-status`, `subject:bounce`,
  `body:bounce`: `mailbridge.ai.rules`). A bounce is never a reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

CANDIDATE_ATTRIBUTES = ("auto_submitted", "bounce", "reasons", "date")
"""What `is_automatic` and `is_bounce` read of a candidate (a projection for BatchGetItem)."""

BOUNCE_REASONS = frozenset({"dsn:delivery-status", "subject:bounce", "body:bounce"})


def instant(value: Any) -> datetime:
    """An item's ISO 8601 time as an aware datetime; `datetime.min` (UTC) when unreadable."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def later_inbound(email: Mapping[str, Any], thread: list[dict[str, Any]]) -> list[str]:
    """Ids of the inbound emails later in the sent email's thread (`thread`: its emails' items)."""
    sent_at = instant(email.get("date"))
    return [
        str(other["email_id"])
        for other in thread
        if other.get("email_id") != email.get("email_id")
        and other.get("direction") == "inbound"
        and instant(other.get("date")) > sent_at
    ]


def is_automatic(item: Mapping[str, Any]) -> bool:
    """RFC 3834 section 5: `Auto-Submitted` present and other than `no`."""
    value = str(item.get("auto_submitted") or "").strip().lower()
    return bool(value) and value != "no"


def is_bounce(item: Mapping[str, Any], message_id: str | None) -> bool:
    """`item` reports the email whose Message-ID is `message_id` undelivered (see the module)."""
    bounce = item.get("bounce")
    if isinstance(bounce, Mapping):
        original = bounce.get("original_message_id")
        return not original or original == message_id
    return bool(BOUNCE_REASONS.intersection(str(r) for r in item.get("reasons") or ()))
