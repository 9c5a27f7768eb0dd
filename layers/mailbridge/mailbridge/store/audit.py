"""The audit table: append-only, one item per audited request.

Item: pk = TENANT#{tenant}, sk = {at ISO 8601 UTC ms}#{request id}: `actor`, `role`, `action`,
`kind` (write | read), `resource_ids` (map: path parameter -> id), `resource_list` (the same ids
as a list, for the `resource_id` filter), `status`, `outcome` (success | failure), `error_code`,
`network`, `user_agent_family`, `request_id`, `at`, `tenant_id`.

Writes are `PutItem` with `attribute_not_exists(pk)` only: no update or delete exists here, and
the template grants no function UpdateItem/DeleteItem on the table (the api function and the
ownership reads may PutItem; GET /audit may Query). The stream (NEW_IMAGE) feeds the archive in
the Object Lock bucket (`mailbridge.audit.archive`).
"""

from __future__ import annotations

from typing import Any

from mailbridge.store.base import DynamoRepository, Item, tenant_pk
from mailbridge.store.conditions import Attr, Key

# Sort keys start with the ISO time: these bound the range when the caller gives no end.
_EARLIEST = "0000"
_LATEST = "9999"
# After every `{time}#{request id}` that starts with a given time ("#" < "~").
_AFTER_TIME = "~"


def audit_sk(at_iso: str, request_id: str) -> str:
    return f"{at_iso}#{request_id}"


class AuditStore(DynamoRepository):
    def append(self, item: Item) -> None:
        """Put a new entry; raises the botocore error (a taken key included) on failure."""
        self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")

    def page(
        self,
        tenant_id: str,
        *,
        since: str | None,
        until: str | None,
        actor: str | None,
        action: str | None,
        resource_id: str | None,
        outcome: str | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[list[Item], str | None]:
        """Entries of the tenant, newest first, `since` <= at <= `until` (ISO strings, compared as
        text with the sort key) and the filters applied by DynamoDB; the cursor of the next page."""
        key_condition = Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").between(
            since or _EARLIEST, (until + _AFTER_TIME) if until else _LATEST
        )
        filters: Any = None
        for condition in (
            Attr("actor").eq(actor) if actor is not None else None,
            Attr("action").eq(action) if action is not None else None,
            Attr("resource_list").contains(resource_id) if resource_id is not None else None,
            Attr("outcome").eq(outcome) if outcome is not None else None,
        ):
            if condition is not None:
                filters = condition if filters is None else filters & condition
        return self.filled_query(
            tenant_id, key_condition, filters, cursor=cursor, limit=limit, newest_first=True
        )
