"""The Microsoft double on a loopback port (HTTPS), a consenting user, and a webhook receiver."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from local.microsoft.identity import App

USER = "ada@contoso.example"
REDIRECT = "http://127.0.0.1:3000/oauth/graph/callback"
SCOPES = "Mail.ReadWrite Mail.Send Contacts.Read offline_access openid profile email"


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


@pytest.fixture
def clock() -> ManualClock:
    # Real time (to the second), so pyjwt's and msal's own clocks agree with the double's.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def ms(clock: ManualClock) -> Iterator[MicrosoftDouble]:
    with MicrosoftDouble(clock=clock, seed=7) as double:
        yield double


@pytest.fixture
def http(ms: MicrosoftDouble) -> Iterator[httpx.Client]:
    verify = ssl.create_default_context(cafile=ms.ca_file) if ms.ca_file else True
    with httpx.Client(verify=verify, timeout=15) as client:
        yield client


@pytest.fixture
def app(ms: MicrosoftDouble) -> App:
    ms.add_user(USER, "Ada Lovelace")
    return ms.register_app([REDIRECT])


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(
    http: httpx.Client, ms: MicrosoftDouble, app: App, pkce: Pkce | None = None, **extra: str
) -> httpx.Response:
    params = {
        "client_id": app.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPES,
        "state": "state-123",
        "prompt": "consent",
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    params |= extra
    return http.get(ms.authorize_url(), params={k: v for k, v in params.items() if v != ""})


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(
    http: httpx.Client, ms: MicrosoftDouble, app: App, code: str, verifier: str | None
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": REDIRECT,
        "scope": SCOPES,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return http.post(ms.token_url(), data=form)


def refresh(
    http: httpx.Client, ms: MicrosoftDouble, app: App, token: str, scope: str = SCOPES
) -> httpx.Response:
    return http.post(
        ms.token_url(),
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "scope": scope,
        },
    )


def connect(http: httpx.Client, ms: MicrosoftDouble, app: App, scope: str = SCOPES) -> dict[str, Any]:
    """Consent + code exchange with PKCE; returns the token response."""
    pkce = Pkce()
    code = redirect_params(authorize(http, ms, app, pkce, scope=scope))["code"]
    response = exchange(http, ms, app, code, pkce.verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class Graph:
    """httpx against the double's Graph base URL with a bearer token."""

    def __init__(self, http: httpx.Client, ms: MicrosoftDouble, token: str) -> None:
        self.http = http
        self.base = ms.graph_url
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(
        self, path: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        url = path if path.startswith("http") else self.base + path
        return self.http.get(url, params=params, headers=self.headers(headers))

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.post(
            self.base + path, json=body if body is not None else {}, headers=self.headers(headers)
        )

    def post_raw(self, path: str, content: bytes, content_type: str) -> httpx.Response:
        return self.http.post(
            self.base + path, content=content, headers=self.headers({"Content-Type": content_type})
        )

    def patch(self, path: str, body: Any) -> httpx.Response:
        return self.http.patch(self.base + path, json=body, headers=self.headers())

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(self.base + path, headers=self.headers())


@pytest.fixture
def tokens(http: httpx.Client, ms: MicrosoftDouble, app: App) -> dict[str, Any]:
    return connect(http, ms, app)


@pytest.fixture
def graph(http: httpx.Client, ms: MicrosoftDouble, tokens: dict[str, Any]) -> Graph:
    return Graph(http, ms, tokens["access_token"])


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class Receiver:
    """A webhook on loopback. `validation` decides how it answers a validation request:
    "echo" (right), "encoded" (echoes the still-encoded token), "ignore" (200 with no token),
    or an HTTP status code. Change notifications are answered with `statuses` in turn, then 202;
    lifecycle notifications always with 202."""

    def __init__(self) -> None:
        self.validations: list[Received] = []
        self.notifications: list[Received] = []
        self.validation: str | int = "echo"
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                if "validationToken" in received.query:
                    receiver.validations.append(received)
                    self._validate(parts.query, received.query["validationToken"])
                    return
                receiver.notifications.append(received)
                lifecycle = parts.path.endswith("/lifecycle")
                status = receiver.statuses.pop(0) if receiver.statuses and not lifecycle else 202
                self._answer(status, b"", "text/plain")

            def _validate(self, raw_query: str, decoded: str) -> None:
                mode = receiver.validation
                if mode == "echo":
                    self._answer(200, decoded.encode(), "text/plain")
                elif mode == "encoded":
                    encoded = next(
                        p.split("=", 1)[1] for p in raw_query.split("&") if p.startswith("validationToken=")
                    )
                    assert unquote(encoded) == decoded
                    self._answer(200, encoded.encode(), "text/plain")
                elif mode == "ignore":
                    self._answer(200, b"", "text/plain")
                else:
                    self._answer(int(mode), b"", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = base + "/webhooks/graph"
        self.lifecycle_url = base + "/webhooks/graph/lifecycle"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def items(self, lifecycle: bool = False) -> list[dict[str, Any]]:
        wanted = [n for n in self.notifications if n.path.endswith("/lifecycle") == lifecycle]
        return [item for n in wanted for item in n.json()["value"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
