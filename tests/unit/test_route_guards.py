"""Route guards (mailbridge.api.context): the role check a route declares in its `middlewares=`,
run before the request is validated by our resolver, and in place by a plain Powertools one.

Routes here are the tests' own (one body model, one guarded POST), on a fresh resolver each time,
so what is checked is the guard, not a product route."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from pydantic import BaseModel

from mailbridge.api.app import MailbridgeResolver, _configure_openapi, _document_routes, create_app
from mailbridge.api.context import (
    PUBLIC_REASON_EXTENSION,
    ROLE_EXTENSION,
    PublicRoute,
    RouteGuard,
    current_tenant,
    declared_access,
    public,
    require_role,
)
from mailbridge.api.routes import ROUTER_MODULES
from mailbridge.api.schemas import complete_responses
from mailbridge.config import Settings, TableNames
from mailbridge.errors import Forbidden
from mailbridge.tenancy import Role
from tests.events import load_event

ROUTE_KEY = "POST /guard-test"  # no product route: the resolver serves the test's own route


@pytest.fixture(autouse=True)
def _no_rate_count(monkeypatch: pytest.MonkeyPatch) -> None:
    # The resolver also counts each request against its tenant's rate limit, in DynamoDB; unit
    # tests have none (tests/integration/test_api_rate_limits.py covers the count).
    from mailbridge.api import app

    monkeypatch.setattr(app, "count_request", lambda _app: None)


class Note(BaseModel):
    text: str


def event(role: str, body: Any, *, tenant: str = "acme") -> dict[str, Any]:
    """An API Gateway v2 event for POST /guard-test from a caller with `role`."""
    evt = load_event("api/get-me.json", tenant=tenant, role=role, body=body)
    evt["routeKey"] = evt["requestContext"]["routeKey"] = ROUTE_KEY
    evt["requestContext"]["http"]["method"] = "POST"
    evt["rawPath"] = evt["requestContext"]["http"]["path"] = "/guard-test"
    evt["headers"]["content-type"] = "application/json"
    return evt


def guarded_app(app: APIGatewayHttpResolver, *guards: Any) -> APIGatewayHttpResolver:
    @app.post("/guard-test", middlewares=list(guards))
    def create_note(note: Note) -> dict[str, str]:
        return {"text": note.text, "tenant": current_tenant(app).tenant_id}

    return app


def mailbridge_app(*guards: Any) -> MailbridgeResolver:
    """The API function's resolver (error answers included), with only the test's route."""
    app = create_app(Settings.model_construct(docs_enabled=False, tables=TableNames.model_construct()))
    app._loaded.update(ROUTER_MODULES)  # the test's route key is in no router module: load none
    guarded_app(app, *guards)
    return app


def answer(app: APIGatewayHttpResolver, evt: dict[str, Any]) -> tuple[int, Any]:
    response = app.resolve(evt, None)  # type: ignore[arg-type]
    return response["statusCode"], json.loads(response["body"])


# ------------------------------------------------------------------------------ the role check


@pytest.mark.parametrize(("role", "allowed"), [("viewer", False), ("member", True), ("owner", True)])
def test_a_route_answers_only_callers_with_at_least_its_role(role: str, allowed: bool) -> None:
    # Given a route that needs the member role
    app = mailbridge_app(require_role(Role.MEMBER))
    # When a caller with `role` sends a valid body
    status, _ = answer(app, event(role, {"text": "hi"}))
    # Then members and above are served, a viewer is not
    assert status == (200 if allowed else 403)


def test_a_caller_below_the_role_gets_403_role_required_before_its_body_is_validated() -> None:
    # Given a route that needs the admin role
    app = mailbridge_app(require_role(Role.ADMIN))
    # When a member sends a body the route would refuse
    status, body = answer(app, event("member", {"text": 42, "extra": True}))
    # Then it learns only that it lacks the role
    assert status == 403
    assert body["error"]["code"] == "role_required"
    assert body["error"]["message"] == "this action needs the admin role or higher"
    # And the same body from an admin is refused by validation
    status, _ = answer(app, event("admin", {"text": 42}))
    assert status == 422


def test_the_guard_reads_the_tenant_from_the_verified_token() -> None:
    # Given a guarded route
    app = mailbridge_app(require_role(Role.MEMBER))
    # When a caller's token carries no usable tenant, Then the guard refuses it as such
    evt = event("member", {"text": "hi"})
    del evt["requestContext"]["authorizer"]["jwt"]["claims"]["custom:tenant_id"]
    status, body = answer(app, evt)
    assert (status, body["error"]["code"]) == (403, "no_tenant")
    # And a caller whose token names a tenant is served as that tenant
    status, body = answer(app, event("member", {"text": "hi"}, tenant="globex"))
    assert (status, body["tenant"]) == (200, "globex")


def test_each_guard_runs_once_per_request_in_declaration_order() -> None:
    # Given a route with a recording guard before its role guard
    seen: list[str] = []
    recording = RouteGuard("require_recording", lambda app: seen.append("recording"))
    app = mailbridge_app(recording, require_role(Role.MEMBER))
    # When a member is served, and a viewer is refused
    assert answer(app, event("member", {"text": "hi"}))[0] == 200
    assert answer(app, event("viewer", {"text": "hi"}))[0] == 403
    # Then the recording guard ran once for each request (the resolver's check, not again in place)
    assert seen == ["recording", "recording"]


def test_on_a_plain_powertools_resolver_the_guard_runs_in_place() -> None:
    # Given our role guard on a resolver that does not check guards first
    app = guarded_app(APIGatewayHttpResolver(enable_validation=True), require_role(Role.ADMIN))
    # When a member calls, Then the guard refuses it
    with pytest.raises(Forbidden) as caught:
        app.resolve(event("member", {"text": "hi"}), None)  # type: ignore[arg-type]
    assert caught.value.code == "role_required"
    # And an admin is served
    assert answer(app, event("admin", {"text": "hi"}))[0] == 200


# ------------------------------------------------------------------------------ the API document


def test_the_document_lists_role_required_under_403_for_a_guarded_route() -> None:
    # Given a route guarded by a role, and one without a guard
    app = mailbridge_app(require_role(Role.ADMIN))

    @app.get("/guard-test-open")
    def open_route() -> dict[str, str]:
        return {}

    routes = {r.path: r for r in app._static_routes + app._dynamic_routes}  # Powertools' routes
    # When their responses are documented
    guarded = complete_responses(routes["/guard-test"])
    unguarded = complete_responses(routes["/guard-test-open"])
    # Then the guarded route names role_required under 403, the open one does not
    assert "role_required" in guarded[403]["x-error-codes"]
    assert "role_required" not in unguarded.get(403, {}).get("x-error-codes", [])


def test_a_viewer_route_does_not_document_role_required() -> None:
    # Given a route every role may call (viewer is the lowest role)
    app = mailbridge_app(require_role(Role.VIEWER))
    routes = {r.path: r for r in app._static_routes + app._dynamic_routes}  # Powertools' routes
    # When its responses are documented
    documented = complete_responses(routes["/guard-test"])
    # Then no 403 role_required is listed: no caller can get it
    assert "role_required" not in documented.get(403, {}).get("x-error-codes", [])


def test_a_role_guard_is_shown_by_its_name_and_says_its_role() -> None:
    # The name Powertools' debug listing and tracebacks show for the route's middlewares
    assert repr(require_role(Role.ADMIN)) == "<guard require_admin>"
    assert require_role(Role.VIEWER).__name__ == "require_viewer"
    # And the role it needs, by which the boundary tests find every guarded route and its callers
    assert require_role(Role.OWNER).minimum is Role.OWNER


# ------------------------------------------------------------------------------ every route declares


def _every_route() -> list[Any]:
    """Every route of the HTTP API: the api function's routers and those other functions serve."""
    app = create_app(
        Settings.model_construct(docs_enabled=False, tables=TableNames.model_construct()), load_all=True
    )
    app.load_documented_elsewhere()
    return [r for r in app._static_routes + app._dynamic_routes if r.include_in_schema]


