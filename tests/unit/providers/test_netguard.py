"""The mail-host guard judges every address a name resolves to (no network: a scripted resolver)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from mailbridge.errors import ProviderUnreachable
from mailbridge.providers.netguard import Deadline, HostNotAllowed, open_connection, resolve_checked

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def _resolver(*addresses: str) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addresses
        ]

    return getaddrinfo


@pytest.mark.parametrize(
    "private",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",  # the instance metadata service
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        # Python 3.11.7's is_global calls every one of these global
        "64:ff9b::a00:8",  # NAT64 (RFC 6052) around 10.0.0.8: reaches the VPC through a NAT64 gateway
        "64:ff9b::a9fe:a9fe",  # NAT64 around the metadata service
        "64:ff9b:1::a00:8",  # local-use translation prefix (RFC 8215)
        "::7f00:1",  # IPv4-compatible loopback (deprecated)
        "::a9fe:a9fe",  # IPv4-compatible metadata service
        "fec0::1",  # site-local (deprecated)
        # and the rest of the special-purpose registries
        "fd00:ec2::254",  # the metadata service over IPv6
        "2001:0:4136:e378:8000:63bf:a247:28f1",  # Teredo, even around a public client
        "100::1",
        "2001:db8::1",
        "3fff::1",
        "5f00::1",
        "ff0e::1",
        "192.0.0.8",
        "192.0.2.1",
        "192.88.99.1",
        "198.18.0.1",
        "198.51.100.1",
        "203.0.113.1",
        "240.0.0.1",
        "255.255.255.255",
    ],
)
def test_a_name_resolving_to_a_private_or_reserved_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, private: str
) -> None:
    # Given a resolver that answers one public address and one private one
    monkeypatch.setattr(socket, "getaddrinfo", _resolver(PUBLIC_V4, private))
    # When / Then the name is refused: the connection could land on the private one
    with pytest.raises(HostNotAllowed) as caught:
        resolve_checked("imap.example.com", 993, allow_private=False)
    assert caught.value.code == "host_not_allowed"
    assert caught.value.message == "the mail host resolves to a private or reserved address"
    # And alone, or first, it is refused as well
    for answer in ([private], [private, PUBLIC_V4]):
        monkeypatch.setattr(socket, "getaddrinfo", _resolver(*answer))
        with pytest.raises(HostNotAllowed):
            resolve_checked("imap.example.com", 993, allow_private=False)


@pytest.mark.parametrize(
    "public",
    [
        PUBLIC_V4,
        PUBLIC_V6,
        "8.8.8.8",
        "2a00:1450:4001:80b::200e",
        "::ffff:93.184.215.14",  # IPv4-mapped public address
        "2002:5db8:d70e::1",  # 6to4 around a public address
        "64:ff9b::5db8:d70e",  # NAT64 around a public address (IPv6-only networks reach IPv4 so)
        "100.63.255.255",  # just below the shared block
        "172.32.0.1",  # just above 172.16/12
    ],
)
def test_public_addresses_pass_and_are_returned_for_the_connection(
    monkeypatch: pytest.MonkeyPatch, public: str
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver(PUBLIC_V4, public))
    checked = resolve_checked("imap.example.com", 993, allow_private=False)
    assert checked == [
        (socket.AF_INET, socket.SOCK_STREAM, 6, (PUBLIC_V4, 993)),
        (
            socket.AF_INET6 if ":" in public else socket.AF_INET,
            socket.SOCK_STREAM,
            6,
            (public, 993, 0, 0) if ":" in public else (public, 993),
        ),
    ]


def test_the_name_is_resolved_once_for_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a resolver that records what it is asked
    asked: list[tuple[Any, ...]] = []
    answer = _resolver(PUBLIC_V4)

    def recording(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append((host, port, args, kwargs))
        result: list[Any] = answer(host, port)
        return result

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    # When a name is checked / Then it was looked up once, for a TCP connection to that port
    resolve_checked("imap.example.com", 993, allow_private=False)
    assert asked == [("imap.example.com", 993, (), {"type": socket.SOCK_STREAM})]


def test_private_addresses_pass_where_the_deployment_allows_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver("127.0.0.1"))
    checked = resolve_checked("localhost", 143, allow_private=True)
    assert [sockaddr for *_, sockaddr in checked] == [("127.0.0.1", 143)]


def test_a_name_that_does_not_resolve_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ProviderUnreachable) as caught:
        resolve_checked("nowhere.invalid", 993, allow_private=False)
    assert caught.value.code == "unreachable"
    assert caught.value.message == "cannot resolve nowhere.invalid"


def test_a_name_that_cannot_be_encoded_for_dns_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a label of 64 characters, which the resolver's IDNA encoding refuses with a
    # UnicodeError (not an OSError)
    def encoding_resolver(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        host.encode("idna")
        raise AssertionError("the name encoded")

    monkeypatch.setattr(socket, "getaddrinfo", encoding_resolver)
    with pytest.raises(ProviderUnreachable) as caught:
        resolve_checked("a" * 64 + ".example.com", 993, allow_private=False)
    assert (caught.value.code, caught.value.message) == (
        "unreachable",
        f"cannot resolve {'a' * 64}.example.com",
    )


def test_a_name_with_no_address_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver())
    with pytest.raises(ProviderUnreachable) as caught:
        resolve_checked("empty.example.com", 993, allow_private=True)
    assert (caught.value.code, caught.value.message) == ("unreachable", "cannot resolve empty.example.com")


def test_no_connection_is_tried_once_the_deadline_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a public host and a deadline already behind us
    monkeypatch.setattr(socket, "getaddrinfo", _resolver(PUBLIC_V4))
    connects: list[Any] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connects.append(address))
    # When opening a connection / Then it is a timeout, and no connect happened
    with Deadline(0.0) as deadline, pytest.raises(TimeoutError):
        open_connection("imap.example.com", 993, allow_private=False, timeout=20, deadline=deadline)
    assert connects == []
