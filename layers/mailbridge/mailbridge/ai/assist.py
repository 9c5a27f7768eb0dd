"""Smart replies and the assist panel (issue 14 point 6): reply suggestions, summaries, drafts,
next best actions and applying one of them.

Every answer has `source`: `local` (the deterministic path: templates by intent and category in
`mailbridge.ai.intent`, SumBasic summaries in `mailbridge.ai.summary`, the rules below) or
`bedrock` (the tenant's Bedrock setting is on and the Converse answer passed its pydantic model).
When Bedrock was asked and did not answer usably, the local answer stands and `fallback_reason`
says why (`fallback:<reason>` of `providers.bedrock.FailureReason`, or `skipped:budget_exhausted`
/ `skipped:paused`).

Grounding: an email's other party (the first From address of inbound mail, the first To address
of mail the user sent) is looked up among the tenant's contacts (`CrmStore.find_email`); its
contact, company and newest open deal fill the templates.

Next best actions (`next_best_actions`), from CRM state at `now`:
- unanswered mail: the newest email on the record's timeline is inbound, not `answered`, at
  least `UNANSWERED_AFTER` old and not bulk mail (category newsletter, marketing, notification,
  automated or spam) -> `send_email` (a reply draft; its `account_id` is the mailbox that
  received it);
- a stale deal: an open deal with no activity (its own change, or an email, event or activity on
  its timeline) for `STALE_AFTER_DAYS` days -> `create_task` (a follow-up due the next day);
- overdue tasks: an open task of the record past its due time -> `schedule_meeting` (30 minutes
  on the next weekday at 10:00 UTC to settle it);
- an upcoming close or renewal date within `CLOSE_WINDOW_DAYS` -> `schedule_meeting` (a review
  the weekday before it, at 10:00 UTC); a close date already past on an open deal ->
  `update_deal` (close date moved `CLOSE_WINDOW_DAYS` ahead).
Each action has a deterministic `action_id` (of the rule, the record and the fact it rests on),
so the same state suggests the same ids and applying one twice acts once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_serializer, model_validator

from mailbridge.access import access_of
from mailbridge.ai.intent import BULK_CATEGORIES, DraftGoal, Grounding, Intent, Tone
from mailbridge.calendar.models import EventCreate
from mailbridge.crm.models import CONTACT_ID, DEAL_ID, EMAIL_ID, DealPatch, TaskCreate
from mailbridge.errors import Conflict, Invalid, NotFound
from mailbridge.models.base import Model
from mailbridge.models.fields import HeaderText, MultiLine, SingleLine
from mailbridge.outbox.models import Recipient
from mailbridge.store.keys import digest

if TYPE_CHECKING:
    from mailbridge.ai.bedrock import BedrockDeps
    from mailbridge.bus import EventPublisher
    from mailbridge.calendar.service import CalendarDeps
    from mailbridge.crm.links import LinkDeps
    from mailbridge.crm.models import Company, Contact, Deal
    from mailbridge.models.mail import Email
    from mailbridge.outbox.service import OutboxDeps
    from mailbridge.store.assist import AssistActionStore
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.settings import FeatureStore
    from mailbridge.tenancy import TenantContext

STALE_AFTER_DAYS = 14
"""An open deal with no activity for this many days is stale."""
UNANSWERED_AFTER = timedelta(hours=24)
"""An inbound email not answered for this long asks for a reply."""
CLOSE_WINDOW_DAYS = 30
"""A close (renewal) date this many days ahead or nearer is upcoming."""
MEETING_MINUTES = 30
MEETING_HOUR_UTC = 10
TIMELINE_READ = 25
"""Timeline items read for a summary or the next best actions (newest first)."""
THREAD_READ = 10
"""Newest messages of a thread whose bodies a thread summary reads."""
SUMMARY_SENTENCES = 3
MAX_OPEN_DEALS = 20
MAX_OVERDUE = 20
ACTION_ID = r"^act_[0-9a-f]{24}$"
ACCOUNT_ID = r"acc_[0-9a-f]{20}"
THREAD_ID = r"^th_[0-9a-f]{24}$"

Source = Literal["local", "bedrock"]
ActionType = Literal["create_task", "send_email", "update_deal", "schedule_meeting"]


@dataclass
class AssistDeps:
    emails: EmailStore
    blobs: BlobStore
    crm: CrmStore
    links: LinkDeps
    features: FeatureStore
    actions: AssistActionStore
    publisher: EventPublisher | None = None
    bedrock: BedrockDeps | None = None
    outbox: Callable[[], OutboxDeps] | None = None
    """The outbox (send_email actions); built on first use."""
    calendar: Callable[[], CalendarDeps] | None = None
    """The calendar (schedule_meeting actions); built on first use."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


