"""Sending a campaign (issue 17 point 4): one outbound email per audience contact through the
outbox, exactly once each, throttled per sending account and resumable.

- **Start** (`start_send`, `POST /crm/campaigns/{id}/send`): checks the campaign is complete
  (template, audience, account), pins the template's latest version and the throttle, creates the
  run (`store/campaigns.py`) and puts its first chunk on the OutboxQueue. A campaign has one run:
  a second `send` while it is `sending` is 409 `campaign_sending`, after `done` 409
  `campaign_already_sent`, the same `Idempotency-Key` again answers the run's status (202); while
  the campaign is `paused` it resumes the run where it stopped.
- **Chunks** (`run_chunk`, the outbox function): one page of one audience source per message
  (the `contact_ids` 100 at a time, then each tag's contacts, 100 per Query page of the CRM
  table's tenant partition); the next chunk is queued after the run's cursor moved (conditional:
  a redelivered or duplicate chunk finds the cursor moved and stops). A campaign set `paused`
  (PATCH status) stops at the next chunk.
- **Each recipient**: contacts without an address, missing, or suppressed
  (`mailbridge.campaigns.suppression.suppressed`) are recorded as skipped with their reason. The
  others are claimed (a per-(campaign, contact) item created with a condition), then queued
  exactly as `POST /emails/send` with `template_id` queues them (template at the pinned version,
  campaign `variables`, tracking as the tenant and the contact's `do_not_track` decide,
  scheduled send), with a deterministic Message-ID and the RFC 8058 headers of
  `unsubscribe_headers`, and linked to the campaign (links table, so its engagement counts it);
  then marked queued. A crash between claim and mark leaves the recipient claimed: the
  redelivered chunk builds its message again with the same Message-ID, hence the same email
  id, which `queue_drafts` finds stored: not stored again, its schedule or queue message put
  again (the outbox sends an email once, by its status), so it is never sent twice.
- **Batched per chunk**: the chunk's claims, skips and finishes are transactions of up to 100
  actions (`CampaignRunStore.claim_many`, `skip_many`, `finish_many`: the conditions that make
  each recipient once), the template is rendered for the contacts already read
  (`render_for_contacts`: companies by BatchGetItem, deals only if the template reads them),
  and the outbox's requests are batched by `outbox.service.queue_drafts` (tracking decisions
  in one lookup, S3 puts in a bounded pool, emails in transactions, link sets, template send
  records and campaign links by BatchWriteItem, schedules created 8 at a time). What is left
  per recipient is its S3 object and its schedule: `make bench` prints the requests per
  recipient (`campaigns` section).
- **Throttle**: by the outbox's scheduled send. Each chunk reserves its sends' slots on the
  sending account (`CAMPAIGNSLOT#{account}`), `ceil(3600 / throttle_per_hour)` whole seconds apart from
  `max(schedule_at, now + 2 min)`, across every campaign of the account; every email gets
  `send_at` = its slot. Any rolling hour holds at most `throttle_per_hour` slots (EventBridge
  Scheduler fires each at its time, give or take its delivery delay).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailbridge.access import Visibility, access_of
from mailbridge.campaigns import suppression
from mailbridge.campaigns.models import (
    CHUNK_SIZE,
    CampaignChunkMessage,
    SendCounts,
    SendStatus,
    default_per_hour,
    max_per_hour,
)
from mailbridge.crm import service as crm
from mailbridge.crm.models import (
    CAMPAIGN_ID,
    Campaign,
    CampaignCreate,
    CampaignPatch,
    CampaignStatus,
    Contact,
)
from mailbridge.errors import Conflict, Invalid, MailbridgeError, NotFound, Unprocessable
from mailbridge.models.mail import TemplateUse
from mailbridge.observability import logger
from mailbridge.store.campaigns import CampaignRunStore, Outcome, Recipient, RecipientCounts, Run
from mailbridge.store.crm import ContactFilter, CrmStore
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.models.account import Account
    from mailbridge.outbox.service import OutboxDeps, PreparedSend
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.links import LinkStore
    from mailbridge.templates.models import Rendered
    from mailbridge.templates.service import TemplateDeps
    from mailbridge.tracking.service import TrackingDeps

START_AHEAD = timedelta(minutes=2)
"""The first slot is at least this far ahead: the outbox schedules sends a minute ahead or more."""
DONE_CURSOR = "done"


@dataclass
class CampaignDeps:
    crm: CrmStore
    runs: CampaignRunStore
    accounts: AccountStore
    templates: TemplateDeps
    links: LinkStore
    outbox: OutboxDeps
    suppression: suppression.SuppressionDeps
    tracking_for: Callable[[str], TrackingDeps | None]  # base URL -> tracking deps (None: untracked)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


# ---------------------------------------------------------------------------------- the campaign
def _unknown(what: str, code: str) -> Unprocessable:
    return Unprocessable(f"the campaign's {what} does not exist in this tenant", code=code)


def _account(ctx: TenantContext, account_id: str, deps: CampaignDeps) -> Account:
    """The campaign's sending mailbox, if the caller may send from it: a campaign sends as that
    mailbox, which is a write on it, so it needs `full` (`mailbridge.access`, as a single send in
    `outbox.service.queue_send`). Another user's mailbox the caller may not send from is the same
    422 `unknown_account` as one that does not exist, so its id does not leak."""
    try:
        account = deps.accounts.get_account(ctx.tenant_id, account_id)
    except NotFound:
        raise _unknown("account", "unknown_account") from None
    if access_of(ctx).account_level(account.account_id) is not Visibility.FULL:
        raise _unknown("account", "unknown_account")
    return account


def _check(ctx: TenantContext, fields: Mapping[str, Any], deps: CampaignDeps) -> None:
    """422 `unknown_template` / `unknown_account` for references the tenant does not have (or,
    for the account, a mailbox the caller may not send from: `_account`), and
    `throttle_above_limit` above the account provider's ceiling (`campaigns.models`)."""
    tenant_id = ctx.tenant_id
    template_id = fields.get("template_id")
    if template_id is not None and deps.templates.store.get_template(tenant_id, template_id) is None:
        raise _unknown("template", "unknown_template")
    account_id = fields.get("account_id")
    throttle = fields.get("throttle_per_hour")
    if account_id is not None:
        account = _account(ctx, account_id, deps)
        if throttle is not None and throttle > max_per_hour(account.provider):
            raise Unprocessable(
                f"throttle_per_hour is at most {max_per_hour(account.provider)} for this account",
                code="throttle_above_limit",
                details={"max": max_per_hour(account.provider)},
            )


