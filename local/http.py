"""Serve the template's HttpApi routes as API Gateway HTTP API does (payload format 2.0).

`match_route` picks the route like API Gateway (most specific first, greedy `{proxy+}` last,
`$default` at the end); `build_event` makes the 2.0 event; `write_response` applies the handler's
result (or API Gateway's inferred format). Protected routes check the bearer token first.

Where API Gateway answers itself, the runner answers as it does, in its `{"message": ...}` shape:
401 from the JWT authorizer, 404 for a route nobody declares, 413 for a body over 10 MB, and 500
"Internal Server Error" whenever the Lambda integration fails (the function raised, timed out, or
Lambda refused an event or response over 6 MB; docs.aws.amazon.com/apigateway/latest/developerguide/
http-api-troubleshooting-lambda.html).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import jwt

from local.auth import ISSUER_PATH, Issuer
from local.clock import Clock
from local.functions import Invocation
from local.template import ACCOUNT_ID, Authorizer, Route

if TYPE_CHECKING:
    from local.websocket import WebSocketGateway

log = logging.getLogger(__name__)

# API Gateway HTTP API refuses a request body above 10 MB with its own 413
# (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html, "Payload size").
# Lambda's 6 MB Invoke limit on the event is enforced where Lambda enforces it: local.functions.
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_DISCARD_BYTES = 4 * MAX_BODY_BYTES  # read (and drop) at most this much of a refused body
HTTP_THREADS = 64  # requests handled at once; more connections wait in the queue, not refused
LISTEN_BACKLOG = 1024  # connections the kernel holds before accept (socketserver's default is 5)
IDLE_SECONDS = 10.0  # socket timeout: an idle keep-alive connection or stalled client gives up its thread
API_ID = "local"
# The runner's own clock control (`make advance`): served by the runner only, never by a route of the
# template, so a deployed stack has no such path. At most a leap year per call.
CLOCK_PATH = "/_local/clock"
# The @connections API of the WebSocket API: the real endpoint URL ends in the stage, so both
# {url}/@connections/{id} and {url}/{stage}/@connections/{id} are served.
CONNECTIONS_PATH = re.compile(r"(?:/[A-Za-z0-9_-]+)?/@connections/([^/]+)")
MAX_ADVANCE_SECONDS = 366 * 24 * 3600
_TEXT_TYPES = re.compile(r"^(text/.*|application/(json|javascript|xml|.*\+json|.*\+xml))$")


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_parameters: dict[str, str]


def _route_regex(path: str) -> re.Pattern[str]:
    pattern = ""
    for segment in path.strip("/").split("/"):
        if segment.endswith("+}") and segment.startswith("{"):
            pattern += f"/(?P<{_group(segment[1:-2])}>.+)"
        elif segment.startswith("{") and segment.endswith("}"):
            pattern += f"/(?P<{_group(segment[1:-1])}>[^/]+)"
        else:
            pattern += "/" + re.escape(segment)
    return re.compile(f"^{pattern or '/'}$")


def _group(name: str) -> str:
    return "p_" + name.encode().hex()


def _specificity(route: Route) -> tuple[int, int, int, int]:
    segments = route.path.strip("/").split("/")
    greedy = int(any(s.endswith("+}") for s in segments))
    literals = sum(1 for s in segments if not s.startswith("{"))
    return (greedy, -literals, -len(segments), int(route.method == "ANY"))


def match_route(routes: Sequence[Route], method: str, path: str) -> RouteMatch | None:
    """The route API Gateway would choose for `method path`, with its path parameters."""
    candidates = sorted((r for r in routes if r.path != "$default"), key=_specificity)
    for route in candidates:
        if route.method not in (method.upper(), "ANY"):
            continue
        match = _route_regex(route.path).fullmatch(path)
        if match:
            params = {bytes.fromhex(k[2:]).decode(): unquote(v) for k, v in match.groupdict().items()}
            return RouteMatch(route, params)
    for route in routes:
        if route.path == "$default":
            return RouteMatch(route, {})
    return None


def is_textual(content_type: str | None) -> bool:
    if not content_type:
        return False
    return bool(_TEXT_TYPES.fullmatch(content_type.split(";", 1)[0].strip().lower()))


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
    match: RouteMatch,
    claims: dict[str, Any] | None,
    source_ip: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event, as AWS builds it."""
    now = now or datetime.now(UTC)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-proto", "http")
    host = merged.get("host", "localhost")
    merged.setdefault("x-forwarded-port", host.rsplit(":", 1)[1] if ":" in host else "80")
    request_id = base64.b64encode(secrets.token_bytes(10)).decode()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    request_context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
    }
    if claims is not None:
        scope = claims.get("scope")
        request_context["authorizer"] = {
            "jwt": {
                "claims": {k: _claim_string(v) for k, v in claims.items()},
                "scopes": str(scope).split() if scope else None,
            }
        }
    request_context.update(
        {
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": match.route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
    )
    event["requestContext"] = request_context
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    if body:
        textual = is_textual(merged.get("content-type"))
        event["body"] = body.decode("utf-8", "replace") if textual else base64.b64encode(body).decode()
        event["isBase64Encoded"] = not textual
    else:
        event["isBase64Encoded"] = False
    return event


def _claim_string(value: Any) -> str:
    """API Gateway passes every claim as a string; arrays look like `[a b]`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def response_from_result(result: Any) -> HttpResponse:
    """Turn a handler's return value into the HTTP response API Gateway would send."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Inferred format: any valid JSON without statusCode is the body of a 200 JSON response.
        inferred = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], inferred.encode())
    headers: list[tuple[str, str]] = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    headers.extend(("set-cookie", str(c)) for c in result.get("cookies") or [])
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(str(raw_body))
    else:
        body = (raw_body if isinstance(raw_body, str) else json.dumps(raw_body)).encode()
    if not any(k.lower() == "content-type" for k, _ in headers) and body:
        headers.append(("content-type", "application/json"))
    return HttpResponse(int(result["statusCode"]), headers, body)


