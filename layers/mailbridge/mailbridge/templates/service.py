"""Email templates: create, read, change (each save a new immutable version), delete, preview,
render for a send, and A/B stats.

Plain functions over pydantic models; the stores come in `TemplateDeps`. Reads need any role,
changes member or higher. Errors: NotFound `template_not_found` / `version_not_found` /
`contact_not_found`; Conflict `version_conflict`; Unprocessable (422)
`template_invalid` (save) and `template_render_failed` (preview, send), see
`mailbridge.templates.render`; Invalid `unknown_variant`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailbridge.crm.models import CONTACT_ID
from mailbridge.errors import Conflict, Invalid, NotFound, Unprocessable
from mailbridge.replies import is_automatic, later_inbound
from mailbridge.templates.models import (
    MIN_SAMPLE,
    TEMPLATE_ID,
    PreviewRequest,
    Rendered,
    Template,
    TemplateFields,
    TemplateList,
    TemplateStats,
    TemplateUpdate,
    TemplateVersion,
    TemplateVersionList,
    VariantStats,
)
from mailbridge.templates.render import (
    check_fields,
    choose_variant,
    company_context,
    contact_context,
    context_for,
    deal_context,
    render_template,
)
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.crm.models import Contact
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.templates import TemplateStore
    from mailbridge.store.tracking import TrackingStore

MAX_STATS_EMAILS = 2000
"""`GET /templates/{id}/stats` reads at most this many sent emails of a template."""

_TEMPLATE_ID = re.compile(TEMPLATE_ID.removeprefix("^").removesuffix("$"))


@dataclass
class TemplateDeps:
    store: TemplateStore
    crm: CrmStore | None = None  # preview with a contact, send
    emails: EmailStore | None = None  # stats
    tracking: TrackingStore | None = None  # stats: human clicks
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def new_template_id() -> str:
    return "tpl_" + secrets.token_hex(10)


def _template_id(template_id: str) -> str:
    if not _TEMPLATE_ID.fullmatch(template_id):
        raise NotFound("no such template", code="template_not_found")
    return template_id


# ------------------------------------------------------------------------------------- CRUD
def _save(
    ctx: TenantContext, fields: TemplateFields, deps: TemplateDeps, current: Template | None, template_id: str
) -> Template:
    check_fields(fields)
    now = deps.now()
    version = 1 if current is None else current.version + 1
    data = fields.model_dump()
    template = Template(
        **data,
        template_id=template_id,
        version=version,
        created_at=current.created_at if current else now,
        created_by=current.created_by if current else ctx.subject,
        updated_at=now,
        updated_by=ctx.subject,
    )
    saved = TemplateVersion(
        **data, template_id=template_id, version=version, saved_at=now, saved_by=ctx.subject
    )
    deps.store.save(ctx.tenant_id, template, saved, expected=None if current is None else current.version)
    return template


def create_template(ctx: TenantContext, body: TemplateFields, deps: TemplateDeps) -> Template:
    ctx.require(Role.MEMBER)
    fields = TemplateFields.model_validate(body.model_dump())
    return _save(ctx, fields, deps, None, new_template_id())


def update_template(
    ctx: TenantContext, template_id: str, body: TemplateUpdate, deps: TemplateDeps
) -> Template:
    """A new version; Conflict `version_conflict` unless `body.version` is the current one."""
    ctx.require(Role.MEMBER)
    current = deps.store.require_template(ctx.tenant_id, _template_id(template_id))
    if body.version != current.version:
        raise Conflict(
            "the template was changed since it was read",
            code="version_conflict",
            details={"current_version": current.version},
        )
    fields = TemplateFields.model_validate(body.model_dump(exclude={"version"}))
    return _save(ctx, fields, deps, current, current.template_id)


def get_template(ctx: TenantContext, template_id: str, deps: TemplateDeps) -> Template:
    return deps.store.require_template(ctx.tenant_id, _template_id(template_id))


def list_templates(ctx: TenantContext, deps: TemplateDeps, *, cursor: str | None, limit: int) -> TemplateList:
    items, next_cursor = deps.store.list_templates(ctx.tenant_id, cursor=cursor, limit=limit)
    return TemplateList(items=items, next_cursor=next_cursor)


def delete_template(ctx: TenantContext, template_id: str, deps: TemplateDeps) -> None:
    ctx.require(Role.MEMBER)
    template = deps.store.require_template(ctx.tenant_id, _template_id(template_id))
    deps.store.delete_template(ctx.tenant_id, template.template_id)


def list_versions(
    ctx: TenantContext, template_id: str, deps: TemplateDeps, *, cursor: str | None, limit: int
) -> TemplateVersionList:
    template = deps.store.require_template(ctx.tenant_id, _template_id(template_id))
    items, next_cursor = deps.store.list_versions(
        ctx.tenant_id, template.template_id, cursor=cursor, limit=limit
    )
    return TemplateVersionList(items=items, next_cursor=next_cursor)


def get_version(ctx: TenantContext, template_id: str, version: int, deps: TemplateDeps) -> TemplateVersion:
    template = deps.store.require_template(ctx.tenant_id, _template_id(template_id))
    found = deps.store.get_version(ctx.tenant_id, template.template_id, version) if version >= 1 else None
    if found is None:
        raise NotFound("no such version of this template", code="version_not_found")
    return found


# ------------------------------------------------------------------------------------- rendering
def _at_version(
    ctx: TenantContext, template_id: str, version: int | None, deps: TemplateDeps
) -> TemplateVersion:
    if version is None:
        template = deps.store.require_template(ctx.tenant_id, _template_id(template_id))
        return TemplateVersion(
            **template.model_dump(include=set(TemplateFields.model_fields)),
            template_id=template.template_id,
            version=template.version,
            saved_at=template.updated_at,
            saved_by=template.updated_by,
        )
    return get_version(ctx, template_id, version, deps)


def crm_context(tenant_id: str, address: str, crm: CrmStore | None) -> dict[str, Any]:
    """`contact`, `company` and `deal` (the contact's most recently updated open deal) of the CRM
    contact with this address; empty when there is none."""
    if crm is None:
        return {}
    lookup = crm.find_email(tenant_id, address)
    if lookup is None:
        return {}
    contact = crm.get_contact(tenant_id, lookup.contact_id)
    return {} if contact is None else _records(tenant_id, contact, crm)


def _records(tenant_id: str, contact: Any, crm: CrmStore) -> dict[str, Any]:
    found: dict[str, Any] = {"contact": contact_context(contact)}
    if contact.company_id:
        company = crm.get_company(tenant_id, contact.company_id)
        if company is not None:
            found["company"] = company_context(company)
    deals = crm.open_deals_of_contact(tenant_id, contact.contact_id, limit=1)
    if deals:
        found["deal"] = deal_context(deals[0])
    return found


def preview(ctx: TenantContext, template_id: str, body: PreviewRequest, deps: TemplateDeps) -> Rendered:
    """The template rendered for a CRM contact (with its company and latest open deal; no
    `sender`, so its declared defaults show) or for sample `data`. The variant is `body.variant`,
    default the first one. Raises NotFound, Invalid `unknown_variant`, Unprocessable
    `template_render_failed`."""
    version = _at_version(ctx, template_id, body.version, deps)
    variant = None
    if version.variants:
        variant = next(
            (v for v in version.variants if v.name == (body.variant or version.variants[0].name)), None
        )
        if variant is None:
            raise Invalid("the template has no such variant", code="unknown_variant")
    if body.contact_id is not None:
        contact = None
        if CONTACT_ID.fullmatch(body.contact_id) and deps.crm is not None:
            contact = deps.crm.get_contact(ctx.tenant_id, body.contact_id)
        if contact is None or deps.crm is None:
            raise NotFound("no such contact", code="contact_not_found")
        data = context_for(**_records(ctx.tenant_id, contact, deps.crm))
    else:
        data = dict(body.data or {})
    return render_template(
        version.template_id, version.version, version, data, now=deps.now(), variant=variant
    )


@dataclass
class RenderedSend:
    """One recipient's rendering for `POST /emails/send` with `template_id`."""

    address: str
    rendered: Rendered


def render_for_send(
    ctx: TenantContext,
    template_id: str,
    version: int | None,
    recipients: list[str],
    variables: Mapping[str, Any],
    sender: dict[str, Any],
    deps: TemplateDeps,
) -> list[RenderedSend]:
    """Each recipient's subject and bodies, from its CRM contact (if any), `sender` and the
    send's `variables`, in its A/B variant. All are rendered before anything is queued, so a
    failure queues nothing (Unprocessable `template_render_failed` with `details.recipient`:
    the recipient's index)."""
    chosen = _at_version(ctx, template_id, version, deps)
    now = deps.now()
    out: list[RenderedSend] = []
    for index, address in enumerate(recipients):
        records = crm_context(ctx.tenant_id, address, deps.crm)
        data = context_for(**records, sender=sender, variables=variables)
        variant = choose_variant(chosen.template_id, address, chosen.variants)
        try:
            rendered = render_template(
                chosen.template_id, chosen.version, chosen, data, now=now, variant=variant
            )
        except Unprocessable as exc:
            details = {**(exc.details or {}), "recipient": index}
            raise Unprocessable(exc.message, code=exc.code, details=details) from None
        out.append(RenderedSend(address=address, rendered=rendered))
    return out


def _reads(version: TemplateVersion) -> set[str]:
    """The top-level names the version's subject and bodies (its variants' too) read."""
    from mailbridge.automations.templating import references

    sources = [version.subject, version.html, version.text]
    sources += [s for v in version.variants for s in (v.subject, v.html, v.text)]
    return {path[0] for source in sources if source for path in references(source) if path}


def render_for_contacts(
    ctx: TenantContext,
    template_id: str,
    version: int | None,
    recipients: Sequence[tuple[Contact, str]],
    variables: Mapping[str, Any],
    sender: dict[str, Any],
    deps: TemplateDeps,
) -> list[RenderedSend | Unprocessable]:
    """`render_for_send` for CRM contacts already read, each with its address (a campaign's
    chunk): every recipient's rendering, or its own failure (Unprocessable
    `template_render_failed`, `details.recipient` its index), which fails that recipient alone.
    The template version is read once; the contacts' companies in one BatchGetItem per 100,
    and only when the template reads `company`; each contact's latest open deal (a gsi1 Query
    each) only when it reads `deal` (the names read are the sandbox's `references`)."""
    chosen = _at_version(ctx, template_id, version, deps)
    reads = _reads(chosen)
    companies: dict[str, Any] = {}
    if "company" in reads and deps.crm is not None:
        wanted = sorted({c.company_id for c, _ in recipients if c.company_id})
        companies = deps.crm.get_companies(ctx.tenant_id, wanted)
    now = deps.now()
    out: list[RenderedSend | Unprocessable] = []
    for index, (contact, address) in enumerate(recipients):
        records: dict[str, Any] = {"contact": contact_context(contact)}
        company = companies.get(contact.company_id) if contact.company_id else None
        if company is not None:
            records["company"] = company_context(company)
        if "deal" in reads and deps.crm is not None:
            deals = deps.crm.open_deals_of_contact(ctx.tenant_id, contact.contact_id, limit=1)
            if deals:
                records["deal"] = deal_context(deals[0])
        data = context_for(**records, sender=sender, variables=variables)
        variant = choose_variant(chosen.template_id, address, chosen.variants)
        try:
            rendered = render_template(
                chosen.template_id, chosen.version, chosen, data, now=now, variant=variant
            )
        except Unprocessable as exc:
            details = {**(exc.details or {}), "recipient": index}
            out.append(Unprocessable(exc.message, code=exc.code, details=details))
            continue
        out.append(RenderedSend(address=address, rendered=rendered))
    return out


def record_sends(tenant_id: str, sends: Sequence[tuple[Rendered, str]], deps: TemplateDeps) -> None:
    """`record_send` for each (rendering, email id), 25 a BatchWriteItem."""
    deps.store.record_sends(
        tenant_id, [(r.template_id, email_id, r.version, r.variant) for r, email_id in sends]
    )


def record_send(tenant_id: str, rendered: Rendered, email_id: str, deps: TemplateDeps) -> None:
    deps.store.record_send(
        tenant_id, rendered.template_id, email_id, version=rendered.version, variant=rendered.variant
    )


# ------------------------------------------------------------------------------------- stats
def _answers(email: Mapping[str, Any], thread: list[dict[str, Any]]) -> list[str]:
    """The inbound emails later in the sent email's thread: its candidate replies."""
    return later_inbound(email, thread)


def _replied(tenant_id: str, candidates: list[str], emails: EmailStore) -> bool:
    """A reply, as the nudges see one: one of the candidates that no process wrote (RFC 3834
    section 5: `Auto-Submitted` other than `no`; an out-of-office answer is no reply)."""
    if not candidates:
        return False
    found = emails.batch_get_emails(tenant_id, candidates, projection=("auto_submitted",))
    return any(not is_automatic(item) for item in found.values())


def stats(ctx: TenantContext, template_id: str, deps: TemplateDeps) -> TemplateStats:
    """Per variant: emails sent with it, those answered (`_answers`, `_replied`), those with a human click
    (the tracking table's `click` hits classified `human`), and the rates. `winner`: the variant
    with the highest `winner_metric` once every variant has at least `MIN_SAMPLE` sent emails
    (`reason: decided`); else null with `no_variants`, `not_enough_data` or `tie`. Reads at most
    `MAX_STATS_EMAILS` emails."""
    template = deps.store.require_template(ctx.tenant_id, _template_id(template_id))
    names: list[str | None] = [v.name for v in template.variants] or [None]
    counts: dict[str | None, list[int]] = {name: [0, 0, 0] for name in names}
    sends = list(deps.store.sends(ctx.tenant_id, template.template_id, limit=MAX_STATS_EMAILS))
    emails = {}
    if deps.emails is not None and sends:
        emails = deps.emails.batch_get_emails(ctx.tenant_id, [str(s["email_id"]) for s in sends])
    threads: dict[str, list[dict[str, Any]]] = {}
    for send in sends:
        variant = send.get("variant")
        row = counts.setdefault(None if variant is None else str(variant), [0, 0, 0])
        email = emails.get(str(send["email_id"]))
        if email is None or email.get("send_status") in ("cancelled", "failed"):
            continue
        row[0] += 1
        thread_id = str(email.get("thread_id") or "")
        if deps.emails is not None and thread_id:
            if thread_id not in threads:
                threads[thread_id] = deps.emails.thread_emails(ctx.tenant_id, thread_id)
            row[1] += _replied(ctx.tenant_id, _answers(email, threads[thread_id]), deps.emails)
        if deps.tracking is not None:
            row[2] += any(
                hit.kind == "click" and hit.classification == "human"
                for hit in deps.tracking.hits(ctx.tenant_id, str(send["email_id"]))
            )
    rows = [
        VariantStats(
            variant=name,
            sent=sent,
            replies=replies,
            human_clicks=clicks,
            reply_rate=replies / sent if sent else 0.0,
            human_click_rate=clicks / sent if sent else 0.0,
        )
        for name, (sent, replies, clicks) in counts.items()
        if name in names or sent
    ]
    winner, reason = _winner(rows, template)
    return TemplateStats(
        template_id=template.template_id,
        winner_metric=template.winner_metric,
        min_sample=MIN_SAMPLE,
        variants=rows,
        winner=winner,
        reason=reason,
    )


def _winner(rows: list[VariantStats], template: Template) -> tuple[str | None, Any]:
    current = [row for row in rows if row.variant in {v.name for v in template.variants}]
    if not template.variants:
        return None, "no_variants"
    if any(row.sent < MIN_SAMPLE for row in current):
        return None, "not_enough_data"

    def rate(row: VariantStats) -> float:
        return row.reply_rate if template.winner_metric == "reply_rate" else row.human_click_rate

    best = max(rate(row) for row in current)
    leaders = [row for row in current if rate(row) == best]
    if len(leaders) > 1:
        return None, "tie"
    return leaders[0].variant, "decided"
