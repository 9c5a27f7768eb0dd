"""The resume loop the one-off backfill scripts share: run a page at a time, save the position
after every page (written to a temporary file, then renamed, so a crash never leaves half a
position), carry on from a saved position, and remove it once the last page is done."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_pages(run_page: Callable[[Any], Any], state: Path) -> None:
    """`run_page(start)` does one page from `start` (None: the beginning) and returns where the
    next begins (None: done); `state` holds that position between runs (JSON)."""
    start = json.loads(state.read_text()) if state.exists() else None
    if start:
        print("resuming after a saved position")
    while True:
        start = run_page(start)
        if start is None:
            break
        partial = state.with_suffix(".tmp")
        partial.write_text(json.dumps(start))
        partial.replace(state)
    state.unlink(missing_ok=True)
