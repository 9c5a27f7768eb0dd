"""Per-user quota units and injected 5xx faults on the Google double."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.clock import ManualClock
from local.google import GoogleDouble
from tests.integration.local_google.conftest import REDIRECT, USER, Gmail, connect, rfc5322


@pytest.fixture
def small_quota(clock: ManualClock) -> Iterator[GoogleDouble]:
    # 100 units a minute: twenty messages.get (5 units each), or one messages.send (100).
    with GoogleDouble(clock=clock, quota_units_per_minute=100) as double:
        double.add_user(USER)
        yield double


def test_quota_exhaustion_then_recovery_after_a_minute(small_quota: GoogleDouble, clock: ManualClock) -> None:
    # Given a token and a message
    client = small_quota.register_client([REDIRECT])
    gmail = Gmail(small_quota, connect(small_quota, client)["access_token"])
    message_id = small_quota.deliver(USER, rfc5322())

    # When twenty-one messages.get calls are made within the minute
    answers = [gmail.get(f"/messages/{message_id}", format="minimal") for _ in range(21)]

    # Then the twenty-first is Gmail's per-user 403, with no Retry-After (Google documents none)
    assert [a.status_code for a in answers[:20]] == [200] * 20
    refused = answers[20]
    assert refused.status_code == 403
    assert "retry-after" not in refused.headers
    assert refused.json()["error"]["errors"] == [
        {"message": "User Rate Limit Exceeded", "domain": "usageLimits", "reason": "userRateLimitExceeded"}
    ]

    # And once the clock has moved a minute on, the same call succeeds
    clock.advance(60)
    assert gmail.get(f"/messages/{message_id}", format="minimal").status_code == 200


def test_costs_differ_by_method(small_quota: GoogleDouble) -> None:
    # Given a token
    client = small_quota.register_client([REDIRECT])
    gmail = Gmail(small_quota, connect(small_quota, client)["access_token"])

    # When one getProfile (1 unit) precedes a send (100 units)
    assert gmail.get("/profile").status_code == 200
    send = gmail.post("/messages/send", {"raw": "VG86IGNAeC5leGFtcGxlDQoNCmJvZHkNCg=="})

    # Then the send no longer fits in the minute
    assert send.status_code == 403
    assert small_quota.sent(USER) == []


def test_429_variant(clock: ManualClock) -> None:
    # Given a double configured to answer per-user limits with 429
    with GoogleDouble(clock=clock, quota_units_per_minute=5, quota_status=429) as double:
        double.add_user(USER)
        client = double.register_client([REDIRECT])
        gmail = Gmail(double, connect(double, client)["access_token"])

        # When two 5-unit calls are made
        gmail.get("/messages")
        refused = gmail.get("/messages")

    # Then the second is 429 rateLimitExceeded
    assert refused.status_code == 429
    assert refused.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"


def test_next_calls_fail_with_backend_error(google: GoogleDouble, gmail: Gmail) -> None:
    # Given the next two messages.list calls armed to fail, one 500 and one 503
    google.fail_next("users.messages.list", status=500)
    google.fail_next("users.messages.list", status=503)

    # When three calls are made
    statuses = [gmail.get("/messages") for _ in range(3)]

    # Then the first two fail with backendError and the third succeeds; other methods were untouched
    assert [s.status_code for s in statuses] == [500, 503, 200]
    assert statuses[0].json()["error"]["errors"][0]["reason"] == "backendError"
    assert gmail.get("/profile").status_code == 200
