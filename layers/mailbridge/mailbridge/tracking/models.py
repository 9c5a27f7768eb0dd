"""Tracking models: the per-message override, the stored link set, hits and engagement."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model

HitKind = Literal["open", "click"]
Classification = Literal["human", "proxy", "scanner"]
Method = Literal["GET", "HEAD"]


class TrackingOverride(Model):
    """`tracking` of `POST /emails/send`: overrides the tenant default (the `tracking` feature
    flag) for this message; a field left out keeps the default. Recipients whose contact has
    `do_not_track` are never tracked, whatever this says."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"opens": True, "clicks": False}]}
    )

    opens: bool | None = Field(default=None, description="Add the 1x1 open pixel")
    clicks: bool | None = Field(default=None, description="Rewrite http(s) links to /t/c/{token}")


class TrackedMessage(Model):
    """What is stored at send time for one tracked email: the original URLs by link index.

    The click token carries only the index; the URL is read from here, never from the request."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    email_id: str
    opens: bool
    clicks: bool
    links: list[str] = Field(default_factory=list)


class Evidence(Model):
    """What a hit showed. `seconds_since_delivery` is None while the email has no `sent_at`."""

    model_config = ConfigDict(frozen=True)

    method: Method
    user_agent: str = ""
    network: str | None = Field(default=None, description="Client IP truncated to /24 (IPv4) or /48 (IPv6)")
    seconds_since_delivery: float | None = None
    prefetch: str | None = Field(default=None, description="`Sec-Purpose` / `Purpose` / `X-Moz` header value")


class Hit(Model):
    """One stored hit (`kind` open or click; `link` the link index of a click)."""

    model_config = ConfigDict(frozen=True)

    hit_id: str
    email_id: str
    kind: HitKind
    link: int | None = None
    at: datetime
    evidence: Evidence
    classification: Classification
    reasons: list[str]


class EngagementTimelineItem(Model):
    """A human open or click of an email linked to the contact, on its timeline at `date` (the
    hit's time). Replies are on the timeline as the inbound emails they are."""

    type: Literal["engagement"] = "engagement"
    hit_id: str
    kind: HitKind
    email_id: str
    url: str | None = Field(default=None, description="A click: the link's URL")
    date: datetime


class LinkClicks(Model):
    link: int
    url: str
    human_clicks: int


class Engagement(Model):
    """`engagement` of `GET /emails/{id}` (outbound, tracked mail): what is counted and the score's
    formula are in `mailbridge.tracking.engagement` (and the README)."""

    delivered: bool = Field(description="Left and did not bounce")
    bounces: int = Field(ge=0, le=1, description="1 when the email failed or a DSN reported it undelivered")
    human_opens: int
    machine_opens: int
    human_clicks: list[LinkClicks]
    machine_clicks: int
    replies: int = Field(description="Inbound, non-automatic emails later in its thread, bounces aside")
    score: int = Field(ge=0, le=100)
