"""How long Gmail accounts take through the local runner (the measurement behind
bench_simulation.py's "not the local runner"): `BENCH_PROBE_ACCOUNTS` (default 10) Google users
of 5 messages each (bench_simulation's messages) connected through the runner's OAuth routes
(`GET /oauth/gmail/start`, the double's consent, the callback), then `runner.drain()` timed: the
accounts' first syncs and everything their events trigger, through the runner's pump, function
sandboxes and moto server. The Google double answers without added latency. No thresholds.

    .venv/bin/python benchmarks/sim_runner_probe.py
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
ACCOUNTS = int(os.environ.get("BENCH_PROBE_ACCOUNTS", "10"))
MESSAGES = 5
TENANTS = 5


def main() -> int:
    from benchmarks.bench_simulation import message
    from local.clock import ManualClock
    from local.google import GoogleDouble
    from local.runner import Runner
    from tests.e2e.conftest import call
    from tests.e2e.test_gmail_e2e import get

    now = datetime.now(UTC).replace(microsecond=0)
    google = GoogleDouble(clock=ManualClock(now), seed=21)
    google.start()
    try:
        with Runner(
            templates=[ROOT / "template.yaml"], port=0, clock=ManualClock(now), google=google, log_prefix=True
        ) as runner:
            addresses = []
            for n in range(ACCOUNTS):
                address = f"user{n}@tenant{n % TENANTS}.example"
                mailbox = google.add_user(address, f"User {n}")
                for i in range(MESSAGES):
                    google.gmail.add_message(mailbox, message(n, i, address), ["INBOX", "UNREAD"])
                addresses.append(address)
            started = time.perf_counter()
            for n, address in enumerate(addresses):
                token = runner.token(tenant=f"t{n % TENANTS}", role="member", sub=f"u{n}")
                status, body = call(runner, "GET", f"/oauth/gmail/start?login_hint={address}", token)
                if status != 200:
                    raise RuntimeError(f"oauth start answered {status}")
                _, headers, _ = get(body["authorization_url"])
                status, _, _ = get(headers["Location"])
                if status != 200:
                    raise RuntimeError(f"oauth callback answered {status}")
            connected = time.perf_counter() - started
            started = time.perf_counter()
            runner.drain(timeout=3600)
            drained = time.perf_counter() - started
    finally:
        google.stop()
    print(f"runner probe accounts: {ACCOUNTS} of {MESSAGES} messages, connect seconds {connected:.1f}")
    print(f"runner probe drain seconds: {drained:.1f}")
    print(f"runner probe seconds per account: {drained / max(ACCOUNTS, 1):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
