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


# Every block of the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its
# updates) that is not globally reachable, plus multicast and the deprecated IPv6 site-local and
# IPv4-compatible blocks. The guard keeps its own table instead of `ipaddress`'s `is_global`:
# that follows an older table in some Python releases (3.11.7 calls 64:ff9b:1::/48, fec0::/10
# and ::7f00:1 global), and the answer must not change with the Lambda runtime's patch level.
_REFUSED_V4 = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network" (RFC 791)
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # shared, carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, the instance metadata service (RFC 3927)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
        "192.0.2.0/24",  # documentation (RFC 5737)
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated (RFC 7526)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the limited broadcast address
    )
)
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(block)
    for block in (
        "::/96",  # unspecified, loopback, IPv4-compatible (deprecated, RFC 4291)
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "2001::/23",  # IETF protocol assignments, Teredo included (RFC 2928, RFC 4380)
        "2001:db8::/32",  # documentation (RFC 3849)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # segment routing SIDs (RFC 9602)
        "fc00::/7",  # unique local, the metadata service's fd00:ec2::254 (RFC 4193)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local, deprecated (RFC 3879)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix (RFC 6052)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches: IPv4-mapped ::ffff:a.b.c.d (RFC 4291 2.5.5.2),
    6to4 2002:AABB:CCDD:: (RFC 3056), or NAT64 64:ff9b::a.b.c.d (RFC 6052 section 2.1)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for an address in a refused block, or an IPv6 address standing for a refused IPv4."""
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in block for block in _REFUSED_V4)
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return _is_public(embedded)
    return not any(address in block for block in _REFUSED_V6)


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
    errors: list[OSError] = []
    for family, kind, proto, sockaddr in resolve_checked(host, port, allow_private=allow_private):
        connect_timeout = deadline.clamp(timeout)
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            if deadline.expired:
                break
            continue
        sock.settimeout(timeout)
        deadline.watch(sock)
        return sock
    # resolve_checked returns at least one address, so at least one attempt failed to get here.
    raise errors[-1]
