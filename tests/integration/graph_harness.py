"""The template's stack on moto with the Microsoft double standing in for Microsoft (identity
platform and Graph over HTTPS with the double's own CA): the oauth and webhooks functions loaded
in-process with the settings pointed at the double.

    def test_x(graph_stack: GraphStack) -> None:
        account_id = graph_stack.connect()          # start -> consent -> callback (msal)
        graph_stack.sync_messages()                 # what reached the SyncQueue
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from local.clock import ManualClock
from local.http import RouteMatch, build_event, response_from_result
from local.microsoft import MicrosoftDouble
from local.microsoft.identity import App
from local.template import Route
from mailbridge.config import get_settings
from mailbridge.models.account import Account
from mailbridge.store.accounts import AccountStore
from tests.events import load_event
from tests.fixtures.aws import FakeLambdaContext, Stack, load_function, reset_caches

USER = "ada@contoso.example"
TENANT = "acme"
SUBJECT = "user-1"
"""The JWT `sub` who connects the mailbox (its owner: API calls on its mail act as this user)."""
CALLBACK_BASE = "https://api.mailbridge.test"
REDIRECT = CALLBACK_BASE + "/oauth/graph/callback"
RETURN_URL = "https://app.mailbridge.test/connected"


WEBHOOK_ROUTE = Route("POST", "/webhooks/graph", "WebhooksFunction", None)


def reset_microsoft_caches() -> None:
    """Forget what the oauth and webhooks code cache per cold start."""
    from mailbridge.oauth import providers, tokens, wiring
    from mailbridge.webhooks import wiring as webhook_wiring

    providers._cached.cache_clear()
    tokens.default_tokens.cache_clear()
    wiring.oauth_deps.cache_clear()
    webhook_wiring.graph_deps.cache_clear()


class _Bridge(BaseHTTPRequestHandler):
    """Graph's POSTs to the notification URL, handed to the webhooks function as API Gateway would."""

    server: _BridgeServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path, _, query = self.path.partition("?")
        event = build_event(
            method="POST",
            raw_path=path,
            raw_query=query,
            headers=list(self.headers.items()),
            body=body,
            match=RouteMatch(WEBHOOK_ROUTE, {}),
            claims=None,
            source_ip="127.0.0.1",
        )
        answer = response_from_result(self.server.invoke(event))
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        return


class _BridgeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, invoke: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), _Bridge)
        self.invoke = invoke


def microsoft_environment(ms: MicrosoftDouble, app: App, secret_arn: str) -> dict[str, str]:
    """The settings that point the functions at the double (what the local runner passes too)."""
    return {
        "MICROSOFT_AUTHORITY_HOST": ms.authority_host,
        "MICROSOFT_TENANT": "common",
        "GRAPH_API_URL": ms.graph_url,
        "MICROSOFT_CA_BUNDLE": ms.ca_file or "",
        "MICROSOFT_CLIENT_ID": app.client_id,
        "MICROSOFT_CLIENT_SECRET_ARN": secret_arn,
        "OAUTH_RETURN_URL": RETURN_URL,
        "OAUTH_CALLBACK_BASE_URL": CALLBACK_BASE,
    }


