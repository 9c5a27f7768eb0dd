"""The Google double on a loopback port, a consenting user, and a push receiver; plain httpx only."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from local.clock import ManualClock
from local.google import GoogleDouble
from local.google.oauth import OAuthClient

# One client for the whole run: building an httpx client (its TLS context) costs more than a call.
HTTP = httpx.Client(timeout=10)
USER = "ada@example.com"
REDIRECT = "http://127.0.0.1:3000/oauth/gmail/callback"
MODIFY = "https://www.googleapis.com/auth/gmail.modify"
SEND = "https://www.googleapis.com/auth/gmail.send"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
FULL = "https://mail.google.com/"
CONTACTS = "https://www.googleapis.com/auth/contacts.readonly"


def rfc5322(
    subject: str = "Renewal quote",
    sender: str = "Carol <carol@customer.example>",
    to: str = USER,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    body: str = "Hello Ada,\r\nthe quote is attached.\r\n",
) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", "Date: Tue, 1 Jan 2030 09:00:00 +0000"]
    if message_id:
        lines.append(f"Message-ID: {message_id}")
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


@pytest.fixture
def clock() -> ManualClock:
    # Real time (to the second), so pyjwt's own exp/iat checks agree with the double's clock.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def google(clock: ManualClock) -> Iterator[GoogleDouble]:
    with GoogleDouble(clock=clock, seed=7) as double:
        yield double


@pytest.fixture
def client(google: GoogleDouble) -> OAuthClient:
    google.add_user(USER, "Ada Lovelace")
    return google.register_client([REDIRECT])


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(
    google: GoogleDouble, client: OAuthClient, pkce: Pkce | None = None, **extra: str
) -> httpx.Response:
    params = {
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": f"{MODIFY} {SEND} openid email",
        "state": "state-123",
        "access_type": "offline",
        "prompt": "consent",
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    params |= extra
    return HTTP.get(google.authorize_url, params={k: v for k, v in params.items() if v != ""})


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(google: GoogleDouble, client: OAuthClient, code: str, verifier: str | None) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "redirect_uri": REDIRECT,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return HTTP.post(google.token_url, data=form)


def connect(
    google: GoogleDouble, client: OAuthClient, scope: str = f"{MODIFY} {SEND} openid email"
) -> dict[str, Any]:
    """The whole consent + code exchange; returns the token response."""
    pkce = Pkce()
    code = redirect_params(authorize(google, client, pkce, scope=scope))["code"]
    response = exchange(google, client, code, pkce.verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class Gmail:
    """httpx against the double's Gmail base URL with a bearer token."""

    def __init__(self, google: GoogleDouble, token: str) -> None:
        self.base = google.gmail_url + "/users/me"
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return HTTP.get(self.base + path, params=params, headers=self.headers)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return HTTP.post(self.base + path, json=body or {}, headers=self.headers)

    def delete(self, path: str) -> httpx.Response:
        return HTTP.delete(self.base + path, headers=self.headers)


@pytest.fixture
def gmail(google: GoogleDouble, client: OAuthClient) -> Gmail:
    return Gmail(google, connect(google, client)["access_token"])


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]


class PushReceiver:
    """A webhook on loopback that records every push and answers `statuses` in turn (then 204)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.received.append(
                    Received(
                        {k.lower(): v for k, v in self.headers.items()}, json.loads(self.rfile.read(length))
                    )
                )
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/gmail"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def data(self, index: int) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(base64.b64decode(self.received[index].body["message"]["data"]))
        return decoded


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    hook = PushReceiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
