"""Backfill the timeline index (links table gsi2) once, after deploying it: email links, calendar
events and CRM activities written before it get their index entries (and the calendar's legacy
REL items go). Idempotent and resumable: it saves its position after every page in `--state`
(default `.backfill_timeline.json`) and carries on from there when run again; a finished run
removes the file. What it does: `mailbridge.store.timeline_backfill`.

Usage (from the repository root, with AWS credentials for the stack's account and region):
    .venv/bin/python scripts/backfill_timeline.py --links <LinksTable> --calendar <CalendarTable> \\
        --crm <CrmTable> [--state FILE]
or `make backfill-timeline LINKS=... CALENDAR=... CRM=...`. The table names are the stack's
outputs / physical ids (`aws cloudformation describe-stack-resources`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "mailbridge"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--links", required=True, help="the links table's name")
    parser.add_argument("--calendar", required=True, help="the calendar table's name")
    parser.add_argument("--crm", required=True, help="the CRM table's name")
    parser.add_argument("--state", type=Path, default=Path(".backfill_timeline.json"))
    args = parser.parse_args(argv)

    from mailbridge.store.calendar import CalendarStore
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.links import LinkStore
    from mailbridge.store.timeline_backfill import Counts, Stores, run_page

    stores = Stores(
        links=LinkStore(args.links),
        calendar=CalendarStore(args.calendar, args.links),
        crm=CrmStore(args.crm, timeline_table=args.links),
    )
    position = json.loads(args.state.read_text()) if args.state.exists() else None
    if position:
        print(f"resuming at {position['step']}")
    counts = Counts()
    while True:
        position = run_page(stores, position, counts)
        if position is None:
            break
        partial = args.state.with_suffix(".tmp")
        partial.write_text(json.dumps(position))
        partial.replace(args.state)
    args.state.unlink(missing_ok=True)
    print(
        f"links indexed: {counts.links}, events indexed: {counts.events}, "
        f"legacy calendar items deleted: {counts.legacy_deleted}, activities indexed: {counts.activities}"
    )
    for line in counts.skipped:
        print(f"skipped: {line}")
    return 1 if counts.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
