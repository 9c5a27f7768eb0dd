"""Tracking: decide at send time, rewrite the HTML, record and classify hits, report engagement.

Granularity: the outbox composes one message and hands the same bytes to every recipient (one
SMTP transaction, one Gmail or Graph send), so there is one token set per message, not per
recipient; a hit tells which message was opened or clicked, not by whom. For the same reason a
message with any recipient whose contact has `do_not_track` is not tracked at all.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailbridge.errors import Forbidden
from mailbridge.observability import logger
from mailbridge.tracking import tokens
from mailbridge.tracking.classify import BURST_WINDOW, classify
from mailbridge.tracking.models import (
    Engagement,
    Evidence,
    Hit,
    HitKind,
    Method,
    TrackedMessage,
    TrackingOverride,
)
from mailbridge.tracking.rewrite import add_pixel, rewrite_links

if TYPE_CHECKING:
    from mailbridge.bus import EventPublisher
    from mailbridge.calendar.tokens import Signer
    from mailbridge.models.mail import Email
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.links import LinkStore
    from mailbridge.store.settings import FeatureStore
    from mailbridge.store.tracking import TrackingStore

PREFETCH_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
MAX_USER_AGENT = 512


@dataclass
class TrackingDeps:
    store: TrackingStore
    signer: Signer
    emails: EmailStore
    publisher: EventPublisher
    features: FeatureStore | None = None  # send time: the tenant default
    crm: CrmStore | None = None  # send time: contacts' do_not_track
    links: LinkStore | None = None  # hits: human ones on the linked contacts' timelines
    base_url: str = ""
    hit_retention_days: int = 180
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


# ------------------------------------------------------------------------------------- send time
def _default(tenant_id: str, deps: TrackingDeps) -> bool:
    """The tenant's default: its `tracking` feature flag (off without a feature store)."""
    if deps.features is None:
        return False
    from mailbridge.features import get_features
    from mailbridge.tenancy import Role, TenantContext

    system = TenantContext(tenant_id=tenant_id, subject="tracking", role=Role.VIEWER)
    return get_features(system, deps.features).flags.tracking


def _decision(default: bool, override: TrackingOverride | None) -> tuple[bool, bool]:
    opens = default if override is None or override.opens is None else override.opens
    clicks = default if override is None or override.clicks is None else override.clicks
    return opens, clicks


def decide(
    tenant_id: str, override: TrackingOverride | None, recipients: Iterable[str], deps: TrackingDeps
) -> tuple[bool, bool]:
    """(opens, clicks): the tenant default (`tracking` feature flag), then the message's override;
    both off when any recipient's contact has `do_not_track`."""
    opens, clicks = _decision(_default(tenant_id, deps), override)
    if (opens or clicks) and _any_do_not_track(tenant_id, recipients, deps):
        return False, False
    return opens, clicks


def decide_many(
    tenant_id: str,
    messages: Sequence[tuple[TrackingOverride | None, Sequence[str]]],
    deps: TrackingDeps,
) -> list[tuple[bool, bool]]:
    """`decide` for each (override, recipients) of a batch, with one read of the tenant's
    flags and one batched lookup of every recipient's contact (`find_emails`, `get_contacts`:
    a BatchGetItem per 100) instead of one each."""
    default = _default(tenant_id, deps)
    decided = [_decision(default, override) for override, _ in messages]
    tracked = [recipients for (_, recipients), d in zip(messages, decided, strict=True) if any(d)]
    if not tracked or deps.crm is None:
        return decided
    addresses = {r.lower() for recipients in tracked for r in recipients}
    found = deps.crm.find_emails(tenant_id, addresses)
    contact_ids = sorted({lookup.contact_id for lookup in found.values()})
    refusing = {c.contact_id for c in deps.crm.get_contacts(tenant_id, contact_ids) if c.do_not_track}
    blocked = {address for address, lookup in found.items() if lookup.contact_id in refusing}
    return [
        (False, False) if any(d) and any(r.lower() in blocked for r in recipients) else d
        for (_, recipients), d in zip(messages, decided, strict=True)
    ]


def _any_do_not_track(tenant_id: str, recipients: Iterable[str], deps: TrackingDeps) -> bool:
    if deps.crm is None:
        return False
    found = deps.crm.find_emails(tenant_id, {r.lower() for r in recipients})
    contact_ids = sorted({lookup.contact_id for lookup in found.values()})
    return any(c.do_not_track for c in deps.crm.get_contacts(tenant_id, contact_ids))


def track_html(
    tenant_id: str, email_id: str, html: str, *, opens: bool, clicks: bool, deps: TrackingDeps
) -> tuple[str, TrackedMessage]:
    """The HTML with its http(s) links rewritten (clicks) and the pixel added (opens), and the
    link set to store before the message is queued."""
    base = deps.base_url.rstrip("/")
    links: list[str] = []
    if clicks:
        rewritten = rewrite_links(
            html, lambda index: f"{base}/t/c/{tokens.click_token(deps.signer, tenant_id, email_id, index)}"
        )
        html, links = rewritten.html, rewritten.links
    if opens:
        html = add_pixel(html, f"{base}/t/o/{tokens.open_token(deps.signer, tenant_id, email_id)}")
    return html, TrackedMessage(
        tenant_id=tenant_id, email_id=email_id, opens=opens, clicks=clicks, links=links
    )


