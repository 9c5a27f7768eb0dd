"""Bedrock items: the tenant's setting, its token usage per UTC day and month, and cached answers.

Settings table (pk = TENANT#{tenant}):
  AIBEDROCK            the setting: `enabled`, `model_id`, `region`, `daily_token_budget`,
                       `monthly_token_budget`, `version`
  AIUSAGE#{UTC day}    that day's usage, counted with ADD (concurrent calls add up, never
                       overwrite): `input_tokens`, `output_tokens`, `calls`, `cache_hits`, and
                       `fallback_{reason}` per reason the local answer stood in
                       (mailbridge.providers.bedrock.FailureReason, `budget_exhausted` or
                       `paused`: no call made); `spent`: the tokens counted against the budget,
                       reservations of calls in flight included
  AIUSAGEM#{UTC month} that month's `spent`, `input_tokens`, `output_tokens`, `calls` (YYYY-MM)
Accounts table (pk = TENANT#{tenant}; TTL on `ttl`):
  AICACHE#{sha256}     a validated Bedrock answer (`answer`, JSON text) for one model, system
                       prompt and prompt, until `ttl` (mailbridge.ai.bedrock.CACHE_SECONDS)

A call first reserves its most possible tokens on the day and the month in one transaction whose
conditions say both stay within their budgets (`reserve`): concurrent calls cannot together pass
a budget, as each condition sees the others' reservations. After the call, `settle` replaces the
reservation with the tokens Converse's `usage` reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailbridge.errors import Conflict
from mailbridge.store.base import DynamoRepository, Item, Write, tenant_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

SETTING_SK = "AIBEDROCK"
USAGE_PREFIX = "AIUSAGE#"
MONTH_PREFIX = "AIUSAGEM#"
CACHE_PREFIX = "AICACHE#"


class BudgetRefused(Conflict):
    """A reservation that would pass the day's or the month's budget (`details["budget"]`)."""

    code = "budget_exhausted"


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

    def get_month(self, tenant_id: str, month: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), MONTH_PREFIX + month, consistent=True)

    def reserve(
        self, tenant_id: str, day: str, month: str, tokens: int, *, daily_budget: int, monthly_budget: int
    ) -> None:
        """Add `tokens` to the day's and the month's `spent` when both stay within their budget,
        in one transaction; `BudgetRefused` (nothing added) otherwise."""

        def write(sk: str, budget: int, which: str) -> Write:
            return Write(
                op={
                    "Update": {
                        "Key": {"pk": tenant_pk(tenant_id), "sk": sk},
                        "UpdateExpression": "ADD #s :t",
                        "ConditionExpression": "(attribute_not_exists(#s) AND :t <= :b) OR #s <= :limit",
                        "ExpressionAttributeNames": {"#s": "spent"},
                        "ExpressionAttributeValues": {":t": tokens, ":b": budget, ":limit": budget - tokens},
                    }
                },
                error=lambda: BudgetRefused("the token budget is used up", details={"budget": which}),
            )

        self.transact(
            [
                write(USAGE_PREFIX + day, daily_budget, "daily"),
                write(MONTH_PREFIX + month, monthly_budget, "monthly"),
            ]
        )

    def settle(
        self, tenant_id: str, day: str, month: str, *, reserved: int, input_tokens: int, output_tokens: int
    ) -> None:
        """Replace a reservation by the tokens the call used (on the day and the month)."""
        delta = input_tokens + output_tokens - reserved
        key = {"pk": tenant_pk(tenant_id)}
        self.table.update_item(
            Key={**key, "sk": USAGE_PREFIX + day},
            UpdateExpression="ADD spent :d",
            ExpressionAttributeValues={":d": delta},
        )
        self.table.update_item(
            Key={**key, "sk": MONTH_PREFIX + month},
            UpdateExpression="ADD spent :d, input_tokens :i, output_tokens :o, calls :one",
            ExpressionAttributeValues={":d": delta, ":i": input_tokens, ":o": output_tokens, ":one": 1},
        )

    def count_cache_hit(self, tenant_id: str, day: str) -> None:
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": USAGE_PREFIX + day},
            UpdateExpression="ADD cache_hits :one",
            ExpressionAttributeValues={":one": 1},
        )


class BedrockAnswerCache(DynamoRepository):
    """Validated answers by prompt hash, in a table with TTL on `ttl` (the accounts table)."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def get_answer(self, tenant_id: str, key: str, now: int) -> str | None:
        item = self.get(tenant_pk(tenant_id), CACHE_PREFIX + key)
        if item is None or int(item.get("ttl") or 0) <= now:
            return None
        return str(item["answer"])

    def put_answer(self, tenant_id: str, key: str, answer: str, ttl: int) -> None:
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": CACHE_PREFIX + key, "answer": answer, "ttl": ttl}
        )