def test_every_route_declares_its_minimum_role_or_that_it_is_public() -> None:
    # Given every route of the HTTP API
    routes = _every_route()
    assert len(routes) > 100
    # When each is asked for its access declaration
    undeclared = sorted(f"{r.method} {r.path}" for r in routes if declared_access(r.middlewares) is None)
    # Then none lacks one
    assert undeclared == []
    # And exactly the routes without a bearer token are public, each with its reason
    public_routes = {r.path: declared_access(r.middlewares) for r in routes if not r.security}
    assert all(isinstance(d, PublicRoute) and d.reason for d in public_routes.values())
    assert {r.path for r in routes if isinstance(declared_access(r.middlewares), PublicRoute)} == set(
        public_routes
    )


def test_a_route_that_declares_its_access_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="declares its access 2 times"):
        declared_access([require_role(Role.MEMBER), public("twice")])


AUTOMATION_CHANGES = [
    ("POST", ""),
    ("PUT", "/{rule_id}"),
    ("DELETE", "/{rule_id}"),
    ("POST", "/{rule_id}/enable"),
    ("POST", "/{rule_id}/disable"),
]


def test_the_document_shows_each_operations_role() -> None:
    # Given the API document of every route
    app = create_app(
        Settings.model_construct(docs_enabled=False, tables=TableNames.model_construct()), load_all=True
    )
    app.load_documented_elsewhere()
    _document_routes(app)
    _configure_openapi(app)
    document = json.loads(app.get_openapi_json_schema())
    operations = {
        f"{method.upper()} {path}": op
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    # Then each operation names its role, and a public one its reason
    roles = {key: op.get(ROLE_EXTENSION) for key, op in operations.items()}
    assert {
        key for key, role in roles.items() if role not in {"owner", "admin", "member", "viewer", "public"}
    } == set()
    # (owners and admins change configuration and automations; members work with mail and CRM
    # records; viewers read)
    assert roles["PUT /features"] == "admin"
    assert roles["PUT /settings/rate-limits"] == "admin"
    assert {roles[f"{m} /automations{p}"] for m, p in AUTOMATION_CHANGES} == {"admin"}
    assert roles["POST /crm/contacts"] == "member"
    assert roles["GET /emails"] == "viewer"
    assert roles["POST /webhooks/gmail"] == "public"
    assert operations["POST /webhooks/gmail"][PUBLIC_REASON_EXTENSION]
