"""The sync benchmark's moto server (benchmarks/sync/moto_http.py): one connection carries many
requests, each body arrives whole, a chunked request still closes, and the dispatcher lists
moto's modules once per host, not once per request."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from benchmarks.sync import moto_http

CREDENTIALS: dict[str, Any] = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    # a request the server swallowed fails the test in seconds instead of hanging it
    "config": Config(read_timeout=3, retries={"total_max_attempts": 1}),
}


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    moto_http.install(partial(monkeypatch.setattr, raising=False))
    started = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    started.start()
    try:
        yield started.get_host_and_port()
    finally:
        started.stop()


def test_one_connection_carries_every_request_and_every_body_whole(
    server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib3.connection

    host, port = server
    opened: list[int] = []
    connect = urllib3.connection.HTTPConnection._new_conn

    def counted(self: Any) -> Any:
        opened.append(1)
        return connect(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "_new_conn", counted)
    s3 = boto3.client("s3", endpoint_url=f"http://{host}:{port}", **CREDENTIALS)
    dynamodb = boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}", **CREDENTIALS)
    bucket = f"moto-http-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    tables = dynamodb.list_tables()["TableNames"]  # moto's backends are the process's: others' tables
    # When bodies of every size go up and come back, with other services' requests between
    for n in range(40):
        body = bytes(range(256)) * n + b"\r\n\r\nGET / HTTP/1.1\r\n"  # a request line inside a body
        s3.put_object(Bucket=bucket, Key=f"k{n}", Body=body)
        assert s3.get_object(Bucket=bucket, Key=f"k{n}")["Body"].read() == body
        assert dynamodb.list_tables()["TableNames"] == tables
    # Then each client opened one connection for all its requests
    assert len(opened) == 2


def test_a_chunked_request_still_closes(server: tuple[str, int]) -> None:
    host, port = server
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.putrequest("PUT", "/moto-http-chunked")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.putheader(
        "Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request"
    )
    connection.endheaders(b"0\r\n\r\n")
    response = connection.getresponse()
    response.read()
    assert response.getheader("Connection") == "close"


def test_the_dispatcher_lists_moto_once_per_host(
    server: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import backends

    host, port = server
    listed: list[int] = []
    listing = backends.list_of_moto_modules

    def counted() -> Any:
        listed.append(1)
        return listing()

    monkeypatch.setattr(backends, "list_of_moto_modules", counted)
    dynamodb = boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}", **CREDENTIALS)
    for _ in range(5):
        dynamodb.list_tables()
    assert len(listed) <= 1
