"""Bedrock where an LLM earns it (issue 14 point 4): a per-tenant setting, off by default, and the
two places that ask the model when the local answer is not enough.

Setting (`GET /ai/bedrock`, `PUT /ai/bedrock` admin and owner): `enabled` (false until an admin
switches it on), `model_id` (null: the template's `BedrockModelId`), `region` (null: the
function's region), `daily_token_budget` (input + output tokens a UTC day),
`monthly_token_budget` (the same, a UTC calendar month). The answer adds today's `usage`, the
month's `month_usage` and a `status`: `off`, `on`, or `budget_exhausted` (less than one answer's
`MAX_ANSWER_TOKENS` left of the day's or the month's budget: no call until it renews).

Where it is used (`refine_categorization`, `fill_lead`):
- categorization, only for mail the local path is unsure about (`confidence < UNSURE_BELOW`, not
  decided by automated-mail header evidence): the model's category and confidence replace the
  local ones, reason `bedrock:<category>` first;
- lead extraction, only when the rules left name, title, company or website empty: the model's
  values fill those fields (`source: model`), never replace what the rules found.

Each call sends at most `MAX_PROMPT_CHARS` of the body, scrubbed (`Scrubber`): email addresses,
IBANs, card numbers (Luhn-valid 13 to 19 digits) and other long digit runs (phone and account
numbers) replaced by numbered placeholders (`[EMAIL_1]`, `[IBAN_1]`, `[CARD_1]`, `[PHONE_1]`). The
answer comes through a tool (`mailbridge.providers.bedrock`), and the placeholders the scrub made
are put back in its strings (`restore`); bodies and answers are never logged. An answer already
given for the same model, system prompt and (scrubbed) prompt within `CACHE_SECONDS` is reused,
stored with its placeholders and restored per call (reason `bedrock:cached:<category>`, counted as
`cache_hits`; no call, no tokens). For `PAUSE_SECONDS` after a call that was throttled, timed out or
found Bedrock unavailable, no call (`bedrock:skipped:paused`). Before a call its most possible
tokens (the prompt at `CHARS_PER_TOKEN` characters a token, plus `MAX_ANSWER_TOKENS`) are reserved
on the day and the month in one conditional transaction (`store.bedrock.BedrockStore.reserve`): when
either budget would be passed, no call (`bedrock:skipped:budget_exhausted`), and concurrent calls
cannot together pass a budget. After the call, the reservation is replaced by the tokens of
Converse's `usage`. A failed call (`mailbridge.providers.bedrock.BedrockFailure`: throttled after
the retries, timeout, access denied, invalid request, unavailable, invalid answer) leaves the local
answer standing with reason `bedrock:fallback:<reason>`, counted on the day as
`fallbacks.<reason>`: never an error for the caller.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from mailbridge.ai.models import Categorization, Category
from mailbridge.models.base import Model
from mailbridge.models.fields import SingleLine

if TYPE_CHECKING:
    from mailbridge.ai.lead import Lead
    from mailbridge.models.email import ParsedMessage
    from mailbridge.models.mail import Email
    from mailbridge.providers.bedrock import BedrockConverse, FailureReason
    from mailbridge.store.base import Item
    from mailbridge.store.bedrock import BedrockAnswerCache, BedrockStore
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
DEFAULT_MONTHLY_BUDGET = 4_000_000
MAX_MONTHLY_BUDGET = 3_000_000_000
CHARS_PER_TOKEN = 2
"""A reservation counts one token per this many prompt characters: model tokenizers average about
four characters a token in English, fewer in other scripts."""
CACHE_SECONDS = 7 * 24 * 3600
"""How long a Bedrock answer is reused for the same model, system prompt and prompt."""
MODEL_ID = r"(?:(?:us|eu|apac|us-gov|global)\.)?[a-z0-9-]{2,40}\.[A-Za-z0-9._:-]{1,120}"
"""A Bedrock model id (`anthropic.claude-3-haiku-20240307-v1:0`) or cross-region inference
profile id (`eu.amazon.nova-lite-v1:0`)."""
REGION = r"[a-z]{2}(?:-gov)?-[a-z]+-\d{1,2}"

Status = Literal["off", "on", "budget_exhausted"]
AnswerT = TypeVar("AnswerT", bound=Model)
A = TypeVar("A", bound=BaseModel)

_ADDRESS = re.compile(r"[^\s<>()\[\]@,;:\"]+@[^\s<>()\[\]@,;:\"]+")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
"""ISO 13616 IBAN, printed or electronic form: country, two check digits, 11 to 30 more."""
_DIGITS = re.compile(r"\+?\d[\d ().\-/]{6,}\d")
_PLACEHOLDER = re.compile(r"\[(?:EMAIL|IBAN|CARD|PHONE)_\d+\]")


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
    monthly_token_budget: int = Field(
        default=DEFAULT_MONTHLY_BUDGET, ge=0, description="Input + output tokens a UTC calendar month"
    )


class BedrockSettingUpdate(Model):
    """`PUT /ai/bedrock`: fields left out keep their value; `null` model_id / region go back to
    the deployment's defaults. `enabled` and the budgets have no default to go back to: `null`
    for them is refused (422 `validation_error`), and the document does not offer it."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | SkipJsonSchema[None] = None
    model_id: Annotated[SingleLine, Field(max_length=160, pattern=f"^{MODEL_ID}$")] | None = None
    region: Annotated[SingleLine, Field(max_length=30, pattern=f"^{REGION}$")] | None = None
    daily_token_budget: Annotated[int, Field(ge=0, le=MAX_DAILY_BUDGET)] | SkipJsonSchema[None] = None
    monthly_token_budget: Annotated[int, Field(ge=0, le=MAX_MONTHLY_BUDGET)] | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _not_null(self) -> BedrockSettingUpdate:
        # The stored setting is merged with model_copy (no validation): a null sent for a field
        # that BedrockSetting types as bool or int would be stored, and answered, as null.
        for name in NOT_NULL:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


