"""Rate limits per tenant and route class, counted once in the api entry (mailbridge.api.limits),
and a tenant's overrides (`GET`/`PUT /settings/rate-limits`), through the api function and moto.

The clock is fixed inside one minute, so every call of a test falls in the same window; figures
are made small (a patched default or an override) so a test needs a handful of calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge import aws, ratelimits
from mailbridge.api import deps, limits
from tests.events import load_event
from tests.fixtures.aws import Stack
from tests.integration.test_api_boundary import Invoke

NOW = datetime(2030, 1, 7, 12, 0, 45, 200_000, tzinfo=UTC)  # 14.8 s before the next minute


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "clock", lambda: NOW)


def me(invoke_api: Invoke, tenant: str = "acme") -> dict[str, Any]:
    return invoke_api(load_event("api/get-me.json", tenant=tenant, role="viewer"))


def put_limits(invoke_api: Invoke, figures: dict[str, int], tenant: str = "acme") -> dict[str, Any]:
    response = invoke_api(load_event("api/put-rate-limits.json", tenant=tenant, body=figures))
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])  # type: ignore[no-any-return]


def code(response: dict[str, Any]) -> str | None:
    return json.loads(response["body"]).get("error", {}).get("code") if response.get("body") else None


def test_a_read_past_the_default_class_limit_is_429_with_retry_after(
    invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the default reads figure is 3 a minute (patched small) and no override
    monkeypatch.setitem(ratelimits.DEFAULTS, "reads", 3)
    # When a tenant reads four times in one minute
    answers = [me(invoke_api) for _ in range(4)]
    # Then three are served and the fourth is refused until the next minute (14.8 s -> 15)
    assert [r["statusCode"] for r in answers] == [200, 200, 200, 429]
    assert code(answers[3]) == "rate_limited"
    assert answers[3]["headers"]["Retry-After"] == "15"
    # And writes are another class: a write still gets through (to its own validation)
    put = invoke_api(load_event("api/put-rate-limits.json", body={"reads": 0}))
    assert (put["statusCode"], code(put)) == (422, "validation_error")


def test_an_override_raises_and_lowers_a_class_limit(
    invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the default writes figure is 2 a minute (patched small)
    monkeypatch.setitem(ratelimits.DEFAULTS, "writes", 2)
    # When an admin raises the tenant's writes to 5 (the PUT itself is the first write)
    settings = put_limits(invoke_api, {"writes": 5})
    assert settings["overrides"] == {"writes": 5}
    assert settings["effective"]["writes"] == 5
    # Then four more writes pass and the sixth of the minute is refused
    statuses = [
        invoke_api(load_event("api/put-rate-limits.json", body={"writes": 5}))["statusCode"] for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]


def test_an_override_lowers_a_limit_and_other_tenants_are_unaffected(
    invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the default reads figure is 3 a minute (patched small), and acme lowered its own to 2
    monkeypatch.setitem(ratelimits.DEFAULTS, "reads", 3)
    put_limits(invoke_api, {"reads": 2})
    # When acme reads three times
    acme = [me(invoke_api)["statusCode"] for _ in range(3)]
    # Then the third is refused
    assert acme == [200, 200, 429]
    # And globex, reading in the same minute, has its own count at the default figure
    read = invoke_api(load_event("api/get-rate-limits.json", tenant="globex"))
    assert json.loads(read["body"])["effective"]["reads"] == 3
    assert json.loads(read["body"])["overrides"] == {}
    assert [me(invoke_api, "globex")["statusCode"] for _ in range(3)] == [200, 200, 429]


EVENT = {
    "title": "Quarterly review",
    "start": {"date_time": "2026-10-14T09:00:00", "time_zone": "Europe/Berlin"},
    "end": {"date_time": "2026-10-14T10:00:00", "time_zone": "Europe/Berlin"},
}


def test_an_override_of_a_seed_class_reaches_the_service_that_counts_it(invoke_api: Invoke) -> None:
    # Given acme lowered its calendar event writes (the seed's 20) to 1 a minute
    put_limits(invoke_api, {"event_writes": 1})
    # When a member creates two events
    answers = [
        invoke_api(load_event("api/calendar-create-event.json", tenant="acme", body=EVENT)) for _ in range(2)
    ]
    # Then the second is refused by the calendar's own limit, at the tenant's figure
    assert [r["statusCode"] for r in answers] == [201, 429]
    assert json.loads(answers[1]["body"])["error"]["details"]["limit"] == 1


class RateUpdates:
    """A botocore `before-call.dynamodb.*` handler: the UpdateItem calls on rate counters."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, **kwargs: Any) -> None:
        if kwargs["model"].name == "UpdateItem":
            sk: str = json.loads(kwargs["params"]["body"])["Key"]["sk"]["S"]  # the wire request
            if sk.startswith("RATE#"):
                self.keys.append(sk)


