"""Engagement per email, contact and campaign (issue 17 point 3), and the engagement score.

What counts, per sent email (outbound mail that left: `send_status` `sent` or `failed`, or mail
found in a Sent folder, which has none; queued, scheduled, sending and cancelled mail has not left):

- `bounced`: its `send_status` is `failed` (or `bounced`), or an email in its thread reports it
  undelivered (`mailbridge.replies.is_bounce`: an RFC 3464 DSN, or a bounce the categorizer
  recognised). `delivered`: left and did not bounce.
- `human_opens` / `machine_opens`: open hits classified `human` / `proxy` or `scanner`
  (`mailbridge.tracking.classify`); `human_clicks` / `machine_clicks` likewise for clicks, the
  human ones per link. Hits are counted once per `hit_id` (a hit stored twice counts once).
- `replies`: the inbound, non-automatic emails later in its thread that are not bounces: the
  nudges' rule (`mailbridge.replies`).

A contact's engagement sums its linked sent emails (the links table's gsi1, the emails whose
`direction` is outbound); a campaign's sums the emails linked to it and adds the human clicks per
URL and the rates. Tracking is per message, not per recipient (`mailbridge.tracking.service`): a
message to two contacts counts for both.

Score (0-100, an integer; the same function of the stored records and the time of the request):

    points = sum over events of weight * 0.5 ** (age_in_days / HALF_LIFE_DAYS)
             weights: reply 40, human click 15, human open 5, machine open 0, machine click 0,
                      bounce -30
    score  = round(100 * (1 - 0.5 ** (max(points, 0) / SCALE_POINTS)))    (SCALE_POINTS = 50)

A reply is the ground truth of engagement (issue 17), a click is a deliberate act, an open a weak
signal; what a proxy or a scanner did says nothing of a person. An event's weight halves every
HALF_LIFE_DAYS (30) days since it happened (a bounce: the DSN's date, else the email's). 50
points make 50, 100 make 75: each event raises the score and none can pass 100; any bounce lowers
a score above 0.

Cost: computed from the stored records when asked, with a bounded number of requests (see
`contact_engagement`), not counters kept at hit time: the score decays with the time of the
request, which an `ADD` counter cannot, and replies and bounces arrive through sync and ingest,
not the hit path. Requests: one email (`GET /emails/{id}`): 1 thread Query, at most 1
BatchGetItem of its later inbound emails, 1 tracking Query. A contact or campaign with N sent
emails (N <= MAX_EMAILS) in T threads with C later inbound emails: 1 GetItem of the record, at most
MAX_LINK_PAGES link Queries, ceil(N/100) + ceil(C/100) BatchGetItem, T + N Queries (at most about
210 for 100 emails in 100 threads). What the hit path adds: 2 requests per human hit (the email's
links, the timeline entries), none per machine hit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mailbridge.access import ACCESS_ATTRIBUTES, Access, Visibility
from mailbridge.models.base import Model
from mailbridge.replies import CANDIDATE_ATTRIBUTES, instant, is_automatic, is_bounce, later_inbound
from mailbridge.tracking.models import Hit, LinkClicks, TrackedMessage

if TYPE_CHECKING:
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.links import LinkStore
    from mailbridge.store.tracking import TrackingStore

HALF_LIFE_DAYS = 30.0
SCALE_POINTS = 50.0
WEIGHTS = {"reply": 40.0, "human_click": 15.0, "human_open": 5.0, "bounce": -30.0}
MAX_EMAILS = 100
"""A contact's or campaign's engagement reads at most its newest MAX_EMAILS sent emails."""
MAX_LINK_PAGES = 5
"""...found in at most this many pages (100 links each) of its links, newest first."""
NOT_SENT = frozenset({"queued", "scheduled", "sending", "cancelled"})
FAILED = frozenset({"failed", "bounced"})
EMAIL_ATTRIBUTES = (
    "email_id",
    "thread_id",
    "message_id",
    "date",
    "direction",
    "send_status",
    "deleted",
    *ACCESS_ATTRIBUTES,
)

Item = dict[str, Any]


# ------------------------------------------------------------------------------------- models
class EngagementTotals(Model):
    emails_sent: int = Field(description="Sent emails counted (at most MAX_EMAILS, the newest)")
    delivered: int = Field(description="Sent emails that did not bounce")
    bounces: int = Field(description="Sent emails that failed or were reported undelivered (DSN)")
    human_opens: int
    machine_opens: int = Field(description="Opens by mail image proxies and scanners")
    human_clicks: int
    machine_clicks: int = Field(description="Clicks by security gateways, link checkers, prefetch")
    replies: int = Field(description="Inbound, non-automatic emails answering the sent ones")
    last_human_open_at: datetime | None = None
    last_human_click_at: datetime | None = None
    last_reply_at: datetime | None = None
    score: int = Field(ge=0, le=100, description="mailbridge.tracking.engagement: the formula")
    truncated: bool = Field(description="More sent emails exist than were counted (MAX_EMAILS)")


class ContactEngagement(EngagementTotals):
    """`GET /crm/contacts/{contact_id}/engagement`."""

    contact_id: str


class LinkEngagement(Model):
    url: str
    human_clicks: int


class EngagementRates(Model):
    """Fractions 0-1 (0 when the denominator is 0): delivered and bounced per email sent; opened,
    clicked and replied (emails with at least one human open, human click, reply) per delivered."""

    delivery_rate: float = Field(ge=0, le=1)
    bounce_rate: float = Field(ge=0, le=1)
    open_rate: float = Field(ge=0, le=1)
    click_rate: float = Field(ge=0, le=1)
    reply_rate: float = Field(ge=0, le=1)


class CampaignEngagement(EngagementTotals):
    """`GET /crm/campaigns/{campaign_id}/engagement`."""

    campaign_id: str
    links: list[LinkEngagement] = Field(description="Human clicks per URL, most clicked first")
    rates: EngagementRates


# ------------------------------------------------------------------------------------- facts
@dataclass
class EmailFacts:
    """What one sent email's records show."""

    email_id: str
    sent_at: datetime
    tracked: TrackedMessage | None = None
    bounced_at: datetime | None = None
    human_opens: list[datetime] = field(default_factory=list)
    machine_opens: int = 0
    human_clicks: list[tuple[int, datetime]] = field(default_factory=list)
    machine_clicks: int = 0
    replies: list[datetime] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.bounced_at is None

    def events(self) -> Iterable[tuple[str, datetime]]:
        yield from (("reply", at) for at in self.replies)
        yield from (("human_click", at) for _, at in self.human_clicks)
        yield from (("human_open", at) for at in self.human_opens)
        if self.bounced_at is not None:
            yield "bounce", self.bounced_at