NOT_NULL = ("enabled", "daily_token_budget", "monthly_token_budget")


class BedrockUsage(Model):
    """One UTC day's use: tokens from Converse's `usage`, calls made, and how often the local
    answer stood in, by reason (`throttled`, `timeout`, `access_denied`, `invalid_request`,
    `unavailable`, `invalid_answer`; and, no call made, `budget_exhausted`, `paused`)."""

    day: date
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    cache_hits: int = Field(default=0, description="Answers reused from the cache (no call, no tokens)")
    fallbacks: dict[str, int] = Field(default_factory=dict)


class BedrockMonthUsage(Model):
    """One UTC calendar month's tokens and calls (`month`: YYYY-MM)."""

    month: str
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


class BedrockStatus(Model):
    """`GET /ai/bedrock` and `PUT /ai/bedrock`."""

    setting: BedrockSetting
    effective_model_id: str
    effective_region: str
    status: Status = Field(
        description="off, on, or budget_exhausted (no calls until the next UTC day, or month)"
    )
    usage: BedrockUsage
    month_usage: BedrockMonthUsage
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
    cache: BedrockAnswerCache | None = None
    """Answers by prompt hash (None: no reuse)."""
    now: Callable[[], float] = time.time


def _setting(item: Item | None) -> tuple[BedrockSetting, int]:
    if item is None:
        return BedrockSetting(), 0
    return (
        BedrockSetting(
            enabled=bool(item.get("enabled")),
            model_id=item.get("model_id"),
            region=item.get("region"),
            daily_token_budget=int(item.get("daily_token_budget", DEFAULT_DAILY_BUDGET)),
            monthly_token_budget=int(item.get("monthly_token_budget", DEFAULT_MONTHLY_BUDGET)),
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
        cache_hits=int(item.get("cache_hits") or 0),
        fallbacks={
            str(name).removeprefix("fallback_"): int(count)
            for name, count in sorted(item.items())
            if str(name).startswith("fallback_")
        },
    )


def _spent(item: Item | None) -> int:
    """Tokens counted against a budget: `spent` (reservations included), or, on items written
    before reservations, input + output."""
    item = item or {}
    if "spent" in item:
        return int(item["spent"])
    return int(item.get("input_tokens") or 0) + int(item.get("output_tokens") or 0)


def _status(setting: BedrockSetting, day: Item | None, month: Item | None) -> Status:
    if not setting.enabled:
        return "off"
    if (
        setting.daily_token_budget - _spent(day) < MAX_ANSWER_TOKENS
        or setting.monthly_token_budget - _spent(month) < MAX_ANSWER_TOKENS
    ):
        return "budget_exhausted"
    return "on"


def _answer(setting: BedrockSetting, version: int, tenant_id: str, deps: BedrockDeps) -> BedrockStatus:
    day = deps.today()
    month = day.isoformat()[:7]
    day_item = deps.store.get_usage(tenant_id, day.isoformat())
    month_item = deps.store.get_month(tenant_id, month) or {}
    return BedrockStatus(
        setting=setting,
        effective_model_id=setting.model_id or deps.default_model_id,
        effective_region=setting.region or deps.default_region,
        status=_status(setting, day_item, month_item),
        usage=_usage(day_item, day),
        month_usage=BedrockMonthUsage(
            month=month,
            input_tokens=int(month_item.get("input_tokens") or 0),
            output_tokens=int(month_item.get("output_tokens") or 0),
            calls=int(month_item.get("calls") or 0),
        ),
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


def _luhn(digits: str) -> bool:
    """ISO/IEC 7812-1 check digit (payment card numbers)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class Scrubber:
    """Personal data out of prompt text, into numbered placeholders (issue 14 point 4).

    `scrubber(text)` returns `text` with email addresses as `[EMAIL_n]`, IBANs as `[IBAN_n]`,
    card numbers (13 to 19 digits passing the Luhn check) as `[CARD_n]` and other runs of 8+
    digits (phone, account numbers) as `[PHONE_n]`; one scrubber numbers across every text it is
    given, and the same value always gets the same placeholder. `placeholders` maps each
    placeholder made to its original (for `restore`)."""

    def __init__(self) -> None:
        self.placeholders: dict[str, str] = {}
        self._made: dict[str, str] = {}

    def _placeholder(self, kind: str, original: str) -> str:
        made = self._made.get(original)
        if made is None:
            count = sum(1 for key in self.placeholders if key.startswith(f"[{kind}_"))
            made = f"[{kind}_{count + 1}]"
            self._made[original] = made
            self.placeholders[made] = original
        return made

    def _number(self, match: re.Match[str]) -> str:
        original = match.group(0)
        digits = re.sub(r"\D", "", original)
        kind = "CARD" if 13 <= len(digits) <= 19 and _luhn(digits) else "PHONE"
        return self._placeholder(kind, original)

    def __call__(self, text: str) -> str:
        text = _ADDRESS.sub(lambda m: self._placeholder("EMAIL", m.group(0)), text)
        text = _IBAN.sub(lambda m: self._placeholder("IBAN", m.group(0)), text)
        return _DIGITS.sub(self._number, text)


def scrub(text: str) -> tuple[str, dict[str, str]]:
    """`text` scrubbed by a new `Scrubber`, and its placeholder map (`[EMAIL_1]` -> original)."""
    scrubber = Scrubber()
    return scrubber(text), scrubber.placeholders


def _restored(value: object, placeholders: Mapping[str, str]) -> object:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: placeholders.get(m.group(0), m.group(0)), value)
    if isinstance(value, list):
        return [_restored(item, placeholders) for item in value]
    if isinstance(value, dict):
        return {key: _restored(item, placeholders) for key, item in value.items()}
    if isinstance(value, BaseModel):
        return restore(value, placeholders)
    return value


def restore(answer: A, placeholders: Mapping[str, str]) -> A:
    """`answer` with the placeholders of `placeholders` in its string fields (nested lists,
    dicts and models too) replaced by their originals; placeholders the scrub did not make stay
    as they are. The answer was validated before: originals are the user's own text."""
    if not placeholders:
        return answer
    return answer.model_copy(
        update={name: _restored(getattr(answer, name), placeholders) for name in type(answer).model_fields}
    )


def _truncated(text: str | None, scrubber: Scrubber) -> str:
    return scrubber((text or "")[:MAX_PROMPT_CHARS])


class _Call:
    """One budgeted call for a tenant (see the module doc): `ask` answers from the cache, or
    reserves the call's tokens, calls, and settles what it used."""

    def __init__(self, tenant_id: str, deps: BedrockDeps) -> None:
        self.tenant_id = tenant_id
        self.deps = deps
        self.day = deps.today().isoformat()
        self.month = self.day[:7]
        self.setting, _ = _setting(deps.store.get_setting(tenant_id))

    @property
    def enabled(self) -> bool:
        return self.setting.enabled

    @property
    def model_id(self) -> str:
        return self.setting.model_id or self.deps.default_model_id

    def adapter(self) -> BedrockConverse:
        return self.deps.converse(self.setting.region or self.deps.default_region)

    def _skip(self, reason: str) -> str:
        self.deps.store.add_usage(self.tenant_id, self.day, input_tokens=0, output_tokens=0, fallback=reason)
        return f"skipped:{reason}"

    def ask(
        self,
        system: str,
        prompt: str,
        answer_model: type[A],
        max_tokens: int = MAX_ANSWER_TOKENS,
        placeholders: Mapping[str, str] | None = None,
    ) -> tuple[A | None, str]:
        """The model's answer and how it came: `used`, `cached`; or None and why not:
        `skipped:paused`, `skipped:budget_exhausted`, `fallback:<reason>`. `max_tokens` bounds
        the answer (and is part of what the call reserves). The answer is cached as the model
        gave it (the key is the scrubbed prompt) and returned with `placeholders` restored.
        Never raises for a Bedrock failure. Call only when `enabled`."""
        from mailbridge.providers.bedrock import BedrockFailure
        from mailbridge.store.bedrock import BudgetRefused

        key = hashlib.sha256(
            json.dumps([self.model_id, system, prompt, answer_model.__name__]).encode()
        ).hexdigest()
        now = int(self.deps.now())
        cached = self.deps.cache.get_answer(self.tenant_id, key, now) if self.deps.cache else None
        if cached is not None:
            self.deps.store.count_cache_hit(self.tenant_id, self.day)
            return restore(answer_model.model_validate_json(cached), placeholders or {}), "cached"
        if self.deps.clock() < self.deps.paused_until:
            return None, self._skip("paused")
        reserved = math.ceil((len(system) + len(prompt)) / CHARS_PER_TOKEN) + max_tokens
        try:
            self.deps.store.reserve(
                self.tenant_id,
                self.day,
                self.month,
                reserved,
                daily_budget=self.setting.daily_token_budget,
                monthly_budget=self.setting.monthly_token_budget,
            )
        except BudgetRefused:
            return None, self._skip("budget_exhausted")
        try:
            answer = self.adapter().converse_json(
                self.model_id, system, prompt, answer_model, max_tokens=max_tokens
            )
        except BedrockFailure as failure:
            self._done(reserved, failure.usage.input_tokens, failure.usage.output_tokens, failure.reason)
            return None, f"fallback:{failure.reason}"
        self._done(reserved, answer.usage.input_tokens, answer.usage.output_tokens, None)
        if self.deps.cache is not None:
            self.deps.cache.put_answer(
                self.tenant_id, key, answer.answer.model_dump_json(), now + CACHE_SECONDS
            )
        return restore(answer.answer, placeholders or {}), "used"

    def _done(
        self, reserved: int, input_tokens: int, output_tokens: int, fallback: FailureReason | None
    ) -> None:
        if fallback in PAUSE_AFTER:
            self.deps.paused_until = self.deps.clock() + PAUSE_SECONDS
        self.deps.store.settle(
            self.tenant_id,
            self.day,
            self.month,
            reserved=reserved,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
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
    "notification, finance, calendar, automated, personal, spam or other. Answer by calling the "
    "tool with the category and your confidence (a number from 0 to 1)."
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
    if deps is None or not unsure(local):
        return local
    call = _Call(tenant_id, deps)
    if not call.enabled:
        return local
    sender = message.from_[0].address if message.from_ and message.from_[0].address else ""
    scrubber = Scrubber()
    prompt = (
        "TASK: categorize\n"
        f"Subject: {scrubber((message.subject or '')[:300])}\n"
        f"From domain: {sender.rpartition('@')[2][:200]}\n"
        f"EMAIL:\n{_truncated(message.text_body, scrubber)}"
    )
    answer, how = call.ask(_CATEGORIZE_SYSTEM, prompt, CategoryAnswer, placeholders=scrubber.placeholders)
    if answer is None:
        return _with_reason(local, f"bedrock:{how}")
    category = answer.category
    reason = f"bedrock:cached:{category}" if how == "cached" else f"bedrock:{category}"
    decided = local.model_copy(
        update={
            "category": category,
            "is_spam": category == "spam",
            "is_lead": local.is_lead and category == "sales",
            "confidence": round(answer.confidence, 4),
            "reasons": [reason, *local.reasons],
        }
    )
    return Categorization.model_validate(decided.model_dump())


def _with_reason(local: Categorization, reason: str) -> Categorization:
    return local.model_copy(update={"reasons": [*local.reasons, reason]})


def ask_json(
    tenant_id: str,
    deps: BedrockDeps | None,
    system: str,
    prompt: str,
    answer_model: type[AnswerT],
    placeholders: Mapping[str, str] | None = None,
) -> tuple[AnswerT | None, str | None]:
    """One budgeted Converse call for the assist routes (the same cache, daily and monthly budget
    reservation and pause as categorization and leads): `(answer, None)` when Bedrock answered
    (or its cached answer), `(None, None)` when the tenant's setting is off (or no deps),
    `(None, "skipped:<reason>")` when the budget or a pause stopped the call,
    `(None, "fallback:<reason>")` when it failed (`BedrockFailure.reason`, `invalid_answer`
    included). `prompt` is sent as given: scrub it first (`Scrubber`) and pass the scrubber's
    `placeholders`, restored in the answer's strings. Never raises for a Bedrock failure."""
    if deps is None:
        return None, None
    call = _Call(tenant_id, deps)
    if not call.enabled:
        return None, None
    answer, how = call.ask(system, prompt, answer_model, MAX_ASSIST_TOKENS, placeholders)
    if answer is not None:
        return answer, None
    return None, how


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
    "You read the end of one email and name its sender. Answer by calling the tool with name, "
    "title, company and website; each a string as written in the email, or null when the email "
    "does not say."
)


def fill_lead(tenant_id: str, email: Email, lead: Lead, deps: BedrockDeps | None) -> tuple[Lead, str | None]:
    """The lead with the fields the rules left empty filled by Bedrock (`source: model`), and
    what Bedrock did: None (not asked: nothing missing, or the setting is off), `used`,
    `cached`, `skipped:budget_exhausted`, `skipped:paused` or `fallback:<reason>`. Never raises
    for a Bedrock failure."""
    from mailbridge.ai.lead import LeadField, clean_value, website_of

    missing = [name for name in LEAD_FIELDS if getattr(lead, name) is None]
    if deps is None or not missing:
        return lead, None
    call = _Call(tenant_id, deps)
    if not call.enabled:
        return lead, None
    text = email.signature or email.text_body or ""
    scrubber = Scrubber()
    prompt = (
        f"TASK: lead\nFind: {', '.join(missing)}\nEMAIL:\n{_truncated(text[-MAX_PROMPT_CHARS:], scrubber)}"
    )
    answer, how = call.ask(_LEAD_SYSTEM, prompt, LeadAnswer, placeholders=scrubber.placeholders)
    if answer is None:
        return lead, how
    filled: dict[str, LeadField] = {}
    for name in missing:
        value = clean_value(getattr(answer, name) or "")
        if name == "website" and value:
            value = website_of(value) or ""
        if value and not _PLACEHOLDER.search(value):
            filled[name] = LeadField(value=value, confidence=MODEL_CONFIDENCE, source="model")
    return lead.model_copy(update=filled), how
