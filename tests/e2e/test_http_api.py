"""Requests through the local runner reach the real handlers, with API Gateway's answers around them."""

from __future__ import annotations

import time

from local.runner import Runner
from tests.e2e.conftest import http


def test_health_reaches_the_api_function_without_a_token(runner: Runner) -> None:
    # When
    reply = http(runner, "GET", "/health")
    # Then
    assert reply.status == 200
    assert reply.json()["status"] == "ok"


def test_unknown_route_is_404_like_api_gateway(runner: Runner) -> None:
    # When
    reply = http(runner, "GET", "/no/such/route")
    # Then
    assert reply.status == 404
    assert reply.json() == {"message": "Not Found"}


def test_protected_route_without_or_with_a_bad_token_is_401(runner: Runner) -> None:
    # Given a token signed by another key, and one that has expired
    foreign = runner.token(tenant="acme", role="admin")[:-8] + "AAAAAAAA"
    expired = runner.issuer.token(tenant="acme", role="admin", ttl=-60)
    # When / Then
    for token in (None, "not-a-jwt", foreign, expired):
        reply = http(runner, "GET", "/me", token=token)
        assert reply.status == 401, token
        assert reply.json() == {"message": "Unauthorized"}


def test_protected_route_with_a_valid_token_gets_the_claims_as_strings(runner: Runner) -> None:
    # Given
    token = runner.token(tenant="acme", role="admin", sub="alice")
    # When
    reply = http(runner, "GET", "/_probe/secure/42?x=1&x=2", token=token, Cookie="a=1; b=2")
    # Then the probe saw an API Gateway 2.0 event
    assert reply.status == 200
    event = reply.json()["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /_probe/secure/{id}"
    assert event["pathParameters"] == {"id": "42"}
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["a=1", "b=2"]
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["tenant_id"] == "acme"
    assert claims["role"] == "admin"
    assert claims["sub"] == "alice"
    assert isinstance(claims["exp"], str)
    assert int(claims["exp"]) > time.time()


def test_greedy_route_and_binary_body(runner: Runner) -> None:
    # When
    request_headers = {"Content-Type": "application/octet-stream"}
    import urllib.request

    request = urllib.request.Request(
        runner.url + "/_probe/echo/a/b/c", data=b"\x00\x01", method="POST", headers=request_headers
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        event = __import__("json").loads(response.read())["event"]
    # Then
    assert event["routeKey"] == "ANY /_probe/echo/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c"}
    assert event["isBase64Encoded"] is True
    assert event["body"] == "AAE="
    assert "authorizer" not in event["requestContext"]


def test_handler_error_and_timeout_are_500_and_the_next_call_cold_starts(runner: Runner) -> None:
    # When the handler raises, then API Gateway's 500
    boom = http(runner, "GET", "/_probe/slow/boom")
    assert boom.status == 500
    assert boom.json() == {"message": "Internal Server Error"}
    # When the handler outlives its 1 s Timeout, then 500 too (Lambda reports a timeout error)
    slow = http(runner, "GET", "/_probe/slow/5")
    assert slow.status == 500
    # Then the function still answers afterwards (a fresh sandbox)
    fast = http(runner, "GET", "/_probe/slow/0")
    assert fast.status == 200
    assert fast.json()["function_name"] == runner.physical_name("ProbeSlowFunction")


def _put_json(
    runner: Runner, path: str, token: str, body: dict[str, object]
) -> tuple[int, dict[str, object]]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        runner.url + path,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_request_reaches_the_handler_and_dynamodb_and_roles_and_tenants_hold(runner: Runner) -> None:
    # Given an admin of tenant A and a viewer of tenant A
    admin, viewer = (
        runner.token(tenant="tenant-a", role="admin"),
        runner.token(tenant="tenant-a", role="viewer"),
    )
    # When the admin switches campaigns on through the runner
    status, body = _put_json(runner, "/features", admin, {"campaigns": True})
    # Then the api function stored it in the template's settings table
    assert status == 200, body
    table = runner.physical_name("SettingsTable")
    item = runner.boto3_client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": "TENANT#tenant-a"}, "sk": {"S": "FEATURES"}}
    )["Item"]
    assert item["flags"]["M"]["campaigns"] == {"BOOL": True}
    # And a viewer may not change flags
    assert _put_json(runner, "/features", viewer, {"crm": False})[0] == 403
    # And tenant B still sees the defaults
    other = runner.token(tenant="tenant-b", role="owner")
    reply = http(runner, "GET", "/features", other)
    assert reply.json()["flags"]["campaigns"] is False