def _message(status: int, message: str, extra: Sequence[tuple[str, str]] = ()) -> HttpResponse:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json"), *extra], body)


def _refusal(status: int, code: str, message: str, extra: Sequence[tuple[str, str]] = ()) -> HttpResponse:
    body = json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json"), *extra], body)


class ApiGateway:
    """Routes, authorizers and the function invoker behind the HTTP server."""

    def __init__(
        self,
        routes: Sequence[Route],
        authorizers: dict[str, Authorizer],
        issuer: Issuer,
        invoke: Callable[[str, dict[str, Any]], Invocation],
        clock: Clock | None = None,
        connections: WebSocketGateway | None = None,
    ) -> None:
        """`clock`: the runner clock `CLOCK_PATH` reads and advances (no clock: that path is a 404).
        `connections`: the WebSocket API whose @connections API this server also answers."""
        self.routes = list(routes)
        self.authorizers = authorizers
        self.issuer = issuer
        self.invoke = invoke
        self.clock = clock
        self.connections = connections

    def handle(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        source_ip: str,
    ) -> HttpResponse:
        raw_path, _, raw_query = target.partition("?")
        if raw_path.startswith(ISSUER_PATH):
            return self._issuer_document(raw_path)
        if self.clock is not None and raw_path in (CLOCK_PATH, CLOCK_PATH + "/advance"):
            return self._clock_control(self.clock, method, raw_path, body)
        connection = CONNECTIONS_PATH.fullmatch(raw_path)
        if connection is not None and self.connections is not None:
            return self._manage_connection(self.connections, method, unquote(connection[1]), body)
        match = match_route(self.routes, method, raw_path)
        if match is None:
            return _message(404, "Not Found")
        claims = None
        if match.route.auth is not None:
            claims = self._authorize(match.route.auth, headers)
            if claims is None:
                return _message(401, "Unauthorized", [("www-authenticate", 'Bearer error="invalid_token"')])
        event = build_event(
            method=method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=headers,
            body=body,
            match=match,
            claims=claims,
            source_ip=source_ip,
        )
        started = time.monotonic()
        outcome = self.invoke(match.route.function, event)
        log.debug(
            "%s -> %s in %.0f ms",
            match.route.route_key,
            match.route.function,
            (time.monotonic() - started) * 1e3,
        )
        if not outcome.ok:
            log.warning("%s failed: %s: %s", match.route.function, outcome.error_type, outcome.error_message)
            return _message(500, "Internal Server Error")
        try:
            return response_from_result(outcome.result)
        except (TypeError, ValueError, KeyError):
            log.exception("%s returned a malformed response", match.route.function)
            return _message(500, "Internal Server Error")

    def _authorize(self, authorizer_name: str, headers: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
        authorizer = self.authorizers.get(authorizer_name)
        if authorizer is None:
            log.error("route uses unknown authorizer %s", authorizer_name)
            return None
        header = authorizer.identity_source.rsplit(".", 1)[-1].lower()
        values = [v for k, v in headers if k.lower() == header]
        if not values:
            return None
        token = values[0].strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        try:
            return self.issuer.verify(token, authorizer.issuer, authorizer.audience)
        except jwt.PyJWTError as exc:
            log.info("rejected token: %s", exc)
            return None

    def route_key(self, method: str | None, target: str | None) -> str:
        """The matched route's key (`GET /emails/{email_id}`), or "-" like API Gateway's
        `$context.routeKey` when none matches: what the access log names instead of the path."""
        if not method or not target:
            return "-"
        found = match_route(self.routes, method, target.partition("?")[0])
        return found.route.route_key if found is not None else "-"

    @staticmethod
    def _clock_control(clock: Clock, method: str, raw_path: str, body: bytes | None) -> HttpResponse:
        """`GET /_local/clock` -> 200 `{"now": ISO 8601 UTC}`; `POST /_local/clock/advance`
        `{"seconds": N}` (a number, 0 < N <= MAX_ADVANCE_SECONDS) moves the runner clock forward
        and answers 200 `{"now": ...}`, the new time. Schedules and visibility timeouts that fall
        due in the skipped span fire on the pump's next tick (local.pump). Refusals answer
        `{"code", "message"}`: 405 `method_not_allowed`, 400 `invalid_json`, 400 `invalid_seconds`."""
        wanted = "GET" if raw_path == CLOCK_PATH else "POST"
        if method.upper() != wanted:
            return _refusal(405, "method_not_allowed", f"use {wanted}", [("allow", wanted)])
        if wanted == "POST":
            try:
                request = json.loads(body or b"")
            except ValueError:
                return _refusal(400, "invalid_json", 'the body must be JSON: {"seconds": N}')
            seconds = request.get("seconds") if isinstance(request, dict) else None
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not 0 < seconds <= MAX_ADVANCE_SECONDS
            ):
                return _refusal(
                    400, "invalid_seconds", f"seconds must be a number, 0 < seconds <= {MAX_ADVANCE_SECONDS}"
                )
            clock.advance(seconds)
            log.info("runner clock advanced by %s s", seconds)
        now = clock.now().astimezone(UTC).isoformat().replace("+00:00", "Z")
        return HttpResponse(200, [("content-type", "application/json")], json.dumps({"now": now}).encode())

    @staticmethod
    def _manage_connection(
        connections: WebSocketGateway, method: str, connection_id: str, body: bytes | None
    ) -> HttpResponse:
        """API Gateway's @connections API (PostToConnection, DeleteConnection, GetConnection):
        410 with `x-amzn-ErrorType: GoneException` (what botocore reads) for a connection not open."""
        if method == "POST":
            done = connections.post(connection_id, body or b"")
            answer: dict[str, Any] = {}
        elif method == "DELETE":
            done = connections.delete(connection_id)
            answer = {}
        elif method == "GET":
            done = connections.exists(connection_id)
            answer = {"identity": {"sourceIp": "127.0.0.1"}}
        else:
            return _message(405, "Method Not Allowed")
        if not done:
            return HttpResponse(
                410,
                [("content-type", "application/json"), ("x-amzn-errortype", "GoneException")],
                json.dumps({"message": None}).encode(),
            )
        return HttpResponse(200, [("content-type", "application/json")], json.dumps(answer).encode())

    def _issuer_document(self, raw_path: str) -> HttpResponse:
        if raw_path.endswith("/.well-known/openid-configuration"):
            doc: dict[str, Any] = {
                "issuer": self.issuer.issuer,
                "jwks_uri": self.issuer.issuer + "/.well-known/jwks.json",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        elif raw_path.endswith("/.well-known/jwks.json"):
            doc = {"keys": [self.issuer.public_jwk()]}
        else:
            return _message(404, "Not Found")
        return HttpResponse(200, [("content-type", "application/json")], json.dumps(doc).encode())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS  # an idle keep-alive connection gives its thread back

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            # API Gateway's own answer: the integration never sees the request.
            self._discard_body(length)
            self._send(_message(413, "Request Entity Too Large"))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else None
        try:
            response = self.server.gateway.handle(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0]
            )
        except Exception:
            log.exception("runner error on %s", self.server.gateway.route_key(self.command, self.path))
            response = _message(500, "Internal Server Error")
        self._send(response)

    def _discard_body(self, length: int) -> None:
        """Read what the client sends (up to a bound) so it sees the 413, not a reset connection."""
        remaining = min(length, MAX_DISCARD_BYTES)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve  # noqa: N815

    # The access log names the route and the status, never the path or query the client sent: ids,
    # addresses and search words in them are request values (API Gateway's access log likewise
    # offers `$context.routeKey`). BaseHTTPRequestHandler's own lines would print the request line.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:  # noqa: ARG002
        status = code.value if isinstance(code, HTTPStatus) else code
        route = self.server.gateway.route_key(getattr(self, "command", None), getattr(self, "path", None))
        log.info('%s "%s" %s', self.address_string(), route, status)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: ARG002 - the base class's signature
        code = args[0] if args and isinstance(args[0], int) else "-"
        log.info("%s refused a malformed request (%s)", self.address_string(), code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002
        log.info("%s %s", self.address_string(), format)


class _Server(HTTPServer):
    """An HTTP server that queues connections instead of refusing them.

    Connections wait in a deep listen backlog, then in the queue of a bounded pool of handler
    threads (HTTP_THREADS); the accept loop never blocks on a busy handler. `close()` ends it
    all: stops accepting, waits up to `grace` seconds for requests in flight, then shuts down
    the connections still open (their threads wake and end).
    """

    request_queue_size = LISTEN_BACKLOG
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: ApiGateway | None = None) -> None:
        super().__init__(address, _Handler)
        self.gateway: ApiGateway = gateway  # type: ignore[assignment]
        self._handlers = ThreadPoolExecutor(max_workers=HTTP_THREADS, thread_name_prefix="runner-http")
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            self._handlers.submit(self._process, request, client_address)
        except RuntimeError:  # closing: no new work
            self._forget(request)

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken connection must not end its pool thread
            self.handle_error(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: Any) -> None:
        with self._open_lock:
            known = request in self._open
            self._open.discard(request)
        if known:
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002 - socketserver's signature
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close(self, grace: float = 2.0) -> None:
        self.server_close()
        self._handlers.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._open_lock:
                if not self._open:
                    return
            time.sleep(0.05)
        with self._open_lock:
            left, self._open = list(self._open), set()
        for connection in left:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


def bind_server(host: str = "127.0.0.1", port: int = 3000) -> _Server:
    """Bind first (port 0 picks a free one) so the issuer URL is known before the gateway exists."""
    return _Server((host, port))
