"""OAuth authorization states, in the accounts table (which has TTL on `ttl`).

pk = OAUTH#{sha256(state)}, sk = STATE: who started the authorization (tenant, user, provider,
the account to reconnect), the PKCE verifier and the redirect URI, until `expires_at`.

A state is single-use: `take` deletes it on condition that it exists and returns what it held,
so of two callbacks racing with one state, exactly one gets it. DynamoDB's TTL deletes expired
items only eventually (typically within days), so `take` also answers whether it had expired.
Only the state's digest is a key: the value itself is never stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import Field

from mailbridge.models.base import Model
from mailbridge.store.base import DynamoRepository, is_condition_failure
from mailbridge.store.keys import digest

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

STATE_SK = "STATE"


class OAuthState(Model):
    """What a state binds: the callback trusts these, never its own query string."""

    tenant_id: str
    subject: str = Field(description="The user (JWT `sub`) who started the authorization")
    provider: str
    account_id: str | None = Field(default=None, description="The account to reconnect, if any")
    code_verifier: str = Field(description="PKCE verifier (RFC 7636 section 4.1)")
    redirect_uri: str
    expires_at: datetime


def state_pk(state: str) -> str:
    return f"OAUTH#{digest(state, 64)}"


class OAuthStateStore(DynamoRepository):
    def __init__(self, table_name: str, table: Table | None = None) -> None:
        super().__init__(table_name, table)

    def put(self, state: str, value: OAuthState) -> None:
        """Store a new state (a random value: a collision is a bug, raised as Conflict)."""
        self.create(
            {
                "pk": state_pk(state),
                "sk": STATE_SK,
                "state": value.model_dump(mode="json"),
                # TTL attribute: epoch seconds (DynamoDB TimeToLiveSpecification on `ttl`).
                "ttl": int(value.expires_at.timestamp()),
            }
        )

    def take(self, state: str) -> OAuthState | None:
        """The state's value, deleted in the same request; None when unknown or already taken.
        The caller checks `expires_at` (TTL deletion lags)."""
        try:
            response = self.table.delete_item(
                Key={"pk": state_pk(state), "sk": STATE_SK},
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="ALL_OLD",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        item = response.get("Attributes")
        if not item:
            return None
        return OAuthState.model_validate(item["state"])


def expired(value: OAuthState, now: datetime | None = None) -> bool:
    return (now or datetime.now(UTC)) >= value.expires_at
