"""Settings table, Bedrock items: the tenant's Bedrock setting and its daily token usage.

Item types (pk = TENANT#{tenant}):
  AIBEDROCK          the setting: `enabled`, `model_id`, `region`, `daily_token_budget`, `version`
  AIUSAGE#{UTC day}  that day's usage, counted with ADD (concurrent calls add up, never overwrite):
                     `input_tokens`, `output_tokens`, `calls`, and `fallback_{reason}` per reason
                     the local answer stood in (mailbridge.providers.bedrock.FailureReason,
                     `budget_exhausted` or `paused`: no call made)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, Item, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SETTING_SK = "AIBEDROCK"
USAGE_PREFIX = "AIUSAGE#"


class BedrockStore(DynamoRepository):
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

    def get_usage(self, tenant_id: str, day: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), USAGE_PREFIX + day, consistent=True)

    def add_usage(
        self, tenant_id: str, day: str, *, input_tokens: int, output_tokens: int, fallback: str | None
    ) -> None:
        """Count one Bedrock call's tokens (a call that was never made counts 0 tokens and no
        call) and, when the local answer stood in, one fallback of that reason."""
        counts: dict[str, int] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        if input_tokens or output_tokens or fallback not in ("budget_exhausted", "paused"):
            counts["calls"] = 1
        if fallback:
            counts[f"fallback_{fallback}"] = 1
        names = {f"#c{i}": name for i, name in enumerate(counts)}
        values = {f":c{i}": value for i, value in enumerate(counts.values())}
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": USAGE_PREFIX + day},
            UpdateExpression="ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