@dataclass
class EngagementDeps:
    emails: EmailStore
    tracking: TrackingStore
    links: LinkStore | None = None  # contacts and campaigns
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def score(events: Iterable[tuple[str, datetime]], now: datetime) -> int:
    """The score of `events` ((kind, when) with kind a key of WEIGHTS) at `now`: the formula in
    the module docstring."""
    points = 0.0
    for kind, at in events:
        age_days = max(0.0, (now - at).total_seconds() / 86400)
        points += WEIGHTS[kind] * math.pow(0.5, age_days / HALF_LIFE_DAYS)
    return round(100 * (1 - math.pow(0.5, max(points, 0.0) / SCALE_POINTS)))


def has_left(item: Mapping[str, Any]) -> bool:
    """Outbound mail that was handed over (see the module docstring)."""
    return (
        item.get("direction") == "outbound"
        and not item.get("deleted")
        and item.get("send_status") not in NOT_SENT
    )


def _count_hits(facts: EmailFacts, hits: Iterable[Hit], links: int) -> None:
    seen: set[str] = set()
    for hit in hits:
        if hit.hit_id in seen:
            continue
        seen.add(hit.hit_id)
        human = hit.classification == "human"
        if hit.kind == "open":
            if human:
                facts.human_opens.append(hit.at)
            else:
                facts.machine_opens += 1
        elif human and hit.link is not None and hit.link < links:
            facts.human_clicks.append((hit.link, hit.at))
        else:
            facts.machine_clicks += 1


