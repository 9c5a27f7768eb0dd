"""The AWS bill of a measured request mix (used by bench_simulation.py and docs/scale.md).

Prices: public on-demand list prices of us-east-1 (N. Virginia), as published on the AWS pricing
pages in 2025 (DynamoDB's after its on-demand cut of 1 November 2024); free tiers left out. Each
is USD per one unit of what `Usage` counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PRICES_AS_OF = "2025 list prices, us-east-1"
PRICE_USD: dict[str, float] = {
    "dynamodb.wru": 0.625e-6,  # per write request unit (1 KB; transactional 2 per KB)
    "dynamodb.rru": 0.125e-6,  # per read request unit (4 KB strongly consistent; eventually 0.5)
    "sqs.fifo_request": 0.50e-6,  # per FIFO request (each 64 KB chunk of a payload is one)
    "sqs.request": 0.40e-6,  # per standard-queue request
    "s3.put": 0.005e-3,  # PUT, COPY, POST, LIST per request (S3 Standard)
    "s3.get": 0.0004e-3,  # GET, SELECT and other reads per request
    "events.put": 1.00e-6,  # per custom event published (64 KB chunks)
    "kms.request": 0.03e-4,  # per API request ($0.03 per 10,000)
    "lambda.request": 0.20e-6,  # per invocation
    "lambda.gb_second": 0.0000133334,  # per GB-second on arm64
}


@dataclass
class Usage:
    """What a run consumed, in the units AWS bills."""

    counts: dict[str, float] = field(default_factory=dict)  # key of PRICE_USD -> units

    def add(self, unit: str, amount: float) -> None:
        if unit not in PRICE_USD:
            raise KeyError(f"no price for {unit!r}")
        self.counts[unit] = self.counts.get(unit, 0.0) + amount


def cost_usd(usage: Usage, prices: Mapping[str, float] = PRICE_USD) -> dict[str, float]:
    """USD per priced unit of `usage`, plus `total`."""
    costs = {unit: amount * prices[unit] for unit, amount in usage.counts.items()}
    costs["total"] = sum(costs.values())
    return costs


def per_emails(total_usd: float, emails: int, per: int = 10_000) -> float:
    """`total_usd` spent on `emails` synced emails, scaled to `per` emails (0 without emails)."""
    return total_usd * per / emails if emails else 0.0


def write_units(item_bytes: int, *, transactional: bool = False) -> int:
    """WRUs of writing one item of `item_bytes`: one per started KB, doubled in a transaction."""
    units = max(1, -(-item_bytes // 1024))
    return 2 * units if transactional else units


def read_units(item_bytes: int, *, consistent: bool = False, transactional: bool = False) -> float:
    """RRUs of reading `item_bytes` (one item, or a query's page): per started 4 KB, one when
    strongly consistent, half when eventually consistent, two in a transaction."""
    blocks = max(1, -(-item_bytes // 4096))
    if transactional:
        return 2.0 * blocks
    return float(blocks) if consistent else 0.5 * blocks
