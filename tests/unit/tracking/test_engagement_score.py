"""The engagement score (mailbridge.tracking.engagement.score): weights, half-life, bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailbridge.tracking.engagement import HALF_LIFE_DAYS, score

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_reply_outweighs_a_human_click_which_outweighs_a_human_open() -> None:
    # Given one event of each kind, just now
    # When each is scored alone
    reply, click, opened = (score([(kind, NOW)], NOW) for kind in ("reply", "human_click", "human_open"))
    # Then the documented weights order them: 40, 15 and 5 points
    assert (reply, click, opened) == (43, 19, 7)


def test_an_event_weighs_half_after_the_half_life() -> None:
    # Given a reply now and two replies one half-life ago
    old = NOW - timedelta(days=HALF_LIFE_DAYS)
    # When both are scored
    # Then the two old replies weigh what the new one does
    assert score([("reply", old), ("reply", old)], NOW) == score([("reply", NOW)], NOW)
    assert score([("reply", old)], NOW) < score([("reply", NOW)], NOW)


def test_the_score_stays_within_0_and_100_and_a_bounce_lowers_it() -> None:
    # Given many replies, a bounce alone, and a reply with a bounce
    # When scored
    # Then nothing passes 100 or falls under 0, and the bounce takes points off
    assert score([("reply", NOW)] * 1000, NOW) == 100
    assert score([("bounce", NOW)], NOW) == 0
    assert score([], NOW) == 0
    assert score([("reply", NOW), ("bounce", NOW)], NOW) < score([("reply", NOW)], NOW)
