"""Bedrock where an LLM earns it (issue 14 point 4): a per-tenant setting, off by default, and the
two places that ask the model when the local answer is not enough.

Setting (`GET /ai/bedrock`, `PUT /ai/bedrock` admin and owner): `enabled` (false until an admin
switches it on), `model_id` (null: the template's `BedrockModelId`), `region` (null: the
function's region), `daily_token_budget` (input + output tokens a UTC day). The answer adds
today's `usage` and a `status`: `off`, `on`, or `budget_exhausted` (no call until the next UTC day).

Where it is used (`refine_categorization`, `fill_lead`):
- categorization, only for mail the local path is unsure about (`confidence < UNSURE_BELOW`, not
  decided by automated-mail header evidence): the model's category and confidence replace the
  local ones, reason `bedrock:<category>` first;
- lead extraction, only when the rules left name, title, company or website empty: the model's
  values fill those fields (`source: model`), never replace what the rules found.

Each call sends at most `MAX_PROMPT_CHARS` of the body, with email addresses replaced by
`[email]` and long digit runs (phone, card, account numbers) by `[number]`; bodies and answers
are never logged. Before a call the day's usage is read: at or past the budget, no call
(reason `bedrock:skipped:budget_exhausted`); for `PAUSE_SECONDS` after a call that was throttled,
timed out or found Bedrock unavailable, no call either (`bedrock:skipped:paused`). After a
call, the tokens of Converse's `usage` are added to the day. A failed call
(`mailbridge.providers.bedrock.BedrockFailure`: throttled after the retries, timeout, access
denied, invalid request, unavailable, invalid answer) leaves the local answer standing with
reason `bedrock:fallback:<reason>`, counted on the day as `fallbacks.<reason>`: never an error
for the caller.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import ConfigDict, Field

from mailbridge.ai.models import Categorization, Category
from mailbridge.models.base import Model
from mailbridge.models.fields import SingleLine

if TYPE_CHECKING:
    from mailbridge.ai.lead import Lead
    from mailbridge.models.email import ParsedMessage
    from mailbridge.models.mail import Email
    from mailbridge.providers.bedrock import BedrockConverse, FailureReason
    from mailbridge.store.base import Item
    from mailbridge.store.bedrock import BedrockStore
    from mailbridge.tenancy import TenantContext

UNSURE_BELOW = 0.6
"""Local categorizations below this confidence go to Bedrock."""
MAX_PROMPT_CHARS = 4000
"""Characters of an email body sent in a prompt (about 1,000 tokens)."""
MAX_ANSWER_TOKENS = 200
MAX_ASSIST_TOKENS = 800
"""Tokens of a reply-suggestion or draft answer (three short replies, or one email)."""
PAUSE_SECONDS = 60.0
"""After a call throttled, timed out or unavailable (after its retries), this container asks
Bedrock nothing for this long: a batch of unsure mail during an outage would otherwise spend up to
~25 s per email and outlast the function's timeout."""
PAUSE_AFTER = frozenset({"throttled", "timeout", "unavailable"})
DEFAULT_DAILY_BUDGET = 200_000
MAX_DAILY_BUDGET = 100_000_000
MODEL_ID = r"(?:(?:us|eu|apac|us-gov|global)\.)?[a-z0-9-]{2,40}\.[A-Za-z0-9._:-]{1,120}"
"""A Bedrock model id (`anthropic.claude-3-haiku-20240307-v1:0`) or cross-region inference
profile id (`eu.amazon.nova-lite-v1:0`)."""
REGION = r"[a-z]{2}(?:-gov)?-[a-z]+-\d{1,2}"

Status = Literal["off", "on", "budget_exhausted"]
AnswerT = TypeVar("AnswerT", bound=Model)

_ADDRESS = re.compile(r"[^\s<>()\[\]@,;:\"]+@[^\s<>()\[\]@,;:\"]+")
_DIGITS = re.compile(r"\+?\d[\d ().\-/]{6,}\d")


# ---------------------------------------------------------------------------------- setting


