"""One loopback port that speaks HTTPS and plain HTTP, a route table, and request/response helpers.

Microsoft's hosts are HTTPS only, and msal refuses an authority that is not `https://` (its
`authority.canonicalize` raises for any other scheme). The double therefore serves TLS with a
certificate for 127.0.0.1/localhost issued by a throw-away CA (`TlsIdentity`, whose PEM file the
client trusts: `verify=double.ca_file`). The same port also answers plain HTTP (the first byte of a
TLS connection is a handshake record, 0x16; anything else is HTTP), so a quick `curl http://...`
or a test that does not care about TLS needs no CA. Absolute URLs the double writes into bodies
(`@odata.nextLink`, OpenID metadata) use the scheme and host the request arrived with.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 160 * 1024 * 1024  # above Outlook's 150 MB per 5 minutes upload budget
TLS_HANDSHAKE = 0x16


class HttpError(Exception):
    """An error that knows the HTTP answer it becomes (Graph, identity JSON, or an HTML page)."""

    def response(self, ctx: RequestContext) -> Response:
        raise NotImplementedError


@dataclass
class RequestContext:
    """What error bodies need from the double: the clock's time and a fresh request id."""

    now: Callable[[], datetime]
    new_id: Callable[[], str]


@dataclass
class Call:
    """One parsed request."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    scheme: str = "https"
    host: str = "127.0.0.1"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    def one(self, name: str, default: str | None = None) -> str | None:
        """A query parameter; OData names match case-insensitively (`$select` = `$SELECT`)."""
        values = self.query.get(name)
        if values is None:
            lowered = name.lower()
            values = next((v for k, v in self.query.items() if k.lower() == lowered), None)
        return values[-1] if values else default

    def json(self) -> Any:
        if not self.body.strip():
            return {}
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def prefer(self) -> dict[str, str]:
        """`Prefer` header preferences: `odata.maxpagesize=2, IdType="ImmutableId"` -> a dict."""
        out: dict[str, str] = {}
        for header in [self.headers.get("prefer", "")]:
            for item in header.split(","):
                name, _, value = item.strip().partition("=")
                if name:
                    out[name.strip().lower()] = value.strip().strip('"')
        return out


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(value).encode(),
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


Handler = Callable[[Call], Response]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, template: str, handler: Handler, ignore_case: bool = True) -> Route:
    """`/v1.0/me/messages/{id}` -> a regex with named groups (no slash in a value).

    Graph's path segments are case-insensitive (`mailFolders` = `mailfolders` in its own docs);
    captured values keep their case (ids are case-sensitive).
    """
    regex = re.sub(
        r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    )
    return Route(method, re.compile(regex, re.IGNORECASE if ignore_case else 0), handler)


class Router:
    """Dispatch by path and method; HttpError becomes its own answer, anything else a 500."""

    def __init__(
        self, routes: list[Route], ctx: RequestContext, not_found: Callable[[Call], Response]
    ) -> None:
        self.routes = routes
        self.ctx = ctx
        self.not_found = not_found

    def dispatch(self, call: Call) -> Response:
        allowed = False
        for candidate in self.routes:
            match = candidate.pattern.fullmatch(call.path)
            if match is None:
                continue
            allowed = True
            if candidate.method != call.method:
                continue
            call.params = {k: unquote(v) for k, v in match.groupdict().items()}
            try:
                return candidate.handler(call)
            except HttpError as error:
                return error.response(self.ctx)
        if allowed:
            return Response.json(
                405,
                {
                    "error": {
                        "code": "Request_BadRequest",
                        "message": "Specified HTTP method is not allowed for the request target.",
                    }
                },
            )
        try:
            return self.not_found(call)
        except HttpError as error:
            return error.response(self.ctx)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._write(
                Response.json(
                    413, {"error": {"code": "RequestEntityTooLarge", "message": "Request too large"}}
                )
            )
            return
        body = self.rfile.read(length) if length else b""
        host, port = self.server.server_address[:2]
        call = Call(
            method=self.command,
            path=parts.path,
            params={},
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=_headers(self.headers.items()),
            body=body,
            scheme="https" if isinstance(self.connection, ssl.SSLSocket) else "http",
            host=self.headers.get("Host") or f"{host!s}:{port}",
        )
        try:
            response = self.server.router.dispatch(call)
        except Exception:  # a bug in the double must not hang the client: answer 500 and log it
            log.exception("microsoft double: %s %s failed", self.command, parts.path)
            response = Response.json(
                500, {"error": {"code": "generalException", "message": "General exception while processing"}}
            )
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


def _headers(items: Any) -> dict[str, str]:
    """Header names lower-cased; a repeated header (two `Prefer` lines) joined with commas (RFC 9110 §5.3)."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    router: Router
    tls: ssl.SSLContext | None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Sniff the first byte: a TLS handshake gets wrapped, anything else is plain HTTP."""
        sock: socket.socket = request
        if self.tls is not None:
            sock.settimeout(10)
            try:
                first = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                return
            if not first:
                return
            if first[0] == TLS_HANDSHAKE:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    return
            sock.settimeout(None)
        super().finish_request(sock, client_address)


class HttpServer:
    """A ThreadingHTTPServer on `host:port` (0 = a free port) serving `router` in a thread."""

    def __init__(
        self, router: Router, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.router = router
        self._server.tls = tls
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="microsoft-double-http",
            daemon=True,
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
