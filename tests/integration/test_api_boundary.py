"""The API boundary, through the api function in-process: what any client input gets back.

Bodies that are not JSON or nest too deeply, callers below a route's role sending invalid bodies,
the one error shape, and what an unexpected error leaves in the logs.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from mailbridge.api.app import create_app
from mailbridge.api.context import RoleGuard
from mailbridge.config import Settings, TableNames
from mailbridge.observability import logger
from mailbridge.tenancy import Role
from tests.events import load_event
from tests.fixtures.aws import Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

TENANT = "acme"
ROLES = (Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER)


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def request(method: str, path: str, *, role: str = "owner", raw_body: str | None = None) -> dict[str, Any]:
    """An API Gateway v2 event for `method path` (path parameters filled in), from events/api/get-me.json."""
    event = load_event("api/get-me.json", tenant=TENANT, role=role)
    params = {name: f"x{i}" for i, name in enumerate(re.findall(r"<(\w+)>", path))}
    concrete = re.sub(r"<(\w+)>", lambda m: params[m.group(1)], path)
    template = re.sub(r"<(\w+)>", r"{\1}", path)
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {template}"
    event["requestContext"]["http"]["method"] = method
    event["rawPath"] = event["requestContext"]["http"]["path"] = concrete
    event["pathParameters"] = params
    if raw_body is not None:
        event["body"] = raw_body
        event["headers"]["content-type"] = "application/json"
    return event


def _routes() -> list[Any]:
    # Only the route table is needed here: no environment, so no settings beyond the docs switch.
    app = create_app(
        Settings.model_construct(docs_enabled=False, tables=TableNames.model_construct()), load_all=True
    )
    return list(app._static_routes + app._dynamic_routes)


ROUTES = _routes()
BODY_ROUTES = sorted((r.method, r.path) for r in ROUTES if r.dependant.body_params)
GUARDED = sorted(
    (r.method, r.path, guard.minimum, bool(r.dependant.body_params))
    for r in ROUTES
    for guard in r.middlewares
    if isinstance(guard, RoleGuard)
)


@pytest.fixture
def campaigns_on(invoke_api: Invoke) -> None:
    # Campaign, automation and AI routes are 404 while their feature is off; switch them on so
    # their role guard is reached.
    body = {"campaigns": True, "automations": True, "ai": True}
    event = load_event("api/put-features.json", tenant=TENANT, role="admin", body=body)
    assert invoke_api(event)["statusCode"] == 200


# ------------------------------------------------------------------------------ body parsing


def test_every_route_with_a_body_is_covered() -> None:
    # The lists below are generated from the resolver; make sure they are not empty by accident.
    assert len(BODY_ROUTES) >= 10
    assert len(GUARDED) >= 20


def test_deeply_nested_json_is_400_on_every_body_route(invoke_api: Invoke, campaigns_on: None) -> None:
    # Given arrays and objects nested 1,000 and 100,000 levels (Python's json recurses per level)
    bodies = [
        opener * depth + "1" + closer * depth
        for depth in (1_000, 100_000)
        for opener, closer in (("[", "]"), ('{"a":', "}"))
    ]
    # When an owner sends each to every route that takes a body
    answers = {
        (method, path, raw[:5], len(raw)): invoke_api(request(method, path, raw_body=raw))
        for method, path in BODY_ROUTES
        for raw in bodies
    }
    # Then every answer is a 400 with the code, not a 500 from RecursionError
    wrong = {key: r["statusCode"] for key, r in answers.items() if r["statusCode"] != 400}
    assert wrong == {}
    assert {body(r)["error"]["code"] for r in answers.values()} == {"json_too_deep"}
    assert {json.dumps(body(r)["error"]["details"]) for r in answers.values()} == {'{"max_depth": 64}'}


def test_nesting_within_the_limit_reaches_validation(invoke_api: Invoke) -> None:
    # Given a body nested exactly 64 levels, with brackets inside strings that must not count
    raw = '{"name": "[[[[", "x":' + "[" * 62 + '"{{{{"' + "]" * 62 + "}"
    # When it is sent as a contact
    response = invoke_api(request("POST", "/crm/contacts", raw_body=raw))
    # Then it is parsed and judged by the model (422), not refused as too deep
    assert response["statusCode"] == 422, response
    assert body(response)["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "A", "custom": {"n": NaN}}',
        '{"name": "A", "custom": {"n": Infinity}}',
        '{"name": "A", "custom": {"n": -Infinity}}',
        '{"name": ' + "9" * 5_000 + "}",
        '{"name": "A",',
    ],
    ids=["NaN", "Infinity", "-Infinity", "5000-digit-int", "truncated"],
)
def test_what_is_not_standard_json_is_400_invalid_json(invoke_api: Invoke, raw: str) -> None:
    response = invoke_api(request("POST", "/crm/contacts", raw_body=raw))
    assert response["statusCode"] == 400, response
    assert body(response)["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "raw",
    [base64.b64encode(b'{"name": "\xff\xfe"}').decode(), "not base64!"],
    ids=["not-utf-8", "not-base64"],
)
def test_a_body_that_does_not_decode_is_400_invalid_json(invoke_api: Invoke, raw: str) -> None:
    # Given a body API Gateway passed base64-encoded, which is not UTF-8 text (or not base64)
    event = request("POST", "/crm/contacts", raw_body=raw)
    event["isBase64Encoded"] = True
    # Then it is refused as not JSON (RFC 8259: JSON text is UTF-8), not a 500
    response = invoke_api(event)
    assert response["statusCode"] == 400, response
    assert body(response)["error"]["code"] == "invalid_json"


def test_a_body_of_another_media_type_is_415(invoke_api: Invoke) -> None:
    event = request("POST", "/crm/contacts", raw_body="name=Ada")
    event["headers"]["content-type"] = "text/plain"
    response = invoke_api(event)
    assert response["statusCode"] == 415
    assert body(response)["error"]["code"] == "unsupported_media_type"


def test_recursion_that_still_gets_through_is_400_not_500(
    invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given something behind a route recurses without bound on what it was sent (the last line
    # behind the depth check)
    from mailbridge.crm import service

    def recurse(*args: Any, **kwargs: Any) -> Any:
        return recurse(*args, **kwargs)

    monkeypatch.setattr(service, "create_contact", recurse)
    raw = json.dumps({"name": "Ada", "emails": [{"address": "ada@example.com"}]})
    # When a member creates a contact
    response = invoke_api(request("POST", "/crm/contacts", role="member", raw_body=raw))
    # Then the answer is the same 400 a too-deep body gets
    assert response["statusCode"] == 400
    assert body(response)["error"]["code"] == "json_too_deep"


# ------------------------------------------------------------------------------ role before body


def test_a_caller_below_the_routes_role_gets_403_whatever_the_body(
    invoke_api: Invoke, campaigns_on: None
) -> None:
    invalid = json.dumps({"__not_a_field__": [1, "x"], "name": 42})
    wrong: dict[tuple[str, str, str], int] = {}
    # Given every route that declares a role, and every role below it
    for method, path, minimum, has_body in GUARDED:
        for role in [r for r in ROLES if not r.at_least(minimum)]:
            # When the caller sends an invalid body
            response = invoke_api(request(method, path, role=role.value, raw_body=invalid))
            # Then it learns only that it lacks the role
            if response["statusCode"] != 403 or body(response)["error"]["code"] != "role_required":
                wrong[method, path, role.value] = response["statusCode"]
        if has_body:
            # And the same body from the declared role is indeed refused by validation
            response = invoke_api(request(method, path, role=minimum.value, raw_body=invalid))
            if response["statusCode"] != 422:
                wrong[method, path, minimum.value] = response["statusCode"]
    assert wrong == {}


def test_a_switched_off_feature_answers_404_before_the_role_and_the_body(invoke_api: Invoke) -> None:
    # Given campaigns are off (the default): a viewer's invalid campaign gets the feature's 404
    response = invoke_api(request("POST", "/crm/campaigns", role="viewer", raw_body='{"x": 1}'))
    assert response["statusCode"] == 404
    assert body(response)["error"]["code"] == "feature_disabled"


# ------------------------------------------------------------------------------ one error shape


def test_powertools_own_not_found_has_our_shape(invoke_api: Invoke) -> None:
    # A route API Gateway would forward but no router serves (e.g. a stale route key)
    response = invoke_api(request("GET", "/no-such-route"))
    assert response["statusCode"] == 404
    assert body(response) == {"error": {"code": "not_found", "message": "Not found", "details": None}}


MARKER = "Zq7-secret-value-Zq7"


def _raise_validation_error(*_: Any, **__: Any) -> Any:
    from pydantic import BaseModel

    class Strict(BaseModel):
        count: int

    Strict.model_validate({"count": MARKER})  # raises ValidationError carrying input_value=MARKER
    raise AssertionError("unreachable")


def _raise_value_error(*_: Any, **__: Any) -> Any:
    raise ValueError(f"could not handle {MARKER}")


@pytest.mark.parametrize("failure", [_raise_validation_error, _raise_value_error], ids=["pydantic", "plain"])
def test_an_unexpected_error_is_500_and_no_log_line_carries_a_request_value(
    invoke_api: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    failure: Callable[..., Any],
) -> None:
    # Given the service behind POST /crm/contacts fails unexpectedly with a value from the request
    from mailbridge.crm import service

    monkeypatch.setattr(service, "create_contact", failure)
    raw = json.dumps({"name": MARKER, "emails": [{"address": "ada@example.com"}]})
    # When a member creates a contact
    response = invoke_api(request("POST", "/crm/contacts", role="member", raw_body=raw))
    # Then the answer is a bare 500 in our shape
    assert response["statusCode"] == 500
    assert body(response) == {"error": {"code": "internal", "message": "internal error", "details": None}}
    # And the error was logged, by type and place only: the value appears in no log line
    formatter = logger.registered_formatter
    lines = [formatter.format(record) for record in caplog.records]
    unhandled = [json.loads(line) for line in lines if '"unhandled error"' in line]
    assert len(unhandled) == 1
    assert unhandled[0]["error_type"] in {"ValidationError", "ValueError"}
    assert unhandled[0]["error_at"]  # where it happened is there
    assert [line for line in lines if MARKER in line] == []
    assert MARKER not in capsys.readouterr().out


# ------------------------------------------------------------------------------ identifiers


def _stored(stack: Stack) -> dict[str, int]:
    """Items per table and objects in the bucket: what a request may have written."""
    counts = {lid: stack.table(lid).scan(Select="COUNT")["Count"] for lid in stack.deployed.tables}
    s3 = boto3.client("s3")
    counts["bucket"] = s3.list_objects_v2(Bucket=stack.deployed.buckets["MailBucket"]).get("KeyCount", 0)
    return counts


@pytest.mark.parametrize("tenant", ["acme\n", "acme\r\n", "\nacme", "ac\nme"])
def test_a_tenant_claim_with_a_line_break_is_refused_and_writes_nothing(
    invoke_api: Invoke, stack: Stack, tenant: str
) -> None:
    # Given a verified token whose tenant_id carries a line break (`^...$` with re.match let
    # "acme\n" through, and the newline reached S3 keys)
    before = _stored(stack)
    contact = {"name": "Ada", "emails": [{"address": "ada@example.com"}]}
    upload = {"filename": "a.pdf", "content_type": "application/pdf", "size": 10}
    # When it creates a contact, asks for an upload and reads its identity
    answers = [
        invoke_api(load_event("api/crm-create-contact.json", tenant=tenant, body=contact)),
        invoke_api(load_event("api/create-upload.json", tenant=tenant, body=upload)),
        invoke_api(load_event("api/get-me.json", tenant=tenant)),
    ]
    # Then every answer is 403 no_tenant and nothing was stored anywhere
    assert [(r["statusCode"], body(r)["error"]["code"]) for r in answers] == [(403, "no_tenant")] * 3
    assert _stored(stack) == before


def test_a_path_id_with_a_trailing_line_break_is_not_found(invoke_api: Invoke, stack: Stack) -> None:
    # Given a contact
    created = invoke_api(
        load_event(
            "api/crm-create-contact.json",
            tenant=TENANT,
            body={"name": "Ada", "emails": [{"address": "ada@example.com"}]},
        )
    )
    assert created["statusCode"] == 201
    contact_id = body(created)["contact_id"]
    before = _stored(stack)
    # When its path is asked for with a line break after the id (read, change, delete)
    answers = []
    for method, raw in (("GET", None), ("PATCH", '{"name": "Eve"}'), ("DELETE", None)):
        event = request(method, "/crm/contacts/<contact_id>", role="member", raw_body=raw)
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/crm/contacts/{contact_id}\n"
        event["pathParameters"] = {"contact_id": f"{contact_id}\n"}
        answers.append(invoke_api(event))
    # Then each is 404 and nothing changed
    assert [r["statusCode"] for r in answers] == [404, 404, 404]
    assert _stored(stack) == before
    read = invoke_api(request("GET", f"/crm/contacts/{contact_id}", role="member"))
    assert body(read)["name"] == "Ada"
