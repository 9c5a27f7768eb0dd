"""The Salesforce double on a loopback port, a connected app, and a SOAP receiver; plain httpx only."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from local.clock import ManualClock
from local.salesforce import SalesforceDouble
from local.salesforce.oauth import ConnectedApp

HTTP = httpx.Client(timeout=10)
CALLBACK = "http://127.0.0.1:3000/oauth/salesforce/callback"
# The shared reference data: $MAILBRIDGE_CORPUS, else ../shared/data beside the checkout.
_CORPUS = os.environ.get("MAILBRIDGE_CORPUS")
DATA = str(
    Path(_CORPUS or Path(__file__).resolve().parents[3].parent / "shared" / "data")
    / "providers"
    / "salesforce"
)

ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
# A common mistake (notes.md): answering with <notifications> instead of <notificationsResponse>.
WRONG_ELEMENT = ACK.replace(b"notificationsResponse", b"notifications")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def salesforce(clock: ManualClock) -> Iterator[SalesforceDouble]:
    with SalesforceDouble(clock=clock, seed=3) as double:
        yield double


@pytest.fixture
def app(salesforce: SalesforceDouble) -> ConnectedApp:
    return salesforce.register_app([CALLBACK])


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize(
    salesforce: SalesforceDouble, app: ConnectedApp, pkce: Pkce | None, **extra: str
) -> httpx.Response:
    params = {"response_type": "code", "client_id": app.client_id, "redirect_uri": CALLBACK, "state": "st-1"}
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return HTTP.get(salesforce.authorize_url, params=params | extra)


def connect(salesforce: SalesforceDouble, app: ConnectedApp) -> dict[str, Any]:
    """The web server flow with PKCE, end to end; returns the token answer."""
    pkce = Pkce()
    code = redirect_params(authorize(salesforce, app, pkce))["code"]
    answer = HTTP.post(
        salesforce.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "redirect_uri": CALLBACK,
            "code_verifier": pkce.verifier,
        },
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


class Rest:
    """httpx against `{instance_url}/services/data/v61.0` with a bearer token."""

    def __init__(self, salesforce: SalesforceDouble, token: str) -> None:
        self.base = salesforce.rest_url
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
        return HTTP.get(self.base + path, params=params, headers=self.headers | (headers or {}))

    def post(self, path: str, body: Any) -> httpx.Response:
        return HTTP.post(self.base + path, json=body, headers=self.headers)

    def patch(self, path: str, body: Any) -> httpx.Response:
        return HTTP.patch(self.base + path, json=body, headers=self.headers)

    def put_csv(self, path: str, data: bytes) -> httpx.Response:
        return HTTP.put(self.base + path, content=data, headers=self.headers | {"Content-Type": "text/csv"})

    def delete(self, path: str, **params: Any) -> httpx.Response:
        return HTTP.delete(self.base + path, params=params, headers=self.headers)

    def query(self, soql: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.get("/query", headers=headers, q=soql)


@pytest.fixture
def rest(salesforce: SalesforceDouble, app: ConnectedApp) -> Rest:
    return Rest(salesforce, connect(salesforce, app)["access_token"])


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class SoapReceiver:
    """A loopback endpoint recording every POST and answering `answers` in turn (then `default`)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: list[tuple[int, bytes]] = []
        self.default: tuple[int, bytes] = (200, ACK)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                )
                status, body = receiver.answers.pop(0) if receiver.answers else receiver.default
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/salesforce"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )


@pytest.fixture
def receiver() -> Iterator[SoapReceiver]:
    hook = SoapReceiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