# ---------------------------------------------------------------------------------- requests


class GenerateReplyRequest(Model):
    """`POST /ai/generate-reply`."""

    model_config = ConfigDict(extra="forbid")

    email_id: str = Field(pattern=EMAIL_ID.pattern, description="A stored email of the thread to answer")
    tone: Tone = Field(
        default="friendly", description="friendly (Hi/Best), formal (Dear/Kind regards), brief"
    )


class _OneRecord(Model):
    model_config = ConfigDict(extra="forbid")

    contact_id: str | None = Field(default=None, pattern=CONTACT_ID.pattern)
    deal_id: str | None = Field(default=None, pattern=DEAL_ID.pattern)

    def _count(self) -> int:
        return sum(v is not None for v in self.model_dump().values())

    @model_validator(mode="after")
    def _exactly_one(self) -> _OneRecord:
        if self._count() != 1:
            raise ValueError(f"give exactly one of {', '.join(type(self).model_fields)}")
        return self


class SummarizeRequest(_OneRecord):
    """`POST /ai/assist/summarize`: exactly one of `contact_id`, `deal_id`, `thread_id`."""

    thread_id: str | None = Field(default=None, pattern=THREAD_ID)


class DraftEmailRequest(Model):
    """`POST /ai/assist/draft_email`."""

    model_config = ConfigDict(extra="forbid")

    contact_id: str = Field(pattern=CONTACT_ID.pattern)
    goal: DraftGoal = Field(
        description="follow_up (an open deal), meeting_request, intro, check_in, thank_you, renewal "
        "(the deal's close date)"
    )


class NbaRequest(_OneRecord):
    """`POST /ai/assist/nba`: exactly one of `contact_id`, `deal_id`."""


# ---------------------------------------------------------------------------------- actions


class EmailDraft(Model):
    """A `send_email` payload: `POST /emails/send`'s fields for a plain-text message. Without
    `account_id` it cannot be applied (400 `account_required`)."""

    model_config = ConfigDict(extra="forbid")

    account_id: str | None = Field(default=None, pattern=f"^{ACCOUNT_ID}$")
    to: Annotated[list[Recipient], Field(min_length=1, max_length=50)]
    subject: Annotated[HeaderText, Field(max_length=900)] = ""
    text: Annotated[MultiLine, Field(max_length=100_000)]
    reply_to_email_id: str | None = Field(default=None, pattern=EMAIL_ID.pattern)


class DealUpdate(Model):
    """An `update_deal` payload: `PATCH /crm/deals/{deal_id}`'s body for one deal."""

    model_config = ConfigDict(extra="forbid")

    deal_id: str = Field(pattern=DEAL_ID.pattern)
    changes: DealPatch

    @field_serializer("changes")
    def _only_set(self, changes: DealPatch) -> dict[str, Any]:
        # As sent: a null field of a patch clears it (`stage: null` is refused), so leave out
        # what the patch does not set.
        return changes.model_dump(mode="json", exclude_unset=True)


class _Action(Model):
    model_config = ConfigDict(extra="forbid")

    action_id: str = Field(pattern=ACTION_ID, description="Applying the same id twice acts once")
    title: Annotated[SingleLine, Field(max_length=300)] = ""
    reason: Annotated[SingleLine, Field(max_length=500)] = ""


class CreateTaskAction(_Action):
    type: Literal["create_task"]
    payload: TaskCreate


class SendEmailAction(_Action):
    type: Literal["send_email"]
    payload: EmailDraft


class UpdateDealAction(_Action):
    type: Literal["update_deal"]
    payload: DealUpdate


class ScheduleMeetingAction(_Action):
    type: Literal["schedule_meeting"]
    payload: EventCreate


Action = Annotated[
    CreateTaskAction | SendEmailAction | UpdateDealAction | ScheduleMeetingAction, Field(discriminator="type")
]


class ApplyRequest(Model):
    """`POST /ai/assist/apply`: one action as `POST /ai/assist/nba` suggested it (the payload may
    be edited; the same `action_id` with another payload is 409 `action_id_reused`)."""

    model_config = ConfigDict(extra="forbid")

    action: Action


# ---------------------------------------------------------------------------------- answers


