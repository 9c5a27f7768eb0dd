"""Backfill of the snoozed index (emails table gsi7) for emails snoozed before it existed.

One Scan of the emails table in pages of `PAGE_SIZE` items read, keeping email items that carry
`snoozed_until` but no `gsi7pk`; each gets its index key in an update conditional on it still
being snoozed at the time read (an email woken or cancelled meanwhile stays out of the index; one
snoozed again meanwhile got its key from `EmailStore.set_snooze` already). Every write is
idempotent: running a page again, or the whole backfill after a crash, writes the same items.

Resumable: `run_page(store, start, counts)` does one page from `start` (a Scan key; None: from
the beginning) and returns the key after it (None when the table is done); the caller stores it
(scripts/backfill_snoozed.py keeps it in a file) and passes it back to carry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import Item, is_condition_failure
from mailbridge.store.conditions import Attr
from mailbridge.store.emails import snoozed_source

if TYPE_CHECKING:
    from mailbridge.store.emails import EmailStore

PAGE_SIZE = 100
TENANT_PREFIX = "TENANT#"


@dataclass
class Counts:
    """What one run did: emails put in the snoozed index, and those no longer snoozed when written."""

    indexed: int = 0
    woken_meanwhile: int = 0


def _tenant(pk: str) -> str:
    return pk.removeprefix(TENANT_PREFIX)  # an email's pk is TENANT#{tenant}, nothing after it


def run_page(store: EmailStore, start: Item | None, counts: Counts) -> Item | None:
    """Index one page of the Scan from `start`; the Scan key to resume at, None when done."""
    kwargs: dict[str, Any] = {
        "FilterExpression": Attr("sk").begins_with("EMAIL#")
        & Attr("snoozed_until").exists()
        & Attr("gsi7pk").not_exists(),
        "ProjectionExpression": "pk, sk, snoozed_until",
        "Limit": PAGE_SIZE,
    }
    if start:
        kwargs["ExclusiveStartKey"] = start
    response = store.table.scan(**kwargs)
    for item in response.get("Items", []):
        try:
            store.table.update_item(
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET gsi7pk = :p",
                ConditionExpression="snoozed_until = :until",
                ExpressionAttributeValues={
                    ":p": snoozed_source(_tenant(str(item["pk"]))).partition,
                    ":until": item["snoozed_until"],
                },
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            counts.woken_meanwhile += 1
            continue
        counts.indexed += 1
    after: Item | None = response.get("LastEvaluatedKey")
    return after
