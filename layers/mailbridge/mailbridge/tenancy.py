"""Who is calling: tenant, role and subject, taken only from JWT claims API Gateway verified.

Nothing in a path, query or body can name a tenant; every store key is built from this context.
Cognito ID tokens carry custom attributes as `custom:tenant_id` / `custom:role`; external OIDC
issuers are expected to emit `tenant_id` / `role` directly. Both spellings are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, PrivateAttr

from mailbridge.errors import Forbidden
from mailbridge.models.base import Model

# Checked with fullmatch: `$` would also match before a trailing newline ("acme\n").
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Any printable text (Cognito's `sub` is a UUID; other issuers use other forms), no controls.
_SUBJECT = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,256}")


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, minimum: Role) -> bool:
        return self.rank >= minimum.rank


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class TenantContext(Model):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    role: Role
    subject: str
    # What the caller may see of the tenant's mailboxes (mailbridge.access), read on first use.
    _access_loader: Callable[[], Any] | None = PrivateAttr(default=None)
    _access: Any = PrivateAttr(default=None)

    def load_access_with(self, loader: Callable[[], Any]) -> TenantContext:
        """Attach how this caller's mailbox access is read (the API does, per request); a context
        without one is a system context (a sync, a rule run), which sees every mailbox."""
        self._access_loader = loader
        self._access = None
        return self

    def cached_access(self) -> Any:
        """The attached loader's answer, read once per context; None without a loader."""
        if self._access is None and self._access_loader is not None:
            self._access = self._access_loader()
        return self._access

    def require(self, minimum: Role) -> None:
        if not self.role.at_least(minimum):
            raise Forbidden(f"this action needs the {minimum.value} role or higher", code="role_required")


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name, claims.get(f"custom:{name}"))
    return value if isinstance(value, str) and value else None


def tenant_from_claims(claims: Mapping[str, Any] | None) -> TenantContext:
    """Build the caller's context; a verified token without a usable tenant or role is refused."""
    claims = claims or {}
    tenant_id = _claim(claims, "tenant_id")
    role = _claim(claims, "role")
    subject = _claim(claims, "sub")
    if tenant_id is None or not _TENANT_ID.fullmatch(tenant_id):
        raise Forbidden("the token carries no valid tenant_id claim", code="no_tenant")
    if role is None or role not in Role.__members__.values():
        raise Forbidden("the token carries no valid role claim", code="no_role")
    if subject is None or not _SUBJECT.fullmatch(subject):
        raise Forbidden("the token carries no valid subject", code="no_subject")
    return TenantContext(tenant_id=tenant_id, role=Role(role), subject=subject)
