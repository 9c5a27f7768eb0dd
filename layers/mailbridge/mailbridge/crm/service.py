"""CRM use cases: create, read, list, update and delete contacts, companies, deals and campaigns,
and the by-email view. Plain functions over the models in `mailbridge.crm.models`; the store and
the event publisher come in as arguments (no publisher: no events, for tests and backfills).

Updates re-read, merge the caller's fields and write conditionally on the version read. With a
`version` in the patch a changed record is a 409 `version_conflict`; without one the merge is
simply retried on the fresh record (last write wins, lookups and links stay consistent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.campaigns.models import EDITABLE_STATUSES, SEND_FIELDS
from mailbridge.crm import pipeline as pipelines
from mailbridge.crm.models import (
    CAMPAIGN_ID,
    CAMPAIGN_PREFIX,
    COMPANY_ID,
    COMPANY_PREFIX,
    CONTACT_ID,
    CONTACT_PREFIX,
    DEAL_ID,
    DEAL_PREFIX,
    Campaign,
    CampaignCreate,
    CampaignFields,
    CampaignPatch,
    Company,
    CompanyCreate,
    CompanyFields,
    CompanyPatch,
    Contact,
    ContactCreate,
    ContactFields,
    ContactPatch,
    Deal,
    DealCreate,
    DealFields,
    DealPatch,
    Versioned,
    is_open,
    new_id,
)
from mailbridge.errors import Conflict, Invalid, NotFound
from mailbridge.store.crm import ContactFilter, CrmStore, DealFilter
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext

MAX_MERGE_ATTEMPTS = 3

Clock = Callable[[], datetime]
R = TypeVar("R", bound=Versioned)
F = TypeVar("F", bound=BaseModel)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------- shared rules


def validated(model: type[F], data: dict[str, Any]) -> F:
    """A merged record checked by its model; rule violations become a 400 with the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        raise Invalid("the change leaves the record invalid", code="invalid_record", details=details) from exc


def merge(current: BaseModel, fields: type[F], changes: dict[str, Any]) -> F:
    """The record's own fields with the caller's changes applied, validated again."""
    base = current.model_dump(include=set(fields.model_fields))
    updates = {
        k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in changes.items() if k in base
    }
    return validated(fields, {**base, **updates})


def _meta(ctx: TenantContext, now: datetime, previous: Versioned | None = None) -> dict[str, Any]:
    if previous is None:
        return {"created_at": now, "updated_at": now, "created_by": ctx.subject, "version": 1}
    return {
        "created_at": previous.created_at,
        "updated_at": now,
        "created_by": previous.created_by,
        "version": previous.version + 1,
    }


def _not_found(kind: str) -> NotFound:
    return NotFound(f"no such {kind}", code=f"{kind}_not_found")


def _merged(current: BaseModel, fields: type[F], changes: dict[str, Any]) -> F | None:
    """The record's editable fields with `changes` applied, or None when nothing would change."""
    merged = merge(current, fields, changes)
    if merged == fields.model_validate(current.model_dump(include=set(fields.model_fields))):
        return None
    return merged


def _changed(before: BaseModel, after: BaseModel, fields: type[BaseModel]) -> list[str]:
    names = set(fields.model_fields)
    return sorted(n for n in names if getattr(before, n) != getattr(after, n))


def _publish(publisher: EventPublisher | None, events: Sequence[DomainEvent]) -> None:
    if publisher is not None and events:
        publisher.publish(events)


def _event(ctx: TenantContext, detail_type: str, key: str, data: dict[str, Any]) -> DomainEvent:
    return DomainEvent(detail_type=detail_type, tenant_id=ctx.tenant_id, idempotency_key=key, data=data)


def update_with_retry(
    load: Callable[[], R],
    apply: Callable[[R], R | None],
    save: Callable[[R, R], None],
    *,
    expected_version: int | None,
) -> tuple[R, R]:
    """(previous, saved). `apply` returns None when nothing would change: nothing is written."""
    for attempt in range(MAX_MERGE_ATTEMPTS):
        current = load()
        if expected_version is not None and current.version != expected_version:
            raise Conflict("the record was changed by someone else", code="version_conflict")
        updated = apply(current)
        if updated is None:
            return current, current
        try:
            save(updated, current)
        except Conflict as exc:
            retry = exc.code == "version_conflict" and expected_version is None
            if not retry or attempt == MAX_MERGE_ATTEMPTS - 1:
                raise
            continue
        return current, updated
    raise Conflict("the record kept changing; try again", code="version_conflict")  # pragma: no cover


