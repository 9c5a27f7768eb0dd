"""Receipts of provider pushes, in the idempotency table: what makes a redelivered push a no-op.

id = {provider}-push#{message_id}    one item per push message handled: nothing else is stored
expiration = epoch seconds           the table's TTL attribute (template.yaml, IdempotencyTable)

The item is written once, on condition that it does not exist: the write is the dedupe (one
request, where Powertools idempotency spends two: an in-progress record, then its completion).
The keys cannot meet Powertools' own records (`{function}.{hash}`, no `#`).
"""

from __future__ import annotations

from mailbridge.store.base import DynamoRepository, is_condition_failure


def receipt_id(provider: str, message_id: str) -> str:
    return f"{provider}-push#{message_id}"


class PushReceiptStore(DynamoRepository):
    def claim(self, provider: str, message_id: str, expires_at: int) -> bool:
        """Record the push `message_id` as handled until `expires_at` (epoch seconds); False when
        it was recorded already (a redelivery or a replay). DynamoDB deletes expired items within
        days of `expires_at`, so a claim after that may succeed again: keep it past the provider's
        redelivery window."""
        try:
            self.table.put_item(
                Item={"id": receipt_id(provider, message_id), "expiration": expires_at},
                ConditionExpression="attribute_not_exists(id)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def release(self, provider: str, message_id: str) -> None:
        """Forget a claim whose work failed, so the provider's retry of the push is handled."""
        self.table.delete_item(Key={"id": receipt_id(provider, message_id)})
