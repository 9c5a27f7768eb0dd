"""Real-time updates (issue 15 point 5): the realtime function's `$connect` checks the JWT as the
HTTP API's authorizer does and records the connection under the claims' tenant and user; the
notifier posts a bus event to that user's connections only, through the @connections API, and
deletes the ones answering 410 Gone.

The realtime and notifier handlers run in-process on the template deployed into moto; a loopback
stub stands in for the token issuer (OIDC discovery + JWK Set) and for API Gateway's @connections
API, so the keys are fetched and the frames sent over HTTP exactly as in AWS.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local.auth import ISSUER_PATH, Issuer
from mailbridge.config import get_settings
from mailbridge.crypto import Envelope
from mailbridge.models.account import Account
from mailbridge.realtime import wiring
from mailbridge.store.accounts import AccountStore
from tests.events import load_event
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack, load_function
from tests.integration.redelivery import bus_seen, snapshot, three_deliveries

AUDIENCE = "mailbridge-web"
STAGE_CONNECTIONS = re.compile(r"/dev/@connections/([^/]+)")


class IssuerAndConnections:
    """Loopback stand-in for the issuer's `/.well-known/*` documents and for @connections."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.gone: set[str] = set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == f"{ISSUER_PATH}/.well-known/openid-configuration":
                    self._json(200, {"issuer": stub.issuer.issuer, "jwks_uri": stub.base + "/keys"})
                elif self.path == "/keys":
                    self._json(200, {"keys": [stub.issuer.public_jwk()]})
                else:
                    self._json(404, {})

            def do_POST(self) -> None:
                match = STAGE_CONNECTIONS.fullmatch(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if match is None:
                    self._json(404, {})
                    return
                connection_id = match[1]
                stub.posts.append((connection_id, body))
                if connection_id in stub.gone:
                    self._json(410, {"message": None}, [("x-amzn-ErrorType", "GoneException")])
                else:
                    self._json(200, {})

            def _json(self, status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                for name, value in [("content-type", "application/json"), *(headers or [])]:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = Issuer.create(self.base, audience=AUDIENCE)  # iss = {base}/_local/issuer
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[IssuerAndConnections]:
    stub = IssuerAndConnections()
    yield stub
    stub.close()


@pytest.fixture
def realtime(
    stack: Stack, stub: IssuerAndConnections, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """The realtime function after a cold start, configured as the template configures it."""
    monkeypatch.setenv("CONNECTIONS_TABLE", stack.env("RealtimeFunction")["CONNECTIONS_TABLE"])
    monkeypatch.setenv("JWT_ISSUER", stub.issuer.issuer)
    monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("REALTIME_ENDPOINT_URL", stub.base + "/dev")
    _forget_cold_start()
    module, context = load_function("realtime"), FakeLambdaContext()
    yield lambda event: module.lambda_handler(event, context)
    _forget_cold_start()


@pytest.fixture
def notifier(
    realtime: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module, context = load_function("notifier"), FakeLambdaContext()
    return lambda event: module.lambda_handler(event, context)


def _forget_cold_start() -> None:
    from mailbridge.config import get_realtime_settings

    get_realtime_settings.cache_clear()
    wiring.connect_deps.cache_clear()
    wiring.notify_deps.cache_clear()


def connect_event(
    connection_id: str, *, header: str | None = None, query: str | None = None
) -> dict[str, Any]:
    event = load_event("websocket/connect.json")
    event["requestContext"]["connectionId"] = connection_id
    event.pop("queryStringParameters", None)
    event.pop("multiValueQueryStringParameters", None)
    if header is not None:
        event["headers"]["Authorization"] = header
        event["multiValueHeaders"]["Authorization"] = [header]
    if query is not None:
        event["queryStringParameters"] = {"token": query}
        event["multiValueQueryStringParameters"] = {"token": [query]}
    return event


def stored(stack: Stack) -> list[tuple[str, str, str]]:
    """(tenant_id, user_id, connection_id) of every connection record."""
    items = stack.table("ConnectionsTable").scan()["Items"]
    return sorted((str(i["tenant_id"]), str(i["user_id"]), str(i["connection_id"])) for i in items)


# ------------------------------------------------------------------------------------ $connect


def test_a_connect_without_a_token_is_refused_and_nothing_is_stored(
    stack: Stack, realtime: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # Given a handshake with neither an Authorization header nor a token parameter
    event = connect_event("c-none")
    # When it reaches $connect
    answer = realtime(event)
    # Then it is refused with 401 and no connection is recorded
    assert answer["statusCode"] == 401
    assert stored(stack) == []


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda stub: Issuer.create(stub.base).token(tenant="acme", role="member"), id="unknown kid"
        ),
        pytest.param(
            lambda stub: Issuer(
                issuer=stub.issuer.issuer,
                audience=AUDIENCE,
                kid=stub.issuer.kid,
                private_pem=Issuer.create(stub.base).private_pem,
            ).token(tenant="acme", role="member"),
            id="signed by another key",
        ),
        pytest.param(
            lambda stub: Issuer(
                issuer=stub.base + "/elsewhere",
                audience=AUDIENCE,
                kid=stub.issuer.kid,
                private_pem=stub.issuer.private_pem,
            ).token(tenant="acme", role="member"),
            id="another issuer",
        ),
        pytest.param(
            lambda stub: Issuer(
                issuer=stub.issuer.issuer,
                audience="someone-else",
                kid=stub.issuer.kid,
                private_pem=stub.issuer.private_pem,
            ).token(tenant="acme", role="member"),
            id="another audience",
        ),
        pytest.param(lambda stub: stub.issuer.token(tenant="acme", role="member", ttl=-60), id="expired"),
        pytest.param(lambda stub: "not.a.jwt", id="garbage"),
    ],
)
def test_a_connect_with_an_invalid_token_is_refused(
    stack: Stack,
    stub: IssuerAndConnections,
    realtime: Callable[[dict[str, Any]], dict[str, Any]],
    make_token: Callable[[IssuerAndConnections], str],
) -> None:
    # Given a token the HTTP API's authorizer would refuse too
    event = connect_event("c-bad", header=f"Bearer {make_token(stub)}")
    # When it reaches $connect
    answer = realtime(event)
    # Then the handshake is refused with 401 and nothing is stored
    assert answer["statusCode"] == 401
    assert stored(stack) == []


def test_a_token_without_a_tenant_is_forbidden(
    stack: Stack, stub: IssuerAndConnections, realtime: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # Given a valid signature over claims that name no tenant
    token = stub.issuer.token(tenant="", role="member")
    # When it connects
    answer = realtime(connect_event("c-notenant", query=token))
    # Then it is refused with 403, as the HTTP API refuses it
    assert answer["statusCode"] == 403
    assert stored(stack) == []


def test_a_valid_token_records_the_connection_under_its_claims_tenant_and_user(
    stack: Stack, stub: IssuerAndConnections, realtime: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # Given valid tokens, one in the Authorization header and one as the token parameter
    alice = stub.issuer.token(tenant="acme", role="member", sub="alice")
    bob = stub.issuer.token(tenant="globex", role="viewer", sub="bob")
    # When both connect
    first = realtime(connect_event("c-alice", header=f"Bearer {alice}"))
    second = realtime(connect_event("c-bob", query=bob))
    # Then both are accepted and recorded under the tenant and sub their claims carry
    assert (first["statusCode"], second["statusCode"]) == (200, 200)
    assert stored(stack) == [("acme", "alice", "c-alice"), ("globex", "bob", "c-bob")]


def test_disconnect_forgets_the_connection(
    stack: Stack, stub: IssuerAndConnections, realtime: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    # Given two open connections
    token = stub.issuer.token(tenant="acme", role="member", sub="alice")
    realtime(connect_event("c-1", query=token))
    realtime(connect_event("c-2", query=token))
    # When the first one closes
    event = load_event("websocket/disconnect.json")
    event["requestContext"]["connectionId"] = "c-1"
    answer = realtime(event)
    # Then only the other is left
    assert answer["statusCode"] == 200
    assert stored(stack) == [("acme", "alice", "c-2")]


# ------------------------------------------------------------------------------------ fan-out


def _account(tenant_id: str, account_id: str, owner: str) -> None:
    account = Account(
        account_id=account_id,
        tenant_id=tenant_id,
        provider="gmail",
        address=f"{owner}@{tenant_id}.example",
        created_at=datetime.now(UTC),
        created_by=owner,
    )
    sealed = Envelope(encrypted_key="x", nonce="x", ciphertext="x")
    AccountStore(get_settings().tables.accounts).create_account(account, sealed)


def _queue_event(*events: dict[str, Any]) -> dict[str, Any]:
    sample = load_event("sqs/notifier.json")
    template = sample["Records"][0]
    records = [
        {**template, "messageId": f"m-{i}", "body": json.dumps(event)} for i, event in enumerate(events)
    ]
    return {"Records": records}


def test_an_email_event_reaches_only_the_mailbox_owners_connections_and_gone_ones_are_deleted(
    stack: Stack,
    stub: IssuerAndConnections,
    realtime: Callable[[dict[str, Any]], dict[str, Any]],
    notifier: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    # Given alice's mailbox in acme; alice connected twice (one of them gone without a $disconnect),
    # bob of acme connected, and another tenant's alice connected
    _account("acme", "acc_alice", "alice")
    for tenant, sub, connection_id in (
        ("acme", "alice", "c-alice-1"),
        ("acme", "alice", "c-alice-gone"),
        ("acme", "bob", "c-bob"),
        ("globex", "alice", "c-globex-alice"),
    ):
        token = stub.issuer.token(tenant=tenant, role="member", sub=sub)
        assert realtime(connect_event(connection_id, query=token))["statusCode"] == 200
    stub.gone.add("c-alice-gone")
    received = load_event("eventbridge/email-received.json")
    received["detail"]["tenant_id"] = "acme"
    received["detail"]["data"]["account_id"] = "acc_alice"
    # When the notifier gets the email.received of alice's mailbox
    answer = notifier(_queue_event(received))
    # Then a frame {type, detail} went to alice's two connections only, over @connections
    assert answer == {"batchItemFailures": []}
    assert sorted(connection_id for connection_id, _ in stub.posts) == ["c-alice-1", "c-alice-gone"]
    frame = json.loads(dict(stub.posts)["c-alice-1"])
    assert frame["type"] == "email.received"
    assert frame["detail"]["email_id"] == received["detail"]["data"]["email_id"]
    # And the connection that answered 410 Gone is deleted; the others are kept
    assert stored(stack) == [
        ("acme", "alice", "c-alice-1"),
        ("acme", "bob", "c-bob"),
        ("globex", "alice", "c-globex-alice"),
    ]


def test_a_notification_reaches_the_user_it_names_in_its_own_tenant_only(
    stack: Stack,
    stub: IssuerAndConnections,
    realtime: Callable[[dict[str, Any]], dict[str, Any]],
    notifier: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    # Given the notification's user connected in acme, and a user of the same id in another tenant
    created = load_event("eventbridge/notification-created.json")
    user = created["detail"]["data"]["user_id"]
    for tenant, connection_id in (("acme", "c-acme"), ("globex", "c-globex")):
        token = stub.issuer.token(tenant=tenant, role="member", sub=user)
        realtime(connect_event(connection_id, query=token))
    # When acme's notification.created for that user arrives
    notifier(_queue_event(created))
    # Then only acme's user-1 receives it, with the notification's fields
    assert [connection_id for connection_id, _ in stub.posts] == ["c-acme"]
    frame = json.loads(stub.posts[0][1])
    assert frame["type"] == "notification.created"
    assert frame["detail"]["notification_id"] == created["detail"]["data"]["notification_id"]


# ------------------------------------------------------------------------------ email.updated


def test_marking_an_email_read_announces_email_updated_for_its_mailbox(
    stack: Stack,
    invoke_api: Callable[[dict[str, Any]], dict[str, Any]],
    bus_probe: Callable[[], list[dict[str, Any]]],
) -> None:
    from tests.integration.test_api_emails import ACC_A, TENANT, Seeder, api, rfc

    # Given an unread email in account A
    raw = rfc(
        msgid="live@x.test",
        sender="dan@customer.test",
        to="me@acme.test",
        subject="Hi",
        date="Mon, 2 Feb 2026 10:00:00 +0000",
    )
    email_id = Seeder(stack).add(raw, flags=())
    bus_probe()
    # When the user marks it read
    response = invoke_api(api("patch-email", path={"email_id": email_id}, body={"read": True}))
    # Then email.updated goes out on the bus with the mailbox and what changed (the notifier's input)
    assert response["statusCode"] == 200
    [event] = [e for e in bus_probe() if e["detail-type"] == "email.updated"]
    assert event["detail"]["tenant_id"] == TENANT
    assert event["detail"]["data"] == {
        "email_id": email_id,
        "account_id": ACC_A,
        "thread_id": json.loads(response["body"])["thread_id"],
        "changes": {"read": True},
    }


# ------------------------------------------------------------------------------ redelivery


@pytest.mark.parametrize("index", [0, 1], ids=["email.received", "notification.created"])
def test_an_event_delivered_three_times_posts_one_frame_to_each_connection(
    stack: Stack,
    stub: IssuerAndConnections,
    realtime: Callable[[dict[str, Any]], dict[str, Any]],
    notifier: Callable[[dict[str, Any]], dict[str, Any]],
    bus_probe: BusReader,
    index: int,
) -> None:
    # Given a record of the NotifierQueue (the sample's email.received of a mailbox, or its
    # notification.created for user-1) and its user connected twice in acme, one of the two
    # connections gone without a $disconnect
    event = {"Records": [load_event("sqs/notifier.json")["Records"][index]]}
    data = json.loads(event["Records"][0]["body"])["detail"]["data"]
    user = data.get("user_id") or "alice"
    if "account_id" in data:
        _account("acme", data["account_id"], user)
    for connection_id in ("c-live", "c-gone"):
        token = stub.issuer.token(tenant="acme", role="member", sub=user)
        assert realtime(connect_event(connection_id, query=token))["statusCode"] == 200
    stub.gone.add("c-gone")
    bus = bus_seen(bus_probe)

    def observe() -> tuple[dict[str, Any], list[str]]:
        return snapshot(stack, bus), sorted(connection_id for connection_id, _ in stub.posts)

    # When SQS hands the record to the notifier three times
    deliveries = three_deliveries(notifier, event, observe)

    # Then the first delivery posted one frame to each connection and forgot the gone one ...
    assert deliveries.results == [{"batchItemFailures": []}] * 3
    (stored_before, posted_before), (stored_once, posted_once) = deliveries.before, deliveries.once
    assert (posted_before, posted_once) == ([], ["c-gone", "c-live"])
    assert stored(stack) == [("acme", user, "c-live")]
    assert stored_once != stored_before
    # ... and the other two posted nothing more and stored nothing
    assert deliveries.thrice[1] == posted_once
    assert deliveries.thrice == deliveries.once


def test_one_email_announced_for_two_users_mailboxes_reaches_both_once(
    stack: Stack,
    stub: IssuerAndConnections,
    realtime: Callable[[dict[str, Any]], dict[str, Any]],
    notifier: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    # Given alice's and bob's mailboxes in acme, each of them connected
    for user in ("alice", "bob"):
        _account("acme", f"acc_{user}", user)
        token = stub.issuer.token(tenant="acme", role="member", sub=user)
        realtime(connect_event(f"c-{user}", query=token))
    # When one email is announced for each mailbox (one idempotency key: the email's), twice
    events = []
    for user in ("alice", "bob"):
        received = load_event("eventbridge/email-received.json")
        received["detail"]["tenant_id"] = "acme"
        received["detail"]["data"]["account_id"] = f"acc_{user}"
        events.append(received)
    assert events[0]["detail"]["idempotency_key"] == events[1]["detail"]["idempotency_key"]
    notifier(_queue_event(*events))
    notifier(_queue_event(*events))
    # Then each owner got its one frame: the dedupe is per user, not per key alone
    assert sorted(connection_id for connection_id, _ in stub.posts) == ["c-alice", "c-bob"]
