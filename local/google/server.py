"""The HTTP side: one loopback server, a route table, and request/response helpers."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.google.errors import ApiError, ConsentPageError, OAuthError, bad_request

log = logging.getLogger(__name__)

MAX_BODY = 60 * 1024 * 1024  # above Gmail's 36 MB send / 50 MB insert upload limits [D discovery]


@dataclass
class Call:
    """One parsed request."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def many(self, name: str) -> list[str]:
        return [v for value in self.query.get(name, []) for v in value.split(",") if v]

    def flag(self, name: str) -> bool:
        return (self.one(name) or "false").lower() == "true"

    def json(self) -> dict[str, Any]:
        if not self.body.strip():
            return {}
        try:
            value = json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise bad_request("Invalid JSON payload received.", reason="parseError") from None
        if not isinstance(value, dict):
            raise bad_request("Invalid JSON payload received. Expected an object.", reason="parseError")
        return value

    def form(self) -> dict[str, str]:
        content_type = self.headers.get("content-type", "")
        if "json" in content_type:
            return {k: str(v) for k, v in self.json().items()}
        merged = {k: v[-1] for k, v in self.query.items()}
        merged.update({k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()})
        return merged

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, secret = base64.b64decode(value[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return unquote(user), unquote(secret)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(value, indent=2).encode(),
            {"Content-Type": "application/json; charset=UTF-8", **(headers or {})},
        )

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status)


Handler = Callable[[Call], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, template: str, handler: Handler) -> Route:
    """`/gmail/v1/users/{userId}/messages/{id}` -> a regex with named groups (no slash in a value)."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, re.compile(regex), handler)


def dispatch(routes: list[Route], call: Call) -> Response:
    allowed = False
    for candidate in routes:
        match = candidate.pattern.fullmatch(call.path)
        if match is None:
            continue
        allowed = True
        if candidate.method != call.method:
            continue
        call.params = {k: unquote(v) for k, v in match.groupdict().items()}
        try:
            return candidate.handler(call)
        except ApiError as error:
            return Response.json(error.code, error.body(), error.headers)
        except OAuthError as error:
            return Response.json(error.status, error.body(), {"Cache-Control": "no-store"})
        except ConsentPageError as error:
            return Response(error.status, error.page(), {"Content-Type": "text/html; charset=utf-8"})
    if allowed:
        return Response.json(
            405, {"error": {"code": 405, "message": "Method not allowed", "status": "UNIMPLEMENTED"}}
        )
    return Response.json(
        404, ApiError(404, f"The requested URL {call.path} was not found.", "notFound").body()
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._write(Response.json(413, {"error": {"code": 413, "message": "Request too large"}}))
            return
        body = self.rfile.read(length) if length else b""
        call = Call(
            method=self.command,
            path=parts.path,
            params={},
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = dispatch(self.server.routes, call)
        except Exception:  # a bug in the double must not hang the client: answer 500 and log it
            log.exception("google double: %s %s failed", self.command, parts.path)
            response = Response.json(500, ApiError(500, "Backend Error", "backendError").body())
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's names


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    routes: list[Route]


class HttpServer:
    """A ThreadingHTTPServer on `host:port` (0 = a free port) serving `routes` in a thread."""

    def __init__(self, routes: list[Route], host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.routes = routes
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="google-double-http",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