def _require_changes(changes: dict[str, Any]) -> dict[str, Any]:
    if not changes:
        raise Invalid("send at least one field to change", code="empty_patch")
    return changes


def _check_company(ctx: TenantContext, store: CrmStore, company_id: str | None) -> None:
    if company_id and store.get_company(ctx.tenant_id, company_id) is None:
        raise Invalid(
            "company_id names no company", code="unknown_company", details={"company_id": company_id}
        )


def _check_contacts(ctx: TenantContext, store: CrmStore, contact_ids: Sequence[str]) -> None:
    if not contact_ids:
        return
    found = {c.contact_id for c in store.get_contacts(ctx.tenant_id, contact_ids)}
    missing = [c for c in contact_ids if c not in found]
    if missing:
        raise Invalid(
            "contact_ids names unknown contacts", code="unknown_contact", details={"contact_ids": missing}
        )


# ---------------------------------------------------------------------------------- contacts


def create_contact(
    ctx: TenantContext,
    body: ContactCreate,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
) -> Contact:
    ctx.require(Role.MEMBER)
    _check_company(ctx, store, body.company_id)
    fields = body.model_dump()
    fields["owner"] = fields["owner"] or ctx.subject
    contact = Contact.model_validate({**fields, "contact_id": new_id(CONTACT_PREFIX), **_meta(ctx, now())})
    store.create_contact(ctx.tenant_id, contact)
    _publish(
        publisher,
        [
            _event(
                ctx,
                "contact.created",
                f"contact.created:{contact.contact_id}",
                {"contact": contact.model_dump(mode="json")},
            )
        ],
    )
    return contact


def get_contact(ctx: TenantContext, contact_id: str, store: CrmStore) -> Contact:
    contact = store.get_contact(ctx.tenant_id, contact_id) if CONTACT_ID.fullmatch(contact_id) else None
    if contact is None:
        raise _not_found("contact")
    return contact


def list_contacts(
    ctx: TenantContext,
    store: CrmStore,
    *,
    q: str | None = None,
    company_id: str | None = None,
    tag: str | None = None,
    cursor: str | None = None,
    limit: int,
) -> Page[Contact]:
    filters = ContactFilter(q=(q or "").strip() or None, company_id=company_id, tag=tag)
    items, next_cursor = store.list_contacts(ctx.tenant_id, filters, cursor=cursor, limit=limit)
    return Page[Contact](items=items, next_cursor=next_cursor)


def update_contact(
    ctx: TenantContext,
    contact_id: str,
    patch: ContactPatch,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
) -> Contact:
    ctx.require(Role.MEMBER)
    changes = _require_changes(patch.changes())
    if changes.get("company_id"):
        _check_company(ctx, store, changes["company_id"])

    def apply(current: Contact) -> Contact | None:
        fields = _merged(current, ContactFields, changes)
        if fields is None:
            return None
        return Contact.model_validate(
            {**fields.model_dump(), "contact_id": contact_id, **_meta(ctx, now(), current)}
        )

    before, after = update_with_retry(
        lambda: get_contact(ctx, contact_id, store),
        apply,
        lambda new, old: store.update_contact(ctx.tenant_id, new, old),
        expected_version=patch.version,
    )
    if after is not before:
        _publish(
            publisher,
            [
                _event(
                    ctx,
                    "contact.updated",
                    f"contact.updated:{contact_id}:{after.version}",
                    {
                        "contact": after.model_dump(mode="json"),
                        "changed": _changed(before, after, ContactFields),
                    },
                )
            ],
        )
    return after


def delete_contact(
    ctx: TenantContext,
    contact_id: str,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
) -> None:
    """The contact and its address lookups go; deals keep naming it (their contact_ids).
    `contact.deleted` lets matching remove the contact's automatic email links."""
    ctx.require(Role.MEMBER)
    contact = get_contact(ctx, contact_id, store)
    store.delete_contact(ctx.tenant_id, contact, now=now())
    _publish(
        publisher,
        [
            _event(
                ctx,
                "contact.deleted",
                f"contact.deleted:{contact_id}",
                {"contact": contact.model_dump(mode="json")},
            )
        ],
    )


