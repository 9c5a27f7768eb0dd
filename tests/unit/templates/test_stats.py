"""The A/B winner: chosen by reply rate or human-click rate once every variant has the minimum
sample, else null with the reason. In-memory stores with the methods the stats read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.templates.models import MIN_SAMPLE, Template
from mailbridge.templates.service import TemplateDeps, stats
from mailbridge.tenancy import Role, TenantContext
from mailbridge.tracking.models import Evidence, Hit

CTX = TenantContext(tenant_id="acme", role=Role.VIEWER, subject="u1")
TEMPLATE_ID = "tpl_5f0c1d2e3a4b5c6d7e8f"
SENT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


class World:
    """Sends, emails, threads and hits, as the template, email and tracking stores return them."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.send_items: list[dict[str, Any]] = []
        self.emails: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, list[dict[str, Any]]] = {}
        self.clicks: dict[str, list[Hit]] = {}

    def send(self, variant: str | None, *, replied: bool = False, clicked: bool = False) -> None:
        email_id = f"em_{len(self.emails):026x}"
        thread_id = f"th_{email_id}"
        sent = {
            "email_id": email_id,
            "thread_id": thread_id,
            "date": SENT.isoformat(),
            "direction": "outbound",
        }
        self.emails[email_id] = {**sent, "send_status": "sent"}
        self.threads[thread_id] = [sent]
        self.send_items.append({"email_id": email_id, "version": 1, "variant": variant})
        if replied:
            reply_id = f"re_{email_id}"
            reply = {
                "email_id": reply_id,
                "direction": "inbound",
                "date": (SENT + timedelta(hours=1)).isoformat(),
            }
            self.threads[thread_id].append(reply)
            self.emails[reply_id] = reply
        if clicked:
            hit = Hit(
                hit_id="h",
                email_id=email_id,
                kind="click",
                link=0,
                at=SENT,
                evidence=Evidence(method="GET"),
                classification="human",
                reasons=[],
            )
            self.clicks[email_id] = [hit]

    # TemplateStore
    def require_template(self, tenant_id: str, template_id: str) -> Template:
        return self.template

    def sends(self, tenant_id: str, template_id: str, *, limit: int) -> Iterator[dict[str, Any]]:
        yield from self.send_items[:limit]

    # EmailStore
    def batch_get_emails(self, tenant_id: str, email_ids: list[str], **_: Any) -> dict[str, dict[str, Any]]:
        return {e: self.emails[e] for e in email_ids if e in self.emails}

    def thread_emails(self, tenant_id: str, thread_id: str) -> list[dict[str, Any]]:
        return self.threads.get(thread_id, [])

    # TrackingStore
    def hits(self, tenant_id: str, email_id: str) -> Iterator[Hit]:
        yield from self.clicks.get(email_id, [])


def _template(**overrides: Any) -> Template:
    base: dict[str, Any] = {
        "template_id": TEMPLATE_ID,
        "version": 1,
        "name": "t",
        "subject": "s",
        "text": "x",
        "variants": [{"name": "A", "split": 50}, {"name": "B", "split": 50}],
        "created_at": SENT,
        "created_by": "u1",
        "updated_at": SENT,
        "updated_by": "u1",
    }
    return Template.model_validate(base | overrides)


def _stats(world: World) -> Any:
    fake: Any = world
    return stats(CTX, TEMPLATE_ID, TemplateDeps(store=fake, emails=fake, tracking=fake))


def _fill(world: World, variant: str | None, sent: int, replies: int = 0, clicks: int = 0) -> None:
    for i in range(sent):
        world.send(variant, replied=i < replies, clicked=i < clicks)


def test_the_variant_with_the_best_reply_rate_wins_once_each_has_the_minimum_sample() -> None:
    # Given two variants with the minimum sample, B answered more often
    world = World(_template())
    _fill(world, "A", MIN_SAMPLE, replies=10, clicks=50)
    _fill(world, "B", MIN_SAMPLE, replies=20, clicks=5)
    # When the stats are read
    result = _stats(world)
    # Then B wins, and the counts and rates are per variant
    assert (result.winner, result.reason) == ("B", "decided")
    rows = {row.variant: row for row in result.variants}
    assert (rows["A"].sent, rows["A"].replies, rows["A"].human_clicks) == (MIN_SAMPLE, 10, 50)
    assert rows["B"].reply_rate == pytest.approx(20 / MIN_SAMPLE)


def test_the_human_click_rate_decides_when_the_template_says_so() -> None:
    # Given the same results and a template judged by human clicks
    world = World(_template(winner_metric="human_click_rate"))
    _fill(world, "A", MIN_SAMPLE, replies=10, clicks=50)
    _fill(world, "B", MIN_SAMPLE, replies=20, clicks=5)
    # Then A wins
    assert (_stats(world).winner, _stats(world).reason) == ("A", "decided")


def test_no_winner_before_every_variant_has_the_minimum_sample() -> None:
    # Given B one email short of the minimum, though far ahead
    world = World(_template())
    _fill(world, "A", MIN_SAMPLE, replies=1)
    _fill(world, "B", MIN_SAMPLE - 1, replies=50)
    # Then there is no winner yet, and why
    result = _stats(world)
    assert (result.winner, result.reason) == (None, "not_enough_data")


def test_equal_rates_are_a_tie() -> None:
    world = World(_template())
    _fill(world, "A", MIN_SAMPLE, replies=7)
    _fill(world, "B", MIN_SAMPLE, replies=7)
    result = _stats(world)
    assert (result.winner, result.reason) == (None, "tie")


def test_a_template_without_variants_has_one_row_and_no_winner() -> None:
    world = World(_template(variants=[]))
    _fill(world, None, 3, replies=1)
    result = _stats(world)
    assert [(row.variant, row.sent, row.replies) for row in result.variants] == [(None, 3, 1)]
    assert (result.winner, result.reason) == (None, "no_variants")