@pytest.fixture
def rate_updates(stack: Stack) -> Iterator[RateUpdates]:
    counter = RateUpdates()
    for client in aws.dynamodb_clients():
        client.meta.events.register("before-call.dynamodb.*", counter)
    yield counter
    for client in aws.dynamodb_clients():
        client.meta.events.unregister("before-call.dynamodb.*", counter)


def test_each_request_updates_one_rate_counter(invoke_api: Invoke, rate_updates: RateUpdates) -> None:
    # When a tenant reads, writes a setting, and writes a calendar event (a class of its own)
    window = int(NOW.timestamp()) // 60
    assert me(invoke_api)["statusCode"] == 200
    assert invoke_api(load_event("api/put-rate-limits.json", body={}))["statusCode"] == 200
    assert invoke_api(load_event("api/calendar-create-event.json", body=EVENT))["statusCode"] == 201
    # Then each counted one use of one class, with one UpdateItem
    assert rate_updates.keys[:2] == [f"RATE#reads#{window}", f"RATE#writes#{window}"]
    assert len(rate_updates.keys) == 3
    assert rate_updates.keys[2].startswith("RATE#event_writes#")


class OverrideReads:
    """A botocore `before-call.dynamodb.*` handler: the GetItem calls on the overrides item."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, **kwargs: Any) -> None:
        if kwargs["model"].name == "GetItem":
            sk: str = json.loads(kwargs["params"]["body"])["Key"]["sk"]["S"]
            self.count += sk == "RATELIMITS"


def test_a_tenants_overrides_are_read_once_per_30_seconds_per_container(
    invoke_api: Invoke, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a container whose clock we hold, and acme's reads lowered to 2 by another container
    # (written to the settings table directly)
    moment = [1000.0]
    store = deps.rate_limit_store()
    monkeypatch.setattr(store, "_monotonic", lambda: moment[0])
    reads = OverrideReads()
    events = aws.dynamodb().meta.client.meta.events
    events.register("before-call.dynamodb.*", reads)
    try:
        # When acme reads five times within 30 seconds
        assert [me(invoke_api)["statusCode"] for _ in range(2)] == [200, 200]
        store.table.put_item(Item={"pk": "TENANT#acme", "sk": "RATELIMITS", "limits": {"reads": 2}})
        moment[0] += 29.0
        first = [me(invoke_api)["statusCode"] for _ in range(3)]
        # Then the overrides were read once, and the default still applied (the change not seen)
        assert reads.count == 1
        assert first == [200, 200, 200]
        # When 30 seconds have passed since that read
        moment[0] += 1.0
        # Then they are read again and the lowered figure applies (5 reads in the minute > 2)
        assert me(invoke_api)["statusCode"] == 429
        assert reads.count == 2
    finally:
        events.unregister("before-call.dynamodb.*", reads)


def test_a_put_applies_at_once_on_the_container_that_served_it(
    invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given acme read once (its overrides, none, are now held by this container)
    assert me(invoke_api)["statusCode"] == 200
    # When an admin lowers reads to 2 on this container
    put_limits(invoke_api, {"reads": 2})
    # Then the very next reads use the new figure, without waiting for the cache to expire
    assert [me(invoke_api)["statusCode"] for _ in range(2)] == [200, 429]
