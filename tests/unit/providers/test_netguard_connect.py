"""The guard's connection and its deadline, without the network: a scripted resolver, a socket
stand-in that records what would reach the network, a clock the test sets, and a timer the test
fires. Real sockets only as socket pairs (AF_UNIX), to see a shutdown arrive at the other end."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mailbridge.providers import netguard
from mailbridge.providers.netguard import Deadline, HostNotAllowed, open_connection

PUBLIC_A, PUBLIC_B = "93.184.215.14", "93.184.215.15"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeTimer:
    """threading.Timer as the deadline uses it; the test calls `fire()` instead of waiting."""

    def __init__(self, interval: float, function: Any) -> None:
        self.interval = interval
        self.function = function
        self.daemon: bool | None = None
        self.started = False
        self.cancelled = False

    def start(self) -> None:
        self.started = True

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        self.function()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock()
    monkeypatch.setattr(netguard, "time", SimpleNamespace(monotonic=fixed))
    return fixed


@pytest.fixture
def timers(monkeypatch: pytest.MonkeyPatch) -> list[FakeTimer]:
    made: list[FakeTimer] = []

    def timer(interval: float, function: Any) -> FakeTimer:
        made.append(FakeTimer(interval, function))
        return made[-1]

    monkeypatch.setattr(netguard, "threading", SimpleNamespace(Lock=threading.Lock, Timer=timer))
    return made


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(ours, the server's end)."""
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)  # a shutdown that never comes fails the read instead of hanging
    yield ours, theirs
    ours.close()
    theirs.close()


class GoneSocket:
    """A connection the peer already tore down: shutting it down fails (ENOTCONN)."""

    closed = False

    def dup(self) -> GoneSocket:
        return self

    def shutdown(self, how: int) -> None:
        raise OSError(errno.ENOTCONN, "not connected")

    def close(self) -> None:
        self.closed = True


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def shut_down(theirs: socket.socket) -> bool:
    """The other end saw the connection end (EOF), not a timeout."""
    return theirs.recv(1) == b""


def still_open(theirs: socket.socket) -> bool:
    theirs.setblocking(False)
    try:
        theirs.recv(1)
    except BlockingIOError:
        return True
    finally:
        theirs.settimeout(5)
    return False


# ------------------------------------------------------------------------------ Deadline