def create_campaign(ctx: TenantContext, body: CampaignCreate, deps: CampaignDeps) -> Campaign:
    """`POST /crm/campaigns`: the CRM create after the references are checked (`_check`)."""
    ctx.require(Role.MEMBER)
    _check(ctx, body.model_dump(), deps)
    return crm.create_campaign(ctx, body, deps.crm)


def update_campaign(
    ctx: TenantContext, campaign_id: str, patch: CampaignPatch, deps: CampaignDeps
) -> Campaign:
    """`PATCH /crm/campaigns/{id}`: references checked against the result (`_check`); the send
    fields change only while the campaign is `draft` or `paused` (409 `campaign_not_editable`,
    checked in `crm.service.update_campaign` on the version it writes over)."""
    ctx.require(Role.MEMBER)
    current = crm.get_campaign(ctx, campaign_id, deps.crm)
    changes = patch.changes()
    merged = {**current.model_dump(), **changes}
    touched = {
        "template_id": changes.get("template_id"),
        "account_id": merged.get("account_id")
        if {"account_id", "throttle_per_hour"} & set(changes)
        else None,
        "throttle_per_hour": merged.get("throttle_per_hour"),
    }
    _check(ctx, touched, deps)
    return crm.update_campaign(ctx, campaign_id, patch, deps.crm)


