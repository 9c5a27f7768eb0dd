"""The template's stack on moto with the Google double standing in for Google: the oauth,
webhooks and api functions loaded in-process with the settings pointed at the double.

    def test_x(gmail_stack: GmailStack) -> None:
        account_id = gmail_stack.connect()          # start -> consent -> callback
        gmail_stack.sync_messages()                 # what reached the SyncQueue
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from local.clock import ManualClock
from local.google import GoogleDouble
from local.google.oauth import OAuthClient
from mailbridge.config import get_settings
from mailbridge.models.account import Account
from mailbridge.store.accounts import AccountStore
from tests.events import load_event
from tests.fixtures.aws import FakeLambdaContext, Stack, load_function, reset_caches

USER = "ada@example.com"
TENANT = "acme"
SUBJECT = "user-1"
"""The JWT `sub` who connects the mailbox (its owner: API calls on its mail act as this user)."""
CALLBACK_BASE = "https://api.mailbridge.test"
REDIRECT = CALLBACK_BASE + "/oauth/gmail/callback"
RETURN_URL = "https://app.mailbridge.test/connected"
TOPIC = "projects/mailbridge-local/topics/gmail"
AUDIENCE = "https://api.mailbridge.test/webhooks/gmail"
PUSH_ACCOUNT = "mailbridge-push@mailbridge-local.iam.gserviceaccount.com"
HTTP = httpx.Client(timeout=10)


def reset_google_caches() -> None:
    """Forget what the oauth and webhooks code cache per cold start."""
    from mailbridge.oauth import http as oauth_http
    from mailbridge.oauth import providers, tokens, wiring
    from mailbridge.providers.gmail import quota
    from mailbridge.webhooks import wiring as webhook_wiring

    providers._cached.cache_clear()
    tokens.default_tokens.cache_clear()
    wiring.oauth_deps.cache_clear()
    webhook_wiring.gmail_deps.cache_clear()
    oauth_http.client.cache_clear()
    quota._budgets.clear()


def google_environment(google: GoogleDouble, client: OAuthClient, secret_arn: str) -> dict[str, str]:
    """The settings that point the functions at the double (what the local runner passes too)."""
    return {
        "GOOGLE_AUTH_URL": google.authorize_url,
        "GOOGLE_TOKEN_URL": google.token_url,
        "GOOGLE_REVOKE_URL": google.revoke_url,
        "GMAIL_API_URL": google.gmail_url,
        "PEOPLE_API_URL": google.people_url,
        "GOOGLE_CALENDAR_API_URL": google.calendar_url,
        "GOOGLE_CERTS_URL": google.certs_url,
        "GOOGLE_CLIENT_ID": client.client_id,
        "GOOGLE_CLIENT_SECRET_ARN": secret_arn,
        "GMAIL_PUSH_TOPIC": TOPIC,
        "GMAIL_PUSH_AUDIENCE": AUDIENCE,
        "GMAIL_PUSH_SERVICE_ACCOUNT": PUSH_ACCOUNT,
        "OAUTH_RETURN_URL": RETURN_URL,
        "OAUTH_CALLBACK_BASE_URL": CALLBACK_BASE,
    }


def query_of(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class GmailStack:
    stack: Stack
    google: GoogleDouble
    client: OAuthClient
    clock: ManualClock
    context: FakeLambdaContext = field(default_factory=FakeLambdaContext)
    modules: dict[str, ModuleType] = field(default_factory=dict)

    # ------------------------------------------------------------------ functions

    def function(self, name: str) -> ModuleType:
        if name not in self.modules:
            self.modules[name] = load_function(name)
        return self.modules[name]

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.function(name).lambda_handler(event, self.context)
        return result

    def start(self, role: str = "member", tenant: str = TENANT, **query: str) -> dict[str, Any]:
        """GET /oauth/gmail/start through the oauth function."""
        event = load_event("api/oauth-start.json", tenant=tenant, role=role, sub=SUBJECT)
        if query:
            event["queryStringParameters"] = dict(query)
            event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
        return self.invoke("oauth", event)

    def consent(self, authorization_url: str) -> dict[str, str]:
        """The browser at the double's consent page: the query it is redirected back with."""
        answer = HTTP.get(authorization_url)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT + "?"), location
        return query_of(location)

    def callback(self, params: dict[str, str], provider: str = "gmail") -> dict[str, Any]:
        """GET /oauth/{provider}/callback through the oauth function, with `params` as its query."""
        event = load_event("api/oauth-callback.json")
        event["queryStringParameters"] = dict(params) or None
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in params.items())
        event["pathParameters"] = {"provider": provider}
        event["rawPath"] = f"/oauth/{provider}/callback"
        event["requestContext"]["http"]["path"] = event["rawPath"]
        return self.invoke("oauth", event)

    def outcome(self, response: dict[str, Any]) -> dict[str, str]:
        """The outcome fields of a callback's redirect."""
        assert response["statusCode"] == 302, response
        location = response["headers"]["Location"]
        assert location.startswith(RETURN_URL + "?"), location
        return query_of(location)

    def connect(self, **query: str) -> str:
        """The whole flow for a new mailbox (or a reconnect with account_id=...); the account id."""
        started = self.start(**query)
        assert started["statusCode"] == 200, started
        url = json.loads(started["body"])["authorization_url"]
        outcome = self.outcome(self.callback(self.consent(url)))
        assert outcome["outcome"] in ("connected", "reconnected"), outcome
        return outcome["account_id"]

    def add_account(self, tenant_id: str = TENANT, account_id: str = "acc_" + "a" * 20) -> str:
        """A connected Gmail account written straight to the store (with a real grant sealed), for
        tests about what happens after connecting."""
        from mailbridge import accounts as account_service
        from mailbridge.models.account import OAuthGrant, SyncState

        token = HTTP.post(
            self.google.token_url,
            data={
                "grant_type": "authorization_code",
                "code": self.consent_code(),
                "code_verifier": "v" * 43,
                "redirect_uri": REDIRECT,
                "client_id": self.client.client_id,
                "client_secret": self.client.client_secret,
            },
        ).json()
        account = Account(
            account_id=account_id,
            tenant_id=tenant_id,
            provider="gmail",
            address=USER,
            oauth=OAuthGrant(scopes=token["scope"].split()),
            created_at=datetime.now(UTC),
            created_by=SUBJECT,
            sync=SyncState(),
        )
        sealed = account_service.seal_secrets(
            {"refresh_token": token["refresh_token"]},
            tenant_id,
            account_id,
            key_id=get_settings().data_key_id,
        )
        self.accounts.create_account(account, sealed)
        return account_id

    def consent_code(self) -> str:
        """An authorization code of the double for the Gmail scopes, with a plain PKCE verifier."""
        params = {
            "client_id": self.client.client_id,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "https://www.googleapis.com/auth/gmail.modify https://www.googleapis.com/auth/gmail.send",
            "access_type": "offline",
            "prompt": "consent",
            "code_challenge": "v" * 43,
            "code_challenge_method": "plain",
        }
        answer = HTTP.get(self.google.authorize_url, params=params)
        return query_of(answer.headers["location"])["code"]

    def api(self, name: str, account_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """An api function route from its sample event (the account id put into its path)."""
        event = load_event(f"api/{name}.json", tenant=TENANT, **kwargs)
        if account_id is not None:
            sample = event["pathParameters"]["account_id"]
            event["pathParameters"]["account_id"] = account_id
            event["rawPath"] = event["rawPath"].replace(sample, account_id)
            event["requestContext"]["http"]["path"] = event["rawPath"]
        return self.invoke("api", event)

    # ------------------------------------------------------------------ state

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
def gmail_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[GmailStack]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with GoogleDouble(clock=clock, seed=11) as google:
        google.add_user(USER, "Ada Lovelace")
        client = google.register_client([REDIRECT])
        google.create_topic(TOPIC, push_endpoint=None, audience=AUDIENCE, service_account=PUSH_ACCOUNT)
        secret_arn = stack.deployed.secrets["GoogleClientSecret"]
        boto3.client("secretsmanager").put_secret_value(
            SecretId=secret_arn, SecretString=client.client_secret
        )
        for name, value in google_environment(google, client, secret_arn).items():
            monkeypatch.setenv(name, value)
        reset_caches()
        reset_google_caches()
        yield GmailStack(stack=stack, google=google, client=client, clock=clock)
        reset_google_caches()
