"""Backfill of the ownership records (accounts table, `OWNER#{account_id}` items) for accounts
connected before mailbox ownership shipped (issue 19 point 2).

`mailbridge.access` decides with each account's owner and visibility: from the account item
while it exists (`account.created_by`, `account.visibility`), from its `OWNER#` item after a
disconnect (`AccountStore.delete_account` writes it). Accounts connected before then have no
`OWNER#` item; this writes one per account from the account item, so every mailbox ever
connected has an ownership record of its own, the same as a disconnect would leave.

One Scan of the accounts table in pages of `PAGE_SIZE` items read, keeping account items
(`sk` = `ACCOUNT#...`) with only the owner and visibility projected; each page's records are
written with BatchWriteItem (25 a request; boto3's batch writer resends unprocessed items).
Idempotent: an `OWNER#` item holds nothing but what its account item says, so writing it again
(a page run twice, or the whole backfill after a crash) stores the same item; while the account
exists its own item still wins (`AccountStore.mailboxes` reads it after the `OWNER#` items).

Resumable: `run_page(store, start, counts)` does one page from `start` (a Scan key; None: from
the beginning) and returns the key after it (None when the table is done); the caller stores it
(scripts/backfill_owners.py keeps it in a file) and passes it back to carry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbridge.store.base import Item
from mailbridge.store.batch import batch_put
from mailbridge.store.conditions import Attr

if TYPE_CHECKING:
    from mailbridge.store.accounts import AccountStore

PAGE_SIZE = 100
ACCOUNT_PREFIX = "ACCOUNT#"


@dataclass
class Counts:
    """What one run did: ownership records written, and account items without an owner (none
    can be stored since `created_by` is required; counted, never guessed)."""

    written: int = 0
    without_owner: int = 0


def owner_item(account_item: Item) -> Item | None:
    """The `OWNER#` item of an account item (`pk`, `sk`, `account.created_by`,
    `account.visibility`), or None when it names no owner."""
    from mailbridge.store.accounts import owner_record

    account = account_item.get("account") or {}
    owner = account.get("created_by")
    if not owner:
        return None
    account_id = str(account_item["sk"]).removeprefix(ACCOUNT_PREFIX)
    visibility = account.get("visibility")
    return owner_record(
        str(account_item["pk"]), account_id, str(owner), str(visibility) if visibility else None
    )


def run_page(store: AccountStore, start: Item | None, counts: Counts) -> Item | None:
    """Write the ownership records of one page of the Scan from `start`; the Scan key to resume
    at, None when done."""
    kwargs: dict[str, Any] = {
        "FilterExpression": Attr("sk").begins_with(ACCOUNT_PREFIX),
        "ProjectionExpression": "pk, sk, #a.created_by, #a.visibility",
        "ExpressionAttributeNames": {"#a": "account"},
        "Limit": PAGE_SIZE,
    }
    if start:
        kwargs["ExclusiveStartKey"] = start
    response = store.table.scan(**kwargs)
    records = []
    for account_item in response.get("Items", []):
        record = owner_item(account_item)
        if record is None:
            counts.without_owner += 1
        else:
            records.append(record)
    if records:
        batch_put(store.client, store.table_name, records)
        counts.written += len(records)
    after: Item | None = response.get("LastEvaluatedKey")
    return after