class BedrockSetting(Model):
    """The tenant's Bedrock setting as stored."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(default=False, description="Off until an admin switches it on")
    model_id: str | None = Field(default=None, description="Null: the deployment's BedrockModelId")
    region: str | None = Field(default=None, description="Null: the region the functions run in")
    daily_token_budget: int = Field(
        default=DEFAULT_DAILY_BUDGET, ge=0, description="Input + output tokens a UTC day; 0 stops every call"
    )


class BedrockSettingUpdate(Model):
    """`PUT /ai/bedrock`: fields left out keep their value; `null` model_id / region go back to
    the deployment's defaults."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    model_id: Annotated[SingleLine, Field(max_length=160, pattern=f"^{MODEL_ID}$")] | None = None
    region: Annotated[SingleLine, Field(max_length=30, pattern=f"^{REGION}$")] | None = None
    daily_token_budget: int | None = Field(default=None, ge=0, le=MAX_DAILY_BUDGET)


class BedrockUsage(Model):
    """One UTC day's use: tokens from Converse's `usage`, calls made, and how often the local
    answer stood in, by reason (`throttled`, `timeout`, `access_denied`, `invalid_request`,
    `unavailable`, `invalid_answer`; and, no call made, `budget_exhausted`, `paused`)."""

    day: date
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    fallbacks: dict[str, int] = Field(default_factory=dict)


class BedrockStatus(Model):
    """`GET /ai/bedrock` and `PUT /ai/bedrock`."""

    setting: BedrockSetting
    effective_model_id: str
    effective_region: str
    status: Status = Field(description="off, on, or budget_exhausted (no calls until the next UTC day)")
    usage: BedrockUsage
    version: int = Field(description="Revisions saved so far (0: never saved)")


@dataclass
class BedrockDeps:
    store: BedrockStore
    converse: Callable[[str], BedrockConverse]
    """The adapter for a region (cached per region by the wiring)."""
    default_model_id: str
    default_region: str
    today: Callable[[], date] = field(default=lambda: datetime.now(UTC).date())
    clock: Callable[[], float] = time.monotonic
    paused_until: float = 0.0
    """`clock()` value before which no call is made (set after a throttled, timed-out or
    unavailable call; per container, like the deps)."""


def _setting(item: Item | None) -> tuple[BedrockSetting, int]:
    if item is None:
        return BedrockSetting(), 0
    return (
        BedrockSetting(
            enabled=bool(item.get("enabled")),
            model_id=item.get("model_id"),
            region=item.get("region"),
            daily_token_budget=int(item.get("daily_token_budget", DEFAULT_DAILY_BUDGET)),
        ),
        int(item.get("version") or 0),
    )


def _usage(item: Item | None, day: date) -> BedrockUsage:
    item = item or {}
    return BedrockUsage(
        day=day,
        input_tokens=int(item.get("input_tokens") or 0),
        output_tokens=int(item.get("output_tokens") or 0),
        calls=int(item.get("calls") or 0),
        fallbacks={
            str(name).removeprefix("fallback_"): int(count)
            for name, count in sorted(item.items())
            if str(name).startswith("fallback_")
        },
    )


def _status(setting: BedrockSetting, usage: BedrockUsage) -> Status:
    if not setting.enabled:
        return "off"
    if usage.input_tokens + usage.output_tokens >= setting.daily_token_budget:
        return "budget_exhausted"
    return "on"


def _answer(setting: BedrockSetting, version: int, tenant_id: str, deps: BedrockDeps) -> BedrockStatus:
    day = deps.today()
    usage = _usage(deps.store.get_usage(tenant_id, day.isoformat()), day)
    return BedrockStatus(
        setting=setting,
        effective_model_id=setting.model_id or deps.default_model_id,
        effective_region=setting.region or deps.default_region,
        status=_status(setting, usage),
        usage=usage,
        version=version,
    )


def get_status(ctx: TenantContext, deps: BedrockDeps) -> BedrockStatus:
    """`GET /ai/bedrock`: the setting (defaults until saved), today's usage and the status."""
    setting, version = _setting(deps.store.get_setting(ctx.tenant_id))
    return _answer(setting, version, ctx.tenant_id, deps)


def put_setting(ctx: TenantContext, update: BedrockSettingUpdate, deps: BedrockDeps) -> BedrockStatus:
    """`PUT /ai/bedrock` (admin and owner: 403 `role_required` below); 409 `version_conflict`
    when another admin saved in between."""
    from mailbridge.tenancy import Role

    ctx.require(Role.ADMIN)
    current, version = _setting(deps.store.get_setting(ctx.tenant_id))
    merged = current.model_copy(update=update.model_dump(exclude_unset=True))
    saved = deps.store.save_setting(
        ctx.tenant_id,
        {**merged.model_dump(), "updated_by": ctx.subject, "updated_at": datetime.now(UTC).isoformat()},
        expected_version=version or None,
    )
    return _answer(merged, int(saved["version"]), ctx.tenant_id, deps)


