"""API Gateway's @connections API (PostToConnection), and the mailbox owners the notifier needs.

`POST {endpoint}/@connections/{connection_id}` with the frame as the body (API Gateway developer
guide, "Use @connections commands in your backend service"); 410 `GoneException` means the client
is gone. The endpoint is `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` (a setting:
the local runner serves the same API at its own URL).
"""

from __future__ import annotations

from typing import Any

from mailbridge import aws
from mailbridge.observability import logger
from mailbridge.realtime.models import PostOutcome
from mailbridge.store.accounts import AccountStore


class ConnectionsApi:
    def __init__(self, endpoint_url: str, client: Any = None) -> None:
        self.endpoint_url = endpoint_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.apigateway_management(self.endpoint_url)
        return self._client

    def post(self, connection_id: str, data: bytes) -> PostOutcome:
        from botocore.exceptions import ClientError

        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "GoneException":
                return "gone"
            # Throttled, forbidden, too large: this frame is lost; the others still go out.
            logger.warning("post_to_connection failed", extra={"error_code": code})
            return "failed"
        return "posted"


class AccountOwners:
    """The user who connected a mailbox (`created_by`, the `sub` of their token)."""

    def __init__(self, accounts: AccountStore) -> None:
        self.accounts = accounts

    def owner(self, tenant_id: str, account_id: str) -> str:
        return self.accounts.get_account(tenant_id, account_id).created_by
