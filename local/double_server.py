"""Plumbing shared by the CRM doubles (Salesforce, HubSpot): one loopback HTTP server with a route
table, and an outbox that POSTs webhooks on the double's clock with retries.

The Google and Microsoft doubles carry their own copies of the server part (each grew its own
error families first); the CRM doubles share this one so neither of them imports the other.
Everything provider-specific (error bodies, auth, limits) stays in the provider's package: a
handler raises an `HttpError` whose `response()` is the provider's own answer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 160 * 1024 * 1024  # Bulk API 2.0 takes up to 150 MB of CSV per upload [D, Bulk API 2.0 limits]


class HttpError(Exception):
    """An error that knows the HTTP answer it becomes (each provider subclasses it)."""

    def response(self) -> Response:
        raise NotImplementedError


@dataclass
class Call:
    """One parsed request (header names lower-cased)."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""
    origin: str = "http://127.0.0.1"

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def many(self, name: str) -> list[str]:
        """Every value of a repeated or comma-separated parameter (`properties=a,b&properties=c`)."""
        return [v.strip() for value in self.query.get(name, []) for v in value.split(",") if v.strip()]

    def json(self) -> Any:
        """The body as JSON (raises ValueError on bad JSON; each provider maps that to its own 400)."""
        if not self.body.strip():
            return None
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """Form fields (application/x-www-form-urlencoded body), query parameters as a fallback."""
        merged = {k: v[-1] for k, v in self.query.items()}
        merged.update(
            {
                k: v[-1]
                for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()
            }
        )
        return merged

    def bearer(self) -> str | None:
        """The token of `Authorization: Bearer x` (Salesforce also accepts the older `OAuth x`)."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() in ("bearer", "oauth") and token.strip():
            return token.strip()
        return None


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
            {"Content-Type": "application/json;charset=UTF-8", **(headers or {})},
        )

    @classmethod
    def text(
        cls, status: int, text: str, content_type: str = "text/plain", headers: dict[str, str] | None = None
    ) -> Response:
        return cls(
            status, text.encode(), {"Content-Type": f"{content_type};charset=UTF-8", **(headers or {})}
        )

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


Handler = Callable[[Call], Response]


class ControlError(HttpError):
    """A refused call to a double's own control surface (`/__double__/...`): `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return Response.json(self.status, {"error": self.message})


