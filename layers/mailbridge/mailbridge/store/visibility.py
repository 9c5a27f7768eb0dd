"""Settings table, sk = POLICY#privacy: the tenant's mailbox privacy policy (absent: the defaults,
`mailbridge.access.PrivacySettings`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mailbridge.access import PrivacySettings, Visibility
from mailbridge.store.base import DynamoRepository, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

PRIVACY_SK = "POLICY#privacy"


class DynamoPrivacyStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_privacy(self, tenant_id: str) -> PrivacySettings | None:
        item = self.get(tenant_pk(tenant_id), PRIVACY_SK, consistent=True)
        if item is None:
            return None
        return PrivacySettings(
            default_visibility=Visibility(str(item.get("default_visibility") or Visibility.METADATA)),
            admin_view="full" if item.get("admin_view") == "full" else "as_shared",
            version=int(item["version"]),
            updated_at=datetime.fromisoformat(item["updated_at"]) if item.get("updated_at") else None,
            updated_by=item.get("updated_by"),
        )

    def save_privacy(
        self, tenant_id: str, settings: PrivacySettings, *, expected_version: int | None
    ) -> PrivacySettings:
        """`expected_version` None: the tenant still has the defaults (no item yet)."""
        item = {
            "pk": tenant_pk(tenant_id),
            "sk": PRIVACY_SK,
            "default_visibility": settings.default_visibility.value,
            "admin_view": settings.admin_view,
            "updated_at": settings.updated_at.isoformat() if settings.updated_at else None,
            "updated_by": settings.updated_by,
        }
        stored = self.replace(item, expected_version=expected_version)
        return settings.model_copy(update={"version": int(stored["version"])})
