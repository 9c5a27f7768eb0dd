"""The guarded outbound HTTP client against a local HTTPS server (a throw-away CA, trusted through
`HttpPolicy.ca_file`) and scripted name resolution: rebinding, redirects, allowlist, retries, limits.

Nothing here leaves the machine: the "public" address of the rebinding resolver is refused at
connect by `stub_servers.Rebinding`, and the private targets are refused before any connect.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local.microsoft.keys import TlsIdentity
from mailbridge.errors import Invalid, ProviderError, ProviderUnreachable
from mailbridge.providers.http import (
    HttpPolicy,
    InsecureUrl,
    ResponseTooLarge,
    TooManyRedirects,
    UpstreamError,
    UpstreamRateLimited,
    request,
)
from mailbridge.providers.netguard import HostNotAllowed
from tests.integration.stub_servers import PUBLIC_ADDRESS, Canary, Rebinding


class Server:
    """HTTPS on 127.0.0.1; `script[path]` is a list of (status, headers, body) answered in turn
    (the last one repeats); `/trickle` sends its body a byte every 0.2 s."""

    def __init__(self, identity: TlsIdentity) -> None:
        self.script: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append(
                    (self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                if self.path == "/trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    for _ in range(100):
                        try:
                            self.wfile.write(b".")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.2)
                    return
                answers = server.script.get(self.path, [(200, {}, b"ok")])
                status, headers, payload = answers.pop(0) if len(answers) > 1 else answers[0]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = identity.context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def identity() -> Iterator[TlsIdentity]:
    tls = TlsIdentity()
    yield tls
    tls.close()


@pytest.fixture
def server(identity: TlsIdentity) -> Iterator[Server]:
    running = Server(identity)
    yield running
    running.close()


@pytest.fixture
def local(identity: TlsIdentity) -> HttpPolicy:
    """Local mode (make run): loopback allowed, our CA trusted, no waiting between retries."""
    return HttpPolicy(local_mode=True, ca_file=identity.ca_file)


def _no_sleep(sleeps: list[float]) -> Any:
    return sleeps.append


def test_a_post_reaches_the_local_https_server_and_returns_its_answer(
    server: Server, local: HttpPolicy
) -> None:
    # Given a local HTTPS endpoint trusted through the CA file
    server.script["/hook"] = [(202, {"X-Request-Id": "r1"}, b'{"accepted":true}')]
    # When we POST a body to it
    response = request(
        "POST",
        f"https://localhost:{server.port}/hook",
        policy=local,
        headers={"Content-Type": "application/json"},
        content=b'{"a":1}',
    )
    # Then the server saw the exact bytes and we got its answer
    assert (response.status, response.body, response.headers["x-request-id"]) == (
        202,
        b'{"accepted":true}',
        "r1",
    )
    assert server.seen[-1][0:2] == ("POST", "/hook")
    assert server.seen[-1][3] == b'{"a":1}'


def test_dns_rebinding_never_reaches_the_loopback_server(
    monkeypatch: pytest.MonkeyPatch, identity: TlsIdentity
) -> None:
    # Given a name whose first answer is public and every later one loopback, where a canary listens
    canary = Canary()
    rebinding = Rebinding(monkeypatch, "hooks.rebind.example")
    sleeps: list[float] = []
    try:
        # When we call it (the public address refuses the connection; we retry)
        with pytest.raises((ProviderUnreachable, HostNotAllowed)) as caught:
            request(
                "POST",
                f"https://hooks.rebind.example:{canary.port}/x",
                policy=HttpPolicy(ca_file=identity.ca_file),
                content=b"{}",
                sleep=_no_sleep(sleeps),
            )
        # Then the first attempt connected only to the checked public address, the retry's
        # fresh lookup (loopback) was refused before connecting, and the canary saw nothing
        assert rebinding.connects_to(canary.port) == [(PUBLIC_ADDRESS, canary.port)]
        assert caught.value.code == "host_not_allowed"
        assert rebinding.lookups == ["hooks.rebind.example", "hooks.rebind.example"]
        assert canary.accepted == 0
    finally:
        canary.close()


def test_one_resolution_per_attempt_and_the_connect_goes_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, identity: TlsIdentity
) -> None:
    canary = Canary()
    rebinding = Rebinding(monkeypatch, "api.rebind.example")
    try:
        with pytest.raises(ProviderUnreachable) as caught:
            request("GET", f"https://api.rebind.example:{canary.port}/", policy=HttpPolicy(max_attempts=1))
        assert caught.value.code == "upstream_unreachable"
        assert rebinding.lookups == ["api.rebind.example"]
        assert [a[0] for a in rebinding.connects if isinstance(a, tuple)] == [PUBLIC_ADDRESS]
        assert canary.accepted == 0
    finally:
        canary.close()


@pytest.mark.parametrize(
    "location",
    [
        "https://10.0.0.5/internal",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://[::ffff:10.0.0.5]/",
    ],
)
def test_a_redirect_to_a_private_address_is_refused(server: Server, local: HttpPolicy, location: str) -> None:
    # Given an endpoint that redirects into the private network
    server.script["/go"] = [(302, {"Location": location}, b"")]
    # When / Then the hop is checked like the first request and refused
    with pytest.raises(HostNotAllowed) as caught:
        request("GET", f"https://localhost:{server.port}/go", policy=local)
    assert caught.value.code == "host_not_allowed"


def test_a_redirect_from_https_to_http_is_refused(server: Server, local: HttpPolicy) -> None:
    server.script["/go"] = [(301, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")]
    with pytest.raises(InsecureUrl):
        request("GET", f"https://localhost:{server.port}/go", policy=local)


def test_redirects_are_followed_checked_and_bounded(server: Server, local: HttpPolicy) -> None:
    # A same-origin 303 becomes a GET without body; a loop stops at max_redirects
    server.script["/a"] = [(303, {"Location": "/b"}, b"")]
    server.script["/b"] = [(200, {}, b"landed")]
    response = request("POST", f"https://localhost:{server.port}/a", policy=local, content=b"x")
    assert response.body == b"landed"
    assert [(m, p, b) for m, p, _, b in server.seen] == [("POST", "/a", b"x"), ("GET", "/b", b"")]
    server.script["/loop"] = [(307, {"Location": "/loop"}, b"")]
    with pytest.raises(TooManyRedirects):
        request("GET", f"https://localhost:{server.port}/loop", policy=local)
    assert len([s for s in server.seen if s[1] == "/loop"]) == local.max_redirects + 1


def test_a_cross_origin_redirect_drops_the_callers_headers(server: Server, local: HttpPolicy) -> None:
    server.script["/x"] = [(307, {"Location": f"https://127.0.0.1:{server.port}/y"}, b"")]
    request(
        "GET",
        f"https://localhost:{server.port}/x",
        policy=local,
        headers={"Authorization": "Bearer secret", "Accept": "application/json"},
    )
    first, second = server.seen[-2][2], server.seen[-1][2]
    assert first["authorization"] == "Bearer secret"
    assert "authorization" not in second
    assert second["accept"] == "application/json"


def test_the_allowlist_is_enforced_before_any_connection(server: Server, local: HttpPolicy) -> None:
    # Given a tenant allowlist without localhost
    policy = HttpPolicy(
        local_mode=True,
        ca_file=local.ca_file,
        allowed_hosts=frozenset({"api.example.com", ".partner.example"}),
    )
    # When / Then the call is refused and the server never hears of it
    with pytest.raises(HostNotAllowed):
        request("GET", f"https://localhost:{server.port}/", policy=policy)
    assert server.seen == []
    # and an allowlisted host (exact, or under a leading-dot domain) goes through
    allowed = HttpPolicy(local_mode=True, ca_file=local.ca_file, allowed_hosts=frozenset({"LOCALHOST"}))
    assert request("GET", f"https://localhost:{server.port}/", policy=allowed).status == 200


def test_a_redirect_off_the_allowlist_is_refused(server: Server, local: HttpPolicy) -> None:
    policy = HttpPolicy(local_mode=True, ca_file=local.ca_file, allowed_hosts=frozenset({"localhost"}))
    server.script["/go"] = [(302, {"Location": f"https://127.0.0.1:{server.port}/"}, b"")]
    with pytest.raises(HostNotAllowed):
        request("GET", f"https://localhost:{server.port}/go", policy=policy)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://169.254.169.254/",
        "https://[::1]/",
        "https://10.1.2.3/",
        "https://[fd00:ec2::254]/",
    ],
)
def test_private_targets_are_refused_outside_local_mode(url: str) -> None:
    with pytest.raises(HostNotAllowed):
        request("GET", url, policy=HttpPolicy())


def test_http_is_refused_unless_local_mode_and_loopback(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InsecureUrl):
        request("GET", "http://hooks.example.com/", policy=HttpPolicy())
    # local mode: http to a name that resolves to a public address is still refused
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, 80))],
    )
    with pytest.raises(InsecureUrl):
        request("GET", "http://hooks.example.com/", policy=HttpPolicy(local_mode=True))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "https://user:pw@example.com/", "not a url", "https:///x"]
)
def test_malformed_urls_are_invalid(url: str) -> None:
    with pytest.raises(Invalid) as caught:
        request("GET", url, policy=HttpPolicy())
    assert caught.value.code in {"invalid_url", "insecure_url"}


def test_tls_verifies_the_host_name_not_the_address(
    server: Server, local: HttpPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a name that resolves to our server, whose certificate names only localhost/127.0.0.1
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: real("127.0.0.1" if host == "other.example" else host, port, *a, **k),
    )
    # When / Then the handshake fails on the name, and it is not retried
    with pytest.raises(ProviderUnreachable) as caught:
        request("GET", f"https://other.example:{server.port}/", policy=local)
    assert caught.value.code == "upstream_tls_failed"
    assert server.seen == []


def test_an_untrusted_certificate_is_refused(server: Server) -> None:
    with pytest.raises(ProviderUnreachable) as caught:
        request("GET", f"https://localhost:{server.port}/", policy=HttpPolicy(local_mode=True))
    assert caught.value.code == "upstream_tls_failed"


def test_5xx_is_retried_with_exponential_backoff_and_jitter(server: Server, local: HttpPolicy) -> None:
    # Given an endpoint failing twice
    server.script["/flaky"] = [(503, {}, b""), (500, {}, b""), (200, {}, b"fine")]
    sleeps: list[float] = []
    # When
    response = request(
        "POST",
        f"https://localhost:{server.port}/flaky",
        policy=local,
        sleep=sleeps.append,
        jitter=lambda: 0.5,
    )
    # Then it answered on the third attempt after backoffs of half of 0.5 s and 1 s
    assert (response.status, response.attempts) == (200, 3)
    assert sleeps == [0.25, 0.5]


def test_429_honours_retry_after(server: Server, local: HttpPolicy) -> None:
    server.script["/busy"] = [(429, {"Retry-After": "2"}, b""), (200, {}, b"ok")]
    sleeps: list[float] = []
    response = request("GET", f"https://localhost:{server.port}/busy", policy=local, sleep=sleeps.append)
    assert (response.status, sleeps) == (200, [2.0])


def test_a_long_retry_after_is_handed_back_not_waited_for(server: Server, local: HttpPolicy) -> None:
    server.script["/busy"] = [(429, {"Retry-After": "3600"}, b"")]
    sleeps: list[float] = []
    with pytest.raises(UpstreamRateLimited) as caught:
        request("GET", f"https://localhost:{server.port}/busy", policy=local, sleep=sleeps.append)
    assert (caught.value.code, caught.value.retry_after, sleeps) == ("upstream_rate_limited", 3600.0, [])


def test_retries_stop_at_the_limit_with_a_typed_error(server: Server, local: HttpPolicy) -> None:
    server.script["/down"] = [(502, {}, b"")]
    with pytest.raises(UpstreamError) as caught:
        request("GET", f"https://localhost:{server.port}/down", policy=local, sleep=lambda _: None)
    assert caught.value.details == {"status": 502, "attempts": local.max_attempts}
    assert caught.value.retryable
    assert len(server.seen) == local.max_attempts


def test_4xx_is_returned_not_retried(server: Server, local: HttpPolicy) -> None:
    server.script["/gone"] = [(410, {}, b"gone")]
    response = request("GET", f"https://localhost:{server.port}/gone", policy=local)
    assert (response.status, response.attempts, len(server.seen)) == (410, 1, 1)


def test_the_response_size_is_bounded(server: Server, identity: TlsIdentity) -> None:
    server.script["/big"] = [(200, {}, b"x" * 200_000)]
    policy = HttpPolicy(local_mode=True, ca_file=identity.ca_file, max_response_bytes=100_000)
    with pytest.raises(ResponseTooLarge) as caught:
        request("GET", f"https://localhost:{server.port}/big", policy=policy)
    assert isinstance(caught.value, ProviderError)
    assert not caught.value.retryable


def test_a_trickling_server_is_cut_off_at_the_total_deadline(server: Server, identity: TlsIdentity) -> None:
    # Given a server sending a byte every 0.2 s (no read ever times out) and a 1 s deadline
    policy = HttpPolicy(local_mode=True, ca_file=identity.ca_file, total_timeout=1.0, max_attempts=1)
    # When / Then (without the deadline the 20 s body would arrive whole)
    with pytest.raises(ProviderUnreachable) as caught:
        request("GET", f"https://localhost:{server.port}/trickle", policy=policy)
    assert caught.value.code == "upstream_timeout"