class ReplySuggestions(Model):
    email_id: str = Field(description="The thread's last message: the one the suggestions answer")
    thread_id: str
    intent: Intent
    category: str | None
    tone: Tone
    suggestions: list[str] = Field(description="Three short replies, plain text")
    source: Source
    fallback_reason: str | None = None
    contact_id: str | None = None
    company_id: str | None = None
    deal_id: str | None = None


class SummarySentence(Model):
    text: str
    source_id: str = Field(description="The email, activity or event it was taken from")


class DealFact(Model):
    deal_id: str
    name: str
    stage: str
    amount: str | None = None
    currency: str | None = None
    close_date: date | None = None


class TaskFact(Model):
    task_id: str
    title: str
    due: datetime | None


class KeyFacts(Model):
    last_contact_at: datetime | None = Field(description="The newest email of the record or thread")
    open_deals: list[DealFact]
    stage: str | None = Field(description="The deal's stage (deal summaries)")
    overdue_tasks: list[TaskFact] = Field(description="Open tasks past their due time")


class Summary(Model):
    kind: Literal["contact", "deal", "thread"]
    id: str
    sentences: list[SummarySentence] = Field(description="Extractive (SumBasic), in the texts' order")
    key_facts: KeyFacts
    source: Source = "local"


class EmailDraftAnswer(Model):
    contact_id: str
    goal: DraftGoal
    to: list[Recipient]
    subject: str
    text: str
    source: Source
    fallback_reason: str | None = None


class NextBestActions(Model):
    actions: list[Action]
    as_of: datetime
    source: Source = "local"


class AppliedAction(Model):
    action_id: str
    type: ActionType
    result_id: str = Field(description="The task, email, deal or event the action created or changed")
    result: dict[str, Any] = Field(description="That record as its own route answers it")
    replayed: bool = Field(description="True: applied before; nothing was done this time")


# ---------------------------------------------------------------------------------- grounding


@dataclass(frozen=True)
class _Crm:
    contact: Contact | None = None
    company: Company | None = None
    deal: Deal | None = None


def _first_name(name: str | None) -> str | None:
    return name.split()[0] if name and name.split() else None


def _grounding(crm: _Crm, subject: str | None = None, fallback_name: str | None = None) -> Grounding:
    name = crm.contact.name if crm.contact else fallback_name
    deal = crm.deal
    return Grounding(
        first_name=_first_name(name),
        full_name=name,
        company=crm.company.name if crm.company else None,
        deal=deal.name if deal else None,
        stage=deal.stage if deal else None,
        close_date=deal.close_date.isoformat() if deal and deal.close_date else None,
        subject=subject,
    )


def _crm_of_contact(tenant_id: str, contact: Contact | None, deps: AssistDeps) -> _Crm:
    if contact is None:
        return _Crm()
    company = deps.crm.get_company(tenant_id, contact.company_id) if contact.company_id else None
    deals = deps.crm.open_deals_of_contact(tenant_id, contact.contact_id, limit=1)
    return _Crm(contact, company, deals[0] if deals else None)


def _crm_of_address(tenant_id: str, address: str | None, deps: AssistDeps) -> _Crm:
    if not address:
        return _Crm()
    lookup = deps.crm.find_email(tenant_id, address.strip().lower())
    contact = deps.crm.get_contact(tenant_id, lookup.contact_id) if lookup else None
    return _crm_of_contact(tenant_id, contact, deps)


def _other_party(email: Email) -> tuple[str | None, str | None]:
    people = email.to if email.direction == "outbound" else email.from_
    first = next((a for a in people if a.address), None)
    return (first.address, first.name) if first else (None, None)


def _ask_bedrock(
    ctx: TenantContext,
    deps: AssistDeps,
    system: str,
    prompt: str,
    model: type[Any],
    placeholders: dict[str, str] | None = None,
) -> tuple[Any, str | None]:
    """Bedrock's answer (its strings with `placeholders` of the prompt's scrub restored)."""
    from mailbridge.ai.bedrock import ask_json

    return ask_json(ctx.tenant_id, deps.bedrock, system, prompt, model, placeholders)


# ---------------------------------------------------------------------------------- replies


class RepliesAnswer(Model):
    """What the model must answer for reply suggestions."""

    model_config = ConfigDict(extra="ignore")

    suggestions: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=1000)]], Field(min_length=3, max_length=5)
    ]


_REPLIES_SYSTEM = (
    "You suggest three short replies (one to three sentences each) to the last message of an email "
    "thread, in the tone asked for, using the CRM facts given. Answer by calling the tool with "
    "the three suggestions; keep placeholders such as [EMAIL_1] as they are."
)


