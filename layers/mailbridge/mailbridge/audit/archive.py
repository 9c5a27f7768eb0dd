"""The audit stream consumer's logic: new audit items -> JSON Lines objects in the archive.

One object per tenant and UTC day in a stream batch (`store/audit_archive.py` names the key),
one line per entry (the item without its keys, `sort_keys`), in stream order. The stream is the
table's NEW_IMAGE; only INSERTs are archived (the table has no updates or deletes).

Why by hand, not Powertools' `BatchProcessor`: it handles records one by one, and the archive
writes one object per tenant/day group. Partial failures follow Lambda's checkpoint rule for
streams (`ReportBatchItemFailures`): the answer names the lowest sequence number of the first
group whose write failed, Lambda retries the batch from there, so a group may be written twice
(a second object with the same lines and key: a new version; readers dedupe on `request_id` +
`at`). Nothing after a failed group is lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from mailbridge.observability import logger
from mailbridge.store.audit_archive import ARCHIVE_PREFIX


class ArchiveSink(Protocol):
    def put_locked(self, key: str, data: bytes, retain_until: datetime) -> None: ...


@dataclass(frozen=True)
class ArchiveDeps:
    sink: ArchiveSink
    retention_days: int
    now: Callable[[], datetime]


@dataclass(frozen=True)
class StreamItem:
    """One INSERT of the audit stream: its sequence number and the new item (plain values)."""

    sequence_number: str
    item: dict[str, Any]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def line_of(item: dict[str, Any]) -> str:
    """One JSON line: the entry without its table keys."""
    entry = {k: _plain(v) for k, v in item.items() if k not in {"pk", "sk", "resource_list"}}
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def object_key(tenant_id: str, day: str, first: str, last: str) -> str:
    """`audit/{tenant}/{YYYY}/{MM}/{DD}/{first}-{last}.jsonl` (`day` is `YYYY-MM-DD`)."""
    year, month, date = day.split("-")
    return f"{ARCHIVE_PREFIX}{tenant_id}/{year}/{month}/{date}/{first}-{last}.jsonl"


def archive(items: Sequence[StreamItem], deps: ArchiveDeps) -> list[str]:
    """Write `items` grouped by tenant and day; returns the sequence numbers to report as failed
    (empty: all written; else the first failed group's first record, which Lambda retries from)."""
    groups: dict[tuple[str, str], list[StreamItem]] = {}
    for stream_item in items:
        tenant = str(stream_item.item.get("tenant_id") or "unknown")
        day = str(stream_item.item.get("at") or "0000-00-00")[:10]
        groups.setdefault((tenant, day), []).append(stream_item)
    retain_until = deps.now() + timedelta(days=deps.retention_days)
    ordered = list(groups.items())
    for index, ((tenant, day), group) in enumerate(ordered):
        key = object_key(tenant, day, group[0].sequence_number, group[-1].sequence_number)
        data = ("\n".join(line_of(s.item) for s in group) + "\n").encode("utf-8")
        try:
            deps.sink.put_locked(key, data, retain_until)
        except Exception as exc:  # noqa: BLE001 - reported to Lambda, which retries from here
            logger.error(
                "audit archive write failed",
                extra={"tenant_id": tenant, "entries": len(group), "error_type": type(exc).__name__},
            )
            unwritten = [s.sequence_number for _key, rest in ordered[index:] for s in rest]
            return [min(unwritten, key=int)]
    return []
