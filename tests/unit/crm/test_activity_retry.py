"""How long a CRM activity record is held back after a retryable provider failure."""

from __future__ import annotations

import pytest

from mailbridge.crm.integrations.activity import MAX_DELAY_SECONDS, retry_delay


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 60),  # first failure: the base delay
        (3, None, 240),  # doubles per attempt
        (1, 3600.0, 3600),  # Salesforce's REQUEST_LIMIT_EXCEEDED: the adapter's hour wins
        (2, 0.5, 120),  # a shorter Retry-After never shortens the backoff
        (1, 12.2, 60),
        (8, 61.0, 7680),
        (20, None, MAX_DELAY_SECONDS),  # never beyond SQS's longest visibility timeout
    ],
)
def test_the_longer_of_the_providers_pause_and_the_backoff(
    attempt: int, retry_after: float | None, expected: int
) -> None:
    assert retry_delay(attempt, retry_after) == expected
