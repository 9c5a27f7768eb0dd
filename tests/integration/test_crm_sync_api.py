"""The CRM sync routes through the api function, and the crmsync function on the CrmSyncQueue, on
moto with the Salesforce double: the mapping saved and refused with codes, roles before bodies,
hostile bodies a 422, `POST /crm/sync/contacts` answering 202 with the run its queued message
names, and the crmsync handler running it (and doing nothing on a redelivery)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from mailbridge.crm.integrations.service import provider_for
from mailbridge.crm.sync import wiring
from tests.events import load_event
from tests.integration.crm_integrations_harness import TENANT, CrmStack, crm_stack

__all__ = ["crm_stack"]

MAPPING = {
    "fields": [
        {"local": "first_name", "remote": "FirstName"},
        {"local": "last_name", "remote": "LastName"},
        {"local": "email", "remote": "Email"},
        {"local": "custom.region", "remote": "Region__c"},
    ],
    "conflict_policy": "crm_wins",
    "deletions": "both",
}


@pytest.fixture
def connected(crm_stack: CrmStack) -> Iterator[str]:
    crm_stack.salesforce.add_custom_field("Contact", "Region__c", "picklist", picklist=("EMEA", "APAC"))
    wiring.sync_deps.cache_clear()
    deps = wiring.sync_deps()
    deps.now = crm_stack.clock.now
    deps.provider = lambda d, t, i: provider_for(d, t, i, sleep=crm_stack.salesforce.advance)
    integration_id = crm_stack.connect("salesforce")
    yield integration_id
    wiring.sync_deps.cache_clear()


def put_mapping(crm: CrmStack, integration_id: str, body: Any, role: str = "admin") -> dict[str, Any]:
    return crm.api("crm-put-sync-mapping", integration_id, role=role, body=body)


def queued(crm: CrmStack) -> list[dict[str, Any]]:
    url = crm.stack.env("CrmSyncFunction")["CRM_SYNC_QUEUE_URL"]
    answer = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    messages: list[dict[str, Any]] = [dict(m) for m in answer.get("Messages", [])]
    return messages


def listed_contacts(crm: CrmStack) -> list[dict[str, Any]]:
    event = load_event("api/crm-list-contacts.json", tenant=TENANT, role="member")
    event["rawQueryString"], event["queryStringParameters"] = "", None
    items: list[dict[str, Any]] = crm.body(crm.invoke("api", event))["items"]
    return items


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    event = load_event("sqs/crm-sync.json")
    template = event["Records"][0]
    event["Records"] = [{**template, "messageId": m["MessageId"], "body": m["Body"]} for m in messages]
    return event


def test_mapping_is_saved_by_an_admin_and_read_by_a_member(crm_stack: CrmStack, connected: str) -> None:
    # Given the defaults before anyone saved a mapping
    before = crm_stack.body(crm_stack.api("crm-get-sync-mapping", connected, role="member"))
    assert before["default"] is True
    assert {"local": "email", "remote": "Email"} in before["fields"]
    # When an admin saves one with a custom field
    saved = put_mapping(crm_stack, connected, MAPPING)
    # Then it is answered and read back
    assert saved["statusCode"] == 200, saved
    after = crm_stack.body(crm_stack.api("crm-get-sync-mapping", connected, role="member"))
    assert (after["default"], after["conflict_policy"], after["deletions"]) == (False, "crm_wins", "both")
    assert after["fields"] == MAPPING["fields"]


@pytest.mark.parametrize(
    ("remote", "code"),
    [
        ("Nope__c", "unknown_remote_field"),
        ("Id", "field_not_updateable"),
        ("HasOptedOutOfEmail", "field_type_mismatch"),
    ],
)
def test_a_mapping_the_crm_cannot_take_is_a_422_with_its_code(
    crm_stack: CrmStack, connected: str, remote: str, code: str
) -> None:
    body = {"fields": [{"local": "email", "remote": "Email"}, {"local": "title", "remote": remote}]}
    answer = put_mapping(crm_stack, connected, body)
    assert answer["statusCode"] == 422, answer
    error = crm_stack.body(answer)["error"]
    assert (error["code"], error["details"]["field"]) == (code, remote)


@pytest.mark.parametrize(
    "body",
    [
        {"fields": [{"local": "email", "remote": "Em\u0000ail"}]},
        {"fields": [{"local": "custom.\u202eregion", "remote": "Region__c"}]},
        {"fields": [{"local": "email", "remote": "Email"}], "conflict_policy": "loudest_wins"},
        {"fields": [{"local": "email", "remote": "Email", "extra": 1}]},
        {"fields": []},
        {"fields": [{"local": "email", "remote": "Email"}] * 61},
    ],
)
def test_hostile_mapping_bodies_are_a_422(crm_stack: CrmStack, connected: str, body: Any) -> None:
    answer = put_mapping(crm_stack, connected, body)
    assert answer["statusCode"] == 422, answer
    assert crm_stack.body(answer)["error"]["code"] == "validation_error"
    assert "\u0000" not in answer["body"]
    assert "\u202e" not in answer["body"]


def test_roles_come_before_bodies(crm_stack: CrmStack, connected: str) -> None:
    assert put_mapping(crm_stack, connected, {"junk": True}, role="member")["statusCode"] == 403
    started = crm_stack.api("crm-start-contact-sync", role="viewer", body={"integration_id": 7})
    assert started["statusCode"] == 403, started


def test_start_answers_202_and_the_crmsync_function_runs_the_queued_run(
    crm_stack: CrmStack, connected: str
) -> None:
    # Given a mapping with the custom field and a contact in the CRM
    assert put_mapping(crm_stack, connected, MAPPING)["statusCode"] == 200
    crm_stack.salesforce.create(
        "Contact", FirstName="Grace", LastName="Hopper", Email="grace@example.com", Region__c="APAC"
    )
    crm_stack.clock.advance(5)

    # When a member starts a sync
    started = crm_stack.api("crm-start-contact-sync", role="member", body={"integration_id": connected})

    # Then it is accepted with the run it queued
    assert started["statusCode"] == 202, started
    runs = crm_stack.body(started)["runs"]
    assert [r["integration_id"] for r in runs] == [connected]
    messages = queued(crm_stack)
    assert [json.loads(m["Body"])["run_id"] for m in messages] == [runs[0]["run_id"]]
    assert messages[0]["Attributes"]["MessageGroupId"] == connected
    # And the crmsync function runs it: our contact exists with the mapped custom field
    answer = crm_stack.invoke("crmsync", sqs_event(messages))
    assert answer == {"batchItemFailures": []}
    logs = crm_stack.body(crm_stack.api("crm-list-sync-logs", connected, role="member"))["items"]
    assert [(r["run_id"], r["state"], r["succeeded"]) for r in logs] == [(runs[0]["run_id"], "succeeded", 1)]
    contacts = listed_contacts(crm_stack)
    assert [(c["name"], c["custom"]) for c in contacts] == [("Grace Hopper", {"region": "APAC"})]
    # And a redelivery of the same message, a minute later, changes nothing
    crm_stack.clock.advance(60)
    assert crm_stack.invoke("crmsync", sqs_event(messages)) == {"batchItemFailures": []}
    again = crm_stack.body(crm_stack.api("crm-list-sync-logs", connected, role="member"))["items"]
    assert again == logs
    assert len(listed_contacts(crm_stack)) == 1


def test_start_of_an_unconnected_or_foreign_integration_is_refused(
    crm_stack: CrmStack, connected: str
) -> None:
    pending = crm_stack.start("salesforce")["integration"]["integration_id"]
    refused = crm_stack.api("crm-start-contact-sync", role="member", body={"integration_id": pending})
    assert refused["statusCode"] == 409, refused
    assert crm_stack.body(refused)["error"]["code"] == "integration_not_connected"
    foreign = crm_stack.api(
        "crm-start-contact-sync", role="member", tenant="other", body={"integration_id": connected}
    )
    assert foreign["statusCode"] == 404, foreign
    assert queued(crm_stack) == []


def test_the_schedule_fans_out_a_run_per_connected_integration(crm_stack: CrmStack, connected: str) -> None:
    # When the schedule's message arrives
    event = load_event("sqs/crm-sync.json")
    event["Records"][0]["body"] = json.dumps(load_event("scheduler/crm-sync.json"))
    assert crm_stack.invoke("crmsync", event) == {"batchItemFailures": []}
    # Then one run of the connected integration is queued, naming its tenant
    bodies = [json.loads(m["Body"]) for m in queued(crm_stack)]
    assert [(b["tenant_id"], b["integration_id"]) for b in bodies] == [(TENANT, connected)]
    assert bodies[0]["run_id"]
