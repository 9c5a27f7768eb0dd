"""Read paths (issue 10 point 3): DynamoDB requests and in-process latency of a page of 50.

Run from the repo root: `.venv/bin/python benchmarks/bench_reads.py`. `BENCH_READS_CALLS`
(default 200) sets how many times each call is made.

The template's tables on moto (in-process, as the integration tests run them), 230 emails of one
account stored through the real batch ingest (50 of them snoozed), a contact, its company and a
deal each linked to 55 of them (tests/integration/read_mail.py, the same data and calls
test_read_requests asserts on).
Then every read route of point 3 (each filter of GET /emails and GET /threads on its own, the
snoozed ones included (they read the sparse snoozed index, emails gsi7), a
thread and its second page, the contact and deal timelines and their aliases, the by-email view)
is called through the api function's handler. Printed per call: the DynamoDB requests it makes
(a botocore `before-call.dynamodb.*` hook; the figure that is billed and that does not depend on
the machine) and the latency p50/p99 over the calls, whole and without the time spent inside
the DynamoDB calls ("ours": moto answers in-process and its cost, a deep copy of every item it
reads, is not DynamoDB's). Compare calls of one run with each other, not with AWS.
Printed, never asserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "mailbridge"), str(ROOT)]

CALLS = int(os.environ.get("BENCH_READS_CALLS", "200"))


class CallClock:
    """Seconds spent inside DynamoDB calls (botocore before-call to after-call: serializing, moto
    answering, parsing), so what is left of a route's latency is our own code."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def start(self, **_: object) -> None:
        self._started = time.perf_counter()

    def stop(self, **_: object) -> None:
        self.seconds += time.perf_counter() - self._started


def p50(values: list[float]) -> float:
    return statistics.median(values) * 1000


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000


def main() -> int:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "mailbridge",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)

    import boto3
    from moto import mock_aws

    from local.resources import create_resources
    from local.template import load_template
    from mailbridge import aws
    from tests.fixtures.aws import TEMPLATE, FakeLambdaContext, Stack, load_function, reset_caches
    from tests.integration.read_mail import ReadCall, Requests, read_calls, seed_mail
    from tests.integration.test_api_emails import body

    with mock_aws():
        template = load_template([TEMPLATE], parameters={"AllowPrivateMailHosts": "true"})
        stack = Stack(template, create_resources(boto3.session.Session(), template))
        os.environ.update(stack.env("ApiFunction"))
        reset_caches()
        handler = load_function("api").lambda_handler
        context = FakeLambdaContext()

        def invoke(event: dict[str, object]) -> dict[str, object]:
            response: dict[str, object] = handler(event, context)
            return response

        mail = seed_mail(stack, invoke)
        requests = Requests()
        in_calls = CallClock()
        for client in aws.dynamodb_clients():
            events = client.meta.events
            events.register("before-call.dynamodb.*", requests)
            events.register("before-call.dynamodb.*", in_calls.start)
            events.register("after-call.dynamodb.*", in_calls.stop)

        first = invoke(ReadCall("", "get-thread", {"thread_id": mail.thread_id}, {"limit": "50"}).event())
        calls = read_calls(mail, body(first)["next_cursor"])
        print(
            f"{len(calls)} read calls, a page of 50 each (by-email: its 5 newest emails), {CALLS} times each"
        )
        print(
            f"  {'call':<50}{'requests':>9}{'items':>6}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'ours p50':>9}{'ours p99':>9}"
        )
        most = 0
        for call in calls:
            event = call.event()
            counts: set[int] = set()
            times: list[float] = []
            ours: list[float] = []
            items = 0
            for _ in range(CALLS):
                requests.names.clear()
                in_calls.seconds = 0.0
                started = time.perf_counter()
                response = invoke(event)
                times.append(time.perf_counter() - started)
                ours.append(times[-1] - in_calls.seconds)
                if response["statusCode"] != 200:
                    print(f"  {call.label}: answered {response['statusCode']}: {response.get('body')}")
                    return 1
                counts.add(len(requests.names))
                answer = body(response)
                items = len(answer.get("items") or answer.get("messages") or answer.get("last_emails") or [])
            shown = str(max(counts)) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"
            print(
                f"  {call.label[:50]:<50}{shown:>9}{items:>6}"
                f"{p50(times):>9.1f}{p99(times):>9.1f}{p50(ours):>9.1f}{p99(ours):>9.1f}"
            )
            if call.name != "crm-get-contact-by-email":  # a view with 5 emails, not a page
                most = max(most, *counts)
        print()
        print("(load average while it ran: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ")")
        print(f"read max dynamodb requests per page: {most}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
