"""Where a mail connection may go, and how long it may take.

`open_connection` is the only way the IMAP and SMTP adapters reach a server: it resolves the host
name once, checks every address it resolved to, and connects to one of exactly those addresses.
Checking a name and then letting a library resolve it again would let DNS answer differently the
second time (DNS rebinding) and turn a mailbox setting into a probe of the VPC or the metadata
service. Public addresses only, unless the deployment allows private ones (local development
with a loopback Dovecot). TLS still verifies the certificate against the host name: the callers
wrap the socket with `server_hostname=host`.

`Deadline` bounds a whole exchange, not one socket operation: a server that trickles a byte
every few seconds never trips a per-socket timeout, so when the deadline passes every socket
registered with it is shut down, which ends any read or write blocked on it at once.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from types import TracebackType
from typing import Self

from mailbridge.errors import Invalid, ProviderUnreachable

Address = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
]


class HostNotAllowed(Invalid):
    """The mail host resolves to a private, loopback, link-local or reserved address."""

    code = "host_not_allowed"


class Deadline:
    """A `time.monotonic()` instant by which an exchange must end (`at=None`: no deadline).

    Use as a context manager around the exchange. `watch(sock)` registers a connected socket;
    when the instant passes, a timer thread shuts every registered socket down (on a duplicate of
    its file descriptor, so it still works after TLS has wrapped the socket) and `expired` turns
    true (and `fired`), so the caller can report `timeout` rather than the lost connection it sees.
    """

    def __init__(self, at: float | None) -> None:
        self.at = at
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._fired = False

    def remaining(self) -> float | None:
        return None if self.at is None else self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self._fired or (self.at is not None and time.monotonic() >= self.at)

    @property
    def fired(self) -> bool:
        """The deadline cut the exchange off: a failure seen now is a `timeout`."""
        return self._fired

    def clamp(self, timeout: float) -> float:
        """`timeout`, shortened to what is left; raises TimeoutError when nothing is left."""
        left = self.remaining()
        if left is None:
            return timeout
        if left <= 0:
            raise TimeoutError("deadline passed")
        return min(timeout, left)

    def watch(self, sock: socket.socket) -> None:
        left = self.remaining()
        if left is None:
            return
        duplicate = sock.dup()
        with self._lock:
            self._watched.append(duplicate)
            if self._timer is None and not self._fired:
                self._timer = threading.Timer(max(0.0, left), self._fire)
                self._timer.daemon = True
                self._timer.start()
            fired = self._fired
        if fired:
            self._fire()

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            watched, self._watched = self._watched, []
        for sock in watched:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """The exchange ended: stop the timer, release the duplicates (idempotent)."""
        with self._lock:
            timer, self._timer = self._timer, None
            watched, self._watched = self._watched, []
        if timer is not None:
            timer.cancel()
        for sock in watched:
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address carried inside IPv6 (::ffff:a.b.c.d, 6to4, Teredo) is judged as itself.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None and not _is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def resolve_checked(host: str, port: int, *, allow_private: bool) -> list[Address]:
    """Every address `host` resolves to, each checked (RFC 6890 special-purpose ranges refused).

    Raises ProviderUnreachable(unreachable) when the name does not resolve, HostNotAllowed (400
    `host_not_allowed`) when any address is not public and `allow_private` is false: one private
    answer among public ones is refused too, since the connection could land on it.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise ProviderUnreachable(f"cannot resolve {host}", code="unreachable") from exc
    candidates: list[Address] = [(family, kind, proto, addr) for family, kind, proto, _, addr in infos]
    if not candidates:
        raise ProviderUnreachable(f"cannot resolve {host}", code="unreachable")
    if not allow_private:
        for *_, sockaddr in candidates:
            if not _is_public(ipaddress.ip_address(sockaddr[0])):
                raise HostNotAllowed("the mail host resolves to a private or reserved address")
    return candidates


def open_connection(
    host: str, port: int, *, allow_private: bool, timeout: float, deadline: Deadline
) -> socket.socket:
    """A TCP connection to one of the checked addresses of `host` (tried in resolver order).

    The connect itself waits at most `timeout` seconds, shortened to what `deadline` leaves; the
    socket is registered with `deadline` and keeps `timeout` as its per-operation timeout.
    Raises what `resolve_checked` raises, TimeoutError when the deadline has passed, or the
    OSError of the last address tried.
    """
    last_error: OSError | None = None
    for family, kind, proto, sockaddr in resolve_checked(host, port, allow_private=allow_private):
        connect_timeout = deadline.clamp(timeout)
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            if deadline.expired:
                break
            continue
        sock.settimeout(timeout)
        deadline.watch(sock)
        return sock
    raise last_error or TimeoutError("deadline passed")
