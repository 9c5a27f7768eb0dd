"""The audit entry: ids, codes and coarse request facts only.

An entry never holds a request body, an address, a subject or a token: `resource_ids` are the
route's path parameters (ids the route declares), the network is the caller's address truncated
like tracking hits' (/24 IPv4, /48 IPv6) and the user agent is reduced to its family.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from mailbridge.models.base import Model
from mailbridge.store.pagination import Page

AuditKind = Literal["write", "read"]
"""`write`: a request that changes state; `read`: a read of message bodies or credentials."""

Outcome = Literal["success", "failure"]


def iso_ms(at: datetime) -> str:
    """`at` (timezone-aware) as ISO 8601 UTC with milliseconds and `Z`, e.g.
    `2026-11-30T09:12:03.123Z`: fixed width, so it sorts as text."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class AuditEntry(Model):
    """One audited request (or one audited service action, e.g. a read of another user's body)."""

    tenant_id: str = Field(description="The caller's tenant (JWT `tenant_id`)")
    actor: str = Field(description="JWT `sub` of the caller; `public` on routes without a token")
    role: str | None = Field(default=None, description="JWT role of the caller; null on public routes")
    action: str = Field(description="The route's OpenAPI operationId (or a service action name)")
    kind: AuditKind
    resource_ids: dict[str, str] = Field(
        default_factory=dict, description="The route's path parameters (ids; never body values)"
    )
    at: datetime = Field(description="When the request finished, UTC, millisecond precision")
    network: str | None = Field(
        default=None, description="The source IP truncated to its /24 (IPv4) or /48 (IPv6) network"
    )
    user_agent_family: str = Field(default="none", description="Browser / client family of the user agent")
    status: int = Field(description="The HTTP status answered")
    error_code: str | None = Field(default=None, description="The error `code` answered, if any")
    request_id: str = Field(description="API Gateway's request id")
    result: Outcome | None = Field(
        default=None,
        description="The outcome where the status does not tell it (the OAuth callback redirects "
        "with `outcome=error`); None: from the status",
    )

    @property
    def outcome(self) -> Outcome:
        if self.result is not None:
            return self.result
        return "success" if self.status < 400 else "failure"

    def at_iso(self) -> str:
        return iso_ms(self.at)


class AuditRecord(Model):
    """An entry as `GET /audit` answers it."""

    at: str = Field(description="ISO 8601 UTC with milliseconds", examples=["2026-11-30T09:12:03.123Z"])
    actor: str
    role: str | None = None
    action: str = Field(examples=["patch_email_emails__email_id__patch"])
    kind: AuditKind
    resource_ids: dict[str, str]
    outcome: Outcome
    status: int
    error_code: str | None = None
    network: str | None = None
    user_agent_family: str
    request_id: str


class AuditPage(Page[AuditRecord]):
    """A page of audit records, newest first."""