def _last_message(ctx: TenantContext, email: Email, deps: AssistDeps) -> Email:
    """The newest message of the email's thread (the email itself when it is the newest)."""
    from mailbridge.emails import fully_visible, read_email

    items = fully_visible(ctx, deps.emails.thread_emails(ctx.tenant_id, email.thread_id))
    newest = max(
        (i for i in items if not i.get("deleted")),
        key=lambda i: (str(i.get("date") or ""), str(i.get("email_id"))),
        default=None,
    )
    if newest is None or str(newest["email_id"]) == email.email_id:
        return email
    return read_email(ctx, str(newest["email_id"]), deps.emails, deps.blobs)


def generate_reply(ctx: TenantContext, request: GenerateReplyRequest, deps: AssistDeps) -> ReplySuggestions:
    """Three replies to the last message of the email's thread (see the module docstring);
    404 `not_found` for an email the tenant does not hold."""
    from mailbridge.ai.bedrock import Scrubber
    from mailbridge.ai.intent import primary_intent, reply_suggestions
    from mailbridge.emails import read_email

    scrub = Scrubber()

    email = _last_message(ctx, read_email(ctx, request.email_id, deps.emails, deps.blobs), deps)
    address, name = _other_party(email)
    crm = _crm_of_address(ctx.tenant_id, address, deps)
    text = email.reply_text or email.text_body or ""
    intent = primary_intent(text)
    grounding = _grounding(crm, email.subject, name)
    suggestions = reply_suggestions(intent, email.category, request.tone, grounding)
    source: Source = "local"
    prompt = (
        "TASK: reply\n"
        f"Tone: {request.tone}\nIntent: {intent}\nCategory: {email.category or 'unknown'}\n"
        f"Contact first name: {scrub(grounding.first_name or 'unknown')}\n"
        f"Company: {scrub(grounding.company or 'unknown')}\n"
        f"Open deal: {scrub(grounding.deal or 'none')} (stage {scrub(grounding.stage or 'none')})\n"
        f"Subject: {scrub((email.subject or '')[:300])}\n"
        f"LAST MESSAGE:\n{scrub(text[:4000])}"
    )
    answer, reason = _ask_bedrock(ctx, deps, _REPLIES_SYSTEM, prompt, RepliesAnswer, scrub.placeholders)
    if answer is not None:
        suggestions, source = [s.strip() for s in answer.suggestions[:3]], "bedrock"
    return ReplySuggestions(
        email_id=email.email_id,
        thread_id=email.thread_id,
        intent=intent,
        category=email.category,
        tone=request.tone,
        suggestions=suggestions,
        source=source,
        fallback_reason=reason,
        contact_id=crm.contact.contact_id if crm.contact else None,
        company_id=crm.company.company_id if crm.company else None,
        deal_id=crm.deal.deal_id if crm.deal else None,
    )


# ---------------------------------------------------------------------------------- summaries


def _deal_fact(deal: Deal) -> DealFact:
    return DealFact(
        deal_id=deal.deal_id,
        name=deal.name,
        stage=deal.stage,
        amount=None if deal.amount is None else str(deal.amount),
        currency=deal.currency,
        close_date=deal.close_date,
    )


def _overdue(ctx: TenantContext, deps: AssistDeps, now: datetime, **related: str) -> list[TaskFact]:
    from mailbridge.crm.tasks import list_tasks

    page = list_tasks(ctx, deps.crm, status="open", due_before=now, limit=MAX_OVERDUE, **related)
    return [TaskFact(task_id=t.task_id, title=t.title, due=t.due) for t in page.items]


def _timeline(
    ctx: TenantContext, kind: Literal["contact", "deal"], record_id: str, deps: AssistDeps
) -> list[Any]:
    from mailbridge.crm.links import timeline

    return list(timeline(ctx, kind, record_id, deps.links, cursor=None, limit=TIMELINE_READ).items)


def _texts_of_timeline(items: list[Any]) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for item in items:
        if item.type == "email":
            texts.append((f"{item.subject or ''}. {item.snippet}", item.email_id))
        elif item.type == "activity":
            texts.append((item.body, item.activity_id))
        else:
            texts.append((item.title, item.event_id))
    return texts


def _last_email_at(items: list[Any]) -> datetime | None:
    dates = [item.date for item in items if item.type == "email"]
    return max(dates) if dates else None


