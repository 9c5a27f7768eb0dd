"""Email <-> CRM record links as the API shows them: manual links, an email's links, and the
timeline of a contact or deal (its emails, newest first, as `GET /emails` summarizes them).

A link's id is the linked record's id (ids carry their kind: ct_, co_, dl_, cp_), so an email has
at most one link per record. `reason` says why it exists: `participant` (the contact took part,
or the company of a contact that did), `domain` (a participant's domain is the company's),
`deal_rule` (the most recently updated open deal of a matched contact or company) or `manual`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mailbridge.access import Visibility, access_of
from mailbridge.bus import EventPublisher
from mailbridge.calendar.models import CalendarTimelineItem
from mailbridge.crm.linked import email_linked
from mailbridge.crm.models import (
    CAMPAIGN_ID,
    COMPANY_ID,
    CONTACT_ID,
    DEAL_ID,
    ID_PATTERN,
    ActivityTimelineItem,
    ContactView,
    normalize_address,
)
from mailbridge.crm.timeline import TimelineEmail, TimelineItem, hit_email_id, timeline_item
from mailbridge.emails import EMAIL_ID, to_summary
from mailbridge.errors import Invalid, NotFound
from mailbridge.features import require_feature
from mailbridge.models.mail import EmailSummary
from mailbridge.store.batch import read_together
from mailbridge.store.crm import CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.fill import PAGE_BUDGET, Budget, fill
from mailbridge.store.links import LinkRecord, LinkStore, to_timeline_row
from mailbridge.store.pagination import MAX_PAGE_SIZE, Page
from mailbridge.store.settings import FeatureStore
from mailbridge.tenancy import Role, TenantContext
from mailbridge.tracking.models import EngagementTimelineItem

LinkKind = Literal["contact", "company", "deal", "campaign"]
LinkReason = Literal["participant", "domain", "deal_rule", "manual"]
KINDS: dict[str, LinkKind] = {"ct_": "contact", "co_": "company", "dl_": "deal", "cp_": "campaign"}
PATTERNS = {"contact": CONTACT_ID, "company": COMPANY_ID, "deal": DEAL_ID, "campaign": CAMPAIGN_ID}
LAST_EMAILS = 5

Item = dict[str, Any]
TimelineEntryItem = TimelineEmail | CalendarTimelineItem | ActivityTimelineItem | EngagementTimelineItem

RecordId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def kind_of(record_id: str) -> LinkKind | None:
    return KINDS.get(record_id[:3])


class LinkCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "contact", "record_id": "ct_0193a5b2c4d1e2f3a4b5c6d7e8"}]},
    )

    kind: LinkKind
    record_id: RecordId = Field(description="Id of the contact, company, deal or campaign")


class Link(BaseModel):
    link_id: str = Field(description="The linked record's id; use it to delete the link")
    email_id: str
    kind: LinkKind
    record_id: str
    reason: LinkReason
    via: str | None = Field(
        default=None, description="What matched: the address, the domain or the record it came from"
    )
    date: datetime = Field(description="The email's date")
    created_at: datetime
    created_by: str


def to_link(record: LinkRecord) -> Link:
    return Link.model_validate(
        {
            "link_id": record.record_id,
            "email_id": record.email_id,
            "kind": record.kind,
            "record_id": record.record_id,
            "reason": record.reason,
            "via": record.via,
            "date": record.date,
            "created_at": record.created_at,
            "created_by": record.created_by,
        }
    )


@dataclass(frozen=True)
class LinkDeps:
    links: LinkStore
    emails: EmailStore
    crm: CrmStore
    features: FeatureStore
    publisher: EventPublisher | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _email(
    ctx: TenantContext, email_id: str, deps: LinkDeps, minimum: Visibility = Visibility.FULL
) -> dict[str, object]:
    """The email, seen by the caller at `minimum` or above (mailbridge.access; a write needs
    `full`); 404 `email_not_found` otherwise, as for an email that does not exist."""
    item = deps.emails.get_email(ctx.tenant_id, email_id) if EMAIL_ID.fullmatch(email_id) else None
    return access_of(ctx).require(item, minimum, NotFound("no such email", code="email_not_found"))


def _check_record_id(ctx: TenantContext, kind: str, record_id: str, deps: LinkDeps) -> None:
    """404 for an id that cannot name a record of `kind` (and for campaigns while they are off)."""
    pattern = PATTERNS.get(kind)
    if pattern is None or not pattern.fullmatch(record_id):
        raise NotFound(f"no such {kind}", code=f"{kind}_not_found")
    if kind == "campaign":
        require_feature(ctx, deps.features, "campaigns")


def _require_record(ctx: TenantContext, kind: str, record_id: str, deps: LinkDeps) -> None:
    _check_record_id(ctx, kind, record_id, deps)
    read = deps.crm.record_read(ctx.tenant_id, kind, record_id)
    read_together([read])
    if not read.items:
        raise NotFound(f"no such {kind}", code=f"{kind}_not_found")


def create_link(
    ctx: TenantContext,
    email_id: str,
    body: LinkCreate,
    deps: LinkDeps,
    now: Callable[[], datetime] = _utcnow,
) -> Link:
    """Link by hand; an automatic link on the same pair becomes manual (kept on re-matching)."""
    ctx.require(Role.MEMBER)
    item = _email(ctx, email_id, deps)
    _require_record(ctx, body.kind, body.record_id, deps)
    record = LinkRecord(
        email_id=email_id,
        kind=body.kind,
        record_id=body.record_id,
        reason="manual",
        via=None,
        date=str(item["date"]),
        direction=str(item.get("direction") or "inbound"),
        created_at=now().isoformat(),
        created_by=ctx.subject,
    )
    deps.links.put_manual_link(ctx.tenant_id, record)
    if body.kind == "contact" and deps.publisher is not None:  # the CRM activity logger's cue
        announced = email_linked(ctx.tenant_id, email_id, [body.record_id])
        if announced is not None:
            deps.publisher.publish([announced])
    return to_link(record)


def list_links(ctx: TenantContext, email_id: str, deps: LinkDeps) -> list[Link]:
    _email(ctx, email_id, deps, Visibility.METADATA)
    campaigns = _campaigns_on(ctx, deps)
    return [
        to_link(r)
        for r in sorted(deps.links.email_links(ctx.tenant_id, email_id), key=lambda r: (r.kind, r.record_id))
        if campaigns or r.kind != "campaign"
    ]


def _campaigns_on(ctx: TenantContext, deps: LinkDeps) -> bool:
    try:
        require_feature(ctx, deps.features, "campaigns")
    except NotFound:
        return False
    return True


def delete_link(ctx: TenantContext, email_id: str, link_id: str, deps: LinkDeps) -> None:
    ctx.require(Role.MEMBER)
    _email(ctx, email_id, deps)
    kind = kind_of(link_id)
    if kind == "campaign":
        require_feature(ctx, deps.features, "campaigns")
    if kind is None or not deps.links.delete_link(ctx.tenant_id, email_id, kind, link_id):
        raise NotFound("the email has no such link", code="link_not_found")


def timeline(
    ctx: TenantContext,
    kind: LinkKind,
    record_id: str,
    deps: LinkDeps,
    *,
    cursor: str | None,
    limit: int,
) -> Page[TimelineItem]:
    """The record's emails in both directions, its calendar events and its CRM activities, newest
    first (`mailbridge.crm.timeline`); 404 `{kind}_not_found` for a record the tenant lacks (whatever
    the cursor says), 400 `invalid_cursor` for a cursor of another listing.

    Requests per page: one Query of the timeline index and one BatchGetItem of the record (the
    404 check) with the page's emails. A row whose email is gone is passed over and the page
    filled from further rows (`store.fill`, two requests a round, within its budget); the cursor
    resumes right after the last row the page accounted for. An empty timeline reads the record
    on its own.
    """
    _check_record_id(ctx, kind, record_id, deps)
    tenant = ctx.tenant_id
    access = access_of(ctx)
    checked: list[bool] = []

    def read(page_cursor: str | None, size: int) -> tuple[list[Item], str | None]:
        return deps.links.timeline_rows(tenant, kind, record_id, cursor=page_cursor, limit=size)

    def resolve(items: list[Item], _wanted: int) -> list[TimelineEntryItem | None]:
        rows = [to_timeline_row(item) for item in items]
        email_ids = [r.source_id if r.source == "EMAIL" else hit_email_id(r) for r in rows]
        emails = deps.emails.summaries_read(tenant, [e for e in email_ids if e is not None])
        record = None if checked else deps.crm.record_read(tenant, kind, record_id)
        read_together([emails] if record is None else [record, emails])
        if record is not None:
            if not record.items:
                raise NotFound(f"no such {kind}", code=f"{kind}_not_found")
            checked.append(True)
        found = {str(item["email_id"]): item for item in emails.items}
        return [timeline_item(row, found, access) for row in rows]

    try:
        items: list[TimelineEntryItem]
        items, next_cursor = fill(
            read,
            resolve,
            lambda item: deps.links.timeline_cursor_after(tenant, kind, record_id, item),
            limit=limit,
            cursor=cursor,
            budget=Budget(PAGE_BUDGET),
            max_read=MAX_PAGE_SIZE,
            round_cost=2,
        )
    except Invalid:
        # A record the tenant lacks is 404 whatever the cursor says (as before the cursor is read)
        _require_record(ctx, kind, record_id, deps)
        raise
    if not checked:
        _require_record(ctx, kind, record_id, deps)
    return Page[TimelineItem](items=[*items], next_cursor=next_cursor)


def _in_link_order(
    ctx: TenantContext, links: list[LinkRecord], items: list[dict[str, Any]]
) -> list[EmailSummary]:
    """The linked emails in the links' order, as the caller may see them (an email gone from the
    table, or private to the caller, is left out)."""
    access = access_of(ctx)
    by_id = {str(item["email_id"]): shown for item in items if (shown := access.visible(item)) is not None}
    return [to_summary(by_id[link.email_id]) for link in links if link.email_id in by_id]


def contact_by_email(ctx: TenantContext, address: str, deps: LinkDeps) -> ContactView:
    """The contact owning `address` (any case), its company, its open deals and its newest emails.

    Four requests: the address lookup, the ids of the contact's open deals (gsi1) and its newest
    links, then the contact, company, deals and linked emails in one BatchGetItem. Raises
    NotFound(contact_not_found).
    """
    tenant = ctx.tenant_id
    lookup = deps.crm.find_email(tenant, normalize_address(address))
    if lookup is None:
        raise NotFound("no contact has this address", code="contact_not_found")
    deal_ids = deps.crm.open_deal_ids_of_contact(tenant, lookup.contact_id)
    links, _ = deps.links.timeline_page(tenant, "contact", lookup.contact_id, cursor=None, limit=LAST_EMAILS)
    records = deps.crm.contact_view_read(tenant, lookup, deal_ids)
    emails = deps.emails.summaries_read(tenant, [link.email_id for link in links])
    read_together([records, emails])
    contact, company, open_deals = deps.crm.contact_view_from(tenant, records, lookup, deal_ids)
    if contact is None:
        raise NotFound("no contact has this address", code="contact_not_found")
    return ContactView(
        contact=contact,
        company=company,
        open_deals=open_deals,
        last_emails=_in_link_order(ctx, links, emails.items),
    )
