"""Categorization of stored mail: run the categorizer on an email, apply the tenant's rules, store
the result on the email and announce `email.categorized`; user corrections and the rules they
teach.

Categorizing one stored email (`categorize_stored`, for the consumer, the on-demand route and the
backfill):
1. The email item (one read); an email whose category the user set is left alone.
2. Its raw message from S3 (one read), normalized as ingest did (`mailbridge.mime.normalize`).
3. `mailbridge.ai.categorize.categorize` (header evidence, then the local model), then Bedrock
   when that answer is unsure and the tenant's setting is on (`mailbridge.ai.bedrock`).
4. The tenant's rules (`AiRuleStore.list_rules`: one Query): a rule for the sender's address, else
   for its domain, decides the category (`category_source: rule`, reason `rule:sender:<id>`).
5. A conditional update of the email (`EmailStore.set_categorization`), then `email.categorized`
   (idempotency key `email.categorized:{email_id}:{run key}`), then `category_announced`. A replay
   of the same run key finds the run stored: it announces only when the earlier attempt stopped
   before announcing.

Backfill (`start_backfill`, `run_backfill_step`): a job item and one CategorizeQueue message per
step of `BACKFILL_PAGE` emails; each step queues the next, so no run reads everything.

Corrections (`correct_category`, `PATCH /emails/{id}` with `category`): stored with
`category_source: user`. `RULE_AFTER` corrections to one category of emails from one sender
address, or from `RULE_AFTER` addresses of one domain (not a free-mail domain), store a rule.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from mailbridge.access import access_of
from mailbridge.ai.models import Categorization, Category
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import FeatureDisabled, NotFound
from mailbridge.models.base import Model
from mailbridge.store.ai import AiRuleStore, RuleKind, rule_id_for
from mailbridge.store.keys import digest

if TYPE_CHECKING:
    from mailbridge.ai.bedrock import BedrockDeps
    from mailbridge.queues import StandardQueue
    from mailbridge.store.base import Item
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.settings import FeatureStore
    from mailbridge.tenancy import TenantContext

# Corrections that make a rule: to one category, of emails from one address, or from this many
# addresses of one domain.
RULE_AFTER = 2
# Raw messages larger than this are not categorized (the ingest limit is far below it).
MAX_RAW_BYTES = 50 * 1024 * 1024
# Domains many unrelated people write from: a domain rule would catch all of them.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.ru",
        "yandex.ru",
    }
)
EMAIL_CATEGORIZED = "email.categorized"
RULE_ID = re.compile(r"(?:address|domain)-[0-9a-f]{16}")
CATEGORY_FIELDS = (
    "category",
    "is_spam",
    "is_bulk",
    "is_automated",
    "needs_reply",
    "action_requested",
    "is_lead",
    "confidence",
    "reasons",
)


@dataclass
class CategorizeDeps:
    emails: EmailStore
    blobs: BlobStore
    rules: AiRuleStore
    features: FeatureStore
    publisher: EventPublisher
    queue: StandardQueue | None = None
    """The CategorizeQueue (backfill steps); None where nothing queues steps."""
    bedrock: BedrockDeps | None = None
    """Bedrock for unsure mail (the tenant's setting decides); None: the local path only."""


class EmailCategorization(Categorization):
    """An email's stored categorization (`POST /ai/categorize-email`).

    `category_source`: `model` (header rules and the local model), `rule` (a rule learnt from
    corrections, named in `reasons` as `rule:sender:<rule_id>`) or `user` (a correction)."""

    model_config = ConfigDict(frozen=True)

    email_id: str
    category_source: str


class CategoryRule(Model):
    """A per-tenant rule learnt from corrections: mail from `value` (an address, or a domain) is
    `category`. `corrections`: how many corrections made it."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    kind: RuleKind
    value: str
    category: Category
    corrections: int = Field(ge=0)
    created_at: datetime


class CategoryRuleList(Model):
    items: list[CategoryRule]


@dataclass(frozen=True)
class Outcome:
    """What one categorize run did: `action` is `categorized`, `unchanged` (this run was stored
    and announced before), `user_set` (a correction stands), `disabled` (the `ai` flag is off),
    `no_raw` / `unparsable` (nothing to read), `missing` (no such email)."""

    action: str
    category: str | None = None


# ---------------------------------------------------------------------------------- helpers


def ai_enabled(tenant_id: str, features: FeatureStore) -> bool:
    """The tenant's `ai` flag (off until an admin switches it on)."""
    settings = features.get_features(tenant_id)
    return settings is not None and settings.flags.ai


def require_ai(tenant_id: str, features: FeatureStore) -> None:
    if not ai_enabled(tenant_id, features):
        raise FeatureDisabled("the ai feature is switched off for this tenant")


def sender_of(item: Item) -> str | None:
    senders = [a for a in item.get("from") or () if a.get("address")]
    return str(senders[0]["address"]).strip().lower() if senders else None


def _domain(address: str) -> str:
    return address.rpartition("@")[2]


def matching_rule(sender: str | None, rules: list[Item]) -> Item | None:
    """The rule for the sender's address, else the one for its domain, else None."""
    if not sender:
        return None
    by_value = {(str(r["kind"]), str(r["value"])): r for r in rules}
    return by_value.get(("address", sender)) or by_value.get(("domain", _domain(sender)))


def apply_rule(result: Categorization, rule: Item | None) -> tuple[Categorization, str]:
    """The categorization a rule decides (its category, reason `rule:sender:<id>` first) and the
    source (`rule` or `model`)."""
    if rule is None:
        return result, "model"
    category = str(rule["category"])
    decided = result.model_copy(
        update={
            "category": category,
            "is_spam": category == "spam",
            "is_lead": result.is_lead and category == "sales",
            "confidence": 1.0,
            "reasons": [f"rule:sender:{rule['rule_id']}", *result.reasons],
        }
    )
    return Categorization.model_validate(decided.model_dump()), "rule"


def _stored_values(result: Categorization, source: str) -> dict[str, Any]:
    values = result.model_dump()
    values["confidence"] = Decimal(str(result.confidence))
    return {**values, "category_source": source, "categorized_at": datetime.now(UTC).isoformat()}


def stored_categorization(item: Item) -> EmailCategorization | None:
    """The categorization stored on an email item (None when it has none)."""
    if not item.get("category"):
        return None
    return EmailCategorization(
        email_id=str(item["email_id"]),
        category=item["category"],
        is_spam=bool(item.get("is_spam")),
        is_bulk=bool(item.get("is_bulk")),
        is_automated=bool(item.get("is_automated")),
        needs_reply=bool(item.get("needs_reply")),
        action_requested=bool(item.get("action_requested")),
        is_lead=bool(item.get("is_lead")),
        confidence=float(item.get("confidence") or 0),
        reasons=[str(r) for r in item.get("reasons") or ()],
        category_source=str(item.get("category_source") or "model"),
    )


def _announce(
    tenant_id: str, email_id: str, key: str, stored: EmailCategorization, item: Item, deps: CategorizeDeps
) -> None:
    deps.publisher.publish(
        [
            DomainEvent(
                detail_type=EMAIL_CATEGORIZED,
                tenant_id=tenant_id,
                idempotency_key=f"{EMAIL_CATEGORIZED}:{email_id}:{key}",
                data={
                    "email_id": email_id,
                    "thread_id": item.get("thread_id"),
                    "account_id": next(iter(sorted(item.get("accounts") or ())), None),
                    **stored.model_dump(exclude={"email_id", "reasons"}),
                },
            )
        ]
    )
    deps.emails.mark_categorized_announced(tenant_id, email_id, key)


def _run(tenant_id: str, item: Item, deps: CategorizeDeps) -> Categorization | None:
    """The categorizer on the email's raw message, then Bedrock when the local answer is unsure
    and the tenant's setting is on (None: no raw message, or not parsable)."""
    from mailbridge.ai.bedrock import refine_categorization
    from mailbridge.ai.categorize import categorize
    from mailbridge.mime import MimeError, normalize

    raw_key = item.get("raw_key")
    if not raw_key:
        return None
    raw = deps.blobs.get(str(raw_key), max_bytes=MAX_RAW_BYTES)
    if len(raw) > MAX_RAW_BYTES:
        return None
    try:
        message = normalize(raw).message
    except MimeError:
        return None
    return refine_categorization(tenant_id, message, categorize(message), deps.bedrock)


# ---------------------------------------------------------------------------------- categorize


def categorize_stored(  # noqa: PLR0911 - one return per outcome
    tenant_id: str, email_id: str, key: str, deps: CategorizeDeps, *, rules: list[Item] | None = None
) -> tuple[Outcome, EmailCategorization | None]:
    """Categorize one stored email as run `key` (see the module docstring) and announce it.

    `rules`: the tenant's rules when the caller already read them (a backfill step reads them
    once). Returns what happened and the categorization the email now holds."""
    item = deps.emails.get_email(tenant_id, email_id)
    if item is None:
        return Outcome("missing"), None
    current = stored_categorization(item)
    if item.get("category_source") == "user":
        return Outcome("user_set", item.get("category")), current
    if item.get("category_key") == key and current is not None:
        if item.get("category_announced"):
            return Outcome("unchanged", current.category), current
        _announce(tenant_id, email_id, key, current, item, deps)
        return Outcome("categorized", current.category), current
    result = _run(tenant_id, item, deps)
    if result is None:
        return Outcome("unparsable" if item.get("raw_key") else "no_raw"), current
    if rules is None:
        rules = deps.rules.list_rules(tenant_id)
    decided, source = apply_rule(result, matching_rule(sender_of(item), rules))
    values = _stored_values(decided, source)
    if not deps.emails.set_categorization(tenant_id, email_id, key, **values):
        latest = deps.emails.get_email(tenant_id, email_id)
        if latest is None:
            return Outcome("missing"), None
        return Outcome("user_set" if latest.get("category_source") == "user" else "unchanged"), (
            stored_categorization(latest)
        )
    stored = EmailCategorization(**decided.model_dump(), email_id=email_id, category_source=source)
    _announce(tenant_id, email_id, key, stored, item, deps)
    return Outcome("categorized", stored.category), stored


def on_email_received(tenant_id: str, email_id: str, key: str, deps: CategorizeDeps) -> Outcome:
    """The consumer's work for one `email.received`: nothing while the tenant's `ai` flag is off."""
    if not ai_enabled(tenant_id, deps.features):
        return Outcome("disabled")
    outcome, _ = categorize_stored(tenant_id, email_id, key, deps)
    return outcome


def categorize_now(ctx: TenantContext, email_id: str, deps: CategorizeDeps) -> EmailCategorization:
    """`POST /ai/categorize-email`: categorize one email now, store and return the result (a
    user's correction is returned as it stands). 404 `not_found`, 422 `not_categorizable` when the
    raw message is missing or cannot be parsed."""
    from mailbridge.emails import EMAIL_ID
    from mailbridge.errors import Invalid

    if not EMAIL_ID.fullmatch(email_id):
        raise NotFound("no such email")
    # Categorizing reads the body: only mail the caller sees in full (mailbridge.access).
    access_of(ctx).read_body(deps.emails.get_email(ctx.tenant_id, email_id), NotFound("no such email"))
    outcome, stored = categorize_stored(ctx.tenant_id, email_id, f"request:{uuid.uuid4().hex}", deps)
    if outcome.action == "missing":
        raise NotFound("no such email")
    if stored is None:
        raise Invalid("the email's raw message cannot be read", code="not_categorizable")
    return stored


# ---------------------------------------------------------------------------------- corrections


def _rule_item(kind: RuleKind, value: str, category: str, corrections: int) -> dict[str, Any]:
    return {
        "rule_id": rule_id_for(kind, value),
        "kind": kind,
        "value": value,
        "category": category,
        "corrections": corrections,
        "created_at": datetime.now(UTC).isoformat(),
    }


def correct_category(
    ctx: TenantContext, item: Item, category: Category, emails: EmailStore, rules: AiRuleStore
) -> dict[str, Any]:
    """Store the user's category on the email (`category_source: user`) and count the correction
    towards a rule for its sender; the values set on the item."""
    email_id = str(item["email_id"])
    values: dict[str, Any] = {
        "category": category,
        "category_source": "user",
        "is_spam": category == "spam",
        "confidence": Decimal(1),
        "reasons": ["user:correction"],
        "categorized_at": datetime.now(UTC).isoformat(),
    }
    emails.update_email(ctx.tenant_id, email_id, **values)
    sender = sender_of(item)
    if sender and "@" in sender:
        count = rules.count_correction(ctx.tenant_id, "address", sender, category, email_id)
        if count >= RULE_AFTER:
            rules.put_rule(ctx.tenant_id, _rule_item("address", sender, category, count))
        domain = _domain(sender)
        if domain and domain not in FREE_MAIL_DOMAINS:
            senders = rules.count_correction(ctx.tenant_id, "domain", domain, category, digest(sender))
            if senders >= RULE_AFTER:
                rules.put_rule(ctx.tenant_id, _rule_item("domain", domain, category, senders))
    return values


def _to_rule(item: Item) -> CategoryRule:
    return CategoryRule(
        rule_id=str(item["rule_id"]),
        kind=item["kind"],
        value=str(item["value"]),
        category=item["category"],
        corrections=int(item.get("corrections") or 0),
        created_at=datetime.fromisoformat(str(item["created_at"])),
    )


def list_rules(ctx: TenantContext, rules: AiRuleStore) -> CategoryRuleList:
    """`GET /ai/rules`: the tenant's rules, by kind and value."""
    items = sorted(rules.list_rules(ctx.tenant_id), key=lambda r: (str(r["kind"]), str(r["value"])))
    return CategoryRuleList(items=[_to_rule(item) for item in items])


def delete_rule(ctx: TenantContext, rule_id: str, rules: AiRuleStore) -> None:
    """`DELETE /ai/rules/{rule_id}`; 404 `not_found`. The corrections counted so far stay, so
    the next correction of that sender to the same category makes the rule again."""
    from mailbridge.tenancy import Role

    ctx.require(Role.MEMBER)
    if not RULE_ID.fullmatch(rule_id):
        raise NotFound("no such rule")
    rules.delete_rule(ctx.tenant_id, rule_id)


# ---------------------------------------------------------------------------------- backfill

BACKFILL_PAGE = 25
"""Emails one backfill step categorizes (one queue message, far inside the function's timeout)."""
JOB_ID = re.compile(r"cb_[0-9a-f]{24}")


class BackfillStep(Model):
    """A CategorizeQueue message: categorize the next page of the job's emails."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["categorize_backfill"] = "categorize_backfill"
    tenant_id: str
    job_id: str
    step: int = Field(ge=0)


class BackfillJob(Model):
    """`POST /ai/categorize/backfill` and `GET /ai/categorize/backfill/{job_id}`.

    `status`: `running` (steps are queued), `done` (every stored email was read), `stopped` (the
    ai flag was switched off). `steps`: pages done; `processed`: emails read; `categorized`: stored
    and announced; `skipped`: kept as they were (a user's category, or already done by this job)."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    status: Literal["running", "done", "stopped"]
    steps: int
    processed: int
    categorized: int
    skipped: int
    created_at: datetime
    updated_at: datetime


def _job(item: Item) -> BackfillJob:
    return BackfillJob(
        job_id=str(item["job_id"]),
        status=item["status"],
        steps=int(item["step"]),
        processed=int(item.get("processed") or 0),
        categorized=int(item.get("categorized") or 0),
        skipped=int(item.get("skipped") or 0),
        created_at=datetime.fromisoformat(str(item["created_at"])),
        updated_at=datetime.fromisoformat(str(item["updated_at"])),
    )


def start_backfill(ctx: TenantContext, deps: CategorizeDeps) -> BackfillJob:
    """Create a job and queue its first step; each step categorizes `BACKFILL_PAGE` stored emails,
    newest first, and queues the next (never one run over everything)."""
    from mailbridge.tenancy import Role

    ctx.require(Role.MEMBER)
    if deps.queue is None:
        raise FeatureDisabled("the backfill queue is not configured")
    now = datetime.now(UTC).isoformat()
    job_id = f"cb_{uuid.uuid4().hex[:24]}"
    item = {
        "job_id": job_id,
        "status": "running",
        "step": 0,
        "processed": 0,
        "categorized": 0,
        "skipped": 0,
        "created_at": now,
        "updated_at": now,
    }
    deps.rules.create_job(ctx.tenant_id, item)
    deps.queue.send(BackfillStep(tenant_id=ctx.tenant_id, job_id=job_id, step=0))
    return _job(item)


def get_backfill(ctx: TenantContext, job_id: str, deps: CategorizeDeps) -> BackfillJob:
    """The job's progress; 404 `job_not_found`."""
    item = deps.rules.get_job(ctx.tenant_id, job_id) if JOB_ID.fullmatch(job_id) else None
    if item is None:
        raise NotFound("no such backfill job", code="job_not_found")
    return _job(item)


def run_backfill_step(step: BackfillStep, deps: CategorizeDeps) -> Outcome:
    """One step: the next page of the tenant's emails from the job's cursor, each categorized as
    run `backfill:{job_id}` (a user's category stands), then the job advanced by a conditional
    update (a replayed step finds the job moved on and does nothing) and the next step queued."""
    from mailbridge.store.emails import email_filter, tenant_source

    tenant_id = step.tenant_id
    job = deps.rules.get_job(tenant_id, step.job_id)
    if job is None or job["status"] != "running" or int(job["step"]) != step.step:
        return Outcome("unchanged")
    now = datetime.now(UTC).isoformat()
    if not ai_enabled(tenant_id, deps.features):
        deps.rules.advance_job(tenant_id, step.job_id, step.step, status="stopped", updated_at=now)
        return Outcome("disabled")
    items, cursor = deps.emails.read_source(
        tenant_id,
        tenant_source(tenant_id),
        cursor=job.get("cursor"),
        limit=BACKFILL_PAGE,
        filters=email_filter(),
    )
    rules = deps.rules.list_rules(tenant_id)
    done = 0
    for item in items:
        if item.get("direction") == "outbound":
            continue
        outcome, _ = categorize_stored(
            tenant_id, str(item["email_id"]), f"backfill:{step.job_id}", deps, rules=rules
        )
        done += outcome.action == "categorized"
    advanced = deps.rules.advance_job(
        tenant_id,
        step.job_id,
        step.step,
        status="running" if cursor else "done",
        cursor=cursor,
        processed=int(job.get("processed") or 0) + len(items),
        categorized=int(job.get("categorized") or 0) + done,
        skipped=int(job.get("skipped") or 0) + len(items) - done,
        updated_at=now,
    )
    if advanced and cursor and deps.queue is not None:
        deps.queue.send(BackfillStep(tenant_id=tenant_id, job_id=step.job_id, step=step.step + 1))
    return Outcome("categorized" if advanced else "unchanged")
