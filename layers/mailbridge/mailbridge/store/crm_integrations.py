"""CRM integrations in the crm table (new key prefixes beside the built-in CRM's items).

Item types:
  pk = TENANT#{tenant}, sk = CRMINT#{integration_id}      the integration (no secrets); version
  pk = TENANT#{tenant}, sk = CRMTOKEN#{integration_id}    its KMS envelope (context {tenant_id,
      integration_id}): `{refresh_token, access_token}` once connected, `{device_code}` while a
      device authorization is pending; `expires_at` (epoch s of the access token), `lease_until`
      (epoch s: a refresh in progress), the device flow's `interval` / `poll_after` / `device_expires`
  pk = CRMORG#{provider}#{org_id}, sk = TENANT#{tenant}   lookup for incoming webhooks: the
      integration of this tenant connected to that org (several tenants may connect one org;
      one tenant only once: the lookup is created with `attribute_not_exists(pk)`)
  pk = CRMTENANTS, sk = TENANT#{tenant}                   a tenant that connected a CRM (kept after
      removal: the scheduled sync finds no connected integration there and moves on)
Connecting writes the integration, the token item, the lookup and the tenant item in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbridge.crm.integrations.models import Integration, IntegrationState
from mailbridge.crypto import Envelope
from mailbridge.errors import Conflict, NotFound
from mailbridge.store.base import DynamoRepository, Item, Write, is_condition_failure, tenant_pk
from mailbridge.store.conditions import Key
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

INT_PREFIX = "CRMINT#"
TOKEN_PREFIX = "CRMTOKEN#"  # noqa: S105 - a key prefix, not a secret
TENANTS_PK = "CRMTENANTS"


def integration_sk(integration_id: str) -> str:
    return INT_PREFIX + integration_id


def token_sk(integration_id: str) -> str:
    return TOKEN_PREFIX + integration_id


def org_pk(provider: str, org_id: str) -> str:
    return f"CRMORG#{provider}#{org_id}"


@dataclass(frozen=True)
class TokenItem:
    """The token item as read (never log `envelope`)."""

    envelope: Envelope | None
    expires_at: int
    lease_until: int
    version: int
    interval: int
    poll_after: int
    device_expires: int


class IntegrationNotFound(NotFound):
    code = "integration_not_found"


class IntegrationStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    # ------------------------------------------------------------------ integrations

    @staticmethod
    def _item(integration: Integration) -> Item:
        return {
            "pk": tenant_pk(integration.tenant_id),
            "sk": integration_sk(integration.integration_id),
            "integration": integration.model_dump(mode="json"),
            "state": integration.state,
        }

    def create_integration(self, integration: Integration, tokens: dict[str, Any] | None = None) -> None:
        """A new integration (and, for a pending device flow, its token item); Conflict on a clash."""
        writes = [
            Write(
                {
                    "Put": {
                        "Item": {**self._item(integration), "version": 1},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                lambda: Conflict("the integration exists", code="already_exists"),
            )
        ]
        if tokens is not None:
            writes.append(
                Write(
                    {
                        "Put": {
                            "Item": {
                                "pk": tenant_pk(integration.tenant_id),
                                "sk": token_sk(integration.integration_id),
                                "version": 1,
                                **tokens,
                            }
                        }
                    },
                    lambda: Conflict("the integration exists", code="already_exists"),
                )
            )
        self.transact(writes)

    def get_integration(
        self, tenant_id: str, integration_id: str, *, consistent: bool = False
    ) -> Integration:
        item = self.get(tenant_pk(tenant_id), integration_sk(integration_id), consistent=consistent)
        if item is None:
            raise IntegrationNotFound("no such integration")
        return Integration.model_validate(item["integration"])

    def list_integrations(
        self, tenant_id: str, *, cursor: str | None = None, limit: int = DEFAULT_PAGE_SIZE
    ) -> tuple[list[Integration], str | None]:
        items, next_cursor = self.query_page(
            tenant_id=tenant_id,
            key_condition=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(INT_PREFIX),
            cursor=cursor,
            limit=limit,
        )
        return [Integration.model_validate(item["integration"]) for item in items], next_cursor

    def all_integrations(self, tenant_id: str) -> Iterator[Integration]:
        for item in self.query_all(
            KeyConditionExpression=Key("pk").eq(tenant_pk(tenant_id)) & Key("sk").begins_with(INT_PREFIX)
        ):
            yield Integration.model_validate(item["integration"])

    def set_state(
        self, integration: Integration, *, expected: IntegrationState, tokens: dict[str, Any] | None = None
    ) -> bool:
        """Write `integration` if its stored state is still `expected` (False: someone else moved it),
        replacing the token item's attributes with `tokens` when given."""
        writes = [
            Write(
                {
                    "Put": {
                        "Item": self._item(integration),
                        "ConditionExpression": "#st = :expected",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {":expected": expected},
                    }
                },
                lambda: Conflict("the integration changed", code="conflict"),
            )
        ]
        if tokens is not None:
            writes.append(self._token_put(integration, tokens))
        try:
            self.transact(writes)
        except Conflict:
            return False
        return True

    def set_activity_settings(
        self, tenant_id: str, integration_id: str, *, log_activity: bool, log_body: bool
    ) -> Integration:
        """Switch activity logging and bodies in logged activities (one conditional update);
        IntegrationNotFound when there is no such integration."""
        try:
            answer = self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": integration_sk(integration_id)},
                UpdateExpression="SET integration.log_activity = :a, integration.log_body = :b",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":a": log_activity, ":b": log_body},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise IntegrationNotFound("no such integration") from exc
            raise
        return Integration.model_validate(answer["Attributes"]["integration"])

    def _token_put(self, integration: Integration, tokens: dict[str, Any]) -> Write:
        return Write(
            {
                "Put": {
                    "Item": {
                        "pk": tenant_pk(integration.tenant_id),
                        "sk": token_sk(integration.integration_id),
                        "version": 1,
                        **tokens,
                    }
                }
            },
            lambda: Conflict("the integration changed", code="conflict"),
        )

    def connect(self, integration: Integration, tokens: dict[str, Any]) -> None:
        """Move a pending integration to connected with its tokens and its org lookup, at once.

        Raises Conflict(`already_connected`) when this tenant has the org connected already, and
        Conflict(`conflict`) when the integration is no longer pending (a concurrent poll won)."""
        assert integration.org_id is not None
        writes = [
            Write(
                {
                    "Put": {
                        "Item": {
                            "pk": org_pk(integration.provider, integration.org_id),
                            "sk": tenant_pk(integration.tenant_id),
                            "tenant_id": integration.tenant_id,
                            "integration_id": integration.integration_id,
                        },
                        "ConditionExpression": "attribute_not_exists(pk) OR integration_id = :me",
                        "ExpressionAttributeValues": {":me": integration.integration_id},
                    }
                },
                lambda: Conflict("this org is connected in the tenant already", code="already_connected"),
            ),
            Write(
                {
                    "Put": {
                        "Item": self._item(integration),
                        "ConditionExpression": "#st = :pending",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {":pending": "pending"},
                    }
                },
                lambda: Conflict("the integration is no longer pending", code="conflict"),
            ),
            self._token_put(integration, tokens),
            Write(
                {
                    "Put": {
                        "Item": {
                            "pk": TENANTS_PK,
                            "sk": tenant_pk(integration.tenant_id),
                            "tenant_id": integration.tenant_id,
                        }
                    }
                },
                lambda: Conflict("the integration changed", code="conflict"),
            ),
        ]
        self.transact(writes)

    def tenants(self) -> Iterator[str]:
        """Every tenant that ever connected a CRM (the scheduled sync's fan-out; one Query)."""
        for item in self.query_all(KeyConditionExpression=Key("pk").eq(TENANTS_PK)):
            yield str(item["tenant_id"])

    def delete_integration(self, integration: Integration) -> None:
        """The integration, its tokens and its org lookup (if this integration holds it)."""
        pk = tenant_pk(integration.tenant_id)
        self.table.delete_item(Key={"pk": pk, "sk": token_sk(integration.integration_id)})
        if integration.org_id is not None:
            try:
                self.table.delete_item(
                    Key={"pk": org_pk(integration.provider, integration.org_id), "sk": pk},
                    ConditionExpression="integration_id = :me",
                    ExpressionAttributeValues={":me": integration.integration_id},
                )
            except Exception as exc:
                if not is_condition_failure(exc):
                    raise
        self.table.delete_item(Key={"pk": pk, "sk": integration_sk(integration.integration_id)})

    def integrations_for_org(self, provider: str, org_id: str) -> list[tuple[str, str]]:
        """(tenant_id, integration_id) of every tenant that connected this org (for webhooks)."""
        return [
            (str(item["tenant_id"]), str(item["integration_id"]))
            for item in self.query_all(KeyConditionExpression=Key("pk").eq(org_pk(provider, org_id)))
        ]

    # ------------------------------------------------------------------ tokens

    def get_tokens(self, tenant_id: str, integration_id: str) -> TokenItem | None:
        item = self.get(tenant_pk(tenant_id), token_sk(integration_id), consistent=True)
        if item is None:
            return None
        raw = item.get("credentials")
        return TokenItem(
            envelope=Envelope.model_validate(raw) if raw else None,
            expires_at=int(item.get("expires_at", 0)),
            lease_until=int(item.get("lease_until", 0)),
            version=int(item.get("version", 1)),
            interval=int(item.get("interval", 0)),
            poll_after=int(item.get("poll_after", 0)),
            device_expires=int(item.get("device_expires", 0)),
        )

    def take_lease(self, tenant_id: str, integration_id: str, *, now: int, seconds: int) -> bool:
        """The refresh lease (single flight per integration): True for the one caller that gets it."""
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": token_sk(integration_id)},
                UpdateExpression="SET lease_until = :until",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                ),
                ExpressionAttributeValues={":until": now + seconds, ":now": now},
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def store_tokens(self, tenant_id: str, integration_id: str, envelope: Envelope, expires_at: int) -> None:
        """New sealed tokens; the lease is released and the version moves on."""
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": token_sk(integration_id)},
            UpdateExpression="SET credentials = :c, expires_at = :e ADD version :one REMOVE lease_until",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":c": envelope.model_dump(mode="json"), ":e": expires_at, ":one": 1},
        )

    def release_lease(self, tenant_id: str, integration_id: str) -> None:
        try:
            self.table.update_item(
                Key={"pk": tenant_pk(tenant_id), "sk": token_sk(integration_id)},
                UpdateExpression="REMOVE lease_until",
                ConditionExpression="attribute_exists(pk)",
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def set_poll_after(self, tenant_id: str, integration_id: str, *, poll_after: int, interval: int) -> None:
        self.table.update_item(
            Key={"pk": tenant_pk(tenant_id), "sk": token_sk(integration_id)},
            UpdateExpression="SET poll_after = :p, #i = :i",
            ExpressionAttributeNames={"#i": "interval"},
            ExpressionAttributeValues={":p": poll_after, ":i": interval},
        )