def summarize(ctx: TenantContext, request: SummarizeRequest, deps: AssistDeps) -> Summary:
    """An extractive summary and key facts of a contact, deal or thread (`mailbridge.ai.summary`:
    SumBasic over the timeline's email subjects and snippets, activity notes and event titles, or
    over the new text (`reply_text`) of a thread's newest `THREAD_READ` messages). 404
    `contact_not_found`, `deal_not_found`, `thread_not_found` for a record the tenant lacks."""
    from mailbridge.ai.summary import summarize as pick
    from mailbridge.crm import service

    now = deps.now()
    if request.thread_id is not None:
        return _summarize_thread(ctx, request.thread_id, deps, now)
    if request.deal_id is not None:
        deal = service.get_deal(ctx, request.deal_id, deps.crm)
        items = _timeline(ctx, "deal", deal.deal_id, deps)
        facts = KeyFacts(
            last_contact_at=_last_email_at(items),
            open_deals=[_deal_fact(deal)] if deal.open else [],
            stage=deal.stage,
            overdue_tasks=_overdue(ctx, deps, now, deal_id=deal.deal_id),
        )
        kind: Literal["contact", "deal"] = "deal"
        record_id = deal.deal_id
    else:
        assert request.contact_id is not None
        contact = service.get_contact(ctx, request.contact_id, deps.crm)
        items = _timeline(ctx, "contact", contact.contact_id, deps)
        deals = deps.crm.open_deals_of_contact(ctx.tenant_id, contact.contact_id, limit=MAX_OPEN_DEALS)
        facts = KeyFacts(
            last_contact_at=_last_email_at(items),
            open_deals=[_deal_fact(d) for d in deals],
            stage=None,
            overdue_tasks=_overdue(ctx, deps, now, contact_id=contact.contact_id),
        )
        kind, record_id = "contact", contact.contact_id
    picked = pick(_texts_of_timeline(items), SUMMARY_SENTENCES)
    return Summary(
        kind=kind,
        id=record_id,
        sentences=[SummarySentence(text=s.text, source_id=s.source_id) for s in picked],
        key_facts=facts,
    )


def _summarize_thread(ctx: TenantContext, thread_id: str, deps: AssistDeps, now: datetime) -> Summary:
    from mailbridge.ai.summary import summarize as pick
    from mailbridge.emails import fully_visible, read_email

    # Only the mail the caller sees in full is read (mailbridge.access): none is 404.
    items = [
        i
        for i in fully_visible(ctx, deps.emails.thread_emails(ctx.tenant_id, thread_id))
        if not i.get("deleted")
    ]
    if not items:
        raise NotFound("no such thread", code="thread_not_found")
    items.sort(key=lambda i: (str(i.get("date") or ""), str(i.get("email_id"))))
    newest = items[-THREAD_READ:]
    emails = [read_email(ctx, str(i["email_id"]), deps.emails, deps.blobs) for i in newest]
    texts = [(e.reply_text or e.text_body or "", e.email_id) for e in emails]
    last = emails[-1]
    address, _ = _other_party(last)
    crm = _crm_of_address(ctx.tenant_id, address, deps)
    contact_id = crm.contact.contact_id if crm.contact else None
    deals = (
        deps.crm.open_deals_of_contact(ctx.tenant_id, contact_id, limit=MAX_OPEN_DEALS) if contact_id else []
    )
    picked = pick(texts, SUMMARY_SENTENCES)
    return Summary(
        kind="thread",
        id=thread_id,
        sentences=[SummarySentence(text=s.text, source_id=s.source_id) for s in picked],
        key_facts=KeyFacts(
            last_contact_at=max(e.date for e in emails),
            open_deals=[_deal_fact(d) for d in deals],
            stage=None,
            overdue_tasks=_overdue(ctx, deps, now, contact_id=contact_id) if contact_id else [],
        ),
    )


# ---------------------------------------------------------------------------------- drafts


class DraftAnswer(Model):
    """What the model must answer for a draft."""

    model_config = ConfigDict(extra="ignore")

    subject: Annotated[str, Field(min_length=1, max_length=300)]
    text: Annotated[str, Field(min_length=1, max_length=5000)]


_DRAFT_SYSTEM = (
    "You write one short business email to a contact for the goal given, using the CRM facts "
    "given. Answer by calling the tool with the subject and text; keep placeholders such as "
    "[EMAIL_1] as they are."
)


def _recipient(contact: Contact) -> Recipient:
    primary = next((e for e in contact.emails if e.primary), contact.emails[0] if contact.emails else None)
    if primary is None:
        raise Invalid("the contact has no email address", code="contact_has_no_email")
    return Recipient(address=primary.address, name=contact.name)


