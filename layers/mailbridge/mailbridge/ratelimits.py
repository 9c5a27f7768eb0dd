"""Per-tenant rate limits by route class, and each tenant's overrides (issue 19 point 3).

Every API request with a bearer token counts against one class of its tenant, once, in the api
entry (`mailbridge.api.limits.count_request`, run beside the role check), except the routes whose
service counts its own class (they document 429 `rate_limited` themselves): calendar event writes
(`event_writes`) and ICS imports/exports (`ics`, `mailbridge.calendar.limits`), automation rule
saves (`automation_saves`, `mailbridge.automations.service`) and AI requests (`ai`,
`mailbridge.ai.wiring`). Everything else is a `reads` (GET/HEAD) or `writes` (any other method)
call. One fixed one-minute window per tenant and class (`mailbridge.store.ratelimit`: one
conditional `UpdateItem` per request). Past the limit: 429 `rate_limited` with Retry-After.

The defaults (uses a minute per tenant):
- `automation_saves` 20, `event_writes` 20, `ai` 10, `ics` 5: the seeds' figures.
- `reads` 6000 (100 a second): a team of 100 people each opening a page a second (a page is a
  few reads: list, message, timeline) stays under it, while a runaway client polling in a tight
  loop is stopped within the minute; a tenant that needs more gets an override.
- `writes` 3000 (50 a second): a person changes a record every few seconds at most, so this is
  a team of hundreds; bulk changes go through imports, campaigns and automations (queues), not
  one HTTP call per record.

An admin changes a tenant's figures with `PUT /settings/rate-limits` (stored in the settings
table); a class left out keeps its default. The api entry keeps a tenant's figures for 30 s per
container (`store.ratelimit.OVERRIDES_CACHE_SECONDS`): the container that served the PUT applies
them at once, every other within 30 s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model
from mailbridge.store.ratelimit import RateLimitSettingsStore
from mailbridge.tenancy import Role, TenantContext

RouteClass = Literal["reads", "writes", "ai", "event_writes", "ics", "automation_saves"]

DEFAULTS: dict[str, int] = {
    "reads": 6000,
    "writes": 3000,
    "ai": 10,
    "event_writes": 20,
    "ics": 5,
    "automation_saves": 20,
}
MAX_LIMIT = 100_000
"""The largest figure an override may set (uses a minute), ~1,700 a second."""

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Uses a minute per tenant")]


class RateLimitFigures(Model):
    """Uses a minute per tenant, by route class; in an update, a class left out (or null) keeps
    its default."""

    model_config = ConfigDict(extra="forbid")

    reads: Limit | None = Field(default=None, description="GET and HEAD routes without a class of their own")
    writes: Limit | None = Field(
        default=None, description="Other methods on routes without a class of their own"
    )
    ai: Limit | None = Field(default=None, description="AI requests (`/ai/*`)")
    event_writes: Limit | None = Field(default=None, description="Calendar event writes")
    ics: Limit | None = Field(default=None, description="ICS imports and exports")
    automation_saves: Limit | None = Field(default=None, description="Automation rule saves")

    def given(self) -> dict[str, int]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class RateLimitSettings(Model):
    defaults: dict[str, int] = Field(description="The built-in figures, by class")
    overrides: dict[str, int] = Field(description="The tenant's own figures, by class")
    effective: dict[str, int] = Field(description="What applies: the override, else the default")


def _settings(overrides: dict[str, int]) -> RateLimitSettings:
    return RateLimitSettings(
        defaults=dict(DEFAULTS), overrides=overrides, effective={**DEFAULTS, **overrides}
    )


def get_rate_limits(ctx: TenantContext, store: RateLimitSettingsStore) -> RateLimitSettings:
    return _settings(store.get_overrides(ctx.tenant_id))


def put_rate_limits(
    ctx: TenantContext, figures: RateLimitFigures, store: RateLimitSettingsStore, now: datetime
) -> RateLimitSettings:
    """Replace the tenant's overrides (admin or owner); classes left out return to their default."""
    ctx.require(Role.ADMIN)
    overrides = figures.given()
    store.save_overrides(ctx.tenant_id, overrides, updated_by=ctx.subject, now=now)
    return _settings(overrides)
