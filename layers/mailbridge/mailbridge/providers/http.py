"""The one way to call a URL a tenant configured (webhooks, Slack/Teams posts, OpenAPI operations).

An SSRF guard around httpx (DESIGN.md "Outbound HTTP"; OWASP SSRF prevention cheat sheet):

- `https://` only. `http://` only in local mode (`HttpPolicy.local_mode`, for `make run`), and
  then only when every address of the host is a loopback address.
- The host name is resolved once, by `netguard.resolve_checked`, and every address checked:
  no private, loopback, link-local (the metadata service 169.254.169.254 and fd00:ec2::254),
  shared, multicast or reserved address, also when carried inside IPv6 (RFC 6890 registries;
  `ipaddress.is_global`). In local mode loopback addresses are allowed too, nothing else.
- The connection goes to one of exactly those checked addresses (an httpcore network backend
  that replaces the name with the address), while TLS still verifies the certificate for the
  host name (httpcore sends the URL's host as SNI and checks it): a DNS answer that changes
  between the check and the connect (DNS rebinding) is never asked for.
- Optional per-tenant allowlist (`allowed_hosts`): `api.example.com` allows that host,
  `.example.com` any host under example.com. When set, no other host is called.
- Redirects are followed by hand, at most `max_redirects`, each hop checked like the first
  (scheme, allowlist, resolution); a 301/302/303 turns into a GET without body, and a hop to
  another origin drops every header but `Accept`, `Content-Type` and `User-Agent`.
- Timeouts per phase (connect, read, write), and one deadline for the whole exchange
  (`netguard.Deadline`), so a server trickling a byte at a time cannot hold the call; proxies
  and `*_PROXY` variables are ignored (`trust_env=False`).
- The response body is read up to `max_response_bytes`; beyond that the call fails.
- 429 and 5xx answers, and connections that fail before anything was sent, are retried up to
  `max_attempts` times in all, with exponential backoff and full jitter
  (`uniform(0, min(backoff_cap, backoff_base * 2**n))`, AWS Architecture Blog "Exponential
  Backoff And Jitter"), or after `Retry-After` (RFC 9110 section 10.2.3: seconds or an HTTP
  date) when the server sends one; a `Retry-After` beyond `max_retry_after` is not waited for.
  With `retry_rate_limited=False` a 429 is handed back as it is, for an adapter that reads the
  provider's own rate-limit headers.

Errors (typed; the message never holds the URL): `insecure_url` (InsecureUrl, 400),
`invalid_url` (400), `host_not_allowed` (netguard.HostNotAllowed, 400: private address or not
on the allowlist), `upstream_timeout`, `upstream_unreachable`, `upstream_tls_failed`
(ProviderUnreachable, retryable), `upstream_rate_limited` (UpstreamRateLimited, a ProviderRateLimited
with `retry_after`), `upstream_error` (ProviderError, retryable, `details["status"]`),
`response_too_large` and `too_many_redirects` (ProviderError, not retryable). Any other status
is returned to the caller as it is.
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import httpcore
import httpx

from mailbridge.errors import Invalid, ProviderError, ProviderRateLimited, ProviderUnreachable
from mailbridge.providers.netguard import Deadline, HostNotAllowed, _is_public, resolve_checked

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_KEPT_ACROSS_ORIGINS = frozenset({"accept", "content-type", "user-agent"})


class InsecureUrl(Invalid):
    """Not `https://` (or `http://` to loopback in local mode)."""

    code = "insecure_url"


class UpstreamError(ProviderError):
    """The server kept answering 5xx (retryable later); `details["status"]` is the last status."""

    code = "upstream_error"


class UpstreamRateLimited(ProviderRateLimited):
    """429 after the retries, or a Retry-After longer than the policy waits; see `retry_after`."""

    code = "upstream_rate_limited"


class ResponseTooLarge(ProviderError):
    code = "response_too_large"
    retryable = False


class TooManyRedirects(ProviderError):
    code = "too_many_redirects"
    retryable = False


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """How one tenant's outbound calls are guarded (times in seconds, sizes in bytes)."""

    allowed_hosts: frozenset[str] | None = None
    local_mode: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    max_response_bytes: int = 1_000_000
    max_redirects: int = 3
    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    max_retry_after: float = 60.0
    retry_rate_limited: bool = True
    """False: a 429 is returned to the caller as it is, for adapters that read the provider's own
    rate-limit headers (HubSpot's `X-HubSpot-RateLimit-*` and `policyName`) to decide the wait."""
    ca_file: str | None = field(default=None, repr=False)
    """Trust this CA bundle instead of certifi's (local doubles, tests)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with `, `."""
    body: bytes
    url: str
    attempts: int