def draft_email(ctx: TenantContext, request: DraftEmailRequest, deps: AssistDeps) -> EmailDraftAnswer:
    """A subject and plain-text body for `goal` to the contact (templates of
    `mailbridge.ai.intent.draft`, or Bedrock when on). 404 `contact_not_found`; 400
    `contact_has_no_email`."""
    from mailbridge.ai.bedrock import Scrubber
    from mailbridge.ai.intent import draft
    from mailbridge.crm import service

    scrub = Scrubber()

    contact = service.get_contact(ctx, request.contact_id, deps.crm)
    recipient = _recipient(contact)
    crm = _crm_of_contact(ctx.tenant_id, contact, deps)
    grounding = _grounding(crm)
    subject, text = draft(request.goal, grounding)
    prompt = (
        f"TASK: draft\nGoal: {request.goal}\nContact first name: {scrub(grounding.first_name or 'unknown')}\n"
        f"Company: {scrub(grounding.company or 'unknown')}\nOpen deal: {scrub(grounding.deal or 'none')} "
        f"(stage {scrub(grounding.stage or 'none')}, close date {grounding.close_date or 'none'})"
    )
    answer, reason = _ask_bedrock(ctx, deps, _DRAFT_SYSTEM, prompt, DraftAnswer, scrub.placeholders)
    source: Source = "local"
    if answer is not None:
        subject, text, source = answer.subject.strip(), answer.text.strip(), "bedrock"
    return EmailDraftAnswer(
        contact_id=contact.contact_id,
        goal=request.goal,
        to=[recipient],
        subject=" ".join(subject.split())[:300],
        text=text,
        source=source,
        fallback_reason=reason,
    )


# ---------------------------------------------------------------------------------- next best actions


def action_id_for(rule: str, *facts: str) -> str:
    """The deterministic id of a suggested action: the rule and the facts it rests on."""
    return "act_" + digest("\x1f".join((rule, *facts)), 24)


def _next_weekday_at(now: datetime, day: date | None = None) -> datetime:
    """10:00 UTC on `day`, or on the next weekday after `now` (Saturday and Sunday skipped)."""
    target = day or (now + timedelta(days=1)).date()
    while target.weekday() >= 5:
        target += timedelta(days=1)
    return datetime.combine(target, time(MEETING_HOUR_UTC), tzinfo=UTC)


def _meeting(title: str, start: datetime, *, contact_ids: list[str], deal_id: str | None) -> EventCreate:
    end = start + timedelta(minutes=MEETING_MINUTES)
    return EventCreate.model_validate(
        {
            "title": title[:200],
            "start": {"date_time": start.isoformat(), "time_zone": "UTC"},
            "end": {"date_time": end.isoformat(), "time_zone": "UTC"},
            "contact_ids": contact_ids,
            "deal_id": deal_id,
        }
    )


def _deal_actions(deal: Deal, items: list[Any], now: datetime) -> list[Any]:
    """The stale-deal and close-date rules for one open deal (`items`: its timeline)."""
    actions: list[Any] = []
    contacts = list(deal.contact_ids[:1])
    last = max([deal.updated_at, *(i.date for i in items if i.date <= now)])
    idle = now - last
    if idle >= timedelta(days=STALE_AFTER_DAYS):
        days = idle.days
        actions.append(
            CreateTaskAction(
                type="create_task",
                action_id=action_id_for("stale_deal", deal.deal_id, last.isoformat()),
                title=f"Follow up on {deal.name}"[:300],
                reason=f"No activity on the deal for {days} days (stage {deal.stage})"[:500],
                payload=TaskCreate(
                    title=f"Follow up on {deal.name}"[:200],
                    description=f"No activity for {days} days in stage {deal.stage}.",
                    due=now + timedelta(days=1),
                    priority="high",
                    deal_id=deal.deal_id,
                    contact_id=contacts[0] if contacts else None,
                ),
            )
        )
    if deal.close_date is not None:
        days_left = (deal.close_date - now.date()).days
        if days_left < 0:
            moved = now.date() + timedelta(days=CLOSE_WINDOW_DAYS)
            actions.append(
                UpdateDealAction(
                    type="update_deal",
                    action_id=action_id_for("close_date_passed", deal.deal_id, deal.close_date.isoformat()),
                    title=f"Move the close date of {deal.name}"[:300],
                    reason=f"The close date {deal.close_date.isoformat()} has passed and the deal is open"[
                        :500
                    ],
                    payload=DealUpdate(
                        deal_id=deal.deal_id, changes=DealPatch(close_date=moved, version=deal.version)
                    ),
                )
            )
        elif days_left <= CLOSE_WINDOW_DAYS:
            review = _next_weekday_at(
                now, max(now.date() + timedelta(days=1), deal.close_date - timedelta(days=1))
            )
            actions.append(
                ScheduleMeetingAction(
                    type="schedule_meeting",
                    action_id=action_id_for("close_date_near", deal.deal_id, deal.close_date.isoformat()),
                    title=f"Review {deal.name} before its close date"[:300],
                    reason=f"The close date {deal.close_date.isoformat()} is in {days_left} days"[:500],
                    payload=_meeting(
                        f"Review: {deal.name}", review, contact_ids=contacts, deal_id=deal.deal_id
                    ),
                )
            )
    return actions


