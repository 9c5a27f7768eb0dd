"""The template's stack on moto with the Salesforce and HubSpot doubles as the CRMs: the api and
oauth functions in-process, their settings pointed at the doubles (what the local runner does).

    def test_x(crm_stack: CrmStack) -> None:
        integration_id = crm_stack.connect_salesforce()      # POST /crm/integrations -> consent -> callback
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
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from local.salesforce import SalesforceDouble
from local.salesforce.oauth import ConnectedApp
from tests.events import load_event
from tests.fixtures.aws import FakeLambdaContext, Stack, load_function, reset_caches

TENANT = "acme"
CALLBACK_BASE = "https://api.mailbridge.test"
RETURN_URL = "https://app.mailbridge.test/connected"
HTTP = httpx.Client(timeout=10)
HUBSPOT_SCOPES = (
    "oauth crm.objects.contacts.read crm.objects.contacts.write crm.schemas.contacts.read "
    "crm.lists.read crm.lists.write"
)


def reset_crm_caches() -> None:
    from mailbridge.crm.integrations import wiring
    from mailbridge.oauth import http as oauth_http
    from mailbridge.oauth import wiring as oauth_wiring

    wiring.crm_oauth.cache_clear()
    wiring.integration_deps.cache_clear()
    wiring.activity_deps.cache_clear()
    wiring.activity_queue.cache_clear()
    wiring.campaign_sync_deps.cache_clear()
    oauth_wiring.oauth_deps.cache_clear()
    oauth_http.client.cache_clear()


def query_of(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def path_event(name: str, integration_id: str, **kwargs: Any) -> dict[str, Any]:
    event = load_event(f"api/{name}.json", **kwargs)
    sample = event["pathParameters"]["integration_id"]
    event["pathParameters"]["integration_id"] = integration_id
    event["rawPath"] = event["rawPath"].replace(sample, integration_id)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    return event


@dataclass
class CrmStack:
    stack: Stack
    salesforce: SalesforceDouble
    hubspot: HubSpotDouble
    sf_app: ConnectedApp
    hs_app: App
    clock: ManualClock
    context: FakeLambdaContext = field(default_factory=FakeLambdaContext)
    modules: dict[str, ModuleType] = field(default_factory=dict)

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        if name not in self.modules:
            self.modules[name] = load_function(name)
        result: dict[str, Any] = self.modules[name].lambda_handler(event, self.context)
        return result

    def api(self, name: str, integration_id: str | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("tenant", TENANT)
        event = (
            path_event(name, integration_id, **kwargs)
            if integration_id is not None
            else load_event(f"api/{name}.json", **kwargs)
        )
        return self.invoke("api", event)

    @staticmethod
    def body(response: dict[str, Any]) -> Any:
        return json.loads(response["body"])

    # ------------------------------------------------------------------ web server / code flow

    def start(
        self, provider: str = "salesforce", role: str = "admin", tenant: str = TENANT
    ) -> dict[str, Any]:
        started = self.api("crm-create-integration", role=role, tenant=tenant, body={"provider": provider})
        assert started["statusCode"] == 201, started
        body: dict[str, Any] = self.body(started)
        return body

    def consent(self, authorization_url: str, provider: str = "salesforce") -> dict[str, str]:
        answer = HTTP.get(authorization_url)
        assert answer.status_code in (302, 303), answer.text
        location = answer.headers["location"]
        assert location.startswith(f"{CALLBACK_BASE}/oauth/{provider}/callback?"), location
        return query_of(location)

    def callback(self, params: dict[str, str], provider: str = "salesforce") -> dict[str, str]:
        event = load_event("api/oauth-callback.json")
        event["queryStringParameters"] = dict(params) or None
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in params.items())
        event["pathParameters"] = {"provider": provider}
        event["rawPath"] = f"/oauth/{provider}/callback"
        event["requestContext"]["http"]["path"] = event["rawPath"]
        response = self.invoke("oauth", event)
        assert response["statusCode"] == 302, response
        location = response["headers"]["Location"]
        assert location.startswith(RETURN_URL + "?"), location
        return query_of(location)

    def connect(self, provider: str = "salesforce", tenant: str = TENANT) -> str:
        started = self.start(provider, tenant=tenant)
        outcome = self.callback(self.consent(started["authorization_url"], provider), provider)
        assert outcome["outcome"] == "connected", outcome
        return outcome["integration_id"]

    # ------------------------------------------------------------------ state

    def integration(self, integration_id: str, tenant: str = TENANT) -> dict[str, Any]:
        response = self.api("crm-get-integration", integration_id, role="member", tenant=tenant)
        assert response["statusCode"] == 200, response
        body: dict[str, Any] = self.body(response)
        return body

    def token_item(self, integration_id: str, tenant: str = TENANT) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            self.stack.table("CrmTable")
            .get_item(Key={"pk": f"TENANT#{tenant}", "sk": f"CRMTOKEN#{integration_id}"})
            .get("Item")
        )
        return item

    def sealed_tokens(self, integration_id: str, tenant: str = TENANT) -> dict[str, str]:
        from mailbridge import crypto

        item = self.token_item(integration_id, tenant)
        assert item is not None
        envelope = crypto.Envelope.model_validate(item["credentials"])
        opened: dict[str, str] = json.loads(
            crypto.decrypt(envelope, {"tenant_id": tenant, "integration_id": integration_id})
        )
        return opened


@pytest.fixture
def crm_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[CrmStack]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with SalesforceDouble(clock=clock, seed=5) as salesforce, HubSpotDouble(clock=clock, seed=5) as hubspot:
        sf_app = salesforce.register_app([f"{CALLBACK_BASE}/oauth/salesforce/callback"])
        hs_app = hubspot.register_app(
            [f"{CALLBACK_BASE}/oauth/hubspot/callback"], scopes=HUBSPOT_SCOPES.split()
        )
        sm = boto3.client("secretsmanager")
        sm.put_secret_value(
            SecretId=stack.deployed.secrets["SalesforceClientSecret"], SecretString=sf_app.client_secret
        )
        sm.put_secret_value(
            SecretId=stack.deployed.secrets["HubSpotClientSecret"], SecretString=hs_app.client_secret
        )
        env = {
            "SALESFORCE_CLIENT_ID": sf_app.client_id,
            "SALESFORCE_CLIENT_SECRET_ARN": stack.deployed.secrets["SalesforceClientSecret"],
            "SALESFORCE_LOGIN_URL": salesforce.login_url,
            "HUBSPOT_CLIENT_ID": hs_app.client_id,
            "HUBSPOT_CLIENT_SECRET_ARN": stack.deployed.secrets["HubSpotClientSecret"],
            "HUBSPOT_AUTH_URL": hubspot.authorize_url,
            "HUBSPOT_API_URL": hubspot.base_url,
            "HUBSPOT_SCOPES": HUBSPOT_SCOPES,
            "OAUTH_RETURN_URL": RETURN_URL,
            "OAUTH_CALLBACK_BASE_URL": CALLBACK_BASE,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_caches()
        reset_crm_caches()
        from mailbridge.crm.integrations.wiring import integration_deps

        deps = integration_deps()
        deps.now = clock.now
        deps.sleep = lambda _seconds: None
        yield CrmStack(stack, salesforce, hubspot, sf_app, hs_app, clock)
        reset_crm_caches()
