"""The tracking hit handler, in-process: latency of `GET /t/o/{token}` and `GET /t/c/{token}`
from the Lambda event to the answer (token checked, link set and email read, recent hits read
for a click, the hit classified by crawlerdetect and our rules, stored, a human hit announced on
the bus), on moto.

Peer: the 50 ms p99 the project holds its other public handler to (bench_webhooks.py); a pixel
that answers slowly holds up the rendering of the mail it is in. A warm-up hit pays the imports
and crawlerdetect's pattern compilation first. No thresholds: it prints p50/p99 and the ratio.

    .venv/bin/python benchmarks/bench_tracking.py        (BENCH_HITS=n, default 300)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]
HITS = int(os.environ.get("BENCH_HITS", "300"))
TARGET_MS = 50.0
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15"
)

for name, value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mailbridge",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(name, value)


def _event(kind: str, token: str) -> dict[str, object]:
    from tests.events import load_event

    event = load_event("api/tracking-open.json" if kind == "o" else "api/tracking-click.json")
    path = f"/t/{kind}/{token}"
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"token": token}
    event["headers"]["user-agent"] = BROWSER
    return event


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    import boto3
    from moto import mock_aws

    from local.resources import create_resources
    from local.template import load_template
    from mailbridge.calendar.wiring import signer
    from mailbridge.store.tracking import DynamoTrackingStore
    from mailbridge.tracking import tokens
    from mailbridge.tracking.models import TrackedMessage
    from tests.fixtures.aws import FakeLambdaContext, load_function, reset_caches

    with mock_aws():
        template = load_template([ROOT / "template.yaml"])
        deployed = create_resources(boto3.session.Session(), template)
        os.environ.update(template.functions()["ApiFunction"].environment)
        reset_caches()
        email_id = "em_" + "3" * 26
        links = [f"https://shop.example.com/item/{i}" for i in range(5)]
        DynamoTrackingStore(deployed.tables["TrackingTable"]).put_message(
            TrackedMessage(tenant_id="acme", email_id=email_id, opens=True, clicks=True, links=links)
        )
        key = signer()
        opens = [_event("o", tokens.open_token(key, "acme", email_id)) for _ in range(HITS)]
        clicks = [_event("c", tokens.click_token(key, "acme", email_id, i % 5)) for i in range(HITS)]
        handler = load_function("api").lambda_handler
        context = FakeLambdaContext()
        handler(opens[0], context)  # warm-up: imports, crawlerdetect patterns, the signing key
        results: dict[str, list[float]] = {"open": [], "click": []}
        for kind, events in (("open", opens), ("click", clicks)):
            for event in events:
                started = time.perf_counter()
                response = handler(event, context)
                results[kind].append((time.perf_counter() - started) * 1000)
                assert response["statusCode"] in (200, 302), response
        for kind, times in results.items():
            p50, p99 = statistics.median(times), _percentile(times, 0.99)
            print(
                f"   {kind:5} hit handler: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(times)} hits "
                f"(p99 / {TARGET_MS:.0f} ms target = {p99 / TARGET_MS:.2f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
