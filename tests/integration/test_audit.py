"""The audit log (issue 19 point 4) through the api function and moto: what is written for a
request, what is not, what `GET /audit` answers, and what the stream consumer archives."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from mailbridge.audit import wiring as audit_wiring
from mailbridge.audit.service import AuditDeps
from mailbridge.store.base import tenant_pk
from tests.events import load_event
from tests.fixtures.aws import Stack

TENANT = "acme"
ADMIN_SUB = "54c84948-7061-70a8-a0b5-0d7e1c5a6f21"


def _event(name: str, **kwargs: Any) -> dict[str, Any]:
    """A sample event with its own request id (API Gateway's are unique; the samples share one)."""
    event = load_event(name, tenant=kwargs.pop("tenant", TENANT), **kwargs)
    event["requestContext"]["requestId"] = f"req-{uuid.uuid4().hex[:16]}"
    return event


def _entries(stack: Stack, tenant: str = TENANT) -> list[dict[str, Any]]:
    table = stack.table("AuditTable")
    response = table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": tenant_pk(tenant)}
    )
    return list(response["Items"])


@pytest.fixture
def crm_on(invoke_api: Any, stack: Stack) -> None:
    event = _event("api/put-features.json", role="admin", body={"crm": True})
    assert invoke_api(event)["statusCode"] == 200
    table = stack.table("AuditTable")
    for item in _entries(stack):  # start each test from an empty log (the test's own writes only)
        table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})


def _contact_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("api/crm-create-contact.json")["body"])
    body.pop("company_id")  # names no company here
    return body


def _create_contact(invoke_api: Any) -> tuple[dict[str, Any], str]:
    event = _event("api/crm-create-contact.json", role="member", sub="member-sub-1", body=_contact_body())
    response = invoke_api(event)
    assert response["statusCode"] == 201, response["body"]
    return event, str(json.loads(response["body"])["contact_id"])


# --------------------------------------------------------------------------------- writes


def test_a_write_is_audited_with_who_what_when_where_and_nothing_personal(
    invoke_api: Any, stack: Stack, crm_on: None
) -> None:
    # Given a contact created by a member
    created, contact_id = _create_contact(invoke_api)
    # When the member changes it
    patch = _event("api/crm-patch-contact.json", role="member", sub="member-sub-1")
    patch["pathParameters"] = {"contact_id": contact_id}
    patch["rawPath"] = patch["requestContext"]["http"]["path"] = f"/crm/contacts/{contact_id}"
    response = invoke_api(patch)
    # Then each write has one entry: who, what, which ids, when, from where, the outcome
    assert response["statusCode"] == 200, response["body"]
    entries = sorted(_entries(stack), key=lambda item: item["sk"])
    assert [e["action"] for e in entries] == [
        "create_contact_crm_contacts_post",
        "update_contact_crm_contacts__contact_id__patch",
    ]
    entry = entries[1]
    assert entry["actor"] == "member-sub-1"
    assert entry["role"] == "member"
    assert entry["kind"] == "write"
    assert entry["resource_ids"] == {"contact_id": contact_id}
    assert entry["status"] == 200
    assert entry["outcome"] == "success"
    assert "error_code" not in entry
    assert entry["request_id"] == patch["requestContext"]["requestId"]
    assert entry["network"] == "203.0.113.0/24"
    assert entry["user_agent_family"] == "safari"
    assert entry["sk"] == f"{entry['at']}#{entry['request_id']}"
    assert entry["at"].endswith("Z")
    assert len(entry["at"]) == len("2026-11-30T09:12:03.123Z")
    # And nothing of the bodies, the caller's address, user agent or token is stored
    stored = json.dumps(entries, default=str)
    personal = [
        "Ada",
        "Lovelace",
        "example.com",
        "+44 20",
        "CTO",
        "conference",
        "203.0.113.24",
        "Macintosh",
        "Bearer",
        "eyJ",
    ]
    body_values = [v for v in json.loads(patch["body"]).values() if isinstance(v, str)]
    assert created["body"]
    assert body_values
    for value in personal + body_values:
        assert value not in stored, value


def test_a_refused_write_records_its_outcome(invoke_api: Any, stack: Stack, crm_on: None) -> None:
    # Given a viewer, who may not create contacts
    event = _event("api/crm-create-contact.json", role="viewer", sub="viewer-sub")
    # When they try
    response = invoke_api(event)
    # Then the answer is the role's 403, and the attempt is in the log with that outcome
    assert response["statusCode"] == 403
    (entry,) = _entries(stack)
    assert entry["actor"] == "viewer-sub"
    assert entry["status"] == 403
    assert entry["outcome"] == "failure"
    assert entry["error_code"] == "role_required"


def test_a_failed_audit_write_does_not_fail_the_request(
    invoke_api: Any, stack: Stack, crm_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an audit table that refuses every write
    class Refusing:
        def append(self, item: dict[str, Any]) -> None:
            raise RuntimeError("throttled")

    monkeypatch.setattr(audit_wiring, "audit_deps", lambda: AuditDeps(store=Refusing()))  # type: ignore[arg-type]
    # When a member creates a contact
    response = invoke_api(_event("api/crm-create-contact.json", role="member", body=_contact_body()))
    # Then the contact is created all the same
    assert response["statusCode"] == 201
    assert _entries(stack) == []


# ---------------------------------------------------------------------------------- reads


def test_a_message_body_read_is_audited_and_a_list_read_is_not(
    invoke_api: Any, stack: Stack, crm_on: None
) -> None:
    # Given nothing in the log
    # When a viewer lists contacts and emails, then asks for an email's bodies and its raw message
    assert invoke_api(_event("api/crm-list-contacts.json", role="viewer"))["statusCode"] == 200
    assert invoke_api(_event("api/list-emails.json", role="viewer"))["statusCode"] == 200
    body_read = _event("api/get-email.json", role="viewer", sub="viewer-sub")
    assert invoke_api(body_read)["statusCode"] == 404
    raw_read = _event("api/get-email-raw.json", role="viewer", sub="viewer-sub")
    assert invoke_api(raw_read)["statusCode"] == 404
    # Then only the two body reads are in the log, as reads, with the email's id and the 404
    entries = sorted(_entries(stack), key=lambda item: item["sk"])
    assert [(e["action"], e["kind"]) for e in entries] == [
        ("get_email_emails__email_id__get", "read"),
        ("get_email_raw_emails__email_id__raw_get", "read"),
    ]
    assert entries[0]["resource_ids"] == {"email_id": body_read["pathParameters"]["email_id"]}
    assert entries[0]["error_code"] == "not_found"
    assert entries[0]["outcome"] == "failure"