def request(
    method: str,
    url: str,
    *,
    policy: HttpPolicy,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
    backend: httpcore.NetworkBackend | None = None,
) -> HttpResponse:
    """Send one request through the guard (see the module doc); retries included.

    `sleep` and `jitter` (a uniform [0, 1) draw) are injectable for tests; `backend` is the
    network backend the guarded one connects through (default: httpcore's sync sockets).
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            response = _follow(method, url, policy, dict(headers or {}), content, backend)
        except _RetryableConnect as exc:
            if attempt >= policy.max_attempts:
                raise exc.error from None
            sleep(_backoff(policy, attempt, jitter))
            continue
        status = response.status
        if (status != 429 or not policy.retry_rate_limited) and status < 500:
            return HttpResponse(
                status=status,
                headers=response.headers,
                body=response.body,
                url=response.url,
                attempts=attempt,
            )
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if attempt >= policy.max_attempts or (retry_after or 0) > policy.max_retry_after:
            if status == 429:
                raise UpstreamRateLimited("the endpoint is rate limiting", retry_after=retry_after)
            raise UpstreamError("the endpoint keeps failing", details={"status": status, "attempts": attempt})
        sleep(retry_after if retry_after is not None else _backoff(policy, attempt, jitter))


def check_url(url: str, policy: HttpPolicy) -> httpx.URL:
    """The parsed URL when its scheme, user info and host pass the policy (before any DNS)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise Invalid("not a URL", code="invalid_url") from None
    if parsed.scheme not in ("https", "http") or not parsed.host or parsed.userinfo:
        raise Invalid("an https URL with a host and no user name is required", code="invalid_url")
    if parsed.scheme == "http" and not policy.local_mode:
        raise InsecureUrl("only https URLs are allowed")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if policy.allowed_hosts is not None and not _allowed(host, policy.allowed_hosts):
        raise HostNotAllowed("the host is not on the tenant's allowlist")
    return parsed