def test_without_a_deadline_nothing_is_limited(
    clock: Clock, timers: list[FakeTimer], pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = pair
    with Deadline(None) as deadline:
        assert deadline.remaining() is None
        assert deadline.clamp(20.0) == 20.0
        clock.now += 10_000
        assert not deadline.expired
        deadline.watch(ours)
    assert timers == []
    assert still_open(theirs)


def test_the_time_left_shortens_timeouts_until_none_is_left(clock: Clock) -> None:
    deadline = Deadline(clock.now + 5)
    assert deadline.fired is False
    assert deadline.remaining() == 5
    assert deadline.clamp(20.0) == 5
    assert deadline.clamp(3.0) == 3.0
    assert not deadline.expired
    clock.now += 4.5
    assert deadline.clamp(20.0) == 0.5
    # At the instant itself the deadline has passed
    clock.now += 0.5
    assert deadline.expired
    assert not deadline.fired  # it passed; it did not cut anything off
    with pytest.raises(TimeoutError, match=r"^deadline passed$"):
        deadline.clamp(20.0)


def test_watching_starts_one_daemon_timer_for_the_time_left(
    clock: Clock, timers: list[FakeTimer], pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = pair
    other, other_end = socket.socketpair()
    try:
        deadline = Deadline(clock.now + 7)
        deadline.watch(ours)
        clock.now += 1
        deadline.watch(other)
        # One timer for the whole exchange, for the time that was left, never keeping the process
        (timer,) = timers
        assert (timer.interval, timer.daemon, timer.started) == (7, True, True)
        # And nothing is cut off before it fires
        assert still_open(theirs)
        assert still_open(other_end)
        deadline.close()
    finally:
        other.close()
        other_end.close()


def test_a_deadline_already_past_when_watching_fires_at_once(
    clock: Clock, timers: list[FakeTimer], pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, _ = pair
    deadline = Deadline(clock.now - 1)
    deadline.watch(ours)
    assert timers[0].interval == 0.0
    deadline.close()


def test_when_it_fires_every_watched_connection_is_shut_down_and_nothing_leaks(
    clock: Clock, timers: list[FakeTimer], pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = pair
    other, other_end = socket.socketpair()
    other_end.settimeout(5)
    gone = GoneSocket()
    try:
        before = open_fds()
        deadline = Deadline(clock.now + 3)
        for sock in (gone, ours, other):
            deadline.watch(sock)  # type: ignore[arg-type]
        # When the timer fires
        timers[0].fire()
        # Then both connections ended for the other side, past the one whose shutdown failed
        assert shut_down(theirs)
        assert shut_down(other_end)
        assert deadline.fired
        assert deadline.expired
        # And the duplicates the deadline held are closed (that one too); the sockets stay their
        # owners' to close
        assert open_fds() == before
        assert gone.closed
        assert ours.fileno() != -1
    finally:
        for sock in (other, other_end):
            sock.close()


def test_a_connection_watched_after_the_deadline_fired_is_shut_down_at_once(
    clock: Clock, timers: list[FakeTimer], pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, _ = pair
    other, other_end = socket.socketpair()
    other_end.settimeout(5)
    try:
        deadline = Deadline(clock.now + 3)
        deadline.watch(ours)
        timers[0].fire()
        before = open_fds()
        # When another connection is registered
        deadline.watch(other)
        # Then it is shut down at once, no second timer is started, and nothing leaks
        assert shut_down(other_end)
        assert len(timers) == 1
        assert open_fds() == before
    finally:
        other.close()
        other_end.close()


def test_closing_stops_the_timer_and_releases_the_duplicates_without_cutting_anything(
    clock: Clock, timers: list[FakeTimer], pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = pair
    before = open_fds()
    with Deadline(clock.now + 3) as deadline:
        deadline.watch(ours)
        assert open_fds() == before + 1
    assert timers[0].cancelled
    assert open_fds() == before
    assert still_open(theirs)
    assert not deadline.fired
    deadline.close()  # again: nothing happens


def test_closing_a_deadline_that_watched_nothing_is_fine(clock: Clock, timers: list[FakeTimer]) -> None:
    Deadline(clock.now + 3).close()
    assert timers == []


# ------------------------------------------------------------------------------ open_connection


class FakeSocket:
    """What open_connection does with a socket, recorded in `log`; `refuse` makes connects fail."""

    log: list[tuple[Any, ...]]
    refuse: dict[Any, OSError]
    on_connect: Any = None

    def __init__(self, family: int, kind: int, proto: int) -> None:
        self.log.append(("socket", family, kind, proto))

    def settimeout(self, value: float) -> None:
        self.log.append(("settimeout", value))

    def connect(self, address: Any) -> None:
        self.log.append(("connect", address))
        if self.on_connect is not None:
            self.on_connect()
        if address in self.refuse:
            raise self.refuse[address]

    def close(self) -> None:
        self.log.append(("close",))

    def dup(self) -> FakeSocket:
        self.log.append(("watched",))
        return self


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> type[FakeSocket]:
    """imap.example.com has two public addresses, localhost a loopback one; sockets are
    stand-ins that record (lookups too)."""
    fake: type[FakeSocket] = type("Sockets", (FakeSocket,), {"log": [], "refuse": {}})

    def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        fake.log.append(("lookup", host, port))
        addresses = ["127.0.0.1"] if host == "localhost" else [PUBLIC_A, PUBLIC_B]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(
        netguard,
        "socket",
        SimpleNamespace(
            socket=fake, getaddrinfo=getaddrinfo, SOCK_STREAM=socket.SOCK_STREAM, SHUT_RDWR=socket.SHUT_RDWR
        ),
    )
    return fake


def test_the_first_checked_address_that_answers_gets_the_connection(
    clock: Clock, timers: list[FakeTimer], network: type[FakeSocket]
) -> None:
    # Given a name whose first address refuses, and 5 s left of the deadline
    network.refuse = {(PUBLIC_A, 993): ConnectionRefusedError(errno.ECONNREFUSED, "refused")}
    deadline = Deadline(clock.now + 5)
    # When a connection is opened with a 20 s per-operation timeout
    sock = open_connection("imap.example.com", 993, allow_private=False, timeout=20, deadline=deadline)
    # Then each connect waited at most what the deadline left, the refused socket was closed, the
    # second address got the connection, kept the 20 s timeout, and is watched by the deadline
    assert network.log == [
        ("lookup", "imap.example.com", 993),
        ("socket", socket.AF_INET, socket.SOCK_STREAM, 6),
        ("settimeout", 5),
        ("connect", (PUBLIC_A, 993)),
        ("close",),
        ("socket", socket.AF_INET, socket.SOCK_STREAM, 6),
        ("settimeout", 5),
        ("connect", (PUBLIC_B, 993)),
        ("settimeout", 20),
        ("watched",),
    ]
    assert isinstance(sock, network)
    assert [t.interval for t in timers] == [5]


def test_when_every_address_refuses_the_last_error_is_raised(
    clock: Clock, timers: list[FakeTimer], network: type[FakeSocket]
) -> None:
    first = ConnectionRefusedError(errno.ECONNREFUSED, "first refused")
    last = OSError(errno.EHOSTUNREACH, "last unreachable")
    network.refuse = {(PUBLIC_A, 993): first, (PUBLIC_B, 993): last}
    with pytest.raises(OSError) as caught:
        open_connection("imap.example.com", 993, allow_private=False, timeout=20, deadline=Deadline(None))
    assert caught.value is last
    assert [entry for entry in network.log if entry[0] == "connect"] == [
        ("connect", (PUBLIC_A, 993)),
        ("connect", (PUBLIC_B, 993)),
    ]
    assert timers == []


def test_no_further_address_is_tried_once_a_failed_connect_used_up_the_deadline(
    clock: Clock, timers: list[FakeTimer], network: type[FakeSocket]
) -> None:
    # Given a first address that takes the whole deadline to refuse
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    network.refuse = {(PUBLIC_A, 993): refused}

    def slow() -> None:
        clock.now += 5

    network.on_connect = staticmethod(slow)
    # When a connection is opened / Then that refusal is the answer, and nothing else was tried
    with pytest.raises(ConnectionRefusedError) as caught:
        open_connection(
            "imap.example.com", 993, allow_private=False, timeout=20, deadline=Deadline(clock.now + 5)
        )
    assert caught.value is refused
    assert [entry for entry in network.log if entry[0] == "connect"] == [("connect", (PUBLIC_A, 993))]


def test_where_the_deployment_allows_private_hosts_a_loopback_server_is_connected_to(
    clock: Clock, timers: list[FakeTimer], network: type[FakeSocket]
) -> None:
    open_connection("localhost", 143, allow_private=True, timeout=20, deadline=Deadline(None))
    assert ("connect", ("127.0.0.1", 143)) in network.log
    # And where it does not, nothing is
    network.log.clear()
    with pytest.raises(HostNotAllowed):
        open_connection("localhost", 143, allow_private=False, timeout=20, deadline=Deadline(None))
    assert network.log == [("lookup", "localhost", 143)]
