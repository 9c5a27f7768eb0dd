"""The categorizer's dependencies, built once per cold start (api and categorize functions).

The model weights are not loaded here: `mailbridge.ai.model.load_weights` reads them on the first
categorization and keeps them for the container's life.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailbridge.config import get_settings

if TYPE_CHECKING:
    from mailbridge.ai.assist import AssistDeps
    from mailbridge.ai.bedrock import BedrockDeps
    from mailbridge.ai.models import Category
    from mailbridge.ai.service import CategorizeDeps
    from mailbridge.emails import CategoryCorrection
    from mailbridge.providers.bedrock import BedrockConverse
    from mailbridge.store.ai import AiRuleStore
    from mailbridge.store.base import Item
    from mailbridge.store.ratelimit import RateLimiter
    from mailbridge.tenancy import TenantContext


@lru_cache(maxsize=1)
def rule_store() -> AiRuleStore:
    from mailbridge.store.ai import AiRuleStore

    return AiRuleStore(get_settings().tables.settings)


class AiSettings(BaseSettings):
    """What only AI needs (set on ApiFunction and CategorizeFunction in template.yaml)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    categorize_queue_url: str = Field(
        default="", validation_alias="CATEGORIZE_QUEUE_URL", description="Backfill steps go here"
    )
    bedrock_model_id: str = Field(
        default="anthropic.claude-3-haiku-20240307-v1:0",
        validation_alias="BEDROCK_MODEL_ID",
        description="The template's BedrockModelId: the model a tenant's setting uses unless it names one",
    )
    bedrock_endpoint_url: str = Field(
        default="",
        validation_alias="AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        description="Empty: AWS's bedrock-runtime endpoint of the region (the local runner: its double)",
    )
    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")


@lru_cache(maxsize=1)
def ai_settings() -> AiSettings:
    return AiSettings()


AI_REQUESTS_PER_MINUTE = 10
"""The seed's figure: AI requests a tenant may make a minute (issue 14 point 7)."""


@dataclass
class AiLimits:
    """`AI_REQUESTS_PER_MINUTE` per tenant on the shared limiter (`store.ratelimit`), its counters
    in the accounts table (which has TTL on `ttl`). `now` is replaceable (tests fix the clock)."""

    limiter: RateLimiter
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def check(self, tenant_id: str) -> None:
        """Count one AI request; 429 `rate_limited` with Retry-After past the limit."""
        self.limiter.take(tenant_id, "ai", AI_REQUESTS_PER_MINUTE, self.now(), what="AI requests")


@lru_cache(maxsize=1)
def ai_limits() -> AiLimits:
    from mailbridge.store.ratelimit import RateLimiter

    return AiLimits(RateLimiter(get_settings().tables.accounts))


@lru_cache(maxsize=8)
def bedrock_converse(region: str) -> BedrockConverse:
    """The Bedrock adapter for one region (one boto3 client each, for the container's life)."""
    from mailbridge.providers.bedrock import BedrockConverse, make_client

    return BedrockConverse(make_client(region, ai_settings().bedrock_endpoint_url or None))


@lru_cache(maxsize=1)
def bedrock_deps() -> BedrockDeps:
    from mailbridge.ai.bedrock import BedrockDeps
    from mailbridge.store.bedrock import BedrockAnswerCache, BedrockStore

    settings = ai_settings()
    return BedrockDeps(
        store=BedrockStore(get_settings().tables.settings),
        cache=BedrockAnswerCache(get_settings().tables.accounts),
        converse=bedrock_converse,
        default_model_id=settings.bedrock_model_id,
        default_region=settings.region,
    )


@lru_cache(maxsize=1)
def categorize_deps() -> CategorizeDeps:
    from mailbridge.ai.service import CategorizeDeps
    from mailbridge.bus import EventPublisher
    from mailbridge.queues import StandardQueue
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.settings import DynamoFeatureStore

    settings = get_settings()
    return CategorizeDeps(
        emails=EmailStore(settings.tables.emails),
        blobs=BlobStore(settings.mail_bucket),
        rules=rule_store(),
        features=DynamoFeatureStore(settings.tables.settings),
        publisher=EventPublisher(settings.event_bus_name),
        queue=StandardQueue(url) if (url := ai_settings().categorize_queue_url) else None,
        bedrock=bedrock_deps(),
    )


def assist_deps() -> AssistDeps:
    """Smart replies and the assist panel (`mailbridge.ai.assist`): the API's own cached stores
    (not cached again here, so it follows theirs), the outbox and calendar built on first use
    (only send_email and schedule_meeting need them)."""
    from mailbridge.ai.assist import AssistDeps
    from mailbridge.api import deps
    from mailbridge.calendar.wiring import calendar_deps
    from mailbridge.store.assist import AssistActionStore

    return AssistDeps(
        emails=deps.email_store(),
        blobs=deps.blob_store(),
        crm=deps.crm_store(),
        links=deps.link_deps(),
        features=deps.feature_store(),
        actions=AssistActionStore(get_settings().tables.settings),
        publisher=deps.publisher(),
        bedrock=bedrock_deps(),
        outbox=deps.outbox_deps,
        calendar=calendar_deps,
    )


def category_corrector() -> CategoryCorrection:
    """`PATCH /emails/{id}` `category`: 404 `feature_disabled` while the ai flag is off, else
    `mailbridge.ai.service.correct_category`."""
    from mailbridge.ai.service import correct_category, require_ai

    def correct(ctx: TenantContext, item: Item, category: Category) -> dict[str, Any]:
        deps = categorize_deps()
        require_ai(ctx.tenant_id, deps.features)
        return correct_category(ctx, item, category, deps.emails, deps.rules)

    return correct


def reset() -> None:
    """Forget the cached dependencies (tests: a new cold start)."""
    ai_settings.cache_clear()
    rule_store.cache_clear()
    categorize_deps.cache_clear()
    ai_limits.cache_clear()
    bedrock_converse.cache_clear()
    bedrock_deps.cache_clear()