# ---------------------------------------------------------------------------------- calling


def scrub(text: str) -> str:
    """`text` with email addresses as `[email]` and runs of 8+ digits (phone, card, account
    numbers) as `[number]`."""
    return _DIGITS.sub("[number]", _ADDRESS.sub("[email]", text))


def _truncated(text: str | None) -> str:
    return scrub((text or "")[:MAX_PROMPT_CHARS])


class _Call:
    """One budgeted call for a tenant: `ready()` says whether to call (recording a budget stop),
    `done()` counts what the call used and why the local answer stood in."""

    def __init__(self, tenant_id: str, deps: BedrockDeps) -> None:
        self.tenant_id = tenant_id
        self.deps = deps
        self.day = deps.today().isoformat()
        self.setting, _ = _setting(deps.store.get_setting(tenant_id))

    def ready(self) -> str | None:
        """None when the call may go ahead; else the reason to give for not calling (only
        `budget_exhausted` is counted: a switched-off setting is not a fallback)."""
        if not self.setting.enabled:
            return "off"
        usage = _usage(self.deps.store.get_usage(self.tenant_id, self.day), self.deps.today())
        skipped: str | None = None
        if _status(self.setting, usage) == "budget_exhausted":
            skipped = "budget_exhausted"
        elif self.deps.clock() < self.deps.paused_until:
            skipped = "paused"
        if skipped is not None:
            self.deps.store.add_usage(
                self.tenant_id, self.day, input_tokens=0, output_tokens=0, fallback=skipped
            )
        return skipped

    @property
    def model_id(self) -> str:
        return self.setting.model_id or self.deps.default_model_id

    def adapter(self) -> BedrockConverse:
        return self.deps.converse(self.setting.region or self.deps.default_region)

    def done(self, input_tokens: int, output_tokens: int, fallback: FailureReason | None) -> None:
        if fallback in PAUSE_AFTER:
            self.deps.paused_until = self.deps.clock() + PAUSE_SECONDS
        self.deps.store.add_usage(
            self.tenant_id,
            self.day,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            fallback=fallback,
        )


class CategoryAnswer(Model):
    """What the model must answer for a categorization."""

    model_config = ConfigDict(extra="ignore")

    category: Category
    confidence: float = Field(ge=0.0, le=1.0)


_CATEGORIZE_SYSTEM = (
    "You sort one email into exactly one category: sales, support, marketing, newsletter, "
    "notification, finance, calendar, automated, personal, spam or other. Answer with one JSON "
    'object and nothing else: {"category": "<category>", "confidence": <number from 0 to 1>}.'
)


def unsure(local: Categorization) -> bool:
    """The local answer is worth a second opinion: below `UNSURE_BELOW` and not automated mail
    (which header evidence decides)."""
    return local.confidence < UNSURE_BELOW and not local.is_automated


def refine_categorization(
    tenant_id: str, message: ParsedMessage, local: Categorization, deps: BedrockDeps | None
) -> Categorization:
    """The local categorization, or Bedrock's when the local one is unsure and the tenant's
    setting is on (see the module docstring). Never raises for a Bedrock failure."""
    from mailbridge.providers.bedrock import BedrockFailure

    if deps is None or not unsure(local):
        return local
    call = _Call(tenant_id, deps)
    skipped = call.ready()
    if skipped == "off":
        return local
    if skipped is not None:
        return _with_reason(local, f"bedrock:skipped:{skipped}")
    sender = message.from_[0].address if message.from_ and message.from_[0].address else ""
    prompt = (
        "TASK: categorize\n"
        f"Subject: {scrub((message.subject or '')[:300])}\n"
        f"From domain: {sender.rpartition('@')[2][:200]}\n"
        f"EMAIL:\n{_truncated(message.text_body)}"
    )
    try:
        answer = call.adapter().converse_json(
            call.model_id, _CATEGORIZE_SYSTEM, prompt, CategoryAnswer, max_tokens=MAX_ANSWER_TOKENS
        )
    except BedrockFailure as failure:
        call.done(failure.usage.input_tokens, failure.usage.output_tokens, failure.reason)
        return _with_reason(local, f"bedrock:fallback:{failure.reason}")
    call.done(answer.usage.input_tokens, answer.usage.output_tokens, None)
    category = answer.answer.category
    decided = local.model_copy(
        update={
            "category": category,
            "is_spam": category == "spam",
            "is_lead": local.is_lead and category == "sales",
            "confidence": round(answer.answer.confidence, 4),
            "reasons": [f"bedrock:{category}", *local.reasons],
        }
    )
    return Categorization.model_validate(decided.model_dump())


