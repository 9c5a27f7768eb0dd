"""Numbers through the API: what DynamoDB cannot store is a 4xx with a type, never a 5xx or a
409 whose retry could never help; what it can store comes back as sent."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mailbridge.api import deps
from mailbridge.errors import Conflict
from mailbridge.store.base import Write
from mailbridge.store.crm import CrmStore
from tests.events import load_event
from tests.fixtures.aws import Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@pytest.fixture(autouse=True)
def _fresh_crm_store() -> Iterator[None]:
    deps.crm_store.cache_clear()
    yield
    deps.crm_store.cache_clear()


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def create_contact(invoke_api: Invoke, raw_custom: str) -> dict[str, Any]:
    raw = '{"name": "Ada", "emails": [{"address": "ada@example.com"}], "custom": {"n": ' + raw_custom + "}}"
    return invoke_api(load_event("api/crm-create-contact.json", tenant="acme", body=raw))


@pytest.mark.parametrize(
    ("raw", "status", "code", "error_type"),
    [
        ("1e308", 422, "validation_error", "number_out_of_range"),
        ("1" * 42, 422, "validation_error", "number_out_of_range"),
        ("-1e-200", 422, "validation_error", "number_out_of_range"),
        ("1e400", 422, "validation_error", "number_not_finite"),  # Python's json reads it as inf
        ("NaN", 400, "invalid_json", None),
        ("Infinity", 400, "invalid_json", None),
        ("-Infinity", 400, "invalid_json", None),  # was a 409 "a concurrent change got there first"
    ],
)
def test_custom_numbers_dynamodb_cannot_store_are_refused(
    invoke_api: Invoke, stack: Stack, raw: str, status: int, code: str, error_type: str | None
) -> None:
    # When a member creates a contact with the number as a custom field value
    response = create_contact(invoke_api, raw)
    # Then the answer says what is wrong with which field, and nothing is stored
    assert response["statusCode"] == status, response
    error = body(response)["error"]
    assert error["code"] == code
    if error_type:
        assert [(d["loc"], d["type"]) for d in error["details"]] == [
            (["body", "custom", "n", "number"], error_type)
        ]
    assert stack.table("CrmTable").scan(Select="COUNT")["Count"] == 0


@pytest.mark.parametrize("raw", [str(10**38 - 1), "-9.9e125", "1e-130", "0.1", "0", "-42"])
def test_custom_numbers_at_dynamodbs_limits_are_stored_and_read_back(invoke_api: Invoke, raw: str) -> None:
    created = create_contact(invoke_api, raw)
    assert created["statusCode"] == 201, created
    assert body(created)["custom"]["n"] == json.loads(raw)
    read_event = load_event("api/crm-get-contact.json", tenant="acme")
    read_event["rawPath"] = read_event["requestContext"]["http"]["path"] = (
        f"/crm/contacts/{body(created)['contact_id']}"
    )
    read = invoke_api(read_event)
    assert read["statusCode"] == 200, read
    assert body(read)["custom"]["n"] == json.loads(raw)


@pytest.mark.parametrize(
    ("event", "raw"),
    [
        ("api/crm-patch-contact.json", '{"title": "CEO", "version": %s}'),
        ("api/crm-put-pipeline.json", '{"stages": ["lead", "won", "lost"], "version": %s}'),
        ("api/crm-put-settings.json", '{"auto_create": "sent", "version": %s}'),
        ("api/patch-account.json", '{"display_name": "Ada", "version": %s}'),
    ],
)
def test_a_version_beyond_38_digits_is_refused(invoke_api: Invoke, event: str, raw: str) -> None:
    # Given a version number DynamoDB cannot compare against (it used to reach the condition)
    response = invoke_api(load_event(event, tenant="acme", role="admin", body=raw % ("9" * 40)))
    # Then it is a 422 naming the field and the rule
    assert response["statusCode"] == 422, response
    assert [(d["loc"], d["type"]) for d in body(response)["error"]["details"]] == [
        (["body", "version"], "number_out_of_range")
    ]


def test_a_write_dynamodb_refuses_is_not_reported_as_a_conflict(stack: Stack) -> None:
    # Given a value that slipped past every model (DynamoDB refuses -Infinity: the transaction is
    # cancelled with the reason ValidationException, not a failed condition)
    store = CrmStore(stack.deployed.tables["CrmTable"])
    item = {"pk": "TENANT#acme", "sk": "CONTACT#x", "score": Decimal("-Infinity")}
    write = Write(
        {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}, lambda: Conflict("x")
    )
    # When it is written in a transaction
    with pytest.raises(ClientError) as raised:
        store.transact([write])
    # Then the store's own error comes out (a 500 at the API), never Conflict, which would tell
    # the client to retry what can never succeed
    assert not isinstance(raised.value, Conflict)
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_a_failed_condition_in_a_transaction_is_still_a_conflict(stack: Stack) -> None:
    store = CrmStore(stack.deployed.tables["CrmTable"])
    item = {"pk": "TENANT#acme", "sk": "CONTACT#x"}
    put = {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}
    store.transact([Write(put, lambda: Conflict("x", code="exists"))])
    with pytest.raises(Conflict) as raised:
        store.transact([Write(put, lambda: Conflict("exists", code="exists"))])
    assert raised.value.code == "exists"
