"""`make bench` (crm): 10,000 contacts pushed and pulled through Salesforce Bulk API 2.0 on the double.

The Salesforce double runs in a child process (real clock: a job queues 1 s after UploadComplete,
then works through 2,000 records a second, as `local/salesforce/bulk.py` models it), so this
process holds only the adapter: its peak RSS is the adapter's memory for the whole run (Python,
httpx, pydantic and the streamed records), read from `getrusage` after the run.

- push: `SalesforceProvider.bulk_save_contacts` over a generator of 10,000 new contacts (one insert
  job: CSV upload, UploadComplete, polls with backoff, the three result CSVs matched back by key);
- pull: `bulk_changed_contacts(None, ...)` (a queryAll query job, results read by locator);
- activity: `log_email` for 50 emails, each logged twice (a retry, or a second mailbox), counting
  the org's API requests (the double's `api_usage`) for the first and for the repeated call.

Peer: the Salesforce seed's own goal (issue 18): 10,000 contacts in under 5 minutes and under
100 MB of memory; the issue's target is under 30 s. Printed, never asserted.

    .venv/bin/python benchmarks/bench_crm.py        (BENCH_CRM_CONTACTS=n, default 10000)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
CONTACTS = int(os.environ.get("BENCH_CRM_CONTACTS", "10000"))
EMAILS = 50
SEED_GOAL_S = 300.0
SEED_GOAL_MB = 100.0
TARGET_S = 30.0


def serve_double() -> None:
    """Child: the double with a connected app and the Task Message-ID field; prints the token."""
    from local.salesforce import SalesforceDouble
    from tests.integration.local_salesforce.conftest import CALLBACK, connect

    with SalesforceDouble(seed=5) as double:
        double.add_custom_field("Task", "Mailbridge_Message_Id__c", "text", 255)
        app = double.register_app([CALLBACK])
        token = connect(double, app)
        print(json.dumps({"token": token, "control": double.base_url + "/__double__"}), flush=True)
        sys.stdin.read()


def api_used(control: str) -> int:
    import httpx

    return int(httpx.get(control, timeout=10).json()["api_usage"]["used"])


def main() -> int:
    from mailbridge.crm.remote.protocol import ContactWrite, EmailActivity
    from mailbridge.crm.remote.salesforce import SalesforceProvider, SalesforceSession
    from mailbridge.providers.http import HttpPolicy

    child = subprocess.Popen(
        [sys.executable, __file__, "--double"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline())
        token, control = started["token"], started["control"]

        def refresh() -> SalesforceSession:
            raise RuntimeError("the bench's session does not expire")

        provider = SalesforceProvider(
            SalesforceSession(token["access_token"], token["instance_url"]),
            refresh,
            policy=HttpPolicy(local_mode=True),
        )
        writes = (
            ContactWrite(
                key=f"k{i}",
                fields={"FirstName": f"First{i}", "LastName": f"Last{i:05d}", "Email": f"c{i}@example.com"},
            )
            for i in range(CONTACTS)
        )
        began = time.monotonic()
        pushed = sum(1 for r in provider.bulk_save_contacts(writes) if r.state == "succeeded")
        push_s = time.monotonic() - began
        pulled = sum(1 for _ in provider.bulk_changed_contacts(None, ["FirstName", "LastName", "Email"]))
        total_s = time.monotonic() - began
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        contacts = [
            r.remote_id
            for r in provider.bulk_save_contacts(
                ContactWrite(key=f"a{i}", fields={"LastName": f"Mail{i}", "Email": f"m{i}@example.com"})
                for i in range(EMAILS)
            )
        ]
        first = again = 0
        for i, contact in enumerate(contacts):
            activity = EmailActivity(
                message_id=f"<bench.{i}@mail.example.com>",
                subject="Proposal",
                sent_at=datetime(2030, 1, 1, 9, 0, tzinfo=UTC),
                direction="outgoing",
                from_address="me@example.com",
                to_addresses=[f"m{i}@example.com"],
                remote_contact_ids=[contact or ""],
            )
            before = api_used(control)  # the control API is not charged as an API request
            provider.log_email(activity)
            middle = api_used(control)
            provider.log_email(activity)
            first += middle - before
            again += api_used(control) - middle
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)

    print(f"{CONTACTS} contacts pushed ({pushed} succeeded) then pulled ({pulled}) through Bulk API 2.0")
    print(f"push s: {push_s:.1f}  pull s: {total_s - push_s:.1f}")
    print(f"crm bulk 10k push+pull s: {total_s:.1f}")
    print(f"crm bulk 10k peak rss MB: {peak_mb:.0f}")
    print(f"push+pull s / seed goal ({SEED_GOAL_S:.0f} s): {total_s / SEED_GOAL_S:.3f}")
    print(f"push+pull s / issue target ({TARGET_S:.0f} s): {total_s / TARGET_S:.2f}")
    print(f"peak rss / seed goal ({SEED_GOAL_MB:.0f} MB): {peak_mb / SEED_GOAL_MB:.2f}")
    print(f"{EMAILS} emails, each logged twice (the second call finds the first and creates nothing)")
    print(f"crm activity requests per logged email: {first / EMAILS:.1f}")
    print(f"crm activity requests per repeated log of the same Message-ID: {again / EMAILS:.1f}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--double"]:
        serve_double()
        sys.exit(0)
    sys.exit(main())