@contextmanager
def transport_errors(provider: str) -> Iterator[None]:
    """Map httpx's timeouts and transport failures inside the block to ProviderUnreachable.

    For the provider adapters that call a configured host with plain httpx (Gmail, Google
    Calendar, Graph, the OAuth token endpoints): `httpx.TimeoutException` -> code `timeout`
    ("<provider> did not answer in time"), any other `httpx.RequestError` (connect, TLS,
    protocol, proxy, an undecodable body) -> code `unreachable` ("<provider> is unreachable");
    both retryable.
    `provider` is the name the message shows ("Gmail", "Graph", ...), never a URL.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ProviderUnreachable(f"{provider} did not answer in time", code="timeout") from exc
    except httpx.RequestError as exc:
        raise ProviderUnreachable(f"{provider} is unreachable", code="unreachable") from exc


# ------------------------------------------------------------------------------- internals


@dataclass(slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


class _RetryableConnect(Exception):
    def __init__(self, error: ProviderUnreachable) -> None:
        super().__init__(error.message)
        self.error = error


def _allowed(host: str, allowed: Iterable[str]) -> bool:
    for raw in allowed:
        entry = raw.lower().rstrip(".")
        if host == entry or (entry.startswith(".") and host.endswith(entry)):
            return True
    return False


def _follow(
    method: str,
    url: str,
    policy: HttpPolicy,
    headers: dict[str, str],
    content: bytes | None,
    backend: httpcore.NetworkBackend | None,
) -> _Answer:
    current = check_url(url, policy)
    for _ in range(policy.max_redirects + 1):
        answer = _exchange(method, current, policy, headers, content, backend)
        location = answer.headers.get("location")
        if answer.status not in REDIRECT_STATUSES or not location:
            return answer
        try:
            following = current.join(location)
        except (httpx.InvalidURL, ValueError):
            raise Invalid("the redirect is not a URL", code="invalid_url") from None
        following = check_url(str(following), policy)
        if following.scheme == "http" and current.scheme == "https":
            raise InsecureUrl("a redirect from https to http is refused")
        if (following.scheme, following.host, following.port) != (current.scheme, current.host, current.port):
            headers = {k: v for k, v in headers.items() if k.lower() in _KEPT_ACROSS_ORIGINS}
        if answer.status in (301, 302, 303) and method != "HEAD":
            method, content = "GET", None
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        current = following
    raise TooManyRedirects(
        "the endpoint redirects too often", details={"max_redirects": policy.max_redirects}
    )


def _exchange(
    method: str,
    url: httpx.URL,
    policy: HttpPolicy,
    headers: dict[str, str],
    content: bytes | None,
    backend: httpcore.NetworkBackend | None,
) -> _Answer:
    timeout = httpx.Timeout(
        connect=policy.connect_timeout,
        read=policy.read_timeout,
        write=policy.read_timeout,
        pool=policy.connect_timeout,
    )
    with Deadline(time.monotonic() + policy.total_timeout) as deadline:
        guard = _GuardedBackend(
            policy, require_loopback=url.scheme == "http", deadline=deadline, inner=backend
        )
        transport = _GuardedTransport(_ssl_context(policy.ca_file), guard)
        try:
            with (
                httpx.Client(
                    transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
                ) as client,
                client.stream(method, url, headers=headers, content=content) as response,
            ):
                body = bytearray()
                for chunk in response.iter_raw():
                    body += chunk
                    if len(body) > policy.max_response_bytes:
                        raise ResponseTooLarge(
                            "the response is too large", details={"max_bytes": policy.max_response_bytes}
                        )
                    if deadline.expired:
                        raise httpx.ReadTimeout("deadline passed")
                return _Answer(
                    status=response.status_code,
                    headers={k: ", ".join(response.headers.get_list(k)) for k in response.headers},
                    body=bytes(body),
                    url=str(url),
                )
        except httpx.TimeoutException:
            raise ProviderUnreachable(
                "the endpoint did not answer in time", code="upstream_timeout"
            ) from None
        except httpx.ConnectError as exc:
            tls = _caused_by(exc, ssl.SSLError)
            error = ProviderUnreachable(
                "the endpoint's certificate is not valid for its host"
                if tls
                else "cannot connect to the endpoint",
                code="upstream_tls_failed" if tls else "upstream_unreachable",
            )
            if tls:
                raise error from None
            raise _RetryableConnect(error) from None
        except httpx.TransportError:
            if deadline.fired:
                raise ProviderUnreachable(
                    "the endpoint did not answer in time", code="upstream_timeout"
                ) from None
            raise ProviderUnreachable("the connection failed", code="upstream_unreachable") from None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@lru_cache(maxsize=8)
def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """One context per CA bundle per process: loading certifi's bundle takes ~0.1 s, which
    was most of each request's time; a configured SSLContext is safe to share across threads."""
    if ca_file is None:
        import certifi

        ca_file = certifi.where()
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _backoff(policy: HttpPolicy, attempt: int, jitter: Callable[[], float]) -> float:
    return float(jitter() * min(policy.backoff_cap, policy.backoff_base * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _address_allowed(address: str, *, local_mode: bool, require_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    loopback = ip.is_loopback or (mapped is not None and mapped.is_loopback)
    if require_loopback:
        return loopback
    return _is_public(ip) or (local_mode and loopback)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves once, checks every address, connects to a checked one (see the module doc)."""

    def __init__(
        self,
        policy: HttpPolicy,
        *,
        require_loopback: bool,
        deadline: Deadline,
        inner: httpcore.NetworkBackend | None,
    ) -> None:
        self._policy = policy
        self._require_loopback = require_loopback
        self._deadline = deadline
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        policy = self._policy
        addresses = resolve_checked(host, port, allow_private=policy.local_mode or self._require_loopback)
        for *_, sockaddr in addresses:
            address = str(sockaddr[0])
            if not _address_allowed(
                address, local_mode=policy.local_mode, require_loopback=self._require_loopback
            ):
                if self._require_loopback:
                    raise InsecureUrl("http is only allowed to loopback addresses in local mode")
                raise HostNotAllowed("the host resolves to a private or reserved address")
        last: Exception | None = None
        for *_, sockaddr in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(sockaddr[0]),
                    port,
                    timeout=self._deadline.clamp(timeout or policy.connect_timeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, TimeoutError) as exc:
                last = exc
                continue
            sock = stream.get_extra_info("socket")
            if sock is not None:
                self._deadline.watch(sock)
            return stream
        if isinstance(last, httpcore.ConnectTimeout | TimeoutError):
            raise httpcore.ConnectTimeout("connect timed out")
        raise httpcore.ConnectError("cannot connect")

    def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002
        timeout: float | None = None,  # noqa: ARG002
        socket_options: Iterable[Any] | None = None,  # noqa: ARG002
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable from here")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport, with its connection pool built on the guarded backend.

    httpx 0.28 takes no network backend; its `HTTPTransport` keeps the httpcore pool in `_pool`,
    so it is rebuilt here with `network_backend=` (httpcore 1.0's documented hook). The tests
    with a local HTTPS server fail if a new httpx stops reading `_pool`.
    """

    def __init__(self, context: ssl.SSLContext, backend: _GuardedBackend) -> None:
        super().__init__(verify=context, trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, max_connections=4, retries=0, network_backend=backend
        )
