"""Company enrichment items: the tenant's provider setting and the provider's answers per domain.

Settings table (pk = TENANT#{tenant}):
  AIENRICH           the setting: `enabled`, `base_url`, `api_key` (a KMS envelope, JSON of
                     `mailbridge.crypto.Envelope`, under the context {tenant_id, purpose}),
                     `version`, `updated_by`, `updated_at`
Accounts table (pk = TENANT#{tenant}; the table has TTL on `ttl`):
  ENRICH#{domain}    the provider's answer for a domain: `profile` (JSON text, or absent when no
                     company matched), `fetched_at`, `ttl` (epoch seconds: fetched_at +
                     `mailbridge.ai.enrich.CACHE_SECONDS`, or `MISS_CACHE_SECONDS` for no match).
                     The reader also checks `ttl`, since DynamoDB deletes expired items late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, Item, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SETTING_SK = "AIENRICH"
CACHE_PREFIX = "ENRICH#"


class EnrichmentSettingStore(DynamoRepository):
    """The setting, in the settings table."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_setting(self, tenant_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), SETTING_SK, consistent=True)

    def save_setting(self, tenant_id: str, values: dict[str, Any], *, expected_version: int | None) -> Item:
        """Write the setting saved at `expected_version` (None: not saved yet); `Conflict`
        (`version_conflict` / `already_exists`) when another admin saved in between."""
        return self.replace(
            {"pk": tenant_pk(tenant_id), "sk": SETTING_SK, **values}, expected_version=expected_version
        )


class EnrichmentCacheStore(DynamoRepository):
    """The provider's answers, in a table with TTL on `ttl` (the accounts table)."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_answer(self, tenant_id: str, domain: str, now: int) -> Item | None:
        """The cached answer for `domain`, unless its `ttl` (epoch seconds) has passed."""
        item = self.get(tenant_pk(tenant_id), CACHE_PREFIX + domain)
        if item is None or int(item.get("ttl") or 0) <= now:
            return None
        return item

    def put_answer(self, tenant_id: str, domain: str, profile: str | None, fetched_at: str, ttl: int) -> None:
        item: Item = {
            "pk": tenant_pk(tenant_id),
            "sk": CACHE_PREFIX + domain,
            "fetched_at": fetched_at,
            "ttl": ttl,
        }
        if profile is not None:
            item["profile"] = profile
        self.table.put_item(Item=item)

    def forget_all(self, tenant_id: str) -> None:
        """Drop every cached answer of the tenant (the provider or its key changed)."""
        from boto3.dynamodb.conditions import Key

        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in self.query_all(
                KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id))
                & Key("sk").begins_with(CACHE_PREFIX),
                ProjectionExpression="pk, sk",
            )
        ]
        with self.table.batch_writer() as batch:
            for key in keys:
                batch.delete_item(Key=key)