def _answering(item: Mapping[str, Any], later: list[str], thread: list[Item]) -> set[str]:
    """Of `later` (inbound emails after `item` in its thread), those that answer `item`: no other
    outbound email of the thread was sent between them, so a reply counts for the newest sent
    email before it, once."""
    sent_at = instant(item.get("date"))
    sends = [
        instant(other.get("date"))
        for other in thread
        if other.get("direction") == "outbound" and other.get("email_id") != item.get("email_id")
    ]
    dates = {str(other["email_id"]): instant(other.get("date")) for other in thread}
    return {c for c in later if not any(sent_at < at < dates[c] for at in sends)}


def _judge(facts: EmailFacts, answer: Mapping[str, Any], message_id: str | None, *, answers_it: bool) -> None:
    """Count a later inbound email of the thread as the sent email's bounce, reply, or nothing."""
    bounce = answer.get("bounce")
    returned = bounce.get("original_message_id") if isinstance(bounce, Mapping) else None
    if returned:  # a DSN that names the message it returns: that one bounced, whatever came between
        if returned == message_id and facts.bounced_at is None:
            facts.bounced_at = instant(answer.get("date"))
        return
    if not answers_it:
        return  # it answers a newer sent email of the thread
    if is_bounce(answer, message_id):
        if facts.bounced_at is None:
            facts.bounced_at = instant(answer.get("date"))
    elif not is_automatic(answer):
        facts.replies.append(instant(answer.get("date")))


def email_facts(tenant_id: str, items: list[Item], deps: EngagementDeps) -> list[EmailFacts]:
    """The facts of sent emails (`items`: their items with EMAIL_ATTRIBUTES and `email_id`).

    Requests: one Query per distinct thread, one BatchGetItem per 100 candidate answers, and one
    Query of the tracking table per email (its link set and hits together)."""
    threads: dict[str, list[Item]] = {}
    candidates: dict[str, list[str]] = {}
    answering: dict[str, set[str]] = {}
    for item in items:
        thread_id = str(item.get("thread_id") or "")
        if not thread_id:
            continue
        if thread_id not in threads:
            threads[thread_id] = deps.emails.thread_emails(tenant_id, thread_id)
        email_id = str(item["email_id"])
        candidates[email_id] = later_inbound(item, threads[thread_id])
        answering[email_id] = _answering(item, candidates[email_id], threads[thread_id])
    wanted = sorted({c for ids in candidates.values() for c in ids})
    answers = (
        deps.emails.batch_get_emails(tenant_id, wanted, projection=CANDIDATE_ATTRIBUTES) if wanted else {}
    )
    out: list[EmailFacts] = []
    for item in items:
        email_id = str(item["email_id"])
        facts = EmailFacts(email_id=email_id, sent_at=instant(item.get("date")))
        if item.get("send_status") in FAILED:
            facts.bounced_at = facts.sent_at
        message_id = str(item["message_id"]) if item.get("message_id") else None
        for candidate in candidates.get(email_id, []):
            answer = answers.get(candidate)
            if answer is not None:
                _judge(facts, answer, message_id, answers_it=candidate in answering[email_id])
        facts.tracked, hits = deps.tracking.records(tenant_id, email_id)
        _count_hits(facts, hits, len(facts.tracked.links) if facts.tracked else 0)
        out.append(facts)
    return out


def _last(times: Iterable[datetime]) -> datetime | None:
    return max(times, default=None)


def totals(facts: list[EmailFacts], now: datetime, *, truncated: bool) -> dict[str, Any]:
    """The fields of EngagementTotals over `facts`."""
    return {
        "emails_sent": len(facts),
        "delivered": sum(f.delivered for f in facts),
        "bounces": sum(not f.delivered for f in facts),
        "human_opens": sum(len(f.human_opens) for f in facts),
        "machine_opens": sum(f.machine_opens for f in facts),
        "human_clicks": sum(len(f.human_clicks) for f in facts),
        "machine_clicks": sum(f.machine_clicks for f in facts),
        "replies": sum(len(f.replies) for f in facts),
        "last_human_open_at": _last(at for f in facts for at in f.human_opens),
        "last_human_click_at": _last(at for f in facts for _, at in f.human_clicks),
        "last_reply_at": _last(at for f in facts for at in f.replies),
        "score": score((event for f in facts for event in f.events()), now),
        "truncated": truncated,
    }


