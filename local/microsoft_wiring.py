"""Wiring the Microsoft double (local/microsoft) to the local runner, as `make run` does.

`wire_microsoft(ms, runner_url)` registers an app whose redirect URI is the runner's
`/oauth/graph/callback` and returns the template parameters and the environment that point every
function at the double (the settings' defaults are Microsoft's real endpoints): the authority
host, Graph's URL, the double's CA as `MICROSOFT_CA_BUNDLE` (msal and httpx must trust it: the
double serves HTTPS; nothing turns verification off), and the runner's `/webhooks/graph` as the
subscriptions' notification URL (the double allows plain http on loopback). `store_client_secret`
puts the app's secret into the template's MicrosoftClientSecret once moto has it. `write_state`
leaves the double's URLs in `.local/microsoft-double.json` for `make mailbox PROVIDER=graph`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.functions import STATE_DIR
from local.microsoft import MicrosoftDouble
from local.microsoft.identity import App

STATE_FILE = STATE_DIR / "microsoft-double.json"


@dataclass(frozen=True)
class MicrosoftWiring:
    app: App
    parameters: dict[str, str]
    environment: dict[str, str]


def wire_microsoft(ms: MicrosoftDouble, runner_url: str) -> MicrosoftWiring:
    app = ms.register_app([f"{runner_url}/oauth/graph/callback"])
    parameters = {
        "MicrosoftClientId": app.client_id,
        "MicrosoftTenant": "common",
        "GraphWebhookUrl": f"{runner_url}/webhooks/graph",
    }
    environment = {
        "MICROSOFT_AUTHORITY_HOST": ms.authority_host,
        "GRAPH_API_URL": ms.graph_url,
        "MICROSOFT_CA_BUNDLE": ms.ca_file or "",
        "OAUTH_CALLBACK_BASE_URL": runner_url,
    }
    return MicrosoftWiring(app=app, parameters=parameters, environment=environment)


def store_client_secret(secretsmanager: Any, secret_arn: str, app: App) -> None:
    """The template's placeholder client secret becomes the double's app secret."""
    secretsmanager.put_secret_value(SecretId=secret_arn, SecretString=app.client_secret)


def write_state(ms: MicrosoftDouble, runner_url: str, path: Path = STATE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"urls": ms.urls(), "runner": runner_url}, indent=2) + "\n", encoding="utf-8")


def read_state(path: Path = STATE_FILE) -> dict[str, Any] | None:
    """What the last `make run` wrote, or None when it has not run here."""
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state
