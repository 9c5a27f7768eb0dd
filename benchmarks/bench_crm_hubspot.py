"""HubSpotProvider on the HubSpot double: 10,000 contacts pushed (batch/create of 100, streamed)
and pulled back (search pages of 100 on `lastmodifieddate`, keyset-restarted, then the archived
list), seconds and peak RSS; then requests per logged email (the Message-ID lookup + the
engagement create; a repeat costs the lookup only).

Peer: the Salesforce seed's goals (10,000 contacts in under 5 minutes, under 100 MB) and the
issue's target (under 30 s, under 100 MB). The double runs as its own process
(`python -m local.hubspot`) with a real clock, so HubSpot's limits apply as documented: 110
requests per 10 s for a public app and 5 searches a second; the adapter waits those out (1 s
after a SECONDLY 429), and that waiting is part of the pull's time, as it would be against
HubSpot. The double's own work is in the wall time too (each search filters and sorts every
contact in the double, ~0.4 s a query at 10,000 on this machine): the adapter's own CPU time is
printed beside it to tell the two apart. Peak RSS is this process's high-water mark
(`ru_maxrss`), the double's memory apart. No thresholds: it prints the figures and the ratios
to the targets.

    .venv/bin/python benchmarks/bench_crm_hubspot.py        (BENCH_CONTACTS=n, default 10000)

`run(contacts)` returns the figures as a dict, for a combined CRM bench to call.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
CONTACTS = int(os.environ.get("BENCH_CONTACTS", "10000"))
EMAILS = 20
TARGET_SECONDS, SEED_SECONDS, TARGET_MB = 30.0, 300.0, 100.0
REDIRECT = "http://127.0.0.1:9/oauth/hubspot/callback"
SCOPES = "oauth crm.objects.contacts.read crm.objects.contacts.write crm.schemas.contacts.read"
SCOPES += " crm.lists.read crm.lists.write"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_double() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.hubspot", "--port", "0", "--seed", "1", "--redirect-uri", REDIRECT,
         "--client-id", "bench-client", "--client-secret", "bench-secret"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("}"):
            break
    text = "".join(lines)
    urls = json.loads(text[text.index("{") :])
    return process, str(urls["api"])


def _install(api: str) -> tuple[str, str]:
    import httpx

    answer = httpx.get(
        api + "/oauth/authorize",
        params={"client_id": "bench-client", "redirect_uri": REDIRECT, "scope": SCOPES, "state": "b"},
    )
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    token = httpx.post(
        api + "/oauth/v1/token",
        data={
            "grant_type": "authorization_code",
            "client_id": "bench-client",
            "client_secret": "bench-secret",
            "redirect_uri": REDIRECT,
            "code": code,
        },
    ).json()
    return str(token["access_token"]), str(token["refresh_token"])


def run(contacts: int = CONTACTS) -> dict[str, Any]:
    from mailbridge.crm.remote.hubspot import HubSpotProvider, HubSpotSettings
    from mailbridge.crm.remote.protocol import ContactWrite, EmailActivity
    from mailbridge.providers.http import HttpPolicy

    process, api = _start_double()
    try:
        access, _refresh = _install(api)

        def no_refresh() -> str:
            raise RuntimeError("the bench's token does not expire")

        waited: list[float] = []

        def sleep(seconds: float) -> None:
            waited.append(seconds)
            time.sleep(seconds)

        provider = HubSpotProvider(
            access, no_refresh, HubSpotSettings(api_url=api), policy=HttpPolicy(local_mode=True), sleep=sleep
        )
        provider.contact_fields()
        baseline_mb = _peak_mb()

        def rows() -> Iterator[ContactWrite]:
            for i in range(contacts):
                yield ContactWrite(
                    key=f"c{i}",
                    fields={"email": f"p{i}@bench.example", "firstname": f"P{i}", "lastname": "Bench"},
                )

        started, cpu = time.perf_counter(), time.process_time()
        before = provider.requests
        pushed = sum(1 for r in provider.bulk_save_contacts(rows()) if r.state == "succeeded")
        push_seconds = time.perf_counter() - started
        push_cpu = time.process_time() - cpu
        push_requests = provider.requests - before

        waited.clear()
        started, cpu = time.perf_counter(), time.process_time()
        before = provider.requests
        pulled = sum(1 for _ in provider.bulk_changed_contacts(None, ["email", "firstname", "lastname"]))
        pull_seconds = time.perf_counter() - started
        pull_cpu = time.process_time() - cpu
        pull_requests = provider.requests - before
        pull_waited = sum(waited)
        peak_mb = _peak_mb()

        contact_ids = [c.remote_id for c in provider.bulk_changed_contacts(None, ["email"])][:EMAILS]
        first = provider.log_email(
            EmailActivity(
                message_id="<warmup@bench.example>",
                sent_at=datetime.now(UTC),
                direction="outgoing",
                from_address="me@bench.example",
                remote_contact_ids=[contact_ids[0]],
            )
        )
        assert first.created
        activities = [
            EmailActivity(
                message_id=f"<m{i}@bench.example>",
                subject=f"Hello {i}",
                sent_at=datetime.now(UTC),
                direction="outgoing",
                from_address="me@bench.example",
                to_addresses=[f"p{i}@bench.example"],
                body_preview="Hello",
                remote_contact_ids=[remote_id],
            )
            for i, remote_id in enumerate(contact_ids)
        ]
        before = provider.requests
        created = sum(provider.log_email(a).created for a in activities)
        per_email = (provider.requests - before) / len(activities)
        before = provider.requests
        repeated = sum(provider.log_email(a).created for a in activities)
        per_repeat = (provider.requests - before) / len(activities)
        assert (created, repeated) == (len(activities), 0)
    finally:
        os.killpg(process.pid, 15)
        process.wait(10)
    return {
        "contacts": contacts,
        "pushed": pushed,
        "push_seconds": push_seconds,
        "push_requests": push_requests,
        "push_adapter_cpu_seconds": push_cpu,
        "pulled": pulled,
        "pull_seconds": pull_seconds,
        "pull_requests": pull_requests,
        "pull_adapter_cpu_seconds": pull_cpu,
        "pull_rate_limit_wait_seconds": pull_waited,
        "baseline_mb": baseline_mb,
        "peak_mb": peak_mb,
        "requests_per_logged_email": per_email,
        "requests_per_repeated_email": per_repeat,
    }


def main() -> int:
    figures = run()
    push_s, pull_s = figures["push_seconds"], figures["pull_seconds"]
    total = push_s + pull_s
    print(
        f"{figures['contacts']} contacts pushed ({figures['pushed']} succeeded) then pulled "
        f"({figures['pulled']}) through HubSpot batch/create (100 a call) and search pages of 100"
    )
    print(f"push s: {push_s:.1f}  pull s: {pull_s:.1f}")
    print(f"crm hubspot push requests: {figures['push_requests']}")
    print(f"crm hubspot pull requests: {figures['pull_requests']}")
    print(f"crm hubspot pull rate-limit wait s (5 searches/s): {figures['pull_rate_limit_wait_seconds']:.1f}")
    print(
        "crm hubspot adapter cpu s (push, pull): "
        f"{figures['push_adapter_cpu_seconds']:.1f}, {figures['pull_adapter_cpu_seconds']:.1f}"
    )
    print(f"crm hubspot 10k push+pull s: {total:.1f}")
    print(f"crm hubspot 10k peak rss MB: {figures['peak_mb']:.0f}")
    print(f"hubspot push+pull s / seed goal ({SEED_SECONDS:.0f} s): {total / SEED_SECONDS:.3f}")
    print(f"hubspot push+pull s / issue target ({TARGET_SECONDS:.0f} s): {total / TARGET_SECONDS:.2f}")
    print(f"hubspot peak rss / seed goal ({TARGET_MB:.0f} MB): {figures['peak_mb'] / TARGET_MB:.2f}")
    print(f"{EMAILS} emails, each logged twice (the second call finds the first and creates nothing)")
    print(f"crm hubspot activity requests per logged email: {figures['requests_per_logged_email']:.1f}")
    print(
        "crm hubspot activity requests per repeated log of the same Message-ID: "
        f"{figures['requests_per_repeated_email']:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
