"""Every operation of /openapi.json, called as every role, answers as its declared role says.

The operations and their roles come from the document the API serves (`x-mailbridge-role`), so a
route added later is covered without editing this file. Each is called through the api function
(moto behind it) with each role's token, its path parameters filled with well-formed ids and an
invalid body: a role below the declaration gets 403 `role_required` before the body is looked at;
a role at or above it never does. Routes other functions serve (OAuth, webhooks) are in the
document too: the api function includes their routers when it builds the document, so their
guards answer here the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from mailbridge.api.context import ROLE_EXTENSION
from mailbridge.tenancy import Role
from tests.events import load_event
from tests.fixtures.aws import Stack, module_api, module_stack
from tests.integration.test_api_boundary import Invoke, request

TENANT = "acme"
ROLES = (Role.VIEWER, Role.MEMBER, Role.ADMIN, Role.OWNER)
INVALID_BODY = json.dumps({"__not_a_field__": [1, "x"], "name": 42})

# Well-formed values for the path parameters the document names (the ids of records that do not
# exist: an allowed caller gets a 404 or a 4xx from validation, never the role's 403).
PATH_VALUES = {
    "account_id": "acc_0123456789abcdef0123",
    "address": "ada@example.com",
    "provider": "gmail",
    "token": "t0k3n-0123456789abcdef",
    "version": "1",
    "job_id": "cb_0123456789abcdef01234567",
}


def _path_value(name: str) -> str:
    if name in PATH_VALUES:
        return PATH_VALUES[name]
    # email_id -> em_..., contact_id -> ct_..., any other id: its first two letters + 26 hex
    return f"{name[:2]}_{'0' * 14}0123456789ab"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    yield from module_stack()


@pytest.fixture(scope="module")
def invoke_api(stack: Stack) -> Invoke:
    invoke = module_api()
    # Every feature on, so the feature switch (404 before the role) lets each route's role answer.
    flags = {"campaigns": True, "automations": True, "ai": True, "crm": True}
    event = load_event("api/put-features.json", tenant=TENANT, role="admin", body=flags)
    assert invoke(event)["statusCode"] == 200
    return invoke


@pytest.fixture(scope="module")
def operations(invoke_api: Invoke) -> list[tuple[str, str, str]]:
    """(method, path with <params>, declared role) for every operation in /openapi.json."""
    response = invoke_api(load_event("api/get-openapi.json"))
    assert response["statusCode"] == 200
    document = json.loads(response["body"])
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found.append((method.upper(), re.sub(r"{(\w+)}", r"<\1>", path), operation.get(ROLE_EXTENSION)))
    return found


def _call(invoke_api: Invoke, method: str, path: str, role: Role) -> dict[str, Any]:
    event = request(
        method, path, role=role.value, raw_body=None if method in {"GET", "HEAD"} else INVALID_BODY
    )
    params = {name: _path_value(name) for name in re.findall(r"<(\w+)>", path)}
    concrete = re.sub(r"<(\w+)>", lambda m: params[m.group(1)], path)
    event["rawPath"] = event["requestContext"]["http"]["path"] = concrete
    event["pathParameters"] = params
    event["headers"].setdefault("content-type", "application/json")
    return invoke_api(event)


def _role_required(response: dict[str, Any]) -> bool:
    if response["statusCode"] != 403:
        return False
    answer = json.loads(response["body"]) if response.get("body") else {}
    return isinstance(answer, dict) and answer.get("error", {}).get("code") == "role_required"


def test_every_operation_answers_every_role_as_its_declaration_says(
    invoke_api: Invoke, operations: list[tuple[str, str, str]]
) -> None:
    # Given every operation of the document, each with its declared role (or public)
    assert len(operations) > 100
    undeclared = [(m, p) for m, p, role in operations if role is None]
    assert undeclared == []
    wrong: dict[tuple[str, str, str], int] = {}
    called: set[tuple[str, str]] = set()
    for method, path, declared in operations:
        minimum = None if declared == "public" else Role(declared)
        for role in ROLES:
            # When a caller with that role sends an invalid body (with well-formed path ids)
            response = _call(invoke_api, method, path, role)
            called.add((method, path))
            below = minimum is not None and not role.at_least(minimum)
            # Then a role below the declaration learns only that it lacks the role, and a role
            # at or above it (or anyone on a public route) is never refused for its role
            if below != _role_required(response):
                wrong[method, path, role.value] = response["statusCode"]
    assert wrong == {}
    # And every operation of the document was called
    assert len(called) == len(operations)
