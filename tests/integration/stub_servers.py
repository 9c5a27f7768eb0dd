"""Misbehaving loopback mail servers and a rebinding resolver, for the deadline and guard tests.

`StallingServer` accepts and then stalls: `silent` sends nothing, `trickle` sends the start of a
greeting and then one byte every `interval` seconds without ever ending the line, so no per-socket
timeout ever fires. After `patience` seconds it stops stalling and answers like a server that
refuses everything. A client cut off by its deadline sees `timeout`; a client that waited it out
(its deadline broken) sees that refusal instead: the tests tell the two apart by the outcome.

`Rebinding` scripts `socket.getaddrinfo` and watches `socket.socket.connect`: the first lookup of
a name answers a public address, every later one the loopback address of a canary server, and a
connect to the public address is refused (there is no network in the tests). What was connected to
is recorded. `ScriptedDns` answers fixed addresses (IPv4 or IPv6) for given names. `PublicRoute`
makes a loopback server look like a public host: its name resolves to the public address, and
connections to that address reach the loopback server.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from typing import Any, Literal

import pytest

PUBLIC_ADDRESS = "93.184.215.14"  # a global unicast address; never actually reached
HOST = "127.0.0.1"

_GREETING = {"imap": (b"* OK ", b"ready\r\n"), "smtp": (b"220 ", b"ready\r\n")}
_REFUSAL = {"imap": b"NO [AUTHENTICATIONFAILED] refused\r\n", "smtp": b"535 5.7.8 refused\r\n"}


class StallingServer:
    def __init__(
        self,
        protocol: Literal["imap", "smtp"],
        mode: Literal["silent", "trickle"],
        *,
        patience: float = 10.0,
        interval: float = 0.2,
    ) -> None:
        self.protocol = protocol
        self.mode = mode
        self.patience = patience
        self.interval = interval
        self.accepted = 0
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept_loop, name="stalling-server", daemon=True).start()

    def wait_accepted(self, count: int, timeout: float = 10.0) -> None:
        """Give the accept thread time to count connections the kernel already completed (on a
        busy machine it may not have run yet when the client has given up)."""
        end = time.monotonic() + timeout
        while self.accepted < count and time.monotonic() < end:
            time.sleep(0.01)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head, tail = _GREETING[self.protocol]
        with conn:
            try:
                if not self._stall(conn, head):
                    return  # the client gave up: what a deadline is for
                conn.sendall(tail)
                conn.settimeout(self.patience)
                buffer = b""
                while chunk := conn.recv(4096):
                    buffer += chunk
                    while b"\r\n" in buffer:
                        line, buffer = buffer.split(b"\r\n", 1)
                        tag = line.split(b" ", 1)[0] + b" " if self.protocol == "imap" else b""
                        conn.sendall(tag + _REFUSAL[self.protocol])
            except OSError:
                return

    def _stall(self, conn: socket.socket, head: bytes) -> bool:
        """Stall for `patience` seconds; False as soon as the client hangs up."""
        conn.settimeout(self.interval)
        if self.mode == "trickle":
            conn.sendall(head)
        end = time.monotonic() + self.patience
        while time.monotonic() < end and not self._closed.is_set():
            try:
                if conn.recv(1) == b"":
                    return False
            except TimeoutError:
                pass
            if self.mode == "trickle":
                conn.sendall(b".")
        if self.mode == "silent":
            conn.sendall(head)
        return True


class Canary:
    """A loopback listener that only counts the connections it gets (none, in a passing test)."""

    def __init__(self) -> None:
        self.accepted = 0
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="canary", daemon=True).start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


class Rebinding:
    """Names in `names` resolve to PUBLIC_ADDRESS on their first lookup (unless `first` says
    otherwise) and to 127.0.0.1 afterwards; other names resolve as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *names: str, first: str = PUBLIC_ADDRESS) -> None:
        self.names = set(names)
        self.first = first
        self.lookups: list[str] = []
        self.connects: list[Any] = []
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in self.names:
                return real_getaddrinfo(host, port, *args, **kwargs)
            address = self.first if host not in self.lookups else HOST
            self.lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

        def connect(sock: socket.socket, address: Any) -> None:
            self.connects.append(address)
            if isinstance(address, tuple) and address[0] == PUBLIC_ADDRESS:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")
            real_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)

    def connects_to(self, port: int) -> list[Any]:
        return [a for a in self.connects if isinstance(a, tuple) and a[1] == port]


class PublicRoute:
    """Names in `names` resolve to PUBLIC_ADDRESS, and a connection to PUBLIC_ADDRESS reaches the
    same port on 127.0.0.1: a loopback test server seen as a public mail host (the machine has no
    public interface), so the deployed configuration's guard lets it through to TLS and LOGIN."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
        self.names = set(names)
        self.connects: list[Any] = []
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in self.names:
                return real_getaddrinfo(host, port, *args, **kwargs)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, int(port)))]

        def connect(sock: socket.socket, address: Any) -> None:
            self.connects.append(address)
            if isinstance(address, tuple) and address[0] == PUBLIC_ADDRESS:
                address = (HOST, address[1])
            real_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)


class ScriptedDns:
    """Each name in `answers` resolves to its address (IPv4 or IPv6); other names resolve as
    usual. Every lookup of a scripted name and every connect attempt is recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, str]) -> None:
        self.answers = dict(answers)
        self.lookups: list[str] = []
        self.connects: list[Any] = []
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in self.answers:
                return real_getaddrinfo(host, port, *args, **kwargs)
            self.lookups.append(host)
            address = self.answers[host]
            if ":" in address:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

        def connect(sock: socket.socket, address: Any) -> None:
            self.connects.append(address)
            real_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)
