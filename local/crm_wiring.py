"""Wiring the Salesforce and HubSpot doubles (local/salesforce, local/hubspot) to the local runner,
as `make run` does.

`wire_crm(salesforce, hubspot, runner_url)` registers a connected app whose callback is the
runner's `/oauth/salesforce/callback` (device flow on) and a HubSpot public app redirecting to
`/oauth/hubspot/callback`, and returns the template parameters (client ids) and the environment
that points every function at the doubles (the settings' defaults are the real endpoints:
mailbridge.config.CrmOAuthSettings). `store_client_secrets` puts the apps' secrets into the
template's SalesforceClientSecret / HubSpotClientSecret once moto has them. `write_state` leaves
the doubles' URLs in `.local/crm-doubles.json` (control API: approve a device code, seed records).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.functions import STATE_DIR
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from local.salesforce import SalesforceDouble
from local.salesforce.oauth import ConnectedApp

STATE_FILE = STATE_DIR / "crm-doubles.json"
MESSAGE_ID_FIELD = "Mailbridge_Message_Id__c"
HUBSPOT_SCOPES = (
    "oauth crm.objects.contacts.read crm.objects.contacts.write crm.schemas.contacts.read "
    "crm.lists.read crm.lists.write"
)


@dataclass(frozen=True)
class CrmWiring:
    salesforce_app: ConnectedApp
    hubspot_app: App
    parameters: dict[str, str]
    environment: dict[str, str]


def wire_crm(salesforce: SalesforceDouble, hubspot: HubSpotDouble, runner_url: str) -> CrmWiring:
    salesforce_app = salesforce.register_app([f"{runner_url}/oauth/salesforce/callback"])
    # The org admin's one-time setup for activity logging (SalesforceSettings.message_id_field):
    # the Task field that carries the Message-ID, an External ID so the lookup is indexed.
    with contextlib.suppress(ValueError):  # the double was set up already
        salesforce.add_custom_field("Task", MESSAGE_ID_FIELD, "text", 255, external_id=True)
    hubspot_app = hubspot.register_app(
        [f"{runner_url}/oauth/hubspot/callback"], scopes=HUBSPOT_SCOPES.split()
    )
    return CrmWiring(
        salesforce_app=salesforce_app,
        hubspot_app=hubspot_app,
        parameters={"SalesforceClientId": salesforce_app.client_id, "HubSpotClientId": hubspot_app.client_id},
        environment={
            "SALESFORCE_LOGIN_URL": salesforce.login_url,
            "HUBSPOT_AUTH_URL": hubspot.authorize_url,
            "HUBSPOT_API_URL": hubspot.base_url,
            "HUBSPOT_SCOPES": HUBSPOT_SCOPES,
            "OAUTH_CALLBACK_BASE_URL": runner_url,
        },
    )


def store_client_secrets(secretsmanager: Any, secrets: dict[str, str], wiring: CrmWiring) -> None:
    """The template's placeholder client secrets become the doubles' app secrets."""
    if "SalesforceClientSecret" in secrets:
        secretsmanager.put_secret_value(
            SecretId=secrets["SalesforceClientSecret"], SecretString=wiring.salesforce_app.client_secret
        )
    if "HubSpotClientSecret" in secrets:
        secretsmanager.put_secret_value(
            SecretId=secrets["HubSpotClientSecret"], SecretString=wiring.hubspot_app.client_secret
        )


def write_state(
    salesforce: SalesforceDouble, hubspot: HubSpotDouble, runner_url: str, path: Path = STATE_FILE
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"salesforce": salesforce.urls(), "hubspot": hubspot.urls(), "runner": runner_url}, indent=2
        )
        + "\n",
        encoding="utf-8",
    )
