"""The runner's access log names the route and the status, never a value the client sent."""

from __future__ import annotations

import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from local.auth import Issuer
from local.functions import Invocation
from local.http import ApiGateway, _Server, bind_server
from local.template import Route

SECRET = "Zq8secret"  # in the path, the query and a malformed request line; never in a log line


def _ok(_function: str, _event: dict[str, Any]) -> Invocation:
    return Invocation(result={"statusCode": 200, "body": "{}"})


@pytest.fixture
def server() -> Iterator[_Server]:
    server = bind_server("127.0.0.1", 0)
    host, port = _address(server)
    server.gateway = ApiGateway(
        [Route("GET", "/emails/{email_id}", "Fn", None)],
        {},
        Issuer.create(f"http://{host}:{port}/_local/issuer"),
        _ok,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.close(grace=0)


def _address(server: _Server) -> tuple[str, int]:
    host, port = server.server_address[:2]
    return str(host), int(port)


def _get(server: _Server, path: str) -> int:
    host, port = _address(server)
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_the_access_log_names_the_route_not_the_path_or_query(
    server: _Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="local.http")
    # When a route is called with values in its path and query, and a path no route declares
    assert _get(server, f"/emails/{SECRET}?q={SECRET}+renewal&from=carol-{SECRET}@x.example") == 200
    assert _get(server, f"/no-such-route/{SECRET}") == 404
    # And a request line the server cannot parse arrives
    with socket.create_connection(_address(server), timeout=30) as raw:
        raw.sendall(f"GET /{SECRET} HTTP/1.1 {SECRET}\r\n\r\n".encode())
        assert raw.recv(1024)  # the stdlib's 400 page
    # Then each got its access line, naming the route key (or "-") and the status
    lines = [record.getMessage() for record in caplog.records]
    assert any('"GET /emails/{email_id}" 200' in line for line in lines), lines
    assert any('"-" 404' in line for line in lines), lines
    # And no line holds a value the client sent
    assert [line for line in lines if SECRET.lower() in line.lower()] == []
