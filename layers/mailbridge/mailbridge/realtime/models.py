"""What the notifier reads from its queue: the bus event as EventBridge delivers it to SQS."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model

FRAME_TYPES: tuple[str, ...] = (
    "email.received",
    "email.updated",
    "notification.created",
    "account.reauth_required",
    "account.sync_status_changed",
)
"""The bus `detail-type`s the NotifierRule forwards; each reaches the client as the frame's `type`."""


class EventDetail(Model):
    """`detail` of a domain event (mailbridge.bus): `{tenant_id, id, occurred_at, idempotency_key, data}`."""

    model_config = ConfigDict(extra="ignore")

    tenant_id: str = Field(min_length=1)
    id: str = ""
    occurred_at: str = ""
    idempotency_key: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class BusEvent(Model):
    """An EventBridge event (`detail-type`, `detail`) as the rule's SQS target receives it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    detail_type: str = Field(alias="detail-type")
    detail: EventDetail


PostOutcome = Literal["posted", "gone", "failed"]
"""What PostToConnection answered: 200, 410 Gone, or another error."""


class Delivery(Model):
    """What one event's fan-out did: frames posted, gone connections deleted (410), other failures."""

    posted: int = 0
    gone: int = 0
    failed: int = 0
