"""Where a user-supplied mail host may point: public addresses only, unless the deployment allows
private ones (local development with a loopback Dovecot). Keeps a mailbox setting from turning
the sync function into a probe of the VPC or the metadata service."""

from __future__ import annotations

import ipaddress
import socket

from mailbridge.errors import Invalid, ProviderUnreachable


def check_mail_host(host: str, port: int, *, allow_private: bool) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProviderUnreachable(f"cannot resolve {host}", code="unreachable") from exc
    if allow_private:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise Invalid("the mail host resolves to a private or reserved address", code="host_not_allowed")