# ---------------------------------------------------------------------------------- companies


def create_company(
    ctx: TenantContext,
    body: CompanyCreate,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
) -> Company:
    ctx.require(Role.MEMBER)
    fields = body.model_dump()
    fields["owner"] = fields["owner"] or ctx.subject
    company = Company.model_validate({**fields, "company_id": new_id(COMPANY_PREFIX), **_meta(ctx, now())})
    store.create_company(ctx.tenant_id, company)
    _publish(
        publisher,
        [
            _event(
                ctx,
                "company.created",
                f"company.created:{company.company_id}",
                {"company": company.model_dump(mode="json")},
            )
        ],
    )
    return company


def get_company(ctx: TenantContext, company_id: str, store: CrmStore) -> Company:
    company = store.get_company(ctx.tenant_id, company_id) if COMPANY_ID.fullmatch(company_id) else None
    if company is None:
        raise _not_found("company")
    return company


def list_companies(
    ctx: TenantContext, store: CrmStore, *, q: str | None = None, cursor: str | None = None, limit: int
) -> Page[Company]:
    items, next_cursor = store.list_companies(
        ctx.tenant_id, q=(q or "").strip() or None, cursor=cursor, limit=limit
    )
    return Page[Company](items=items, next_cursor=next_cursor)


def update_company(
    ctx: TenantContext, company_id: str, patch: CompanyPatch, store: CrmStore, now: Clock = _utcnow
) -> Company:
    ctx.require(Role.MEMBER)
    changes = _require_changes(patch.changes())

    def apply(current: Company) -> Company | None:
        fields = _merged(current, CompanyFields, changes)
        if fields is None:
            return None
        return Company.model_validate(
            {**fields.model_dump(), "company_id": company_id, **_meta(ctx, now(), current)}
        )

    _, after = update_with_retry(
        lambda: get_company(ctx, company_id, store),
        apply,
        lambda new, old: store.update_company(ctx.tenant_id, new, old),
        expected_version=patch.version,
    )
    return after


def delete_company(ctx: TenantContext, company_id: str, store: CrmStore) -> None:
    """The company and its domain lookups go; contacts and deals keep their company_id."""
    ctx.require(Role.MEMBER)
    store.delete_company(ctx.tenant_id, get_company(ctx, company_id, store))


# ---------------------------------------------------------------------------------- deals


def create_deal(
    ctx: TenantContext,
    body: DealCreate,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
) -> Deal:
    ctx.require(Role.MEMBER)
    pipeline = pipelines.get_pipeline(ctx, store)
    stage = pipelines.check_stage(pipeline, body.stage) if body.stage else pipeline.stages[0]
    _check_company(ctx, store, body.company_id)
    _check_contacts(ctx, store, body.contact_ids)
    fields = body.model_dump()
    fields.update(stage=stage, owner=fields["owner"] or ctx.subject)
    deal = Deal.model_validate(
        {**fields, "deal_id": new_id(DEAL_PREFIX), "open": is_open(stage), **_meta(ctx, now())}
    )
    store.create_deal(ctx.tenant_id, deal)
    _publish(
        publisher,
        [_event(ctx, "deal.created", f"deal.created:{deal.deal_id}", {"deal": deal.model_dump(mode="json")})],
    )
    return deal


def get_deal(ctx: TenantContext, deal_id: str, store: CrmStore) -> Deal:
    deal = store.get_deal(ctx.tenant_id, deal_id) if DEAL_ID.fullmatch(deal_id) else None
    if deal is None:
        raise _not_found("deal")
    return deal


def list_deals(
    ctx: TenantContext,
    store: CrmStore,
    *,
    stage: str | None = None,
    company_id: str | None = None,
    contact_id: str | None = None,
    open_: bool | None = None,
    cursor: str | None = None,
    limit: int,
) -> Page[Deal]:
    filters = DealFilter(stage=stage, company_id=company_id, contact_id=contact_id, open=open_)
    items, next_cursor = store.list_deals(ctx.tenant_id, filters, cursor=cursor, limit=limit)
    return Page[Deal](items=items, next_cursor=next_cursor)


