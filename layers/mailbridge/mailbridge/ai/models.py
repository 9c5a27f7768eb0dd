"""What categorization takes besides the message, and what it answers."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model

Category = Literal[
    "sales",
    "support",
    "marketing",
    "newsletter",
    "notification",
    "finance",
    "calendar",
    "automated",
    "personal",
    "spam",
    "other",
]
CATEGORIES: tuple[Category, ...] = (
    "sales",
    "support",
    "marketing",
    "newsletter",
    "notification",
    "finance",
    "calendar",
    "automated",
    "personal",
    "spam",
    "other",
)


class SenderHistory(Model):
    """The sender's history with this tenant, counted by the caller (the store), never guessed here.

    `received`: emails the tenant received from this sender before; `sent`: emails the tenant
    sent to this sender (a reply or an outbound conversation); `known_contact`: the sender is a
    CRM contact of the tenant.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    received: int = Field(default=0, ge=0)
    sent: int = Field(default=0, ge=0)
    known_contact: bool = False


class Categorization(Model):
    """The decision for one email.

    `category` is one of `CATEGORIES`; `confidence` is in [0, 1] (the probability of the rule or
    model that decided the category). `reasons` are short machine-readable strings naming what
    decided, strongest first: `header:<name>` (a header rule), `dsn:delivery-status`,
    `report:<type>`, `calendar:<method>`, `history:<fact>`, `model:<task>:<probability>`,
    `feature:<name>` (the features that moved a model or keyword rule most), `rule:<name>`.
    """

    model_config = ConfigDict(frozen=True)

    category: Category
    is_spam: bool
    is_bulk: bool
    is_automated: bool
    needs_reply: bool
    action_requested: bool
    is_lead: bool
    confidence: float = Field(ge=0.0, le=1.0)
    reasons: list[str] = Field(default_factory=list)
