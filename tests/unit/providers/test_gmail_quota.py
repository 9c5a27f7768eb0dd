"""The per-account Gmail quota budget: spends before calls, refuses with the time until the
window frees, and blocks the account for a backoff after Google refuses (no sockets)."""

from __future__ import annotations

import pytest

from mailbridge.errors import ProviderRateLimited
from mailbridge.providers.gmail.quota import BACKOFF_CAP_SECONDS, QuotaBudget, budget_for, cost


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_costs_are_the_documented_units() -> None:
    # notes.md (Gmail quota page)
    assert [cost(m) for m in ("users.getProfile", "users.history.list", "users.messages.get")] == [1, 2, 5]
    assert [cost(m) for m in ("users.messages.batchModify", "users.messages.send", "users.watch")] == [
        50,
        100,
        100,
    ]


def test_a_full_minute_refuses_with_the_time_until_enough_units_leave_the_window() -> None:
    # Given a budget of 15,000 units: 2,999 messages.get spread over 30 s, then one more
    clock = Clock()
    budget = QuotaBudget(clock=clock)
    for i in range(3000):
        clock.now = i * 0.01
        budget.spend("users.messages.get")
    assert budget.used() == 15_000

    # When one more call is asked for at t=30 s
    clock.now = 30.0
    with pytest.raises(ProviderRateLimited) as refused:
        budget.spend("users.messages.get")

    # Then it is refused until the first spend (t=0) leaves the minute, and nothing was counted
    assert refused.value.retry_after == pytest.approx(30.0)
    assert budget.used() == 15_000
    # And at t=60 s it goes through
    clock.now = 60.0
    budget.spend("users.messages.get")


def test_a_large_call_waits_for_enough_room() -> None:
    # Given 14,950 units spent at t=0..9 s (1 unit every ~0.6 ms), then a send of 100 units
    clock = Clock()
    budget = QuotaBudget(clock=clock)
    for i in range(2990):
        clock.now = i * 0.003
        budget.spend("users.messages.get")
    clock.now = 10.0
    with pytest.raises(ProviderRateLimited) as refused:
        budget.spend("users.messages.send")
    # Then the wait is until 10 messages.get (50 units) have left: the 10th was spent at 0.027 s
    assert refused.value.retry_after == pytest.approx(60.027 - 10.0)


def test_google_refusals_back_off_exponentially_and_reset_on_success() -> None:
    clock = Clock()
    budget = QuotaBudget(clock=clock, jitter=lambda: 0.5)
    delays = [budget.refused(None) for _ in range(9)]
    assert delays == [
        1.5,
        2.5,
        4.5,
        8.5,
        16.5,
        32.5,
        BACKOFF_CAP_SECONDS,
        BACKOFF_CAP_SECONDS,
        BACKOFF_CAP_SECONDS,
    ]
    # While blocked, nothing is spent and the wait is what is left of the backoff
    clock.now = 10.0
    with pytest.raises(ProviderRateLimited) as refused:
        budget.spend("users.getProfile")
    assert refused.value.retry_after == pytest.approx(BACKOFF_CAP_SECONDS - 10.0)
    # Retry-After from Google wins; a success resets the exponent
    clock.now = 100.0
    budget.succeeded()
    assert budget.refused(None) == 1.5
    assert budget.refused(7.0) == 7.0


def test_each_account_has_its_own_budget() -> None:
    assert budget_for("t:a") is budget_for("t:a")
    assert budget_for("t:a") is not budget_for("t:b")
