"""moto's HTTP server at the cost AWS's endpoints have: connections kept alive, a host's backend
found once.

Two costs of moto 5.2.5's `ThreadedMotoServer` (werkzeug's development server) that no AWS
endpoint has, both paid on every request:

- **A new TCP connection per request.** werkzeug's `WSGIRequestHandler.run_wsgi` sends
  `Connection: close` on every answer (its comment: `http.server` cannot drain an unread body
  before the next request line), so botocore opens a connection for each request and the server
  starts a thread for each. AWS endpoints keep connections alive and botocore's pool reuses
  them. Measured with py-spy on the 5,000-message sync bench: connecting was about a tenth of our
  process's samples (`create_connection`, `getaddrinfo`, `socket.__init__`), and the thread per
  connection, its selector and its shutdown about a tenth of the server's.
- **A directory listing per request.** `DomainDispatcherApplication.get_backend_for_host` calls
  `moto.backends.list_of_moto_modules()`, which lists moto's package directory and `isdir`s
  each of its ~200 entries, before it looks at the URL patterns: 7.5% of the server's samples.

`install()` makes `MotoRequestHandler` (the handler `ThreadedMotoServer` serves with) read a
request's whole body (its `Content-Length`) before the application runs and keep the connection
open after the answer: the stream is then always at the next request line, which is what
werkzeug's `Connection: close` guards against. For the same reason the discard werkzeug runs
after each answer (any unread bytes, waiting 10 ms for more: it would swallow the next request)
finds nothing to discard on such a connection. A chunked request, or one that asks for
`Connection: close`, still closes and is discarded after as before. It also turns Nagle's
algorithm off on the server's sockets, and remembers `get_backend_for_host`'s answer per host (a
pure function of the host and moto's installed modules). Everything moto does with a request is
unchanged.
"""

from __future__ import annotations

import io
import selectors
import threading
import types
from collections.abc import Callable
from typing import Any

Setter = Callable[[Any, str, Any], None]

_reading = threading.local()  # .whole: this thread's request body was read before the app ran


class _NothingLeft(selectors.SelectSelector):
    """What werkzeug's after-answer discard selects on when the body was read whole: nothing."""

    def select(self, timeout: float | None = None) -> list[Any]:  # noqa: ARG002
        return []


def _default_selector() -> selectors.BaseSelector:
    return _NothingLeft() if getattr(_reading, "whole", False) else selectors.DefaultSelector()


def install(setter: Setter = setattr) -> None:
    """Patch moto's request handler and dispatcher (idempotent; `setter`: `setattr`, or pytest's
    `monkeypatch.setattr` so the patch ends with the test)."""
    import werkzeug.serving
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler

    if getattr(MotoRequestHandler.make_environ, "_body_read", False):
        return
    make_environ = MotoRequestHandler.make_environ
    send_header = MotoRequestHandler.send_header
    backend_for_host = DomainDispatcherApplication.get_backend_for_host

    def read_body_first(self: Any) -> dict[str, Any]:
        environ: dict[str, Any] = make_environ(self)
        length = environ.get("CONTENT_LENGTH")
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or (
            length and not length.isdigit()
        ):
            self._keep_alive = _reading.whole = False
            return environ
        environ["wsgi.input"] = io.BytesIO(self.rfile.read(int(length)) if length else b"")
        self._keep_alive = _reading.whole = self.headers.get("Connection", "").lower() != "close"
        return environ

    def keep_alive(self: Any, keyword: str, value: str) -> None:
        if (
            keyword.lower() == "connection"
            and value.lower() == "close"
            and getattr(self, "_keep_alive", False)
        ):
            self._keep_alive = False  # once: an answer made without make_environ still closes
            return  # the body was read whole: the stream is at the next request line
        send_header(self, keyword, value)

    def cached(self: Any, host: str | None) -> Any:
        hosts: dict[str | None, Any] = self.__dict__.setdefault("_backend_for_host", {})
        if host not in hosts:
            hosts[host] = backend_for_host(self, host)
        return hosts[host]

    # werkzeug.serving's after-answer discard looks up `selectors.DefaultSelector` when it runs
    serving_selectors = types.SimpleNamespace(**vars(selectors))
    serving_selectors.DefaultSelector = _default_selector
    read_body_first._body_read = True  # type: ignore[attr-defined]
    setter(werkzeug.serving, "selectors", serving_selectors)
    # An answer goes out in several writes (status and headers, then the body): on a connection
    # that stays open, Nagle's algorithm holds the body until the client's delayed ACK, about
    # 40 ms per request (a close flushed it before). AWS's endpoints and botocore's own sockets
    # send at once (urllib3 sets TCP_NODELAY).
    setter(MotoRequestHandler, "disable_nagle_algorithm", True)
    setter(MotoRequestHandler, "make_environ", read_body_first)
    setter(MotoRequestHandler, "send_header", keep_alive)
    setter(DomainDispatcherApplication, "get_backend_for_host", cached)