# ---------------------------------------------------------------------------------- start
def _status(run: Run, deps: CampaignDeps, tenant_id: str, *, count: bool = True) -> SendStatus:
    counts = deps.runs.counts(tenant_id, run.campaign_id) if count else RecipientCounts()
    sent = failed_sends = 0
    for start in range(0, len(counts.email_ids), 100):
        found = deps.outbox.emails.batch_get_emails(
            tenant_id, counts.email_ids[start : start + 100], projection=("send_status",)
        )
        statuses = [str(item.get("send_status")) for item in found.values()]
        sent += statuses.count("sent")
        failed_sends += statuses.count("failed")
    return SendStatus(
        campaign_id=run.campaign_id,
        state=run.state,  # type: ignore[arg-type]
        started_at=datetime.fromisoformat(run.started_at),
        template_version=run.template_version,
        throttle_per_hour=run.throttle_per_hour,
        counts=SendCounts(
            queued=counts.queued,
            sent=sent,
            failed=counts.failed + failed_sends,
            skipped=counts.skipped,
        ),
    )


def send_status(ctx: TenantContext, campaign_id: str, deps: CampaignDeps) -> SendStatus:
    """`GET /crm/campaigns/{id}/send-status`: the run's state and counts, counted from its
    recipient items (one Query per 1 MB page); `sent` and `failed` read the queued emails'
    status (one BatchGetItem per 100).
    404 `campaign_not_found`, or `run_not_found` before the first `send`."""
    crm.get_campaign(ctx, campaign_id, deps.crm)
    run = deps.runs.get_run(ctx.tenant_id, campaign_id)
    if run is None:
        raise NotFound("the campaign was never sent", code="run_not_found")
    return _status(run, deps, ctx.tenant_id)


def _set_campaign_status(
    ctx: TenantContext, campaign: Campaign, status: CampaignStatus, deps: CampaignDeps
) -> None:
    if campaign.status != status:
        crm.update_campaign(ctx, campaign.campaign_id, CampaignPatch(status=status), deps.crm)


def start_send(
    ctx: TenantContext,
    campaign_id: str,
    deps: CampaignDeps,
    *,
    base_url: str,
    idempotency_key: str | None = None,
) -> SendStatus:
    """Start (or resume) the campaign's send run; see the module. Raises NotFound
    `campaign_not_found`; Unprocessable `campaign_incomplete` (no template, audience or account),
    `unknown_template`, `unknown_account`, `throttle_above_limit`; Invalid `account_cannot_send`;
    Conflict `campaign_sending`, `campaign_already_sent`."""
    ctx.require(Role.MEMBER)
    campaign = crm.get_campaign(ctx, campaign_id, deps.crm)
    tenant = ctx.tenant_id
    run = deps.runs.get_run(tenant, campaign_id)
    if run is not None:
        return _again(ctx, campaign, run, deps, idempotency_key)
    missing = [name for name in ("template_id", "audience", "account_id") if getattr(campaign, name) is None]
    if missing:
        raise Unprocessable(
            "the campaign needs a template, an audience and an account before it is sent",
            code="campaign_incomplete",
            details={"missing": missing},
        )
    assert campaign.template_id is not None
    assert campaign.account_id is not None
    assert campaign.audience is not None
    template = deps.templates.store.get_template(tenant, campaign.template_id)
    if template is None:
        raise _unknown("template", "unknown_template")
    account = _account(ctx, campaign.account_id, deps)
    if account.smtp is None and account.provider not in ("gmail", "graph"):
        raise Invalid("this account has no SMTP settings", code="account_cannot_send")
    throttle = campaign.throttle_per_hour or default_per_hour(account.provider)
    if throttle > max_per_hour(account.provider):
        raise Unprocessable(
            f"throttle_per_hour is at most {max_per_hour(account.provider)} for this account",
            code="throttle_above_limit",
            details={"max": max_per_hour(account.provider)},
        )
    run = Run(
        campaign_id=campaign_id,
        state="sending",
        cursor=json.dumps([0 if campaign.audience.contact_ids else 1, None]),
        prev_cursor=None,
        started_at=deps.now().isoformat(),
        template_version=template.version,
        throttle_per_hour=throttle,
        account_id=account.account_id,
        base_url=base_url,
        send_key=idempotency_key,
    )
    if not deps.runs.create_run(tenant, run):
        raise Conflict("the campaign is being sent", code="campaign_sending")
    _set_campaign_status(ctx, campaign, CampaignStatus.ACTIVE, deps)
    deps.outbox.queue.send(CampaignChunkMessage(tenant_id=tenant, campaign_id=campaign_id, cursor=run.cursor))
    return _status(run, deps, tenant, count=False)