def query_of(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class GraphStack:
    stack: Stack
    ms: MicrosoftDouble
    app: App
    clock: ManualClock
    http: httpx.Client
    webhook_url: str = ""
    context: FakeLambdaContext = field(default_factory=FakeLambdaContext)
    modules: dict[str, ModuleType] = field(default_factory=dict)

    def function(self, name: str) -> ModuleType:
        if name not in self.modules:
            self.modules[name] = load_function(name)
        return self.modules[name]

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.function(name).lambda_handler(event, self.context)
        return result

    def start(self, role: str = "member", **query: str) -> dict[str, Any]:
        """GET /oauth/graph/start through the oauth function."""
        event = load_event("api/oauth-start.json", tenant=TENANT, role=role, sub=SUBJECT)
        event["pathParameters"] = {"provider": "graph"}
        event["rawPath"] = "/oauth/graph/start"
        event["requestContext"]["http"]["path"] = event["rawPath"]
        if query:
            event["queryStringParameters"] = dict(query)
            event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
        return self.invoke("oauth", event)

    def authorization_url(self, **query: str) -> str:
        started = self.start(**query)
        assert started["statusCode"] == 200, started
        return str(json.loads(started["body"])["authorization_url"])

    def consent(self, authorization_url: str) -> dict[str, str]:
        """The browser at the double's consent page: the query it is redirected back with."""
        answer = self.http.get(authorization_url)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT + "?"), location
        return query_of(location)

    def callback(self, params: dict[str, str]) -> dict[str, Any]:
        event = load_event("api/oauth-callback.json")
        event["queryStringParameters"] = dict(params) or None
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in params.items())
        event["pathParameters"] = {"provider": "graph"}
        event["rawPath"] = "/oauth/graph/callback"
        event["requestContext"]["http"]["path"] = event["rawPath"]
        return self.invoke("oauth", event)

    def outcome(self, response: dict[str, Any]) -> dict[str, str]:
        assert response["statusCode"] == 302, response
        location = response["headers"]["Location"]
        assert location.startswith(RETURN_URL + "?"), location
        return query_of(location)

    def connect(self, **query: str) -> str:
        outcome = self.outcome(self.callback(self.consent(self.authorization_url(**query))))
        assert outcome["outcome"] in ("connected", "reconnected"), outcome
        return outcome["account_id"]

    def post_webhook(
        self, url: str, body: bytes = b"", content_type: str = "application/json"
    ) -> httpx.Response:
        """POST to the webhook as Graph (or a forger) would, through the bridge."""
        with httpx.Client(timeout=10, trust_env=False) as plain:
            return plain.post(url, content=body, headers={"Content-Type": content_type})

    @property
    def accounts(self) -> AccountStore:
        return AccountStore(get_settings().tables.accounts)

    def account(self, account_id: str) -> Account:
        return self.accounts.get_account(TENANT, account_id)

    def account_item(self, account_id: str) -> dict[str, Any]:
        item: dict[str, Any] = self.stack.table("AccountsTable").get_item(
            Key={"pk": f"TENANT#{TENANT}", "sk": f"ACCOUNT#{account_id}"}
        )["Item"]
        return item

    def graph_me(self, access_token: str) -> int:
        """The status Graph answers a read of the Inbox with this bearer token."""
        return self.http.get(
            f"{self.ms.graph_url}/me/mailFolders/inbox", headers={"Authorization": f"Bearer {access_token}"}
        ).status_code

    def sync_messages(self) -> list[dict[str, Any]]:
        """Everything on the SyncQueue (received and deleted)."""
        sqs = boto3.client("sqs")
        url = self.stack.deployed.queue_urls["SyncQueue"]
        out: list[dict[str, Any]] = []
        while True:
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not received:
                return out
            for message in received:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def graph_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStack]:
    # Real time (to the second), so msal's own clock agrees with the double's.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    modules: dict[str, ModuleType] = {}

    def invoke_webhooks(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = modules["webhooks"].lambda_handler(event, FakeLambdaContext())
        return result

    bridge = _BridgeServer(invoke_webhooks)
    threading.Thread(target=bridge.serve_forever, daemon=True).start()
    webhook_url = f"http://127.0.0.1:{bridge.server_address[1]}/webhooks/graph"
    with MicrosoftDouble(clock=clock, seed=13) as ms:
        ms.add_user(USER, "Ada Lovelace")
        app = ms.register_app([REDIRECT])
        secret_arn = stack.deployed.secrets["MicrosoftClientSecret"]
        boto3.client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString=app.client_secret)
        for name, value in microsoft_environment(ms, app, secret_arn).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GRAPH_WEBHOOK_URL", webhook_url)
        reset_caches()
        reset_microsoft_caches()
        modules["webhooks"] = load_function("webhooks")
        verify = ssl.create_default_context(cafile=ms.ca_file) if ms.ca_file else True
        try:
            with httpx.Client(verify=verify, timeout=10, trust_env=False) as http:
                yield GraphStack(
                    stack=stack,
                    ms=ms,
                    app=app,
                    clock=clock,
                    http=http,
                    webhook_url=webhook_url,
                    modules=modules,
                )
        finally:
            bridge.shutdown()
            bridge.server_close()
            reset_microsoft_caches()
