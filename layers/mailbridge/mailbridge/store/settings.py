"""Settings table: per-tenant configuration items (pk = TENANT#{tenant}, sk = FEATURES | POLICY#...)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from mailbridge.models.features import FeatureFlags, FeatureSettings
from mailbridge.store.base import DynamoRepository, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

FEATURES_SK = "FEATURES"


class FeatureStore(Protocol):
    def get_features(self, tenant_id: str) -> FeatureSettings | None: ...

    def save_features(
        self, tenant_id: str, settings: FeatureSettings, *, expected_version: int | None
    ) -> FeatureSettings: ...


class DynamoFeatureStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_features(self, tenant_id: str) -> FeatureSettings | None:
        item = self.get(tenant_pk(tenant_id), FEATURES_SK, consistent=True)
        if item is None:
            return None
        return FeatureSettings(
            flags=FeatureFlags.model_validate(item["flags"]),
            version=int(item["version"]),
            updated_at=datetime.fromisoformat(item["updated_at"]) if item.get("updated_at") else None,
            updated_by=item.get("updated_by"),
        )

    def save_features(
        self, tenant_id: str, settings: FeatureSettings, *, expected_version: int | None
    ) -> FeatureSettings:
        item = {
            "pk": tenant_pk(tenant_id),
            "sk": FEATURES_SK,
            "flags": settings.flags.model_dump(),
            "updated_at": settings.updated_at.isoformat() if settings.updated_at else None,
            "updated_by": settings.updated_by,
        }
        stored = self.replace(item, expected_version=expected_version)
        return settings.model_copy(update={"version": int(stored["version"])})