def _again(
    ctx: TenantContext, campaign: Campaign, run: Run, deps: CampaignDeps, idempotency_key: str | None
) -> SendStatus:
    """`send` on a campaign that has a run: replay, resume (only by a caller who may send from the
    run's mailbox: `_account`), or 409."""
    tenant = ctx.tenant_id
    if idempotency_key is not None and idempotency_key == run.send_key:
        return _status(run, deps, tenant)
    if run.state == "done":
        raise Conflict("the campaign was sent already", code="campaign_already_sent")
    if run.state == "paused" or campaign.status == CampaignStatus.PAUSED:
        _account(ctx, run.account_id, deps)
        _set_campaign_status(ctx, campaign, CampaignStatus.ACTIVE, deps)
        if deps.runs.set_state(tenant, run.campaign_id, "sending", only_from=("paused",)):
            message = CampaignChunkMessage(tenant_id=tenant, campaign_id=run.campaign_id, cursor=run.cursor)
            deps.outbox.queue.send(message)
        # else: still `sending`: its chunk in flight finds the campaign active again
        resumed = deps.runs.get_run(tenant, run.campaign_id)
        return _status(resumed or run, deps, tenant)
    raise Conflict("the campaign is being sent", code="campaign_sending")


# ---------------------------------------------------------------------------------- chunks
def _page(
    tenant_id: str, campaign: Campaign, cursor: str, deps: CampaignDeps
) -> tuple[list[str], list[Contact], str | None]:
    """The chunk at `cursor` (`[source, position]`: source 0 = `contact_ids` from an offset,
    source i > 0 = the tag i-1's contacts from a listing cursor): the contact ids it covers, the
    contacts found among them, and the next cursor (None at the end)."""
    assert campaign.audience is not None
    source, position = json.loads(cursor)
    audience = campaign.audience
    sources = 1 + len(audience.tags)
    if source == 0:
        offset = int(position or 0)
        ids = audience.contact_ids[offset : offset + CHUNK_SIZE]
        contacts = deps.crm.get_contacts(tenant_id, ids)
        more = offset + CHUNK_SIZE < len(audience.contact_ids)
        following: str | None = json.dumps([0, offset + CHUNK_SIZE]) if more else None
    else:
        tag = audience.tags[source - 1]
        contacts, page = deps.crm.list_contacts(
            tenant_id, ContactFilter(tag=tag), cursor=position, limit=CHUNK_SIZE
        )
        ids = [c.contact_id for c in contacts]
        following = json.dumps([source, page]) if page else None
    if following is None and source + 1 < sources:
        following = json.dumps([source + 1, None])
    return ids, contacts, following


def slot_interval(throttle_per_hour: int) -> timedelta:
    """Whole seconds between two sends of an account, so that any hour holds at most
    `throttle_per_hour` of them (EventBridge Scheduler `at()` takes whole seconds)."""
    return timedelta(seconds=math.ceil(3600 / throttle_per_hour))


def _message_id(tenant_id: str, campaign_id: str, contact_id: str, domain: str) -> str:
    """The recipient's Message-ID: the same on every attempt, unguessable from outside."""
    digest = hashlib.sha256(f"{tenant_id}\n{campaign_id}\n{contact_id}".encode()).hexdigest()[:32]
    return f"{campaign_id}.{digest}@{domain}"


