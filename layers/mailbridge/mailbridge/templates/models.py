"""What the `/templates` routes accept and answer.

A template holds a `subject`, an `html` and/or a `text` body (Jinja sources rendered in the
sandbox of `mailbridge.automations.templating`), the `variables` it declares with their
defaults, and optionally A/B `variants` (`A`, `B`, ... each overriding subject/html/text, with a
`split` weight; the weights sum to 100). Every save is an immutable version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

from mailbridge.automations.templating import MAX_TEMPLATE_CHARS
from mailbridge.crm.models import CONTACT_ID
from mailbridge.models.base import Model
from mailbridge.models.fields import HeaderText, MultiLine, SingleLine

TEMPLATE_ID = r"^tpl_[0-9a-f]{20}$"
VARIABLE_PATH = r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,3}$"
"""A declared variable: a name, or a dotted path into the render context (`contact.first_name`)."""
VARIANT_NAME = r"^[A-Z]$"
MAX_VARIABLES = 50
MAX_VARIANTS = 10
MIN_SAMPLE = 100
"""Sent emails each variant needs before a `winner` is named (`GET /templates/{id}/stats`)."""

SubjectSource = Annotated[HeaderText, Field(min_length=1, max_length=2000)]
BodySource = Annotated[MultiLine, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)]
WinnerMetric = Literal["reply_rate", "human_click_rate"]


class TemplateVariable(Model):
    """A variable the template uses, with the value it falls back to when the data has none
    (missing, null or empty text)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=VARIABLE_PATH, examples=["contact.first_name"])
    default: Annotated[SingleLine, Field(max_length=1000)] = ""
    description: Annotated[SingleLine, Field(max_length=500)] | None = None


class Variant(Model):
    """An A/B variant: the fields it sets replace the template's own; `split` is its share (%)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=VARIANT_NAME, examples=["A"])
    split: int = Field(ge=1, le=100, description="Percent of recipients; the variants' splits sum to 100")
    subject: SubjectSource | None = None
    html: BodySource | None = None
    text: BodySource | None = None


class TemplateFields(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Trial follow-up",
                    "subject": "{{ contact.first_name }}, how is {{ company.name }} finding the trial?",
                    "html": "<p>Hi {{ contact.first_name }},</p><p>{{ offer }}</p>",
                    "text": "Hi {{ contact.first_name }},\n\n{{ offer }}",
                    "variables": [
                        {"name": "contact.first_name", "default": "there"},
                        {"name": "company.name", "default": "your team"},
                        {"name": "offer", "default": "Shall we talk this week?"},
                    ],
                    "variants": [
                        {"name": "A", "split": 50},
                        {"name": "B", "split": 50, "subject": "Quick question, {{ contact.first_name }}"},
                    ],
                    "winner_metric": "reply_rate",
                }
            ]
        },
    )

    name: Annotated[SingleLine, Field(min_length=1, max_length=200)]
    description: Annotated[SingleLine, Field(max_length=1000)] | None = None
    subject: SubjectSource
    html: BodySource | None = None
    text: BodySource | None = None
    variables: list[TemplateVariable] = Field(default_factory=list, max_length=MAX_VARIABLES)
    variants: list[Variant] = Field(
        default_factory=list,
        max_length=MAX_VARIANTS,
        description="None, or at least two A/B variants whose splits sum to 100",
    )
    winner_metric: WinnerMetric = Field(
        default="reply_rate", description="What picks the winning variant in `GET /templates/{id}/stats`"
    )

    @model_validator(mode="after")
    def _rules(self) -> TemplateFields:
        if not (self.html or self.text):
            raise ValueError("html or text is required")
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError("each variable is declared once")
        if self.variants:
            variant_names = [v.name for v in self.variants]
            if len(self.variants) < 2 or len(set(variant_names)) != len(variant_names):
                raise ValueError("variants: none, or at least two with different names")
            if sum(v.split for v in self.variants) != 100:
                raise ValueError("the variants' splits sum to 100")
        return self


class TemplateUpdate(TemplateFields):
    """`PUT /templates/{id}`: the whole template again, with the `version` you read."""

    version: int = Field(
        ge=1, le=10**9, description="The version you read; 409 `version_conflict` if it moved"
    )


class Template(TemplateFields):
    """A template at its latest version."""

    model_config = ConfigDict(extra="ignore")

    template_id: str
    version: int = Field(description="Goes up on every save; each save is kept as an immutable version")
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class TemplateVersion(TemplateFields):
    """One immutable save of a template."""

    model_config = ConfigDict(extra="ignore")

    template_id: str
    version: int
    saved_at: datetime
    saved_by: str


class TemplateList(Model):
    items: list[Template]
    next_cursor: str | None = None


class TemplateVersionList(Model):
    items: list[TemplateVersion]
    next_cursor: str | None = None


class TemplateDeleted(Model):
    template_id: str
    deleted: bool = True


class PreviewRequest(Model):
    """`POST /templates/{id}/preview`: render for a CRM contact (`contact_id`: its company, its
    latest open deal, your sender address) or for sample `data` (`{contact: {...}, company:
    {...}, deal: {...}, sender: {...}, <variable>: ...}`), at `version` (default: the latest)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"contact_id": "ct_5f0c1d2e3a4b5c6d7e8f9a0b", "version": 2, "variant": "B"},
                {"data": {"contact": {"first_name": "Ada"}, "offer": "20% off"}},
            ]
        },
    )

    contact_id: str | None = Field(
        default=None,
        pattern=CONTACT_ID.pattern,
        description="A CRM contact (`ct_` and 26 hex digits); another value is 422 naming the field",
    )
    data: dict[str, JsonValue] | None = None
    version: int | None = Field(default=None, ge=1, le=10**9)
    variant: str | None = Field(default=None, pattern=VARIANT_NAME, description="Default: the first variant")

    @model_validator(mode="after")
    def _one_source(self) -> PreviewRequest:
        if self.contact_id is not None and self.data is not None:
            raise ValueError("give contact_id or data, not both")
        return self


class Rendered(Model):
    """A template rendered for one recipient."""

    template_id: str
    version: int
    variant: str | None = Field(description="The A/B variant rendered; null for a template without variants")
    subject: str
    html: str | None = None
    text: str | None = None
    defaulted: list[str] = Field(
        default_factory=list, description="Declared variables that had no value and took their default"
    )


class VariantStats(Model):
    variant: str | None
    sent: int = Field(description="Emails sent (or queued) with this variant")
    replies: int = Field(description="Of those, the emails answered: an inbound email later in the thread")
    human_clicks: int = Field(description="Of those, the emails with at least one click classified human")
    reply_rate: float = Field(description="replies / sent (0 when nothing was sent)")
    human_click_rate: float = Field(description="human_clicks / sent (0 when nothing was sent)")


class TemplateStats(Model):
    template_id: str
    winner_metric: WinnerMetric
    min_sample: int = Field(description="Sent emails each variant needs before a winner is named")
    variants: list[VariantStats]
    winner: str | None = Field(description="The variant with the highest `winner_metric`, or null")
    reason: Literal["decided", "no_variants", "not_enough_data", "tie"] = Field(
        description="Why `winner` is what it is"
    )
