"""Wiring the Google double (local/google) to the local runner, as `make run` does.

`wire_google(google, runner_url)` registers an OAuth client whose redirect URI is the runner's
`/oauth/gmail/callback`, creates the Pub/Sub topic Gmail watches publish to with a push
subscription to the runner's `/webhooks/gmail` (audience: that URL), and returns the template
parameters and the environment overrides that point every function at the double (the
settings' defaults are Google's real endpoints). `store_client_secret` then puts the client's
secret into the template's GoogleClientSecret once moto has it. `write_state` leaves the
double's URLs in `.local/google-double.json` for `make mailbox PROVIDER=gmail`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.functions import STATE_DIR
from local.google import GoogleDouble
from local.google.oauth import OAuthClient

TOPIC = "projects/mailbridge-local/topics/gmail"
PUSH_ACCOUNT = "mailbridge-push@mailbridge-local.iam.gserviceaccount.com"
STATE_FILE = STATE_DIR / "google-double.json"


@dataclass(frozen=True)
class GoogleWiring:
    client: OAuthClient
    parameters: dict[str, str]
    environment: dict[str, str]


def wire_google(google: GoogleDouble, runner_url: str) -> GoogleWiring:
    client = google.register_client([f"{runner_url}/oauth/gmail/callback"])
    push_endpoint = f"{runner_url}/webhooks/gmail"
    google.create_topic(
        TOPIC, push_endpoint=push_endpoint, audience=push_endpoint, service_account=PUSH_ACCOUNT
    )
    parameters = {
        "GoogleClientId": client.client_id,
        "GmailPushTopic": TOPIC,
        "GmailPushAudience": push_endpoint,
        "GmailPushServiceAccount": PUSH_ACCOUNT,
    }
    environment = {
        "GOOGLE_AUTH_URL": google.authorize_url,
        "GOOGLE_TOKEN_URL": google.token_url,
        "GOOGLE_REVOKE_URL": google.revoke_url,
        "GMAIL_API_URL": google.gmail_url,
        "PEOPLE_API_URL": google.people_url,
        "GOOGLE_CALENDAR_API_URL": google.calendar_url,
        "GOOGLE_CERTS_URL": google.certs_url,
        "OAUTH_CALLBACK_BASE_URL": runner_url,
    }
    return GoogleWiring(client=client, parameters=parameters, environment=environment)


def store_client_secret(secretsmanager: Any, secret_arn: str, client: OAuthClient) -> None:
    """The template's placeholder client secret becomes the double's client secret."""
    secretsmanager.put_secret_value(SecretId=secret_arn, SecretString=client.client_secret)


def write_state(google: GoogleDouble, runner_url: str, path: Path = STATE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"urls": google.urls(), "runner": runner_url}, indent=2) + "\n", encoding="utf-8"
    )


def read_state(path: Path = STATE_FILE) -> dict[str, Any] | None:
    """What the last `make run` wrote, or None when it has not run here."""
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state
