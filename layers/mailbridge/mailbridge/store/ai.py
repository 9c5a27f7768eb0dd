"""Settings table, AI items: per-tenant category rules learnt from corrections, the corrections
counted towards them, and categorize backfill jobs.

Item types (pk = TENANT#{tenant} for all):
  AIRULE#{rule_id}                           a category rule; rule_id = {kind}-{digest(value)[:16]},
                                             one per sender address or domain
  AICORR#address#{digest(address)}#{category} corrections of an address (`emails`: email ids)
  AICORR#domain#{digest(domain)}#{category}   corrections of a domain (`senders`: address digests)
  AIJOB#{job_id}                             a categorize backfill: `step` (the next step's number,
                                             a conditional counter), `cursor`, progress counts

Counting with `ADD` to a string set makes a repeated correction of the same email (or by the same
sender) count once. A tenant holds few rules, so `list_rules` is one Query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from mailbridge.errors import NotFound
from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key
from mailbridge.store.keys import digest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

RuleKind = Literal["address", "domain"]
RULE_PREFIX = "AIRULE#"
JOB_PREFIX = "AIJOB#"
MAX_RULES_READ = 1000


def rule_id_for(kind: RuleKind, value: str) -> str:
    """The deterministic id of the rule for one sender address or domain (lower-cased)."""
    return f"{kind}-{digest(value.strip().lower())[:16]}"


class AiRuleStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def count_correction(self, tenant_id: str, kind: RuleKind, value: str, category: str, member: str) -> int:
        """Add `member` (an email id for an address, an address digest for a domain) to the
        corrections of `value` towards `category`; the number of distinct members so far."""
        attribute = "emails" if kind == "address" else "senders"
        response = self.table.update_item(
            Key={
                "pk": tenant_pk(tenant_id),
                "sk": f"AICORR#{kind}#{digest(value.strip().lower())}#{category}",
            },
            UpdateExpression="ADD #m :member",
            ExpressionAttributeNames={"#m": attribute},
            ExpressionAttributeValues={":member": {member}},
            ReturnValues="ALL_NEW",
        )
        return len(response["Attributes"].get(attribute) or ())  # type: ignore[arg-type]

    def put_rule(self, tenant_id: str, rule: dict[str, Any]) -> None:
        """Store (or replace: a newer correction wins) the rule for its address or domain."""
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": RULE_PREFIX + str(rule["rule_id"]), **rule}
        )

    def list_rules(self, tenant_id: str) -> list[Item]:
        """Every rule of the tenant (one Query; a tenant holds few)."""
        response = self.table.query(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(RULE_PREFIX),
            Limit=MAX_RULES_READ,
        )
        return list(response.get("Items", []))

    def delete_rule(self, tenant_id: str, rule_id: str) -> None:
        """Delete one rule; `NotFound` when there is none by that id."""
        response = self.table.delete_item(
            Key={"pk": tenant_pk(tenant_id), "sk": RULE_PREFIX + rule_id}, ReturnValues="ALL_OLD"
        )
        if not response.get("Attributes"):
            raise NotFound("no such rule", code="not_found")

    # ------------------------------------------------------------------ backfill jobs
    def create_job(self, tenant_id: str, job: dict[str, Any]) -> None:
        """A new backfill job item `AIJOB#{job_id}` (its `step` starts at 0)."""
        self.table.put_item(
            Item={"pk": tenant_pk(tenant_id), "sk": JOB_PREFIX + str(job["job_id"]), **job},
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_job(self, tenant_id: str, job_id: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), JOB_PREFIX + job_id, consistent=True)

    def advance_job(self, tenant_id: str, job_id: str, step: int, **values: Any) -> bool:
        """Record step `step` done (`step` becomes step + 1) with `values`; False when the job is
        not at `step` any more (a replayed step), writing nothing."""
        names = {f"#f{i}": name for i, name in enumerate(values)}
        exprs = {f":v{i}": value for i, value in enumerate(values.values())}
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": JOB_PREFIX + job_id},
                UpdateExpression=f"SET #step = :next, {sets}",
                ConditionExpression="#step = :step",
                ExpressionAttributeNames={"#step": "step", **names},
                ExpressionAttributeValues={":step": step, ":next": step + 1, **exprs},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