def update_deal(
    ctx: TenantContext,
    deal_id: str,
    patch: DealPatch,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
) -> Deal:
    ctx.require(Role.MEMBER)
    changes = _require_changes(patch.changes())
    if "stage" in changes:
        if changes["stage"] is None:
            raise Invalid("stage cannot be cleared; set another stage", code="invalid_record")
        pipelines.check_stage(pipelines.get_pipeline(ctx, store), changes["stage"])
    if changes.get("company_id"):
        _check_company(ctx, store, changes["company_id"])
    if changes.get("contact_ids"):
        _check_contacts(ctx, store, changes["contact_ids"])

    def apply(current: Deal) -> Deal | None:
        fields = _merged(current, DealFields, changes)
        if fields is None:
            return None
        stage = fields.stage or current.stage
        return Deal.model_validate(
            {
                **fields.model_dump(),
                "stage": stage,
                "open": is_open(stage),
                "deal_id": deal_id,
                **_meta(ctx, now(), current),
            }
        )

    before, after = update_with_retry(
        lambda: get_deal(ctx, deal_id, store),
        apply,
        lambda new, old: store.update_deal(ctx.tenant_id, new, old),
        expected_version=patch.version,
    )
    if after is before:
        return after
    events = [
        _event(
            ctx,
            "deal.updated",
            f"deal.updated:{deal_id}:{after.version}",
            {"deal": after.model_dump(mode="json"), "changed": _changed(before, after, DealFields)},
        )
    ]
    if before.stage != after.stage:
        events.append(
            _event(
                ctx,
                "deal.stage_changed",
                f"deal.stage_changed:{deal_id}:{after.version}",
                {
                    "deal_id": deal_id,
                    "old_stage": before.stage,
                    "new_stage": after.stage,
                    "open": after.open,
                    "company_id": after.company_id,
                    "contact_ids": after.contact_ids,
                },
            )
        )
    _publish(publisher, events)
    return after


def delete_deal(ctx: TenantContext, deal_id: str, store: CrmStore) -> None:
    ctx.require(Role.MEMBER)
    store.delete_deal(ctx.tenant_id, get_deal(ctx, deal_id, store))


# ---------------------------------------------------------------------------------- campaigns


def create_campaign(
    ctx: TenantContext, body: CampaignCreate, store: CrmStore, now: Clock = _utcnow
) -> Campaign:
    ctx.require(Role.MEMBER)
    campaign = Campaign.model_validate(
        {**body.model_dump(), "campaign_id": new_id(CAMPAIGN_PREFIX), **_meta(ctx, now())}
    )
    store.create_campaign(ctx.tenant_id, campaign)
    return campaign


def get_campaign(ctx: TenantContext, campaign_id: str, store: CrmStore) -> Campaign:
    campaign = store.get_campaign(ctx.tenant_id, campaign_id) if CAMPAIGN_ID.fullmatch(campaign_id) else None
    if campaign is None:
        raise _not_found("campaign")
    return campaign


def list_campaigns(
    ctx: TenantContext, store: CrmStore, *, cursor: str | None = None, limit: int
) -> Page[Campaign]:
    items, next_cursor = store.list_campaigns(ctx.tenant_id, cursor=cursor, limit=limit)
    return Page[Campaign](items=items, next_cursor=next_cursor)


def update_campaign(
    ctx: TenantContext, campaign_id: str, patch: CampaignPatch, store: CrmStore, now: Clock = _utcnow
) -> Campaign:
    ctx.require(Role.MEMBER)
    changes = _require_changes(patch.changes())

    def apply(current: Campaign) -> Campaign | None:
        if SEND_FIELDS & changes.keys() and current.status not in EDITABLE_STATUSES:
            raise Conflict(
                f"what a campaign sends changes only while it is draft or paused, not {current.status}",
                code="campaign_not_editable",
            )
        fields = _merged(current, CampaignFields, changes)
        if fields is None:
            return None
        return Campaign.model_validate(
            {**fields.model_dump(), "campaign_id": campaign_id, **_meta(ctx, now(), current)}
        )

    _, after = update_with_retry(
        lambda: get_campaign(ctx, campaign_id, store),
        apply,
        lambda new, old: store.update_campaign(ctx.tenant_id, new, old),
        expected_version=patch.version,
    )
    return after


def delete_campaign(ctx: TenantContext, campaign_id: str, store: CrmStore) -> None:
    ctx.require(Role.MEMBER)
    store.delete_campaign(ctx.tenant_id, get_campaign(ctx, campaign_id, store))
