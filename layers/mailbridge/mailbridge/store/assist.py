"""Settings table, assist items: the actions applied through `POST /ai/assist/apply`.

Item (pk = TENANT#{tenant}): `AIACTION#{action_id}` with `type`, `payload_digest` (of the action
as applied), `result_id`, `result` (the JSON of what was created or changed) and `applied_at`.
Written once, conditionally (`attribute_not_exists`): a repeated apply of the same `action_id`
reads it back instead of acting again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

ACTION_PREFIX = "AIACTION#"


class AssistActionStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_action(self, tenant_id: str, action_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), ACTION_PREFIX + action_id, consistent=True)

    def put_action(self, tenant_id: str, action_id: str, values: dict[str, Any]) -> bool:
        """Record an applied action; False (nothing written) when one with this id is stored."""
        try:
            self.table.put_item(
                Item={"pk": tenant_pk(tenant_id), "sk": ACTION_PREFIX + action_id, **values},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
