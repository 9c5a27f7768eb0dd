"""Backfill the ownership records (accounts table, `OWNER#` items) once, after deploying mailbox
ownership: every account connected before it gets the record a disconnect would leave, written
from the account's `created_by` and `visibility`. Idempotent and resumable: it saves its position
after every page in `--state` (default `.backfill_owners.json`) and carries on from there when run
again; a finished run removes the file. What it does: `mailbridge.store.owner_backfill`.

Usage (from the repository root, with AWS credentials for the stack's account and region):
    .venv/bin/python scripts/backfill_owners.py --accounts <AccountsTable> [--state FILE]
or `make backfill-owners ACCOUNTS=...`. The table name is the stack's physical id
(`aws cloudformation describe-stack-resources`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "mailbridge"))
sys.path.insert(0, str(ROOT))

from scripts.resumable import run_pages  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", required=True, help="the accounts table's name")
    parser.add_argument("--state", type=Path, default=Path(".backfill_owners.json"))
    args = parser.parse_args(argv)

    from mailbridge.store import owner_backfill
    from mailbridge.store.accounts import AccountStore

    store = AccountStore(args.accounts)
    counts = owner_backfill.Counts()
    run_pages(lambda start: owner_backfill.run_page(store, start, counts), args.state)
    print(f"ownership records written: {counts.written}, accounts without an owner: {counts.without_owner}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
