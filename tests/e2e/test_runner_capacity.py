"""The runner under load: Lambda-like concurrency per function, connections queued (never reset),
and API Gateway's and Lambda's payload limits."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.clock import ManualClock
from local.functions import MAX_REQUEST_PAYLOAD_BYTES
from local.http import MAX_BODY_BYTES, bind_server
from local.runner import Runner
from tests.e2e.conftest import PROBE_TEMPLATE, ROOT, START, Reply, http

BOUND = 3
CONNECT_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    with Runner(
        templates=[ROOT / "template.yaml", PROBE_TEMPLATE],
        port=0,
        clock=ManualClock(START),
        max_instances=BOUND,
    ) as r:
        yield r


def _post(runner: Runner, path: str, body: bytes, content_type: str = "text/plain") -> Reply:
    request = urllib.request.Request(
        runner.url + path, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers.items()), error.read())


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def test_connections_wait_in_the_listen_backlog_while_the_runner_is_not_accepting() -> None:
    # Given a bound runner server that accepts nothing yet (as when every handler is busy)
    server = bind_server("127.0.0.1", 0)
    clients: list[socket.socket] = []
    try:
        # When 200 clients connect at once
        connected = 0
        for _ in range(200):
            client = socket.socket()
            client.settimeout(CONNECT_TIMEOUT)  # a SYN dropped on a full backlog is retried after 1 s
            clients.append(client)
            try:
                client.connect(server.server_address)
                connected += 1
            except OSError:
                pass
        # Then the kernel queued every one of them (none refused, reset or left hanging)
        assert connected == 200
    finally:
        for client in clients:
            client.close()
        server.close(grace=0)


def test_200_concurrent_requests_all_get_an_answer_and_none_is_reset(runner: Runner) -> None:
    # Given 50 client threads firing 200 requests at once on loopback
    def get(_: int) -> Any:
        try:
            return http(runner, "GET", "/health").status
        except OSError as exc:  # ConnectionResetError, RemoteDisconnected, refused, timeout
            return exc

    # When
    with ThreadPoolExecutor(max_workers=50) as clients:
        outcomes = list(clients.map(get, range(200)))
    # Then every request got its answer: no reset, no refused connection
    failures = [o for o in outcomes if o != 200]
    assert failures == []


def test_a_function_runs_in_parallel_sandboxes_but_never_more_than_its_bound(runner: Runner) -> None:
    # Given more simultaneous invocations of one function than its bound of sandboxes
    def get(_: int) -> dict[str, Any]:
        reply = http(runner, "GET", "/_probe/slow/0.3")
        assert reply.status == 200, reply.body[:200]
        return dict(reply.json()["sandbox"])

    # When 4 x BOUND of them arrive at once
    with ThreadPoolExecutor(max_workers=4 * BOUND) as clients:
        sandboxes = list(clients.map(get, range(4 * BOUND)))
    # Then all are served, by more than one sandbox at a time, and never by more than BOUND
    pids = {s["pid"] for s in sandboxes}
    overlap = _max_overlap([(s["started"], s["ended"]) for s in sandboxes])
    assert 2 <= len(pids) <= BOUND
    assert 2 <= overlap <= BOUND


def test_a_body_over_10_mb_gets_api_gateways_413(runner: Runner) -> None:
    # When
    reply = _post(runner, "/_probe/echo/x?size_only", b"a" * (MAX_BODY_BYTES + 1))
    # Then API Gateway's own answer, in its shape
    assert reply.status == 413
    assert reply.json() == {"message": "Request Entity Too Large"}


def test_an_event_over_lambdas_6_mb_fails_like_the_lambda_integration_does(runner: Runner) -> None:
    # Given a body under API Gateway's 10 MB whose event is over Lambda's 6 MB Invoke limit
    too_big = b"a" * (MAX_REQUEST_PAYLOAD_BYTES + 1)
    # When
    reply = _post(runner, "/_probe/echo/x?size_only", too_big)
    # Then HTTP API's answer for a failed Lambda integration
    assert reply.status == 500
    assert reply.json() == {"message": "Internal Server Error"}
    # And a body that keeps the whole event under 6 MB reaches the function
    fits = b"a" * (MAX_REQUEST_PAYLOAD_BYTES - 16 * 1024)
    reply = _post(runner, "/_probe/echo/x?size_only", fits)
    assert reply.status == 200
    assert reply.json() == {"body_length": len(fits)}


def test_a_response_over_lambdas_6_mb_is_a_500(runner: Runner) -> None:
    # When the function answers more than Lambda lets it return
    reply = http(runner, "GET", "/_probe/slow/big")
    # Then
    assert reply.status == 500
    assert json.loads(reply.body) == {"message": "Internal Server Error"}