def _primary(contact: Contact) -> str | None:
    return next(
        (e.address for e in contact.emails if e.primary),
        contact.emails[0].address if contact.emails else None,
    )


def run_chunk(message: CampaignChunkMessage, deps: CampaignDeps) -> str:
    """Queue one chunk of a run (see the module); returns what happened: `stale` (the cursor
    moved on: a duplicate), `paused`, `requeued` (the chunk was done, its successor is put on
    the queue again), `next` or `done`. Errors queueing one recipient other than the outbox's
    own refusals propagate: the message comes back and the chunk resumes."""
    tenant, campaign_id = message.tenant_id, message.campaign_id
    run = deps.runs.get_run(tenant, campaign_id)
    if run is None or run.state != "sending":
        return "stale"
    if message.cursor != run.cursor:
        return _behind(message, run, deps)
    ctx = TenantContext(tenant_id=tenant, role=Role.MEMBER, subject="campaign")
    campaign = deps.crm.get_campaign(tenant, campaign_id) if CAMPAIGN_ID.fullmatch(campaign_id) else None
    if campaign is None or campaign.status != CampaignStatus.ACTIVE or campaign.audience is None:
        deps.runs.set_state(tenant, campaign_id, "paused", only_from=("sending",))
        return "paused"
    ids, contacts, following = _page(tenant, campaign, message.cursor, deps)
    _send_chunk(ctx, campaign, run, ids, contacts, deps)
    if not deps.runs.advance(
        tenant, campaign_id, message.cursor, following or DONE_CURSOR, done=following is None
    ):
        return "stale"
    if following is None:
        _campaign_done(ctx, campaign_id, deps)
        return "done"
    deps.outbox.queue.send(CampaignChunkMessage(tenant_id=tenant, campaign_id=campaign_id, cursor=following))
    return "next"


def _behind(message: CampaignChunkMessage, run: Run, deps: CampaignDeps) -> str:
    """A chunk whose cursor is not the run's: the chunk that moved the cursor (its successor
    may not have been queued before a crash: queue it again, a duplicate is dropped as stale),
    or an older duplicate (dropped)."""
    if message.cursor == run.prev_cursor and run.cursor != DONE_CURSOR:
        following = CampaignChunkMessage(
            tenant_id=message.tenant_id, campaign_id=run.campaign_id, cursor=run.cursor
        )
        deps.outbox.queue.send(following)
        return "requeued"
    return "stale"


def _campaign_done(ctx: TenantContext, campaign_id: str, deps: CampaignDeps) -> None:
    current = deps.crm.get_campaign(ctx.tenant_id, campaign_id)
    if current is not None and current.status == CampaignStatus.ACTIVE:
        try:
            crm.update_campaign(ctx, campaign_id, CampaignPatch(status=CampaignStatus.DONE), deps.crm)
        except MailbridgeError as exc:  # changed meanwhile: the run's state is the truth
            logger.warning("campaign status not set to done", extra={"code": exc.code})


def _send_chunk(
    ctx: TenantContext,
    campaign: Campaign,
    run: Run,
    ids: list[str],
    contacts: list[Contact],
    deps: CampaignDeps,
) -> None:
    """Record the chunk's skipped contacts, then queue the others (see the module)."""
    existing = deps.runs.get_recipients(ctx.tenant_id, campaign.campaign_id, ids)
    sending = _recipients(ctx.tenant_id, campaign.campaign_id, ids, contacts, existing, deps)
    if sending:
        _queue_all(ctx, campaign, run, sending, existing, deps)


