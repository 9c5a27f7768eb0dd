"""Real-time updates through the local runner (issue 15 point 5) with a real Dovecot: a WebSocket
client connected through the runner's WebSocket API receives `email.received` after a sync of its
user's mailbox (sync function -> bus -> NotifierRule -> notifier -> @connections -> the socket);
a client of another tenant, connected as a user of the same name, receives nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from local.runner import Runner
from tests.e2e.conftest import call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.sync_harness import message

pytestmark = pytest.mark.dovecot

MARKER = b'{"type":"marker"}'


@pytest.fixture(scope="module")
def runner(mail_runner: Runner) -> Runner:
    return mail_runner


def open_socket(runner: Runner, token: str, *, header: bool) -> ClientConnection:
    assert runner.websocket_url is not None
    if header:
        return connect(runner.websocket_url, additional_headers={"Authorization": f"Bearer {token}"})
    return connect(f"{runner.websocket_url}/?token={token}")


def connection_ids(runner: Runner, tenant: str, user: str) -> list[str]:
    items = runner.boto3_client("dynamodb").query(
        TableName=runner.physical_name("ConnectionsTable"),
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"TENANT#{tenant}#USER#{user}"}},
    )["Items"]
    return [item["connection_id"]["S"] for item in items]


def post(runner: Runner, connection_id: str, data: bytes) -> None:
    """Through the runner's @connections API, as the notifier posts."""
    import boto3

    client: Any = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=runner.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    client.post_to_connection(ConnectionId=connection_id, Data=data)


def test_a_connected_client_receives_the_new_mail_after_a_sync_and_another_tenants_client_nothing(
    runner: Runner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    server, user = dovecot_server, dovecot_user
    token = runner.token(tenant="live", role="member", sub="alice")
    other = runner.token(tenant="live-elsewhere", role="member", sub="alice")
    server.append(user, "INBOX", message("Live update", msgid="live@customer.example"))
    # Given alice of tenant live connected (token in the header), and alice of another tenant
    # connected too (token as the query parameter)
    with open_socket(runner, token, header=True) as mine, open_socket(runner, other, header=False) as theirs:
        [elsewhere] = connection_ids(runner, "live-elsewhere", "alice")
        # When alice connects her mailbox and the sync stores its message
        connect_mailbox(runner, token, server, user)
        runner.drain()
        status, page = call(runner, "GET", "/emails", token)
        assert status == 200, page
        [email_id] = [e["email_id"] for e in page["items"]]
        # Then her socket receives email.received for it, and the first sync's start and end
        # (account.sync_status_changed; the notifier's queue does not keep their order)
        frames = [json.loads(mine.recv(timeout=60)) for _ in range(3)]
        received = [f["detail"]["email_id"] for f in frames if f["type"] == "email.received"]
        assert received == [email_id]
        stages = sorted(f["detail"]["stage"] for f in frames if f["type"] == "account.sync_status_changed")
        assert stages == ["idle", "syncing"]
        # And the other tenant's socket received nothing before a marker posted after the drain
        # (frames on one connection arrive in order)
        post(runner, elsewhere, MARKER)
        assert theirs.recv(timeout=60) == MARKER.decode()


def test_a_connect_without_a_valid_token_is_refused_by_the_runner(runner: Runner) -> None:
    from websockets.exceptions import InvalidStatus

    assert runner.websocket_url is not None
    # Given no token, and a token of another issuer's key
    # When each tries the handshake
    # Then the handshake gets what the realtime function answered: 401
    with pytest.raises(InvalidStatus) as refused:
        connect(runner.websocket_url)
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as forged:
        connect(f"{runner.websocket_url}/?token=eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    assert forged.value.response.status_code == 401
