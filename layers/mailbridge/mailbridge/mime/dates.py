"""The message date: the Date header when it parses, else the server's internal date."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from mailbridge.models.email import DateSource

# Dates before this are parse accidents (two-digit years gone wrong, zeros), not real mail.
_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)


def to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        # RFC 5322 "-0000" and naive internal dates both mean "UTC, zone unknown".
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = to_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed >= _EARLIEST else None


def pick_date(header: str | None, internal: datetime | None) -> tuple[datetime | None, DateSource]:
    parsed = parse_date(header)
    if parsed is not None:
        return parsed, "header"
    if internal is not None:
        return to_utc(internal), "internal"
    return None, "none"