def _with_reason(local: Categorization, reason: str) -> Categorization:
    return local.model_copy(update={"reasons": [*local.reasons, reason]})


def ask_json(
    tenant_id: str, deps: BedrockDeps | None, system: str, prompt: str, answer_model: type[AnswerT]
) -> tuple[AnswerT | None, str | None]:
    """One budgeted Converse call for the assist routes: `(answer, None)` when Bedrock answered,
    `(None, None)` when the tenant's setting is off (or no deps), `(None, "skipped:<reason>")`
    when the budget or a pause stopped the call, `(None, "fallback:<reason>")` when it failed
    (`BedrockFailure.reason`, `invalid_answer` included). `prompt` is sent as given: scrub it
    first. Never raises for a Bedrock failure."""
    from mailbridge.providers.bedrock import BedrockFailure

    if deps is None:
        return None, None
    call = _Call(tenant_id, deps)
    skipped = call.ready()
    if skipped == "off":
        return None, None
    if skipped is not None:
        return None, f"skipped:{skipped}"
    try:
        answer = call.adapter().converse_json(
            call.model_id, system, prompt, answer_model, max_tokens=MAX_ASSIST_TOKENS
        )
    except BedrockFailure as failure:
        call.done(failure.usage.input_tokens, failure.usage.output_tokens, failure.reason)
        return None, f"fallback:{failure.reason}"
    call.done(answer.usage.input_tokens, answer.usage.output_tokens, None)
    return answer.answer, None


# ---------------------------------------------------------------------------------- leads

LEAD_FIELDS = ("name", "title", "company", "website")
MODEL_CONFIDENCE = 0.5
"""The confidence of a lead field the model filled (below every rule's but a guess from the domain)."""


class LeadAnswer(Model):
    """What the model must answer for a lead (each field null when it cannot tell)."""

    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(max_length=200)] | None = None
    title: Annotated[str, Field(max_length=200)] | None = None
    company: Annotated[str, Field(max_length=200)] | None = None
    website: Annotated[str, Field(max_length=200)] | None = None


_LEAD_SYSTEM = (
    "You read the end of one email and name its sender. Answer with one JSON object and nothing "
    'else, with only these keys: {"name", "title", "company", "website"}; each a string as written '
    "in the email, or null when the email does not say."
)


def fill_lead(tenant_id: str, email: Email, lead: Lead, deps: BedrockDeps | None) -> tuple[Lead, str | None]:
    """The lead with the fields the rules left empty filled by Bedrock (`source: model`), and
    what Bedrock did: None (not asked: nothing missing, or the setting is off), `used`,
    `skipped:budget_exhausted`, `skipped:paused` or `fallback:<reason>`. Never raises for a
    Bedrock failure."""
    from mailbridge.ai.lead import LeadField, clean_value, website_of
    from mailbridge.providers.bedrock import BedrockFailure

    missing = [name for name in LEAD_FIELDS if getattr(lead, name) is None]
    if deps is None or not missing:
        return lead, None
    call = _Call(tenant_id, deps)
    skipped = call.ready()
    if skipped == "off":
        return lead, None
    if skipped is not None:
        return lead, f"skipped:{skipped}"
    text = email.signature or email.text_body or ""
    prompt = f"TASK: lead\nFind: {', '.join(missing)}\nEMAIL:\n{_truncated(text[-MAX_PROMPT_CHARS:])}"
    try:
        answer = call.adapter().converse_json(
            call.model_id, _LEAD_SYSTEM, prompt, LeadAnswer, max_tokens=MAX_ANSWER_TOKENS
        )
    except BedrockFailure as failure:
        call.done(failure.usage.input_tokens, failure.usage.output_tokens, failure.reason)
        return lead, f"fallback:{failure.reason}"
    call.done(answer.usage.input_tokens, answer.usage.output_tokens, None)
    filled: dict[str, LeadField] = {}
    for name in missing:
        value = clean_value(getattr(answer.answer, name) or "")
        if name == "website" and value:
            value = website_of(value) or ""
        if value and "[email]" not in value and "[number]" not in value:
            filled[name] = LeadField(value=value, confidence=MODEL_CONFIDENCE, source="model")
    return lead.model_copy(update=filled), "used"