def per_link(facts: EmailFacts) -> list[LinkClicks]:
    links = facts.tracked.links if facts.tracked else []
    counts = [0] * len(links)
    for link, _ in facts.human_clicks:
        counts[link] += 1
    return [LinkClicks(link=i, url=url, human_clicks=counts[i]) for i, url in enumerate(links)]


# ------------------------------------------------------------------------------------- records
def sent_emails(
    tenant_id: str, kind: str, record_id: str, deps: EngagementDeps, access: Access | None = None
) -> tuple[list[Item], bool]:
    """The record's newest sent emails (at most MAX_EMAILS) and whether more were left out;
    with `access`, only those the caller sees (`mailbridge.access`: mail of a mailbox private
    to the caller is not counted, so its existence, dates and answers do not show).

    Requests: one Query per 100 links (at most MAX_LINK_PAGES), one BatchGetItem per 100 emails."""
    assert deps.links is not None
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_LINK_PAGES):
        links, cursor = deps.links.timeline_page(tenant_id, kind, record_id, cursor=cursor, limit=100)
        ids.extend(link.email_id for link in links if link.direction == "outbound")
        if cursor is None or len(ids) > MAX_EMAILS:
            break
    found: list[Item] = []
    read = 0
    while read < len(ids) and len(found) <= MAX_EMAILS:
        batch = ids[read : read + 100]
        read += len(batch)
        items = deps.emails.batch_get_emails(tenant_id, batch, projection=EMAIL_ATTRIBUTES)
        found.extend(
            items[e]
            for e in batch
            if e in items and has_left(items[e]) and (access is None or access.visible_id(items[e]))
        )
    more = cursor is not None or read < len(ids) or len(found) > MAX_EMAILS
    return found[:MAX_EMAILS], more


def contact_engagement(
    tenant_id: str, contact_id: str, deps: EngagementDeps, access: Access | None = None
) -> ContactEngagement:
    """Over the contact's linked sent emails the caller sees (`sent_emails`; the caller has
    checked the contact exists).

    Requests, for N sent emails (N <= MAX_EMAILS) in T threads with C later inbound emails:
    the links (<= MAX_LINK_PAGES Queries) + ceil(N/100) BatchGetItem + T Queries + ceil(C/100)
    BatchGetItem + N Queries of the tracking table."""
    items, more = sent_emails(tenant_id, "contact", contact_id, deps, access)
    facts = email_facts(tenant_id, items, deps)
    return ContactEngagement(contact_id=contact_id, **totals(facts, deps.now(), truncated=more))


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def campaign_engagement(
    tenant_id: str, campaign_id: str, deps: EngagementDeps, access: Access | None = None
) -> CampaignEngagement:
    """Over the emails linked to the campaign the caller sees (requests as `contact_engagement`);
    the clicked URLs come from a message's body, so only emails the caller sees in `full` give
    their per-link clicks."""
    items, more = sent_emails(tenant_id, "campaign", campaign_id, deps, access)
    facts = email_facts(tenant_id, items, deps)
    fields = totals(facts, deps.now(), truncated=more)
    in_full = {
        str(item.get("email_id")) for item in items if access is None or access.level(item) is Visibility.FULL
    }
    clicks: dict[str, int] = {}
    for f in (f for f in facts if f.email_id in in_full):
        for row in per_link(f):
            clicks[row.url] = clicks.get(row.url, 0) + row.human_clicks
    delivered = [f for f in facts if f.delivered]
    rates = EngagementRates(
        delivery_rate=_rate(len(delivered), len(facts)),
        bounce_rate=_rate(len(facts) - len(delivered), len(facts)),
        open_rate=_rate(sum(bool(f.human_opens) for f in delivered), len(delivered)),
        click_rate=_rate(sum(bool(f.human_clicks) for f in delivered), len(delivered)),
        reply_rate=_rate(sum(bool(f.replies) for f in delivered), len(delivered)),
    )
    links = [
        LinkEngagement(url=url, human_clicks=n)
        for url, n in sorted(clicks.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return CampaignEngagement(campaign_id=campaign_id, links=links, rates=rates, **fields)