def control_body(call: Call) -> dict[str, Any]:
    """A control call's JSON object body (`{}` when empty); `ControlError` 400 for anything else."""
    try:
        body = call.json()
    except ValueError:
        raise ControlError(400, "the body must be JSON") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, template: str, handler: Handler) -> Route:
    """`/crm/v3/objects/{objectType}/{objectId}` -> a regex with named groups (no slash in a value)."""
    escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    return Route(method, re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", escaped)), handler)


class Router:
    """Dispatch by path and method; an HttpError becomes its own answer.

    `not_found` / `not_allowed` give the provider's answers for unknown paths and methods.
    Authentication, request counting and limit headers wrap the handlers where the routes are built.
    """

    def __init__(
        self,
        routes: list[Route],
        not_found: Callable[[Call], Response],
        not_allowed: Callable[[Call], Response],
    ) -> None:
        self.routes = routes
        self.not_found = not_found
        self.not_allowed = not_allowed

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
                return error.response()
        try:
            return self.not_allowed(call) if allowed else self.not_found(call)
        except HttpError as error:
            return error.response()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._write(Response.json(413, [{"message": "Request too large", "errorCode": "LIMIT_EXCEEDED"}]))
            return
        body = self.rfile.read(length) if length else b""
        host, port = self.server.server_address[:2]
        call = Call(
            method=self.command,
            path=parts.path,
            params={},
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_path=self.path,
            origin=f"http://{self.headers.get('Host') or f'{host!s}:{port}'}",
        )
        try:
            response = self.server.router.dispatch(call)
        except Exception:  # a bug in the double must not hang the client: answer 500 and log it
            log.exception("%s: %s %s failed", self.server.name, self.command, parts.path)
            response = Response.json(500, {"message": "An unexpected error occurred in the double"})
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
    router: Router
    name: str


class HttpServer:
    """A ThreadingHTTPServer on `host:port` (0 = a free port) serving `router` in a thread."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0, name: str = "double") -> None:
        self._server = _Server((host, port), _Handler)
        self._server.router = router
        self._server.name = name
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}-http",
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


# ---------------------------------------------------------------------- outgoing webhooks


@dataclass
class Outgoing:
    """One HTTP request a double sends (also what forgery helpers return: the double never sends those)."""

    url: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Attempt:
    """What came back from one POST (status None: no answer, `error` says why)."""

    status: int | None
    body: bytes
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Delivery:
    """One POST the double made, and its outcome as the provider judged it."""

    key: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    accepted: bool
    at: datetime
    request: Outgoing
    response_body: bytes = b""


@dataclass
class Pending:
    key: str
    due: datetime
    first: datetime
    attempt: int
    build: Callable[[int], Outgoing]  # attempt number -> the request (bodies may change per attempt)
    payload: Any = None


@dataclass
class RetryPolicy:
    """When a failed delivery is tried again, and whether at all.

    `judge(attempt)` says whether the receiver accepted the message; `retryable(attempt)` whether a
    refusal is tried again; `backoff(n, attempt)` is the wait after the n-th failed attempt (1-based);
    `max_attempts` / `give_up_after` end the retries.
    """

    judge: Callable[[Attempt], bool]
    retryable: Callable[[Attempt], bool]
    backoff: Callable[[int, Attempt], timedelta]
    max_attempts: int | None = None
    give_up_after: timedelta | None = None
    timeout: float = 10.0


class Outbox:
    """Webhook POSTs scheduled on the double's clock, sent by a background thread or by `flush()`."""

    def __init__(self, now: Callable[[], datetime], policy: RetryPolicy, name: str = "double") -> None:
        self.now = now
        self.policy = policy
        self.name = name
        self.deliveries: list[Delivery] = []
        self.dropped: list[Pending] = []
        self._pending: list[Pending] = []
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(
        self, key: str, build: Callable[[int], Outgoing], delay: float = 0.0, payload: Any = None
    ) -> None:
        now = self.now()
        with self._cond:
            self._pending.append(Pending(key, now + timedelta(seconds=delay), now, 1, build, payload))
            self._cond.notify_all()

    def pending(self) -> list[Pending]:
        with self._cond:
            return list(self._pending)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._take_due()
            if item is None:
                with self._cond:
                    self._cond.wait(timeout=0.05)
                continue
            self._deliver(item)

    def _take_due(self) -> Pending | None:
        with self._cond:
            now = self.now()
            due = [p for p in self._pending if p.due <= now]
            if not due:
                return None
            item = min(due, key=lambda p: p.due)
            self._pending.remove(item)
            self._in_flight += 1
            return item

    def _deliver(self, item: Pending) -> None:
        request = item.build(item.attempt)
        outcome = post(request, self.policy.timeout)
        accepted = self.policy.judge(outcome)
        with self._cond:
            now = self.now()
            self.deliveries.append(
                Delivery(
                    item.key,
                    request.url,
                    item.attempt,
                    outcome.status,
                    outcome.error,
                    accepted,
                    now,
                    request,
                    outcome.body,
                )
            )
            if not accepted:
                self._retry_or_drop(item, outcome, now)
            self._in_flight -= 1
            self._cond.notify_all()

    def _retry_or_drop(self, item: Pending, outcome: Attempt, now: datetime) -> None:
        policy = self.policy
        out_of_attempts = policy.max_attempts is not None and item.attempt >= policy.max_attempts
        due = now + policy.backoff(item.attempt, outcome)
        too_old = policy.give_up_after is not None and due - item.first > policy.give_up_after
        if not policy.retryable(outcome) or out_of_attempts or too_old:
            self.dropped.append(item)
            return
        self._pending.append(Pending(item.key, due, item.first, item.attempt + 1, item.build, item.payload))

    def flush(self, timeout: float = 10.0) -> list[Delivery]:
        """Send everything due now and wait for the answers; returns every delivery so far."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                item = self._take_due()
                if item is not None:
                    self._deliver(item)
                    continue
                with self._cond:
                    now = self.now()
                    if self._in_flight == 0 and not any(p.due <= now for p in self._pending):
                        return list(self.deliveries)
                    self._cond.wait(timeout=0.05)
            raise TimeoutError("webhook deliveries still in flight")
        finally:
            timer.cancel()


def post(request: Outgoing, timeout: float) -> Attempt:
    """Send one request with urllib (no third-party client in the doubles); never raises."""
    sent = urllib.request.Request(  # noqa: S310 - the receiver's own URL, configured by the test
        request.url, data=request.body, headers=request.headers, method=request.method
    )
    try:
        with urllib.request.urlopen(sent, timeout=timeout) as answer:  # noqa: S310
            return Attempt(
                answer.status, answer.read(), headers={k.lower(): v for k, v in answer.headers.items()}
            )
    except urllib.error.HTTPError as exc:
        headers = {k.lower(): v for k, v in exc.headers.items()} if exc.headers else {}
        return Attempt(exc.code, exc.read() if exc.fp is not None else b"", headers=headers)
    except (OSError, TimeoutError) as exc:
        return Attempt(None, b"", type(exc).__name__)
