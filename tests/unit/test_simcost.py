"""The simulation's cost arithmetic (benchmarks/simcost.py): request units as DynamoDB bills
them, and a mix priced and scaled to 10,000 emails."""

from __future__ import annotations

import pytest

from benchmarks.simcost import PRICE_USD, Usage, cost_usd, per_emails, read_units, write_units


def test_write_units_are_per_started_kilobyte_and_double_in_a_transaction() -> None:
    assert [write_units(n) for n in (1, 1024, 1025, 3000)] == [1, 1, 2, 3]
    assert write_units(3000, transactional=True) == 6


def test_read_units_are_per_started_4_kb_halved_when_eventually_consistent() -> None:
    assert read_units(100) == 0.5
    assert read_units(8192, consistent=True) == 2.0
    assert read_units(4097) == 1.0
    assert read_units(100, transactional=True) == 2.0


def test_a_mix_is_priced_unit_by_unit_and_scaled_to_10000_emails() -> None:
    # Given 2 million WRUs, 4 million RRUs and 1,000 FIFO requests for 500 emails
    usage = Usage()
    usage.add("dynamodb.wru", 2_000_000)
    usage.add("dynamodb.rru", 4_000_000)
    usage.add("sqs.fifo_request", 1_000)

    costs = cost_usd(usage)

    # Then each is its count times its price: $1.25 + $0.50 + $0.0005
    assert costs["dynamodb.wru"] == pytest.approx(1.25)
    assert costs["dynamodb.rru"] == pytest.approx(0.50)
    assert costs["sqs.fifo_request"] == pytest.approx(0.0005)
    assert costs["total"] == pytest.approx(1.7505)
    # And 500 emails for $1.7505 is $35.01 per 10,000
    assert per_emails(costs["total"], 500) == pytest.approx(35.01)
    assert per_emails(1.0, 0) == 0.0


def test_an_unpriced_unit_is_refused() -> None:
    with pytest.raises(KeyError):
        Usage().add("dynamodb.scan_units", 1)
    assert "lambda.gb_second" in PRICE_USD
