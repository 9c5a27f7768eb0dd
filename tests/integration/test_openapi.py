"""/openapi.json documents every route's success and errors, and is usable: a typed client
generated from it (datamodel-code-generator) reads what the API really answers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local.template import load_template
from mailbridge.api import deps
from tests.events import load_event

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
# The two routes that serve the document itself are not in it.
DOC_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs")}
API_ROUTES = sorted(
    (r.method, r.path)
    for r in TEMPLATE.routes()
    if r.function == "ApiFunction" and (r.method, r.path) not in DOC_ROUTES
)


@pytest.fixture(autouse=True)
def _fresh_crm_store() -> Iterator[None]:
    deps.crm_store.cache_clear()
    yield
    deps.crm_store.cache_clear()


@pytest.fixture
def document(invoke_api: Invoke) -> dict[str, Any]:
    response = invoke_api(load_event("api/get-openapi.json"))
    assert response["statusCode"] == 200
    return json.loads(response["body"])  # type: ignore[no-any-return]


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return document["paths"][path][method.lower()]  # type: ignore[no-any-return]


def test_every_template_route_documents_a_success_response_with_a_schema(document: dict[str, Any]) -> None:
    assert len(API_ROUTES) > 30
    missing = []
    for method, path in API_ROUTES:
        responses = operation(document, method, path)["responses"]
        success = {status: r for status, r in responses.items() if status.startswith(("2", "3"))}
        # JSON, or the one other media type a route answers with (text/calendar for .ics files,
        # image/gif for the tracking pixel); a redirect (tracked links) documents its Location
        schemas = [
            r.get("headers", {}).get("Location", {}).get("schema")
            if status.startswith("3")
            else next(iter(r.get("content", {}).values()), {"schema": None})["schema"]
            for status, r in success.items()
        ]
        if len(success) != 1 or not all(schemas):
            missing.append((method, path, sorted(responses)))
    assert missing == []


def test_every_error_response_has_our_shape_and_lists_its_codes(document: dict[str, Any]) -> None:
    wrong: list[tuple[Any, ...]] = []
    for method, path in API_ROUTES:
        for status, response in operation(document, method, path)["responses"].items():
            if status.startswith(("2", "3")):
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]
            gateway = status in {"401", "413"}  # answered by API Gateway: {"message": ...}
            expected = "#/components/schemas/" + ("GatewayMessage" if gateway else "ErrorResponse")
            codes = response.get("x-error-codes")
            if ref != expected or codes is None or (not gateway and not codes):
                wrong.append((method, path, status, ref, codes))
            elif any(f"`{code}`" not in response["description"] for code in codes):
                wrong.append((method, path, status, "codes missing from the description"))
    assert wrong == []


def test_error_codes_follow_from_the_route(document: dict[str, Any]) -> None:
    create = operation(document, "POST", "/crm/contacts")["responses"]
    # its own codes, its guards' codes, and what a body and a token can be refused for
    assert create["400"]["x-error-codes"] == ["unknown_company", "invalid_json", "json_too_deep"]
    assert create["403"]["x-error-codes"] == ["no_tenant", "no_role", "no_subject", "role_required"]
    assert create["404"]["x-error-codes"] == ["feature_disabled"]
    assert set(create["409"]["x-error-codes"]) >= {"email_in_use"}
    assert create["415"]["x-error-codes"] == ["unsupported_media_type"]
    assert create["422"]["x-error-codes"] == ["validation_error"]
    assert create["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Contact"}
    listing = operation(document, "GET", "/emails")["responses"]
    assert "invalid_cursor" in listing["400"]["x-error-codes"]
    assert "413" not in listing  # no body
    health = operation(document, "GET", "/health")["responses"]
    assert sorted(health) == ["200", "422", "500"]  # no token, no body


def _generate_client(
    document: dict[str, Any], directory: Path, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    source, target = directory / "openapi.json", directory / "mailbridge_client.py"
    source.write_text(json.dumps(document))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "datamodel_code_generator",
            "--input",
            str(source),
            "--input-file-type",
            "openapi",
            "--output",
            str(target),
            "--output-model-type",
            "pydantic_v2.BaseModel",
            "--target-python-version",
            "3.11",
            "--disable-timestamp",
        ],
        check=True,
        capture_output=True,
    )
    spec = importlib.util.spec_from_file_location("mailbridge_client", target)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "mailbridge_client", module)  # its annotations resolve by module name
    spec.loader.exec_module(module)
    return module


def test_a_typed_client_generated_from_the_document_reads_real_answers(
    invoke_api: Invoke, document: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given models generated from the document
    client = _generate_client(document, tmp_path, monkeypatch)
    # When the API answers a create, a listing, an error, and a request body is built with them
    contact = {"name": "Ada", "emails": [{"address": "ada@example.com"}], "custom": {"score": 4.5}}
    request = client.ContactCreate.model_validate(contact)
    created = invoke_api(
        load_event(
            "api/crm-create-contact.json", tenant="acme", body=request.model_dump_json(exclude_none=True)
        )
    )
    listed = invoke_api(load_event("api/crm-list-contacts.json", tenant="acme", query={"limit": "5"}))
    refused = invoke_api(load_event("api/crm-create-contact.json", tenant="acme", body={"name": ""}))
    # Then each answer parses into the generated type of its status
    assert created["statusCode"] == 201
    parsed = client.Contact.model_validate_json(created["body"])
    assert parsed.emails[0].address == "ada@example.com"
    assert listed["statusCode"] == 200
    page = client.PageContact.model_validate_json(listed["body"])
    assert [c.contact_id for c in page.items] == [parsed.contact_id]
    assert refused["statusCode"] == 422
    error = client.ErrorResponse.model_validate_json(refused["body"])
    assert error.error.code == "validation_error"


def test_the_document_is_built_once_per_container(
    invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a container that counts how often the resolver builds its OpenAPI document
    from mailbridge.api.app import MailbridgeResolver

    builds: list[int] = []
    build = MailbridgeResolver.get_openapi_json_schema

    def counting(self: Any, *args: Any, **kwargs: Any) -> str:
        builds.append(1)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(MailbridgeResolver, "get_openapi_json_schema", counting)
    # When the document and the docs page are asked for three times in all
    first = invoke_api(load_event("api/get-openapi.json"))
    again = invoke_api(load_event("api/get-openapi.json"))
    page = invoke_api({**load_event("api/get-openapi.json"), "rawPath": "/docs", "routeKey": "GET /docs"})
    # Then each answer is the same document, built at most once (the container may have built it
    # for an earlier test already)
    assert first["statusCode"] == again["statusCode"] == page["statusCode"] == 200
    assert first["body"] == again["body"]
    assert len(builds) <= 1
