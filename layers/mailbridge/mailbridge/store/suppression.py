"""Suppression list: addresses a tenant must not send campaign mail to (issue 17 point 4).

Kept in the CRM table, beside the address lookups it is checked against:

    pk = TENANT#{tenant}, sk = SUPPRESS#{address}     address (lower-cased, as CRM addresses are),
                                                       reason, source, at

Why the CRM table: a campaign's audience is CRM contacts minus this list, so both live in the
tenant's one partition with the same address normalization (`crm.models.normalize_address`);
the functions that add entries (api for one-click and manual adds, match for bounces and
complaints, outbox for refused recipients) already have or only need that table; no new table.

An address is on the list at most once: the first entry wins (a second unsubscribe or bounce is a
no-op, so every writer is idempotent without reading first); `remove` takes it off.

    pk = TENANT#{tenant}, sk = SUPPRESSERASED                 digests: a string set of the keyed
                                                              hashes of erased addresses

A GDPR erase (privacy/service.py) replaces an address's entry by its keyed hash
(`campaigns.suppression.erased_digest`) in this one item, so the objection keeps being honoured
(GDPR Art. 17(3), Art. 21(3)) while no address is kept. One item per tenant, read with one
GetItem per `suppressed` call: 32-hex digests fill DynamoDB's 400 KB item limit at about ten
thousand erased addresses of one tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from mailbridge.store.base import DynamoRepository, Item, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

PREFIX = "SUPPRESS#"
ERASED_SK = "SUPPRESSERASED"
BATCH_GET = 100  # BatchGetItem's limit on keys per request (DynamoDB API reference)

Reason = Literal["unsubscribed", "hard_bounce", "complaint", "manual"]


def suppression_sk(address: str) -> str:
    return f"{PREFIX}{address}"


class SuppressionStore(Protocol):
    def add(self, tenant_id: str, entry: Item) -> bool: ...

    def find(self, tenant_id: str, address: str) -> Item | None: ...

    def present(self, tenant_id: str, addresses: Sequence[str]) -> set[str]: ...

    def page(self, tenant_id: str, *, cursor: str | None, limit: int) -> tuple[list[Item], str | None]: ...

    def remove(self, tenant_id: str, address: str) -> bool: ...

    def add_erased(self, tenant_id: str, digest: str) -> None: ...

    def erased(self, tenant_id: str) -> set[str]: ...


class DynamoSuppressionStore(DynamoRepository):
    """`entry` items hold `address`, `reason`, `source` (or None), `at` (ISO 8601 UTC)."""

    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def add(self, tenant_id: str, entry: Item) -> bool:
        """Put the entry unless the address is already listed; True when this call listed it."""
        item = {"pk": tenant_pk(tenant_id), "sk": suppression_sk(str(entry["address"])), **entry}
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def find(self, tenant_id: str, address: str) -> Item | None:
        return self.get(tenant_pk(tenant_id), suppression_sk(address), consistent=True)

    def present(self, tenant_id: str, addresses: Sequence[str]) -> set[str]:
        """The listed ones among `addresses` (already normalized): one BatchGetItem per 100
        distinct addresses (and one more per round of UnprocessedKeys DynamoDB hands back)."""
        unique = list(dict.fromkeys(addresses))
        found: set[str] = set()
        for start in range(0, len(unique), BATCH_GET):
            keys = [
                {"pk": tenant_pk(tenant_id), "sk": suppression_sk(a)}
                for a in unique[start : start + BATCH_GET]
            ]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ProjectionExpression": "address"}}
            while request:
                response = self.table.meta.client.batch_get_item(RequestItems=request)
                found.update(
                    str(i["address"]) for i in response.get("Responses", {}).get(self.table_name, [])
                )
                request = response.get("UnprocessedKeys") or {}
        return found

    def page(self, tenant_id: str, *, cursor: str | None, limit: int) -> tuple[list[Item], str | None]:
        """In address order; the cursor is the signed one of `DynamoRepository.query_page`."""
        key = Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(PREFIX)
        return self.query_page(tenant_id=tenant_id, key_condition=key, cursor=cursor, limit=limit)

    def remove(self, tenant_id: str, address: str) -> bool:
        """Take the address off the list; False when it was not on it."""
        try:
            self.table.delete_item(
                Key={"pk": tenant_pk(tenant_id), "sk": suppression_sk(address)},
                ConditionExpression="attribute_exists(pk)",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def add_erased(self, tenant_id: str, digest: str) -> None:
        """Add the keyed hash of an erased address (a set: adding it twice changes nothing)."""
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": ERASED_SK},
            UpdateExpression="ADD digests :d",
            ExpressionAttributeValues={":d": {digest}},
        )

    def erased(self, tenant_id: str) -> set[str]:
        """The keyed hashes of the tenant's erased addresses (`add_erased`)."""
        item = self.get(tenant_pk(tenant_id), ERASED_SK, consistent=True)
        return {str(d) for d in (item or {}).get("digests") or ()}