def _unanswered(items: list[Any], now: datetime, contact: Contact | None) -> list[Any]:
    emails = [i for i in items if i.type == "email" and not i.deleted]
    if not emails:
        return []
    newest = max(emails, key=lambda e: e.date)
    if newest.direction != "inbound" or newest.answered or now - newest.date < UNANSWERED_AFTER:
        return []
    if newest.category in BULK_CATEGORIES:  # a newsletter or notification asks for no reply
        return []
    sender = next((a for a in newest.from_ if a.address), None)
    if sender is None:
        return []
    subject = newest.subject or ""
    first = _first_name(contact.name if contact else sender.name) or "there"
    try:
        return [_reply_action(newest, sender, subject, first)]
    except ValidationError:
        # A stored address or subject a send would refuse (the outbox's own rules): no draft
        return []


def _reply_action(newest: Any, sender: Any, subject: str, first: str) -> SendEmailAction:
    return SendEmailAction(
        type="send_email",
        action_id=action_id_for("unanswered", newest.email_id),
        title=f"Reply to {subject}"[:300] if subject else "Reply to the last email",
        reason=f"Received {newest.date.date().isoformat()} and not answered",
        payload=EmailDraft(
            account_id=next((a for a in newest.accounts if re.fullmatch(ACCOUNT_ID, a)), None),
            to=[Recipient(address=sender.address, name=sender.name[:200] if sender.name else None)],
            subject=("Re: " + subject if subject and not subject.lower().startswith("re:") else subject)[
                :900
            ],
            text=f"Hi {first},\n\nThanks for your message. I'll get back to you shortly.\n\nBest,",
            reply_to_email_id=newest.email_id,
        ),
    )


def _overdue_actions(
    tasks: list[TaskFact], now: datetime, contact_ids: list[str], deal_id: str | None
) -> list[Any]:
    start = _next_weekday_at(now)
    return [
        ScheduleMeetingAction(
            type="schedule_meeting",
            action_id=action_id_for("overdue_task", task.task_id, task.due.isoformat() if task.due else ""),
            title=f"Settle the overdue task: {task.title}"[:300],
            reason=f"The task was due {task.due.date().isoformat() if task.due else 'earlier'}"[:500],
            payload=_meeting(task.title, start, contact_ids=contact_ids, deal_id=deal_id),
        )
        for task in tasks
    ]


def next_best_actions(ctx: TenantContext, request: NbaRequest, deps: AssistDeps) -> NextBestActions:
    """The typed, ready-to-apply actions the rules of the module docstring find for a contact or a
    deal, unanswered mail first, then deals, then overdue tasks. 404 `contact_not_found` /
    `deal_not_found`."""
    from mailbridge.crm import service

    now = deps.now()
    actions: list[Any] = []
    if request.deal_id is not None:
        deal = service.get_deal(ctx, request.deal_id, deps.crm)
        items = _timeline(ctx, "deal", deal.deal_id, deps)
        contact = deps.crm.get_contact(ctx.tenant_id, deal.contact_ids[0]) if deal.contact_ids else None
        actions += _unanswered(items, now, contact)
        if deal.open:
            actions += _deal_actions(deal, items, now)
        overdue = _overdue(ctx, deps, now, deal_id=deal.deal_id)
        actions += _overdue_actions(overdue, now, deal.contact_ids[:1], deal.deal_id)
    else:
        assert request.contact_id is not None
        contact = service.get_contact(ctx, request.contact_id, deps.crm)
        items = _timeline(ctx, "contact", contact.contact_id, deps)
        actions += _unanswered(items, now, contact)
        for deal in deps.crm.open_deals_of_contact(ctx.tenant_id, contact.contact_id, limit=MAX_OPEN_DEALS):
            actions += _deal_actions(deal, _timeline(ctx, "deal", deal.deal_id, deps), now)
        overdue = _overdue(ctx, deps, now, contact_id=contact.contact_id)
        actions += _overdue_actions(overdue, now, [contact.contact_id], None)
    unique = {a.action_id: a for a in actions}
    return NextBestActions(actions=list(unique.values()), as_of=now)