def _recipients(
    tenant: str,
    campaign_id: str,
    ids: list[str],
    contacts: list[Contact],
    existing: Mapping[str, Recipient],
    deps: CampaignDeps,
) -> list[tuple[Contact, str]]:
    """The chunk's contacts to queue (new or claimed by an attempt that stopped), with their
    address; the missing, address-less and suppressed ones recorded as skipped
    (`CampaignRunStore.skip_many`)."""
    found = {c.contact_id: c for c in contacts}
    skips = [(c, "contact_not_found") for c in ids if c not in found and c not in existing]
    todo: list[tuple[Contact, str]] = []
    for contact in contacts:
        known = existing.get(contact.contact_id)
        if known is not None and known.state != "claimed":
            continue  # queued, skipped or failed already: never again
        address = _primary(contact)
        if address is None:
            skips.append((contact.contact_id, "no_address"))
            continue
        todo.append((contact, address))
    blocked = suppression.suppressed(deps.suppression, tenant, [a for _, a in todo])
    sending: list[tuple[Contact, str]] = []
    failed: list[Outcome] = []
    for contact, address in todo:
        if address.lower() in blocked:
            known = existing.get(contact.contact_id)
            if known is None:
                skips.append((contact.contact_id, "suppressed"))
            else:  # claimed before it was suppressed: finished as failed, never sent
                failed.append(Outcome(contact.contact_id, "failed", known.message_id, reason="suppressed"))
            continue
        sending.append((contact, address))
    deps.runs.skip_many(tenant, campaign_id, skips)
    deps.runs.finish_many(tenant, campaign_id, failed)
    return sending


def _queue_all(
    ctx: TenantContext,
    campaign: Campaign,
    run: Run,
    sending: list[tuple[Contact, str]],
    existing: Mapping[str, Recipient],
    deps: CampaignDeps,
) -> None:
    """Claim, render, queue in throttle slots (`outbox.queue_drafts`, the chunk's requests
    batched), link, then mark queued or failed (BatchWriteItem) the chunk's `sending`."""
    from mailbridge.outbox.service import queue_drafts
    from mailbridge.templates.service import record_sends

    tenant, campaign_id = ctx.tenant_id, campaign.campaign_id
    account = deps.accounts.get_account(tenant, run.account_id)
    domain = account.address.rpartition("@")[2]
    message_ids = {
        contact.contact_id: (
            existing[contact.contact_id].message_id if contact.contact_id in existing else ""
        )
        or _message_id(tenant, campaign_id, contact.contact_id, domain)
        for contact, _ in sending
    }
    new = [(c.contact_id, message_ids[c.contact_id]) for c, _ in sending if c.contact_id not in existing]
    claimed = deps.runs.claim_many(tenant, campaign_id, new)
    # a contact another delivery of this chunk claimed meanwhile is that delivery's
    mine = [(c, a) for c, a in sending if c.contact_id in existing or c.contact_id in claimed]
    if not mine:
        return
    interval = slot_interval(run.throttle_per_hour)
    now = deps.now()
    earliest = max(campaign.schedule_at or now, now + START_AHEAD).replace(microsecond=0) + timedelta(
        seconds=1
    )
    first = deps.runs.reserve_slots(tenant, run.account_id, len(mine), interval, earliest)
    outbox = replace(deps.outbox, tracking=deps.tracking_for(run.base_url), templates=deps.templates)
    prepared, refused, rendered = _prepare(
        ctx, campaign, run, account, mine, message_ids, first, interval, deps, fresh=claimed
    )
    outcomes = [Outcome(c, "failed", message_ids[c], reason=code) for c, code in refused.items()]
    results = queue_drafts(ctx, account, [p for _, p in prepared], outbox)
    queued: list[tuple[str, str, str]] = []  # contact id, email id, send_at
    sends: list[tuple[Rendered, str]] = []
    for (contact_id, send), result in zip(prepared, results, strict=True):
        if isinstance(result, MailbridgeError):
            outcomes.append(Outcome(contact_id, "failed", message_ids[contact_id], reason=result.code))
            continue
        assert send.send_at is not None
        queued.append((contact_id, result.email_id, (result.send_at or send.send_at).isoformat()))
        sends.append((rendered[contact_id], result.email_id))
    record_sends(tenant, sends, deps.templates)
    _link(tenant, campaign_id, queued, deps)
    outcomes += [Outcome(c, "queued", message_ids[c], email_id=e) for c, e, _ in queued]
    deps.runs.finish_many(tenant, campaign_id, outcomes)


