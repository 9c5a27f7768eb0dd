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


def test_public_addresses_pass_and_are_returned_for_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver(PUBLIC_V4, PUBLIC_V6))
    checked = resolve_checked("imap.example.com", 993, allow_private=False)
    assert [sockaddr[0] for *_, sockaddr in checked] == [PUBLIC_V4, PUBLIC_V6]


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


def test_no_connection_is_tried_once_the_deadline_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a public host and a deadline already behind us
    monkeypatch.setattr(socket, "getaddrinfo", _resolver(PUBLIC_V4))
    connects: list[Any] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connects.append(address))
    # When opening a connection / Then it is a timeout, and no connect happened
    with Deadline(0.0) as deadline, pytest.raises(TimeoutError):
        open_connection("imap.example.com", 993, allow_private=False, timeout=20, deadline=deadline)
    assert connects == []
