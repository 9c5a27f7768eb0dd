"""CRM changes in through the webhooks function (issue 18 pt 6) on moto with the doubles:
Salesforce outbound messages (the org checked, the exact Ack, deduped on the notification id) and
HubSpot webhooks (the v3 signature test vectors through the route, the 5-minute window), each
queued as a targeted pull that the crmsync function applies to our contact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from local.salesforce.outbound import envelope
from mailbridge.crm.integrations.service import provider_for
from mailbridge.crm.remote.hubspot_webhooks import signature_v3
from mailbridge.crm.remote.salesforce_outbound import NOTIFICATIONS_RESPONSE
from mailbridge.crm.sync import wiring
from mailbridge.webhooks import wiring as webhook_wiring
from tests.emf import emitted
from tests.events import load_event
from tests.integration.crm_integrations_harness import TENANT, CrmStack, crm_stack
from tests.integration.local_hubspot.conftest import DATA

__all__ = ["crm_stack"]


def vectors() -> dict[str, Any]:
    """The HubSpot SDK's signature test vectors (the shared data: $MAILBRIDGE_CORPUS)."""
    loaded: dict[str, Any] = json.loads(Path(DATA, "signature_test_vectors.json").read_text())
    return loaded


@pytest.fixture
def stack(crm_stack: CrmStack) -> Iterator[CrmStack]:
    wiring.sync_deps.cache_clear()
    webhook_wiring.crm_webhook_deps.cache_clear()
    deps = wiring.sync_deps()
    deps.now = crm_stack.clock.now
    deps.provider = lambda d, t, i: provider_for(d, t, i, sleep=crm_stack.salesforce.advance)
    yield crm_stack
    wiring.sync_deps.cache_clear()
    webhook_wiring.crm_webhook_deps.cache_clear()


def queued(crm: CrmStack) -> list[dict[str, Any]]:
    url = crm.stack.env("CrmSyncFunction")["CRM_SYNC_QUEUE_URL"]
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for m in messages:  # taken off the queue, as the runner does once the function answered
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [dict(m) for m in messages]


def outbound(crm: CrmStack, body: bytes) -> dict[str, Any]:
    event = load_event("webhooks/salesforce-outbound.json")
    event["body"] = body.decode()
    return crm.invoke("webhooks", event)


def message(org_id: str, notification_id: str, record_id: str) -> bytes:
    return envelope(
        org_id, "04k5g000000XYZAAA2", None, "https://acme.my.salesforce.com", "61.0",
        [(notification_id, "Contact", {"Id": record_id})],
    )  # fmt: skip


def test_an_outbound_message_updates_our_contact_once(stack: CrmStack) -> None:
    # Given a synced contact
    integration_id = stack.connect("salesforce")
    org_id = stack.integration(integration_id)["org_id"]
    remote_id = stack.salesforce.create("Contact", LastName="Hopper", Email="grace@example.com")
    stack.clock.advance(5)
    stack.api("crm-start-contact-sync", role="member", body={"integration_id": integration_id})
    first = queued(stack)
    event = load_event("sqs/crm-sync.json")
    event["Records"] = [{**event["Records"][0], "body": m["Body"]} for m in first]
    assert stack.invoke("crmsync", event) == {"batchItemFailures": []}
    # When Salesforce changes it and sends an outbound message (twice, as it may)
    stack.clock.advance(60)
    stack.salesforce.update("Contact", remote_id, Title="Rear Admiral")
    body = message(org_id, "04l5g00000ABCDEAA1", remote_id)
    answers = [outbound(stack, body), outbound(stack, body)]

    # Then both are answered with the exact Ack, and one targeted pull is queued
    for answer in answers:
        assert answer["statusCode"] == 200, answer
        assert answer["body"].encode() == NOTIFICATIONS_RESPONSE
        assert answer["headers"]["Content-Type"].startswith("text/xml")
    pulls = queued(stack)
    assert [json.loads(m["Body"])["remote_ids"] for m in pulls] == [[remote_id]]
    # And the crmsync function applies it: our contact has the new title
    event["Records"] = [{**event["Records"][0], "body": m["Body"]} for m in pulls]
    assert stack.invoke("crmsync", event) == {"batchItemFailures": []}
    contacts = stack.body(
        stack.invoke("api", {**load_event("api/crm-list-contacts.json", tenant=TENANT, role="member"),
                             "rawQueryString": "", "queryStringParameters": None})
    )["items"]  # fmt: skip
    assert [(c["name"], c["title"]) for c in contacts] == [("Hopper", "Rear Admiral")]


def rejected(capsys: pytest.CaptureFixture[str]) -> list[tuple[str, str]]:
    """(provider, reason) of each `WebhookRejected` figure (the webhook rejects alarm) printed so far."""
    return [
        (r["dimensions"]["provider"], r["dimensions"]["reason"])
        for r in emitted(capsys.readouterr().out, "WebhookRejected")
    ]


