"""The template's WebSocket API on a loopback port, and its @connections management API.

A `websockets` server (RFC 6455, the maintained implementation: no framing of our own) invokes the
route's function as API Gateway does (Lambda proxy integration, API Gateway developer guide
"WebSocket API Lambda integration" event format): `$connect` with the handshake's headers and query
parameters, before the handshake is answered (a non-2xx `statusCode` refuses it with that status);
`$default` with each text message as `body`; `$disconnect` when the socket closes. Every
connection gets an id as API Gateway's look (base64 of random bytes).

`ApiGateway` (local/http.py) serves `POST /@connections/{id}` (also under a `/{stage}` prefix, as
the real endpoint URL has one) with `post`, and `DELETE` / `GET` with `delete` / `exists`, so
boto3's `apigatewaymanagementapi` client runs unchanged against the runner's URL: 200 when the
frame was sent, 410 `GoneException` for a connection that is not open.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from local.functions import Invocation
from local.template import WebSocketRoute

log = logging.getLogger(__name__)

POST_TIMEOUT_SECONDS = 10.0
_REASONS = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}


def _connection_id() -> str:
    """Like API Gateway's (`L0SM9cOFvHcCIhw=`): 10 random bytes, base64 (URL-safe: no `/` to
    escape in @connections paths)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(10)).decode()


class WebSocketGateway:
    """`with WebSocketGateway(routes, invoke, port=0) as ws: ws.url` (ws://127.0.0.1:{port})."""

    def __init__(
        self,
        routes: Sequence[WebSocketRoute],
        invoke: Callable[[str, dict[str, Any]], Invocation],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "dev",
    ) -> None:
        self.routes = {route.route_key: route.function for route in routes}
        self.invoke = invoke
        self.host = host
        self.port = port
        self.stage = stage
        self.api_id = "local" + secrets.token_hex(3)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._ids: dict[ServerConnection, str] = {}
        self._connected_at: dict[str, int] = {}
        self._open: dict[str, ServerConnection] = {}
        self._stopping = False

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> WebSocketGateway:
        self._thread = threading.Thread(target=self._run, name="runner-websocket", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._server is None:
            raise RuntimeError("the WebSocket server did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._serve())
        loop.close()

    async def _serve(self) -> None:
        async with serve(
            self._handler, self.host, self.port, process_request=self._connect, server_header=None
        ) as server:
            self._server = server
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await server.serve_forever()

    def stop(self) -> None:
        """Close every connection (no $disconnect: the functions are stopping too) and the server."""
        self._stopping = True
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():
            loop.call_soon_threadsafe(server.close)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebSocketGateway:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    # ------------------------------------------------------------------------------ routes

    def _event(
        self,
        route_key: str,
        event_type: str,
        connection_id: str,
        *,
        request: Request | None = None,
        source_ip: str = "127.0.0.1",
        body: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        now_ms = int(now.timestamp() * 1000)
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": self._connected_at.get(connection_id, now_ms),
            "requestTimeEpoch": now_ms,
            "identity": {"sourceIp": source_ip},
            "requestId": uuid.uuid4().hex[:16],
            "domainName": f"{self.host}:{self.port}",
            "connectionId": connection_id,
            "apiId": self.api_id,
            **(extra or {}),
        }
        event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
        if request is not None:
            headers: dict[str, str] = {}
            multi: dict[str, list[str]] = {}
            for name, value in request.headers.raw_items():
                headers[name] = value
                multi.setdefault(name, []).append(value)
            event["headers"] = headers
            event["multiValueHeaders"] = multi
            query = _query(request.path)
            if query:
                event["queryStringParameters"] = {k: v[-1] for k, v in query.items()}
                event["multiValueQueryStringParameters"] = query
        if body is not None:
            event["body"] = body
        return event

    async def _call(self, route_key: str, event: dict[str, Any]) -> Invocation | None:
        function = self.routes.get(route_key)
        if function is None:
            return None
        return await asyncio.to_thread(self.invoke, function, event)

    async def _connect(self, connection: ServerConnection, request: Request) -> Response | None:
        """`$connect` before the handshake is answered: a non-2xx answer refuses it."""
        connection_id = _connection_id()
        self._ids[connection] = connection_id
        self._connected_at[connection_id] = int(time.time() * 1000)
        address = connection.remote_address
        event = self._event(
            "$connect",
            "CONNECT",
            connection_id,
            request=request,
            source_ip=str(address[0]) if address else "127.0.0.1",
        )
        outcome = await self._call("$connect", event)
        if outcome is None:
            return None
        status = 500
        if outcome.ok and isinstance(outcome.result, dict):
            status = int(outcome.result.get("statusCode", 200))
        elif not outcome.ok:
            log.warning("$connect failed: %s: %s", outcome.error_type, outcome.error_message)
        if 200 <= status < 300:
            return None
        self._ids.pop(connection, None)
        self._connected_at.pop(connection_id, None)
        reason = _REASONS.get(status, "Forbidden")
        return Response(status, reason, Headers([("Content-Type", "text/plain")]), f"{reason}\n".encode())

    async def _handler(self, connection: ServerConnection) -> None:
        connection_id = self._ids[connection]
        self._open[connection_id] = connection
        try:
            async for message in connection:
                text = message if isinstance(message, str) else base64.b64encode(message).decode()
                message_id = {"messageId": uuid.uuid4().hex[:16]}
                await self._call(
                    "$default", self._event("$default", "MESSAGE", connection_id, body=text, extra=message_id)
                )
        except Exception:  # a dropped client ends its own loop only
            log.debug("connection %s ended abruptly", connection_id, exc_info=True)
        finally:
            self._open.pop(connection_id, None)
            self._ids.pop(connection, None)
            if not self._stopping:
                code = connection.close_code or 1006
                closed = {"disconnectStatusCode": code, "disconnectReason": connection.close_reason or ""}
                await self._call(
                    "$disconnect", self._event("$disconnect", "DISCONNECT", connection_id, extra=closed)
                )
            self._connected_at.pop(connection_id, None)

    # ------------------------------------------------------------------- @connections API

    def post(self, connection_id: str, data: bytes) -> bool:
        """Send `data` as one frame (text when it is UTF-8); False when the connection is not open."""
        connection, loop = self._open.get(connection_id), self._loop
        if connection is None or loop is None:
            return False
        try:
            message: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        future = asyncio.run_coroutine_threadsafe(connection.send(message), loop)
        try:
            future.result(timeout=POST_TIMEOUT_SECONDS)
        except (ConnectionClosed, TimeoutError):  # closed meanwhile: gone, as API Gateway answers
            return False
        return True

    def delete(self, connection_id: str) -> bool:
        """Close the connection (DeleteConnection); False when it is not open."""
        connection, loop = self._open.get(connection_id), self._loop
        if connection is None or loop is None:
            return False
        asyncio.run_coroutine_threadsafe(connection.close(), loop)
        return True

    def exists(self, connection_id: str) -> bool:
        return connection_id in self._open


def _query(path: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(path).query, keep_blank_values=True)
