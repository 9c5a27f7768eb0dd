"""Graph change-notification subscriptions of `graph` accounts, in the accounts table.

pk = GRAPHSUB#{subscription_id}, sk = SUB          the lookup a notification is checked against:
                                                   tenant_id, account_id, folder (well-known name),
                                                   client_state_hash (sha256 hex of clientState),
                                                   expires_at (Graph's expirationDateTime, ISO),
                                                   gsi1pk = GRAPHSUBS (sparse: what the renewal
                                                   schedule walks)
pk = TENANT#{tenant}, sk = GRAPHSUBS#{account_id}  the account's clientState (a KMS envelope under
                                                   {tenant_id, account_id}) and its subscriptions
                                                   by folder: {folder: subscription_id}

Like the PUSH items of store/accounts.py, the GRAPHSUB items are keyed by what a provider's push
names (Graph's notification carries only `subscriptionId`) and hold nothing but ids and a digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbridge.crypto import Envelope
from mailbridge.store.base import DynamoRepository, is_condition_failure
from mailbridge.store.conditions import Key
from mailbridge.store.keys import tenant_pk

INDEX = "GRAPHSUBS"
BATCH_GET_KEYS = 100  # BatchGetItem's limit per request


def subscription_pk(subscription_id: str) -> str:
    return f"GRAPHSUB#{subscription_id}"


def account_subscriptions_sk(account_id: str) -> str:
    return f"GRAPHSUBS#{account_id}"


@dataclass(frozen=True)
class SubscriptionRecord:
    subscription_id: str
    tenant_id: str
    account_id: str
    folder: str
    client_state_hash: str
    expires_at: datetime


def _record(item: dict[str, Any]) -> SubscriptionRecord:
    return SubscriptionRecord(
        subscription_id=str(item["pk"]).removeprefix("GRAPHSUB#"),
        tenant_id=str(item["tenant_id"]),
        account_id=str(item["account_id"]),
        folder=str(item["folder"]),
        client_state_hash=str(item["client_state_hash"]),
        expires_at=datetime.fromisoformat(str(item["expires_at"])),
    )


class GraphSubscriptionStore(DynamoRepository):
    def put(self, record: SubscriptionRecord) -> None:
        """Write (or overwrite, after a renewal) one subscription and its place in the account's map."""
        self.table.put_item(
            Item={
                "pk": subscription_pk(record.subscription_id),
                "sk": "SUB",
                "tenant_id": record.tenant_id,
                "account_id": record.account_id,
                "folder": record.folder,
                "client_state_hash": record.client_state_hash,
                "expires_at": record.expires_at.isoformat(),
                "gsi1pk": INDEX,
            }
        )
        self.table.update_item(
            Key={"pk": tenant_pk(record.tenant_id), "sk": account_subscriptions_sk(record.account_id)},
            UpdateExpression="SET #f.#folder = :id",
            ExpressionAttributeNames={"#f": "folders", "#folder": record.folder},
            ExpressionAttributeValues={":id": record.subscription_id},
        )

    def get_many(self, subscription_ids: Iterable[str]) -> dict[str, SubscriptionRecord]:
        """The records of the known ids among `subscription_ids` (BatchGetItem, 100 keys a request)."""
        wanted = list(dict.fromkeys(subscription_ids))
        found: dict[str, SubscriptionRecord] = {}
        client = self.table.meta.client
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            keys: list[dict[str, Any]] = [
                {"pk": subscription_pk(i), "sk": "SUB"} for i in wanted[start : start + BATCH_GET_KEYS]
            ]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    record = _record(item)
                    found[record.subscription_id] = record
                request = dict(response.get("UnprocessedKeys") or {})
        return found

    def account_state(self, tenant_id: str, account_id: str) -> tuple[Envelope | None, dict[str, str]]:
        """The account's sealed clientState and its {folder: subscription_id}."""
        item = self.get(tenant_pk(tenant_id), account_subscriptions_sk(account_id), consistent=True)
        if item is None:
            return None, {}
        raw = item.get("client_state")
        folders = {str(k): str(v) for k, v in dict(item.get("folders") or {}).items()}
        return (Envelope.model_validate(raw) if raw else None), folders

    def put_client_state(self, tenant_id: str, account_id: str, sealed: Envelope) -> None:
        """A new clientState for the account; its subscription map starts empty."""
        self.table.put_item(
            Item={
                "pk": tenant_pk(tenant_id),
                "sk": account_subscriptions_sk(account_id),
                "client_state": sealed.model_dump(),
                "folders": {},
            }
        )

    def delete_subscription(self, record: SubscriptionRecord) -> None:
        """Forget one subscription (Graph removed it, or it is being replaced)."""
        self.delete(subscription_pk(record.subscription_id), "SUB")
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(record.tenant_id), "sk": account_subscriptions_sk(record.account_id)},
                UpdateExpression="REMOVE #f.#folder",
                ConditionExpression="attribute_exists(pk) AND #f.#folder = :id",
                ExpressionAttributeNames={"#f": "folders", "#folder": record.folder},
                ExpressionAttributeValues={":id": record.subscription_id},
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def delete_account(self, tenant_id: str, account_id: str) -> None:
        """Forget every subscription of the account and its clientState."""
        _, folders = self.account_state(tenant_id, account_id)
        for subscription_id in folders.values():
            self.delete(subscription_pk(subscription_id), "SUB")
        self.delete(tenant_pk(tenant_id), account_subscriptions_sk(account_id))

    def all(self) -> Iterator[SubscriptionRecord]:
        """Every subscription: the renewal schedule's walk of gsi1 (keys only), read in batches."""
        kwargs: dict[str, Any] = {"IndexName": "gsi1", "KeyConditionExpression": Key("gsi1pk").eq(INDEX)}
        while True:
            response = self.table.query(**kwargs)
            ids = [str(i["pk"]).removeprefix("GRAPHSUB#") for i in response.get("Items", [])]
            yield from self.get_many(ids).values()
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