def test_an_outbound_message_of_an_org_not_connected_is_a_403_fault(
    stack: CrmStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.connect("salesforce")
    capsys.readouterr()
    answer = outbound(stack, message("00D5g000004ZZZZEA2", "04l5g00000ABCDEAA1", "0035g00000QRSTUAA1"))
    assert answer["statusCode"] == 403, answer
    assert "<faultstring>" in answer["body"]
    assert "00D5g000004ZZZZ" not in answer["body"]
    assert queued(stack) == []
    assert rejected(capsys) == [("salesforce", "organization_mismatch")]


def test_a_message_with_a_dtd_is_refused_before_parsing(
    stack: CrmStack, capsys: pytest.CaptureFixture[str]
) -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    capsys.readouterr()
    answer = outbound(stack, body)
    assert answer["statusCode"] == 400, answer
    assert "xml_dtd_refused" in answer["body"] or "faultstring" in answer["body"]
    assert [provider for provider, _ in rejected(capsys)] == ["salesforce"]


def hubspot_event(crm: CrmStack, body: str, headers: dict[str, str]) -> dict[str, Any]:
    event = load_event("webhooks/hubspot-webhook.json")
    event["body"] = body
    event["headers"] = {
        **{k: v for k, v in event["headers"].items() if not k.startswith("x-hubspot")},
        **headers,
    }
    return crm.invoke("webhooks", event)


def test_the_signature_test_vector_passes_through_the_route(
    stack: CrmStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the vector's URL and secret, and the clock at its timestamp
    VECTORS = vectors()  # noqa: N806
    monkeypatch.setenv("HUBSPOT_WEBHOOK_URL", VECTORS["url"])
    from mailbridge.config import get_settings

    get_settings.cache_clear()
    webhook_wiring.crm_webhook_deps.cache_clear()
    deps = webhook_wiring.crm_webhook_deps()
    deps.hubspot_client_secret = lambda: VECTORS["client_secret"]
    deps.now = lambda: datetime.fromtimestamp(int(VECTORS["timestamp"]) / 1000, tz=UTC)
    signed = {
        "x-hubspot-signature-v3": VECTORS["v3"]["signature"],
        "x-hubspot-request-timestamp": VECTORS["timestamp"],
    }
    # When the vector's request arrives
    answer = hubspot_event(stack, VECTORS["request_body"], signed)
    # Then the signature is accepted: what refuses it is the body (not HubSpot's JSON events)
    assert answer["statusCode"] == 400, answer
    assert json.loads(answer["body"])["error"]["code"] == "invalid_json"
    # And one changed character of the signature is a 401
    tampered = {**signed, "x-hubspot-signature-v3": "A" + VECTORS["v3"]["signature"][1:]}
    refused = hubspot_event(stack, VECTORS["request_body"], tampered)
    assert refused["statusCode"] == 401
    assert json.loads(refused["body"])["error"]["code"] == "invalid_signature"
    assert ("hubspot", "invalid_signature") in rejected(capsys)
    # And the same request six minutes later is stale
    deps.now = lambda: datetime.fromtimestamp(int(VECTORS["timestamp"]) / 1000 + 360, tz=UTC)
    stale = hubspot_event(stack, VECTORS["request_body"], signed)
    assert json.loads(stale["body"])["error"]["code"] == "stale_timestamp"
    get_settings.cache_clear()


def test_a_signed_contact_event_of_a_connected_portal_queues_a_pull_once(stack: CrmStack) -> None:
    integration_id = stack.connect("hubspot")
    portal = int(stack.integration(integration_id)["org_id"])
    body = json.dumps(
        [{"eventId": 77, "subscriptionId": 1, "portalId": portal, "appId": 1, "occurredAt": 1795252443000,
          "subscriptionType": "contact.propertyChange", "objectId": 901, "propertyName": "jobtitle"}]
    )  # fmt: skip
    timestamp = str(int(stack.clock.now().timestamp() * 1000))
    webhook_wiring.crm_webhook_deps().now = stack.clock.now
    uri = "https://abc123def4.execute-api.eu-west-1.amazonaws.com/webhooks/hubspot"
    signature = signature_v3(stack.hs_app.client_secret, "POST", uri, body.encode(), timestamp)
    headers = {"x-hubspot-signature-v3": signature, "x-hubspot-request-timestamp": timestamp}
    answers = [hubspot_event(stack, body, headers), hubspot_event(stack, body, headers)]
    assert [a["statusCode"] for a in answers] == [204, 204], answers
    bodies = [json.loads(m["Body"]) for m in queued(stack)]
    assert [(b["integration_id"], b["remote_ids"]) for b in bodies] == [(integration_id, ["901"])]


def run_queued(crm: CrmStack) -> None:
    """What the runner does: the CrmSyncQueue's messages through the crmsync function."""
    messages = queued(crm)
    event = load_event("sqs/crm-sync.json")
    event["Records"] = [{**event["Records"][0], "body": m["Body"]} for m in messages]
    assert crm.invoke("crmsync", event) == {"batchItemFailures": []}


def test_acceptance_walk_device_flow_two_way_sync_conflict_and_outbound_message(stack: CrmStack) -> None:
    """Issue 18's acceptance walk, in-process: connect Salesforce by the device flow, sync contacts
    both ways with a custom field mapped, change one contact on both sides and see the policy win
    and the conflict logged, and an outbound message update our contact."""
    stack.salesforce.add_custom_field("Contact", "Region__c", "picklist", picklist=("EMEA", "APAC"))
    # Given Salesforce connected by the device flow
    started = stack.body(stack.api("crm-start-device-flow", role="member", body={"provider": "salesforce"}))
    stack.salesforce.approve_device(started["user_code"])
    stack.clock.advance(started["interval"])
    integration_id = started["integration"]["integration_id"]
    polled = stack.body(stack.api("crm-poll-device-flow", integration_id, role="member"))
    assert polled["status"] == "connected", polled
    org_id = polled["integration"]["org_id"]
    # and a mapping with the custom field, our side winning conflicts (the api function's edits
    # carry the wall-clock time, not the doubles' manual clock, so `newest_wins` is for the
    # service tests to check)
    mapping = {
        "fields": [
            {"local": "first_name", "remote": "FirstName"},
            {"local": "last_name", "remote": "LastName"},
            {"local": "email", "remote": "Email"},
            {"local": "title", "remote": "Title"},
            {"local": "custom.region", "remote": "Region__c"},
        ],
        "conflict_policy": "mailbridge_wins",
    }
    assert stack.api("crm-put-sync-mapping", integration_id, role="admin", body=mapping)["statusCode"] == 200
    # When a contact on each side is synced
    remote_grace = stack.salesforce.create(
        "Contact", FirstName="Grace", LastName="Hopper", Email="grace@example.com", Region__c="APAC"
    )
    ada = {"name": "Ada Lovelace", "emails": [{"address": "ada@example.com"}], "custom": {"region": "EMEA"}}
    created = stack.api("crm-create-contact", role="member", body=ada)
    assert created["statusCode"] == 201, created
    ada_id = stack.body(created)["contact_id"]
    stack.clock.advance(5)
    assert stack.api("crm-start-contact-sync", role="member", body={})["statusCode"] == 202
    run_queued(stack)
    # Then each side holds both, the custom field mapped
    ada_remote = next(r for r in stack.salesforce.records("Contact") if r["Email"] == "ada@example.com")
    assert ada_remote["Region__c"] == "EMEA"
    contacts = {c["name"]: c for c in list_contacts(stack)}
    assert contacts["Grace Hopper"]["custom"] == {"region": "APAC"}

    # When Ada changes on both sides
    stack.clock.advance(120)
    stack.salesforce.update("Contact", ada_remote["Id"], Title="Countess")
    stack.clock.advance(10)
    patch = load_event("api/crm-patch-contact.json", tenant=TENANT, role="member", body={"title": "Analyst"})
    patch["pathParameters"]["contact_id"] = ada_id
    patch["rawPath"] = f"/crm/contacts/{ada_id}"
    patch["requestContext"]["http"]["path"] = patch["rawPath"]
    assert stack.invoke("api", patch)["statusCode"] == 200
    stack.clock.advance(5)
    assert (
        stack.api("crm-start-contact-sync", role="member", body={"integration_id": integration_id})[
            "statusCode"
        ]
        == 202
    )
    run_queued(stack)
    # Then ours won on both sides and the run logged the conflict
    assert stack.salesforce.record("Contact", ada_remote["Id"])["Title"] == "Analyst"
    runs = stack.body(stack.api("crm-list-sync-logs", integration_id, role="member"))["items"]
    assert runs[0]["conflicts"] == 1

    # When Salesforce changes Grace and sends an outbound message
    stack.clock.advance(60)
    stack.salesforce.update("Contact", remote_grace, Region__c="EMEA")
    assert outbound(stack, message(org_id, "04l5g00000ABCDEAA9", remote_grace))["statusCode"] == 200
    run_queued(stack)
    # Then our contact has the change
    assert {c["name"]: c for c in list_contacts(stack)}["Grace Hopper"]["custom"] == {"region": "EMEA"}


def list_contacts(crm: CrmStack) -> list[dict[str, Any]]:
    event = load_event("api/crm-list-contacts.json", tenant=TENANT, role="member")
    event["rawQueryString"], event["queryStringParameters"] = "", None
    items: list[dict[str, Any]] = crm.body(crm.invoke("api", event))["items"]
    return items
