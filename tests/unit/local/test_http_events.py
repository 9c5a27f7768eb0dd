from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from local.http import build_event, match_route, response_from_result
from local.template import Route

ROUTES = [
    Route("GET", "/items/{id}", "Fn", "Jwt"),
    Route("GET", "/items/special", "Fn", "Jwt"),
    Route("ANY", "/files/{proxy+}", "Fn", None),
    Route("POST", "/items/{id}", "Other", "Jwt"),
]


def test_route_matching_prefers_literals_and_specific_methods() -> None:
    assert match_route(ROUTES, "GET", "/items/special").route.path == "/items/special"  # type: ignore[union-attr]
    found = match_route(ROUTES, "GET", "/items/a%20b")
    assert found is not None
    assert found.route.route_key == "GET /items/{id}"
    assert found.path_parameters == {"id": "a b"}
    posted = match_route(ROUTES, "POST", "/items/1")
    assert posted is not None
    assert posted.route.function == "Other"
    greedy = match_route(ROUTES, "DELETE", "/files/a/b.txt")
    assert greedy is not None
    assert greedy.path_parameters == {"proxy": "a/b.txt"}
    assert match_route(ROUTES, "GET", "/nothing") is None
    assert match_route(ROUTES, "DELETE", "/items/1") is None


def test_event_is_payload_format_2() -> None:
    # Given
    found = match_route(ROUTES, "GET", "/items/7")
    assert found is not None
    headers = [("Host", "127.0.0.1:3000"), ("X-Multi", "a"), ("x-multi", "b"), ("Cookie", "s=1; t=2")]
    # When
    event = build_event(
        method="GET",
        raw_path="/items/7",
        raw_query="q=1&q=2&e=",
        headers=headers,
        body=None,
        match=found,
        claims={"sub": "alice", "exp": 123, "groups": ["a", "b"], "scope": "read write"},
        source_ip="127.0.0.1",
        now=datetime(2030, 1, 1, tzinfo=UTC),
    )
    # Then
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /items/{id}"
    assert event["rawQueryString"] == "q=1&q=2&e="
    assert event["queryStringParameters"] == {"q": "1,2", "e": ""}
    assert event["headers"]["x-multi"] == "a,b"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["pathParameters"] == {"id": "7"}
    jwt = event["requestContext"]["authorizer"]["jwt"]
    assert jwt["claims"] == {"sub": "alice", "exp": "123", "groups": "[a b]", "scope": "read write"}
    assert jwt["scopes"] == ["read", "write"]
    context = event["requestContext"]
    assert context["stage"] == "$default"
    assert context["http"]["method"] == "GET"
    assert context["time"] == "01/Jan/2030:00:00:00 +0000"
    assert context["timeEpoch"] == 1893456000000
    assert "body" not in event
    assert event["isBase64Encoded"] is False


def test_body_is_base64_unless_textual() -> None:
    found = match_route(ROUTES, "POST", "/files/x")
    assert found is not None
    common: dict[str, Any] = {
        "method": "POST",
        "raw_path": "/files/x",
        "raw_query": "",
        "match": found,
        "claims": None,
    }
    text = build_event(
        headers=[("content-type", "application/json")], body=b'{"a":1}', source_ip="1.2.3.4", **common
    )
    binary = build_event(
        headers=[("content-type", "image/png")], body=b"\x89PNG", source_ip="1.2.3.4", **common
    )
    assert (text["body"], text["isBase64Encoded"]) == ('{"a":1}', False)
    assert (binary["body"], binary["isBase64Encoded"]) == (base64.b64encode(b"\x89PNG").decode(), True)
    assert "authorizer" not in text["requestContext"]


def test_responses() -> None:
    structured = response_from_result(
        {
            "statusCode": 201,
            "headers": {"x-a": "1"},
            "cookies": ["c=1"],
            "body": "aGk=",
            "isBase64Encoded": True,
        }
    )
    assert structured.status == 201
    assert structured.body == b"hi"
    assert ("set-cookie", "c=1") in structured.headers
    inferred = response_from_result({"hello": "world"})
    assert inferred.status == 200
    assert inferred.body == b'{"hello": "world"}'
    assert ("content-type", "application/json") in inferred.headers
