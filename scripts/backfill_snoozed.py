"""Backfill the snoozed index (emails table gsi7) once, after deploying it: emails snoozed before
it get their index key, so `GET /emails?snoozed=true` lists them. Idempotent and resumable: it
saves its position after every page in `--state` (default `.backfill_snoozed.json`) and carries on
from there when run again; a finished run removes the file. What it does:
`mailbridge.store.snooze_backfill`.

Usage (from the repository root, with AWS credentials for the stack's account and region):
    .venv/bin/python scripts/backfill_snoozed.py --emails <EmailsTable> [--state FILE]
or `make backfill-snoozed EMAILS=...`. The table name is the stack's physical id
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
    parser.add_argument("--emails", required=True, help="the emails table's name")
    parser.add_argument("--state", type=Path, default=Path(".backfill_snoozed.json"))
    args = parser.parse_args(argv)

    from mailbridge.store import snooze_backfill
    from mailbridge.store.emails import EmailStore

    store = EmailStore(args.emails)
    counts = snooze_backfill.Counts()
    run_pages(lambda start: snooze_backfill.run_page(store, start, counts), args.state)
    print(f"emails indexed: {counts.indexed}, woken meanwhile: {counts.woken_meanwhile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
