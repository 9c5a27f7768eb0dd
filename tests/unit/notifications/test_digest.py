"""The digest's period, recipient and text, without AWS (mailbridge.notifications.digest)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mailbridge.models.account import Account
from mailbridge.notifications.digest import Week, compose, period_of, user_address, week_of

MONDAY = Week()


@pytest.mark.parametrize(
    ("frequency", "day", "week", "period"),
    [
        ("daily", date(2026, 12, 1), MONDAY, "2026-12-01"),
        ("weekly", date(2026, 12, 1), MONDAY, None),
        ("weekly", date(2026, 12, 7), MONDAY, "2026-W50"),
        # ISO 8601 weeks: Monday 2024-12-30 is in week 1 of 2025, Sunday 2027-01-03 in week 53 of 2026
        ("weekly", date(2024, 12, 30), MONDAY, "2025-W01"),
        ("weekly", date(2027, 1, 3), Week(first_day=7), "2026-W53"),
    ],
)
def test_the_period_names_the_day_or_the_iso_week(
    frequency: str, day: date, week: Week, period: str | None
) -> None:
    assert period_of(frequency, day, week) == period  # type: ignore[arg-type]


def test_the_week_is_the_nudge_settings_first_working_day_and_time_zone() -> None:
    # Given saved nudge settings (numbers as DynamoDB returns them), and none
    from decimal import Decimal

    stored = {
        "working_days": [Decimal(5), Decimal(3), Decimal(4)],
        "time_zone": "Asia/Tokyo",
        "enabled": False,
    }
    # Then the week starts on the lowest working day, else Monday in UTC
    assert week_of(stored) == Week(time_zone="Asia/Tokyo", first_day=3)
    assert week_of(None) == Week(time_zone="UTC", first_day=1)


def _account(account_id: str, owner: str, address: str, created: datetime) -> Account:
    return Account.model_validate(
        {
            "account_id": account_id,
            "tenant_id": "acme",
            "provider": "gmail",
            "address": address,
            "created_at": created,
            "created_by": owner,
        }
    )


def test_the_digest_goes_to_the_mailbox_the_user_connected_first() -> None:
    # Given Ada connected two mailboxes and Bob one
    accounts = [
        _account("acc_" + "2" * 20, "ada", "ada-late@example.com", datetime(2026, 3, 1, tzinfo=UTC)),
        _account("acc_" + "3" * 20, "bob", "bob@example.com", datetime(2026, 1, 1, tzinfo=UTC)),
        _account("acc_" + "1" * 20, "ada", "ada@example.com", datetime(2026, 2, 1, tzinfo=UTC)),
    ]
    # Then Ada's digest goes to the earlier one, and a user without a mailbox gets none
    assert user_address(accounts, "ada") == "ada@example.com"
    assert user_address(accounts, "carl") is None


def test_the_text_lists_titles_and_the_html_escapes_them() -> None:
    # Given 52 items, one with markup in its title
    items = [{"created_at": "2026-12-01T05:00:00+00:00", "title": "<b>A</b> & B"}] + [
        {"created_at": "2026-12-01T05:00:00+00:00", "title": "A follow-up is due"}
    ] * 51
    # When the digest is composed
    subject, text, html = compose(items)
    # Then it counts them all, lists fifty, and the HTML shows the markup as text
    assert subject == "Your notifications digest: 52 new notifications"
    assert text.count("- 2026-12-01  ") == 50
    assert "... and 2 more" in text
    assert "&lt;b&gt;A&lt;/b&gt; &amp; B" in html
    assert "<b>" not in html