# ---------------------------------------------------------------------------------- apply


def _payload_digest(action: Any) -> str:
    return digest(
        json.dumps({"type": action.type, "payload": action.payload.model_dump(mode="json")}, sort_keys=True)
    )


def _perform(ctx: TenantContext, action: Any, deps: AssistDeps) -> tuple[str, dict[str, Any]]:
    """Do one action through the service its own route uses; `(result id, result JSON)`."""
    from mailbridge.features import require_feature

    if action.type == "create_task":
        from mailbridge.crm.tasks import create_task

        require_feature(ctx, deps.features, "crm")
        task = create_task(
            ctx,
            action.payload,
            deps.crm,
            deps.publisher,
            idempotency_key=f"assist:{action.action_id}",
            email_exists=lambda tenant, email_id: access_of(ctx).visible_id(
                deps.emails.get_email(tenant, email_id)
            ),
        )
        return task.task_id, task.model_dump(mode="json", exclude={"due_soon_for"})
    if action.type == "update_deal":
        from mailbridge.crm.service import update_deal

        require_feature(ctx, deps.features, "crm")
        deal = update_deal(ctx, action.payload.deal_id, action.payload.changes, deps.crm, deps.publisher)
        return deal.deal_id, deal.model_dump(mode="json")
    if action.type == "schedule_meeting":
        from mailbridge.calendar.service import create_event

        assert deps.calendar is not None
        event = create_event(ctx, action.payload, deps.calendar())
        return event.event_id, event.model_dump(mode="json")
    from mailbridge.outbox.models import SendRequest
    from mailbridge.outbox.service import queue_send

    draft: EmailDraft = action.payload
    if draft.account_id is None:
        raise Invalid(
            "a send_email action needs the account_id of a sending mailbox", code="account_required"
        )
    assert deps.outbox is not None
    try:
        send = SendRequest(
            account_id=draft.account_id,
            to=draft.to,
            subject=draft.subject,
            text=draft.text,
            reply_to_email_id=draft.reply_to_email_id,
        )
    except ValidationError:
        raise Invalid("the draft is not a message the outbox can send", code="invalid_message") from None
    accepted = queue_send(ctx, send, deps.outbox())
    return accepted.email_id, accepted.model_dump(mode="json")


def _applied(item: dict[str, Any], replayed: bool) -> AppliedAction:
    return AppliedAction(
        action_id=str(item["action_id"]),
        type=item["type"],
        result_id=str(item["result_id"]),
        result=json.loads(str(item["result"])),
        replayed=replayed,
    )


Perform = Callable[["TenantContext", Any, AssistDeps], tuple[str, dict[str, Any]]]


def apply_action(
    ctx: TenantContext, request: ApplyRequest, deps: AssistDeps, perform: Perform | None = None
) -> AppliedAction:
    """Perform one action (member role and above, like the routes it mirrors: `POST /crm/tasks`,
    `PATCH /crm/deals/{id}`, `POST /calendar/events`, `POST /emails/send`), with their errors.
    Once per `action_id` and tenant: a repeat answers the first result with `replayed: true`; the
    same id with another type or payload is 409 `action_id_reused`. A `send_email` without
    `account_id` is 400 `account_required`. `perform` (tests) replaces the dispatch to the
    services."""
    from mailbridge.tenancy import Role

    ctx.require(Role.MEMBER)
    action = request.action
    fingerprint = _payload_digest(action)
    stored = deps.actions.get_action(ctx.tenant_id, action.action_id)
    if stored is not None:
        if stored.get("payload_digest") != fingerprint:
            raise Conflict("this action_id was applied with another action", code="action_id_reused")
        return _applied(stored, True)
    result_id, result = (perform or _perform)(ctx, action, deps)
    record = {
        "action_id": action.action_id,
        "type": action.type,
        "payload_digest": fingerprint,
        "result_id": result_id,
        "result": json.dumps(result, sort_keys=True),
        "applied_at": deps.now().isoformat(),
        "applied_by": ctx.subject,
    }
    if not deps.actions.put_action(ctx.tenant_id, action.action_id, record):
        stored = deps.actions.get_action(ctx.tenant_id, action.action_id)
        if stored is not None and stored.get("payload_digest") == fingerprint:
            return _applied(stored, True)
        raise Conflict("this action_id was applied with another action", code="action_id_reused")
    return _applied(record, False)
