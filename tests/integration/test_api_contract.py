"""Contract tests: schemathesis generates requests from /openapi.json for every operation of the
HTTP API, valid ones and invalid ones, and checks each answer: never a 5xx, only statuses the
operation documents, a content type and a body its documented schema allows.

The requests go through the local runner's API Gateway emulation (JWT authorizer with a real
token of the local issuer, payload 2.0 events) into the api function, in this process, on the moto
stack built from template.yaml (tests/integration/api_contract.py). State is seeded so the main
resources' routes (account, email, contact) also answer past 404: generated path ids are swapped
for the seeded ones half of the time.

Examples per operation come from HYPOTHESIS_PROFILE (tests/fuzzing.py): a few in `make test`,
many in `make fuzz`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import Client

from local.auth import Issuer
from local.template import load_template
from tests.fixtures.aws import ROOT, Stack, module_stack, reset_caches
from tests.fuzzing import CONTRACT_EXAMPLES_PER_OPERATION, FUZZ
from tests.integration.api_contract import (
    ROLE,
    TENANT,
    Seeded,
    api_gateway,
    function_environment,
    seed,
    wsgi_app,
)

# The two routes that serve the document itself are not in it.
DOC_ROUTES = {("GET", "/openapi.json"), ("GET", "/docs")}
# DELETE operations run last: run earlier, they delete the seeded account and contact (as they
# should), and every later operation on those ids would only see 404.
OPERATIONS = sorted(
    (
        (r.method, r.path)
        for r in load_template([ROOT / "template.yaml"]).routes()
        if (r.method, r.path) not in DOC_ROUTES
    ),
    key=lambda op: (op[0] == "DELETE", op[1], op[0]),
)
CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance]
CHECKS.append(response_schema_conformance)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    yield from module_stack()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[dict[str, Any]]:
    """The WSGI app, the loaded schema, the owner's bearer token and the seeded ids."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in function_environment(stack).items():
            monkeypatch.setenv(name, value)
        reset_caches()
        yield from _api(stack)
        reset_caches()


def _api(stack: Stack) -> Iterator[dict[str, Any]]:
    issuer = Issuer.create("http://testserver")
    app = wsgi_app(api_gateway(stack, issuer))
    token = issuer.token(tenant=TENANT, role=ROLE)
    headers = {"Authorization": f"Bearer {token}"}
    client = Client(app)

    def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        response = client.open(path, method=method, json=body, headers=headers)
        return response.status_code, json.loads(response.get_data() or b"null")

    seeded = seed(stack, call)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, headers=headers)
    yield {"app": app, "schema": schema, "headers": headers, "seeded": seeded}


# Statuses answered per operation in this run: `.local/contract-statuses.json` (gitignored) at the
# end of the module, to see how far the generated requests got (past 404, to a success).
STATUSES: dict[str, Counter[int]] = {}


@pytest.fixture(scope="module", autouse=True)
def _record_statuses() -> Iterator[None]:
    yield
    out = ROOT / ".local" / "contract-statuses.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({op: dict(sorted(c.items())) for op, c in sorted(STATUSES.items())}, indent=1))


def with_seeded_ids(case: Any, seeded: Seeded, use: bool, headers: dict[str, str]) -> Any:
    """`case` with the seeded ids for its path parameters (when `use`), and always with the
    owner's valid token: invalid requests generated for the bearer scheme would otherwise stop
    at the JWT authorizer (401), before the function (the authorizer has tests of its own)."""
    if use and case.path_parameters:
        ids = seeded.ids()
        case.path_parameters = {k: ids.get(k, v) for k, v in case.path_parameters.items()}
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"} | headers
    return case


def test_every_template_route_is_an_operation_of_the_document(api: dict[str, Any]) -> None:
    documented = {
        (op.method.upper(), op.path) for result in api["schema"].get_all_operations() for op in [result.ok()]
    }
    assert set(OPERATIONS) == documented
    assert len(OPERATIONS) > 100


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_keeps_its_contract(api: dict[str, Any], method: str, path: str) -> None:
    operation = api["schema"][path][method]
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @given(case=st.one_of(strategies), seeded_ids=st.booleans())
    @settings(FUZZ, max_examples=CONTRACT_EXAMPLES_PER_OPERATION)
    def run(case: Any, seeded_ids: bool) -> None:
        case = with_seeded_ids(case, api["seeded"], seeded_ids, api["headers"])
        response = case.call(app=api["app"], headers=api["headers"])
        STATUSES.setdefault(f"{method} {path}", Counter())[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()