def _prepare(
    ctx: TenantContext,
    campaign: Campaign,
    run: Run,
    account: Account,
    mine: list[tuple[Contact, str]],
    message_ids: Mapping[str, str],
    first: datetime,
    interval: timedelta,
    deps: CampaignDeps,
    *,
    fresh: set[str],
) -> tuple[list[tuple[str, PreparedSend]], dict[str, str], dict[str, Rendered]]:
    """Each recipient's message as `POST /emails/send` with `template_id` builds it (template at
    the pinned version, campaign `variables`, its slot as `send_at`, the deterministic
    Message-ID, the RFC 8058 headers); a recipient that cannot be built has its error code.
    `fresh`: the contacts this delivery claimed (their emails cannot exist yet)."""
    from mailbridge.outbox.models import SendRequest
    from mailbridge.outbox.service import PreparedSend, _draft
    from mailbridge.templates.service import render_for_contacts

    assert campaign.template_id is not None
    links = replace(deps.suppression, base_url=run.base_url) if run.base_url else deps.suppression
    sender = {"name": account.display_name or "", "email": account.address}
    renders = render_for_contacts(
        ctx,
        campaign.template_id,
        run.template_version,
        mine,
        campaign.variables or {},
        sender,
        deps.templates,
    )
    prepared: list[tuple[str, PreparedSend]] = []
    errors: dict[str, str] = {}
    rendered: dict[str, Rendered] = {}
    for index, ((contact, address), one) in enumerate(zip(mine, renders, strict=True)):
        if isinstance(one, MailbridgeError):
            errors[contact.contact_id] = one.code
            continue
        try:
            # RFC 8058 one-click needs an https URI (compose refuses others): a local http
            # runner's campaign mail goes without List-Unsubscribe
            headers = (
                suppression.unsubscribe_headers(links, ctx.tenant_id, campaign.campaign_id, address)
                if links.base_url.startswith("https://")
                else {}
            )
            request = SendRequest.model_validate(
                {
                    "account_id": run.account_id,
                    "to": [{"address": address}],
                    "subject": one.rendered.subject,
                    "text": one.rendered.text,
                    "html": one.rendered.html,
                    "send_at": first + interval * index,
                }
            )
            draft = _draft(
                ctx,
                request,
                account,
                "new",
                deps.outbox,
                message_id=message_ids[contact.contact_id],
                list_headers=headers,
            )
        except (Invalid, Unprocessable, NotFound) as exc:
            errors[contact.contact_id] = exc.code
            continue
        except ValueError as exc:  # the request model refused a stored value (an address, say)
            logger.warning("campaign recipient not queued", extra={"error": type(exc).__name__})
            errors[contact.contact_id] = "invalid_recipient"
            continue
        use = TemplateUse(
            template_id=one.rendered.template_id, version=one.rendered.version, variant=one.rendered.variant
        )
        rendered[contact.contact_id] = one.rendered
        prepared.append(
            (
                contact.contact_id,
                PreparedSend(
                    draft=draft,
                    send_at=request.send_at,
                    template=use.model_dump(),
                    first_attempt=contact.contact_id in fresh,
                ),
            )
        )
    return prepared, errors, rendered


def _link(tenant_id: str, campaign_id: str, queued: list[tuple[str, str, str]], deps: CampaignDeps) -> None:
    """Link each queued email to the campaign (its engagement reads these links)."""
    from mailbridge.store.links import LinkRecord

    if not queued:
        return
    created = deps.now().isoformat()
    deps.links.put_auto_links(
        tenant_id,
        [
            LinkRecord(
                email_id=email_id,
                kind="campaign",
                record_id=campaign_id,
                reason="campaign",
                via=campaign_id,
                date=send_at,
                direction="outbound",
                created_at=created,
                created_by="campaign",
            )
            for _, email_id, send_at in queued
        ],
    )