# ------------------------------------------------------------------------------------- hits
def network_of(ip: str | None) -> str | None:
    """The client address truncated to its /24 (IPv4) or /48 (IPv6) network; None if unparsable."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def evidence_of(method: str, headers: Mapping[str, str], source_ip: str | None) -> Evidence:
    """The request's evidence; `headers` with lower-case names (API Gateway v2 lower-cases them)."""
    prefetch = next((headers[h] for h in PREFETCH_HEADERS if headers.get(h)), None)
    verb: Method = "HEAD" if method.upper() == "HEAD" else "GET"
    return Evidence(
        method=verb,
        user_agent=(headers.get("user-agent") or "")[:MAX_USER_AGENT],
        network=network_of(source_ip),
        prefetch=prefetch[:100] if prefetch else None,
    )


def _delivered_at(item: Mapping[str, Any] | None) -> datetime | None:
    sent = (item or {}).get("sent_at")
    return datetime.fromisoformat(str(sent)) if sent else None


def record_hit(kind: HitKind, token: str, evidence: Evidence, deps: TrackingDeps) -> str | None:
    """Check the token, store the hit with its classification and announce a human one.

    Returns the stored URL of a click (None for an open). A token that does not verify, or names
    an email with no stored link set, or a link index past its links, records nothing and
    returns None (Forbidden never leaves this function: the routes answer the same for all).
    """
    try:
        claims = (tokens.click_claims if kind == "click" else tokens.open_claims)(deps.signer, token)
    except Forbidden:
        return None
    message = deps.store.get_message(claims.tenant_id, claims.email_id)
    if message is None:
        return None
    url: str | None = None
    if kind == "click":
        if claims.link is None or claims.link >= len(message.links):
            return None
        url = message.links[claims.link]
    now = deps.now()
    delivered = _delivered_at(deps.emails.get_email(claims.tenant_id, claims.email_id))
    if delivered is not None:
        evidence = evidence.model_copy(
            update={"seconds_since_delivery": max(0.0, (now - delivered).total_seconds())}
        )
    recent: list[int] = []
    if kind == "click":
        since = now - timedelta(seconds=BURST_WINDOW)
        recent = [
            h.link
            for h in deps.store.hits_since(claims.tenant_id, claims.email_id, since)
            if h.kind == "click" and h.link is not None
        ]
    verdict = classify(
        kind, evidence, link=claims.link, links_in_message=len(message.links), recent_links_clicked=recent
    )
    hit = Hit(
        hit_id="hit_" + uuid.uuid4().hex[:20],
        email_id=claims.email_id,
        kind=kind,
        link=claims.link,
        at=now,
        evidence=evidence,
        classification=verdict.classification,
        reasons=verdict.reasons,
    )
    expires = now + timedelta(days=deps.hit_retention_days)
    deps.store.put_hit(claims.tenant_id, hit, expires=expires)
    if verdict.classification == "human":
        _on_timelines(claims.tenant_id, hit, url, expires, deps)
        _announce(claims.tenant_id, hit, deps)
    logger.info(
        "tracking hit",
        extra={"kind": kind, "classification": verdict.classification, "reasons": verdict.reasons},
    )
    return url


def _on_timelines(tenant_id: str, hit: Hit, url: str | None, expires: datetime, deps: TrackingDeps) -> None:
    """A human hit on the timeline of every contact the email is linked to (one Query of the
    email's links, one BatchWriteItem), kept as long as the hit itself."""
    if deps.links is None:
        return
    from mailbridge.store.links import timeline_entry_item
    from mailbridge.tracking.models import EngagementTimelineItem

    contacts = [
        link.record_id for link in deps.links.email_links(tenant_id, hit.email_id) if link.kind == "contact"
    ]
    if not contacts:
        return
    entry = EngagementTimelineItem(
        hit_id=hit.hit_id, kind=hit.kind, email_id=hit.email_id, url=url, date=hit.at
    ).model_dump_json()
    at = hit.at.astimezone(UTC).isoformat()
    deps.links.put_timeline_entries(
        [
            timeline_entry_item(tenant_id, "HIT", hit.hit_id, contact_id, at=at, entry=entry)
            | {"ttl": int(expires.timestamp())}
            for contact_id in contacts
        ]
    )


def _announce(tenant_id: str, hit: Hit, deps: TrackingDeps) -> None:
    from mailbridge.bus import DomainEvent

    data: dict[str, Any] = {
        "email_id": hit.email_id,
        "hit_id": hit.hit_id,
        "classification": hit.classification,
        "reasons": hit.reasons,
        "at": hit.at.isoformat(),
    }
    if hit.link is not None:
        data["link"] = hit.link
    deps.publisher.publish(
        [
            DomainEvent(
                detail_type="email.opened" if hit.kind == "open" else "email.clicked",
                tenant_id=tenant_id,
                occurred_at=hit.at,
                idempotency_key=f"track:{hit.hit_id}",
                data=data,
            )
        ]
    )


# ------------------------------------------------------------------------------------- engagement
def engagement(tenant_id: str, email: Email, deps: TrackingDeps) -> Engagement | None:
    """Engagement of an outbound email that was tracked; None for any other email
    (`mailbridge.tracking.engagement`: what counts and the score)."""
    from mailbridge.tracking.engagement import EngagementDeps, email_facts, has_left, per_link, score

    item = {
        "email_id": email.email_id,
        "thread_id": email.thread_id,
        "message_id": email.message_id,
        "date": email.date.isoformat(),
        "direction": email.direction,
        "send_status": email.status,
    }
    (facts,) = email_facts(tenant_id, [item], EngagementDeps(emails=deps.emails, tracking=deps.store))
    if facts.tracked is None:
        return None
    return Engagement(
        delivered=has_left(item) and facts.delivered,
        bounces=int(not facts.delivered),
        human_opens=len(facts.human_opens),
        machine_opens=facts.machine_opens,
        human_clicks=per_link(facts),
        machine_clicks=facts.machine_clicks,
        replies=len(facts.replies),
        score=score(facts.events(), deps.now()),
    )
