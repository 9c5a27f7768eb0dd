"""Free text across the CRM API: names, titles, tags, labels, owners and custom strings refuse
control characters (422 `control_characters`) with the shared field types; a custom string may
hold line breaks (it is MultiLine), nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mailbridge.api import deps
from tests.events import load_event
from tests.fixtures.aws import Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

CONTACT = {"name": "Ada", "emails": [{"address": "ada@example.com"}]}


@pytest.fixture(autouse=True)
def _fresh_crm_store() -> Iterator[None]:
    deps.crm_store.cache_clear()
    yield
    deps.crm_store.cache_clear()


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def with_path(event: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    path = event["routeKey"].split(" ", 1)[1].replace("{" + name + "}", value)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {name: value}
    return event


# (sample event, body, the location of the refused field)
CASES: list[tuple[str, dict[str, Any], list[Any]]] = [
    ("crm-create-contact", {**CONTACT, "name": "Ada\r\nBcc: x"}, ["body", "name"]),
    ("crm-create-contact", {**CONTACT, "title": "CTO\x00"}, ["body", "title"]),
    ("crm-create-contact", {**CONTACT, "tags": ["vip", "a\u202eb"]}, ["body", "tags", 1]),
    ("crm-create-contact", {**CONTACT, "owner": "u\x001"}, ["body", "owner"]),
    (
        "crm-create-contact",
        {**CONTACT, "emails": [{"address": "ada@example.com", "label": "work\x1b[31m"}]},
        ["body", "emails", 0, "label"],
    ),
    (
        "crm-create-contact",
        {**CONTACT, "custom": {"note": "ok\nbut\x07"}},
        ["body", "custom", "note", "text"],
    ),
    ("crm-create-company", {"name": "Acme\u2028Corp"}, ["body", "name"]),
    ("crm-create-deal", {"name": "Deal\x7f"}, ["body", "name"]),
    ("crm-create-campaign", {"name": "Spr\x85ing"}, ["body", "name"]),
]


@pytest.mark.parametrize(
    ("event", "payload", "loc"), CASES, ids=[f"{e}:{'.'.join(map(str, loc[1:]))}" for e, _, loc in CASES]
)
def test_control_characters_in_free_text_are_refused(
    invoke_api: Invoke, stack: Stack, event: str, payload: dict[str, Any], loc: list[Any]
) -> None:
    # Given campaigns are on for the tenant (their routes are 404 otherwise)
    flags = load_event("api/put-features.json", tenant="acme", role="admin", body={"campaigns": True})
    assert invoke_api(flags)["statusCode"] == 200
    # When a member sends a record whose text carries a control character
    response = invoke_api(load_event(f"api/{event}.json", tenant="acme", role="member", body=payload))
    # Then it is refused with the field and the rule, and nothing is stored
    assert response["statusCode"] == 422, response
    assert [(d["loc"], d["type"]) for d in body(response)["error"]["details"]] == [
        (loc, "control_characters")
    ]
    assert stack.table("CrmTable").scan(Select="COUNT")["Count"] == 0


def test_a_patch_is_held_to_the_same_rule(invoke_api: Invoke) -> None:
    created = invoke_api(load_event("api/crm-create-contact.json", tenant="acme", body=CONTACT))
    contact_id = body(created)["contact_id"]
    patch = load_event("api/crm-patch-contact.json", tenant="acme", body={"name": "Eve\nMallory"})
    response = invoke_api(with_path(patch, "contact_id", contact_id))
    assert response["statusCode"] == 422
    assert body(response)["error"]["details"][0]["type"] == "control_characters"


def test_plain_text_is_stored_stripped_and_a_custom_note_keeps_its_line_breaks(invoke_api: Invoke) -> None:
    payload = {
        **CONTACT,
        "name": "  Ada Lovelace ",
        "tags": [" vip "],
        "custom": {"note": "line 1\nline 2\tend"},
    }
    created = invoke_api(load_event("api/crm-create-contact.json", tenant="acme", body=payload))
    assert created["statusCode"] == 201, created
    assert body(created)["name"] == "Ada Lovelace"
    assert body(created)["tags"] == ["vip"]
    assert body(created)["custom"] == {"note": "line 1\nline 2\tend"}
