"""The HubSpot double on a loopback port, an installed app, and a webhook receiver; plain httpx only."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App

HTTP = httpx.Client(timeout=10)
REDIRECT = "http://127.0.0.1:3000/oauth/hubspot/callback"
SCOPES = " ".join(
    (
        "oauth",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.schemas.contacts.read",
        "crm.lists.read",
        "crm.lists.write",
    )
)
# The shared reference data: $MAILBRIDGE_CORPUS, else ../shared/data beside the checkout.
_CORPUS = os.environ.get("MAILBRIDGE_CORPUS")
DATA = str(
    Path(_CORPUS or Path(__file__).resolve().parents[3].parent / "shared" / "data") / "providers" / "hubspot"
)


@pytest.fixture
def clock() -> ManualClock:
    # Real time (to the second), so a receiver's 5-minute window check agrees with the double's clock.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def hubspot(clock: ManualClock) -> Iterator[HubSpotDouble]:
    with HubSpotDouble(clock=clock, seed=5) as double:
        yield double


@pytest.fixture
def app(hubspot: HubSpotDouble) -> App:
    return hubspot.register_app([REDIRECT])


def install(hubspot: HubSpotDouble, app: App, scope: str = SCOPES) -> dict[str, Any]:
    """The install URL, the redirect, the code exchange; returns the token answer."""
    answer = HTTP.get(
        hubspot.authorize_url,
        params={"client_id": app.client_id, "redirect_uri": REDIRECT, "scope": scope, "state": "s1"},
    )
    assert answer.status_code == 302, answer.text
    params = {k: v[-1] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
    assert params["state"] == "s1"
    token = HTTP.post(
        hubspot.token_url,
        data={
            "grant_type": "authorization_code",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "redirect_uri": REDIRECT,
            "code": params["code"],
        },
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


class Api:
    """httpx against api.hubapi.com (the double) with a bearer token."""

    def __init__(self, hubspot: HubSpotDouble, token: str) -> None:
        self.base = hubspot.api_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return HTTP.get(self.base + path, params=params, headers=self.headers)

    def post(self, path: str, body: Any) -> httpx.Response:
        return HTTP.post(self.base + path, json=body, headers=self.headers)

    def patch(self, path: str, body: Any) -> httpx.Response:
        return HTTP.patch(self.base + path, json=body, headers=self.headers)

    def put(self, path: str, body: Any = None) -> httpx.Response:
        return HTTP.put(self.base + path, json=body, headers=self.headers)

    def delete(self, path: str) -> httpx.Response:
        return HTTP.delete(self.base + path, headers=self.headers)


@pytest.fixture
def api(hubspot: HubSpotDouble, app: App) -> Api:
    return Api(hubspot, install(hubspot, app)["access_token"])


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A loopback webhook recording every POST and answering `statuses` in turn (then 204)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.received.append(
                    Received(
                        "POST",
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        self.rfile.read(length),
                    )
                )
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/hubspot"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
