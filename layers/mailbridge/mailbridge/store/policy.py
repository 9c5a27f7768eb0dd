"""Settings table, sk = POLICY#crm: the tenant's matching policy (absent: the defaults)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mailbridge.crm.policy import Blocklist, CrmSettings
from mailbridge.store.base import DynamoRepository, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

POLICY_SK = "POLICY#crm"


class PolicyStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_policy(self, tenant_id: str) -> CrmSettings | None:
        item = self.get(tenant_pk(tenant_id), POLICY_SK, consistent=True)
        if item is None:
            return None
        own = item.get("own_domains")
        blocklist = item.get("blocklist") or {}
        return CrmSettings(
            auto_create=item.get("auto_create") or "sent",
            own_domains=None if own is None else [str(d) for d in own],
            blocklist=Blocklist.model_validate(
                {
                    "addresses": list(blocklist.get("addresses") or ()),
                    "domains": list(blocklist.get("domains") or ()),
                }
            ),
            version=int(item["version"]),
            updated_at=datetime.fromisoformat(item["updated_at"]) if item.get("updated_at") else None,
            updated_by=item.get("updated_by"),
        )

    def save_policy(
        self, tenant_id: str, settings: CrmSettings, *, expected_version: int | None
    ) -> CrmSettings:
        """`expected_version` None: the tenant still has the defaults (no item yet)."""
        item = {
            "pk": tenant_pk(tenant_id),
            "sk": POLICY_SK,
            "auto_create": settings.auto_create,
            "own_domains": settings.own_domains,
            "blocklist": settings.blocklist.model_dump(),
            "updated_at": settings.updated_at.isoformat() if settings.updated_at else None,
            "updated_by": settings.updated_by,
        }
        stored = self.replace(item, expected_version=expected_version)
        return settings.model_copy(update={"version": int(stored["version"])})
