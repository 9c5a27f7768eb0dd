"""Email activity logging to Salesforce and HubSpot through the real functions on moto, with the
local doubles as the CRMs: mail stored as the sync stores it, matched by the match function, its
`email.linked` announcement routed by the template's CrmActivityRule to the CrmActivityQueue and
handed to functions/crm_activity. Contacts are "synced" by writing their `RemoteLink` directly
(the two-way contact sync that writes them is another part)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.access import Visibility
from mailbridge.config import get_settings
from mailbridge.crm.integrations.models import RemoteLink
from mailbridge.crm.integrations.wiring import activity_queue, integration_deps
from mailbridge.store.campaigns import CampaignRunStore, Outcome
from mailbridge.store.crm_remote_ids import RemoteIdStore
from tests.events import load_event
from tests.fixtures import accounts as seeding
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack, reset_caches
from tests.integration.crm_integrations_harness import TENANT, CrmStack, crm_stack, reset_crm_caches
from tests.integration.queue_harness import QueueConsumer
from tests.integration.redelivery import bus_seen, snapshot, three_deliveries
from tests.integration.sync_harness import _record
from tests.integration.test_matching import Matching, raw_mail

__all__ = ["crm_stack"]

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
CUSTOMER = "ada@initech-industries.com"
MESSAGE_ID_FIELD = "Mailbridge_Message_Id__c"


class Activity:
    """Matching plus the CRM activity consumer, on one crm_stack."""

    def __init__(self, crm: CrmStack, m: Matching, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in crm.stack.env("CrmActivityFunction").items():
            monkeypatch.setenv(name, value)
        activity_queue.cache_clear()
        self.crm, self.m = crm, m
        self.consumer = QueueConsumer(crm.stack, "crm_activity", "CrmActivityQueue")
        self.remote_ids = RemoteIdStore(crm.stack.deployed.tables["CrmTable"])
        crm.salesforce.add_custom_field("Task", MESSAGE_ID_FIELD, "text", 255)

    def contact(self, address: str = CUSTOMER) -> str:
        return str(self.m.contact("Ada Lovelace", address)["contact_id"])

    def sync(self, integration_id: str, contact_id: str, remote_id: str) -> None:
        link = RemoteLink(
            integration_id=integration_id,
            contact_id=contact_id,
            remote_id=remote_id,
            synced_at=datetime.now(UTC),
        )
        self.remote_ids.put(TENANT, [link])

    def salesforce_contact(self) -> str:
        return self.crm.salesforce.create("Contact", LastName="Lovelace", Email=CUSTOMER)

    def mail(self, msgid: str = "deal-1@initech-industries.com", subject: str = "Renewal") -> str:
        return self.m.store(raw_mail(subject, sender=CUSTOMER, to="me@acme-corp.io", msgid=msgid))

    def run(self) -> list[dict[str, Any]]:
        """Match what was announced, then hand the activity queue to its function."""
        self.m.drain()
        return self.consumer.drain()

    def tasks(self) -> list[dict[str, Any]]:
        return self.crm.salesforce.records("Task")

    def logged_items(self, integration_id: str) -> int:
        table: Any = self.crm.stack.table("CrmTable")
        answer = table.query(
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": f"CRMACT#{integration_id}#"},
        )
        return len(answer["Items"])

    def runs(self, integration_id: str) -> list[dict[str, Any]]:
        response = self.crm.api("crm-list-sync-logs", integration_id, role="member")
        assert response["statusCode"] == 200, response
        items: list[dict[str, Any]] = self.crm.body(response)["items"]
        return items


@pytest.fixture
def act(crm_stack: CrmStack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch, stack: Stack) -> Activity:
    # The functions' template environment names no CRM app: keep the doubles' that crm_stack set.
    crm_env = {k: v for k, v in os.environ.items() if k.startswith(("SALESFORCE_", "HUBSPOT_", "OAUTH_"))}
    m = Matching(stack, invoke_api, monkeypatch)
    activity = Activity(crm_stack, m, monkeypatch)
    for name, value in crm_env.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    reset_crm_caches()
    deps = integration_deps()
    deps.now = crm_stack.clock.now
    deps.sleep = lambda _seconds: None
    m.policy()
    return activity


def test_an_email_to_a_synced_contact_is_logged_once_as_a_salesforce_task(act: Activity) -> None:
    # Given a connected org and our contact synced to its Contact
    integration_id = act.crm.connect()
    remote_id = act.salesforce_contact()
    act.sync(integration_id, act.contact(), remote_id)

    # When mail from the contact arrives and is matched
    act.mail()
    results = act.run()

    # Then one completed email Task is on the Contact, carrying the Message-ID, without the body
    assert [r["batchItemFailures"] for r in results] == [[]]
    tasks = act.tasks()
    assert len(tasks) == 1
    task = tasks[0]
    assert task["WhoId"] == remote_id
    assert task["Subject"] == "Renewal"
    assert task["TaskSubtype"] == "Email"
    assert "deal-1@initech-industries.com" in task[MESSAGE_ID_FIELD]
    assert "Hello." not in (task.get("Description") or "")
    # And the sync log shows an activity push run that succeeded
    runs = act.runs(integration_id)
    assert [(r["kind"], r["direction"], r["state"], r["succeeded"]) for r in runs] == [
        ("activity", "push", "succeeded", 1)
    ]
    # And removing the integration removes its record of logged emails
    assert act.logged_items(integration_id) == 1
    removed = act.crm.api("crm-delete-integration", integration_id, role="admin")
    assert removed["statusCode"] in (200, 204), removed
    assert act.logged_items(integration_id) == 0


def test_two_mailboxes_and_a_redelivery_log_it_once_and_the_repeat_asks_salesforce_nothing(
    act: Activity,
) -> None:
    # Given a synced contact and mail from them seen by two mailboxes of the tenant: the same
    # email id announced by each mailbox's sync, and a copy stored under a second email id (a list
    # copy with a tagged subject) that carries the same Message-ID
    integration_id = act.crm.connect()
    remote_id = act.salesforce_contact()
    act.sync(integration_id, act.contact(), remote_id)
    email_id = act.mail()
    item = act.m.emails.get_email(TENANT, email_id)
    assert item is not None
    act.m.announce(TENANT, {**item, "email_id": email_id, "direction": "inbound"})
    act.mail(subject="[sales] Renewal")
    used_before, _ = act.crm.salesforce.api_usage()
    act.run()
    assert len(act.tasks()) == 1
    assert act.crm.salesforce.api_usage()[0] - used_before == 2  # one lookup, one create

    # When the queue redelivers the announcement
    used_before, _ = act.crm.salesforce.api_usage()
    sqs = act.consumer.sqs
    event = {
        "source": "mailbridge",
        "detail-type": "email.linked",
        "detail": {"tenant_id": TENANT, "data": {"email_id": email_id, "contact_ids": ["c"]}},
    }
    links = act.m.links(email_id)
    event["detail"]["data"]["contact_ids"] = [r for r in links if r.startswith("ct_")]  # type: ignore[index]
    sqs.send_message(QueueUrl=act.consumer.queue_url, MessageBody=json.dumps(event))
    results = act.consumer.drain()

    # Then nothing more is logged, and Salesforce was not asked anything
    assert [r["batchItemFailures"] for r in results] == [[]]
    assert len(act.tasks()) == 1
    assert act.crm.salesforce.api_usage()[0] == used_before


def test_a_linked_email_delivered_three_times_is_logged_once_and_asks_salesforce_once(
    act: Activity, bus_probe: BusReader
) -> None:
    # Given a synced contact and mail from them, matched: its email.linked record on the queue
    integration_id = act.crm.connect()
    remote_id = act.salesforce_contact()
    act.sync(integration_id, act.contact(), remote_id)
    act.mail()
    act.m.drain()
    messages = act.consumer.receive()
    assert len(messages) == 1
    act.consumer.sqs.delete_message(
        QueueUrl=act.consumer.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"]
    )
    event = {"Records": [_record(messages[0], act.consumer.queue_url)]}
    bus = bus_seen(bus_probe)

    def observe() -> tuple[dict[str, Any], int, int]:
        return snapshot(act.crm.stack, bus), len(act.tasks()), act.crm.salesforce.api_usage()[0]

    # When SQS hands the record to the function three times
    deliveries = three_deliveries(
        lambda e: act.consumer.function.lambda_handler(e, FakeLambdaContext()), event, observe
    )

    # Then the first delivery logged one Task (a lookup and a create at Salesforce) ...
    assert deliveries.results == [{"batchItemFailures": []}] * 3
    stored_before, tasks_before, used_before = deliveries.before
    stored_once, tasks_once, used_once = deliveries.once
    assert (tasks_before, tasks_once, used_once - used_before) == (0, 1, 2)
    assert stored_once != stored_before
    assert act.tasks()[0]["WhoId"] == remote_id
    # ... and the other two logged nothing, asked Salesforce nothing and stored nothing
    assert deliveries.thrice[1:] == (tasks_once, used_once)
    assert deliveries.thrice == deliveries.once


def test_an_unsynced_contact_logs_nothing(act: Activity) -> None:
    # Given a connected org, and a contact of ours that has no Salesforce record
    integration_id = act.crm.connect()
    act.contact()
    used_before, _ = act.crm.salesforce.api_usage()

    # When mail from the contact arrives
    act.mail()
    act.run()

    # Then no Task, no run, no request to Salesforce
    assert act.tasks() == []
    assert act.runs(integration_id) == []
    assert act.crm.salesforce.api_usage()[0] == used_before


@pytest.mark.parametrize(
    ("visibility", "subject", "body"),
    [
        (Visibility.PRIVATE, None, False),  # nothing goes
        (Visibility.METADATA, None, False),  # no Message-ID to deduplicate by: nothing goes
        (Visibility.SUBJECT, "Renewal", False),
        (Visibility.FULL, "Renewal", True),
    ],
)
def test_the_crm_gets_what_the_tenants_members_see_of_the_mailbox(
    act: Activity, visibility: Visibility, subject: str | None, body: bool
) -> None:
    # Given the mail's mailbox is another user's, shared with the tenant at `visibility`, and an
    # org that takes bodies, with our contact synced
    seeding.seed_account(
        get_settings().tables.accounts,
        get_settings().data_key_id,
        tenant=TENANT,
        owner="alice",
        account_id="acc_1",  # the mailbox Matching.store files mail in
        visibility=visibility,
    )
    integration_id = act.crm.connect()
    switched = act.crm.api(
        "crm-put-activity-logging",
        integration_id,
        role="admin",
        body={"log_activity": True, "log_body": True},
    )
    assert switched["statusCode"] == 200, switched
    act.sync(integration_id, act.contact(), act.salesforce_contact())

    # When mail from the contact arrives in that mailbox and is matched
    act.mail()
    act.run()

    # Then the Task holds what a member sees: nothing below `subject`, the body only in `full`
    tasks = act.tasks()
    assert [t["Subject"] for t in tasks] == ([] if subject is None else [subject])
    assert any("Hello." in (t.get("Description") or "") for t in tasks) is body


def test_a_rate_limited_org_gets_the_email_again_after_the_pause(
    act: Activity, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a synced contact in an org that spent its daily API requests
    integration_id = act.crm.connect()
    act.sync(integration_id, act.contact(), act.salesforce_contact())
    used, _ = act.crm.salesforce.api_usage()
    act.crm.salesforce.set_daily_api_requests(used)
    held: list[tuple[str, int]] = []
    queue = activity_queue()
    original = queue.retry_later

    def spy(receipt_handle: str, delay_seconds: int) -> None:
        held.append((receipt_handle, delay_seconds))
        original(receipt_handle, delay_seconds)

    monkeypatch.setattr(queue, "retry_later", spy)

    # When mail from the contact arrives
    act.mail()
    results = act.run()

    # Then the record is reported failed and held back for Salesforce's hour, nothing logged
    assert [len(r["batchItemFailures"]) for r in results] == [1]
    assert [delay for _, delay in held] == [3600]
    assert act.tasks() == []
    assert act.consumer.receive() == []
    assert act.runs(integration_id)[0]["errors"] == [{"code": "provider_rate_limited", "count": 1}]

    # When the hour has passed (the limit reset) and SQS delivers it again
    act.crm.salesforce.set_daily_api_requests(100_000)
    act.consumer.sqs.change_message_visibility(
        QueueUrl=act.consumer.queue_url, ReceiptHandle=held[0][0], VisibilityTimeout=0
    )
    results = act.consumer.drain()

    # Then it is logged, once
    assert [r["batchItemFailures"] for r in results] == [[]]
    assert len(act.tasks()) == 1


def test_a_revoked_grant_drops_the_email_with_reauth_required_and_stops_asking(act: Activity) -> None:
    # Given a synced contact in an org whose admin revoked the app
    integration_id = act.crm.connect()
    act.sync(integration_id, act.contact(), act.salesforce_contact())
    act.crm.salesforce.oauth.revoke_all()

    # When mail from the contact arrives
    act.mail()
    results = act.run()

    # Then the record is done (not retried), the run failed with reauth_required
    assert [r["batchItemFailures"] for r in results] == [[]]
    assert act.tasks() == []
    runs = act.runs(integration_id)
    assert [r["state"] for r in runs] == ["failed"]
    assert {e["code"] for e in runs[0]["errors"]} == {"reauth_required"}
    assert act.crm.integration(integration_id)["state"] == "reauth_required"

    # And later mail makes no run and no request until the org is connected again
    used_before, _ = act.crm.salesforce.api_usage()
    act.mail(msgid="deal-2@initech-industries.com")
    assert [r["batchItemFailures"] for r in act.run()] == [[]]
    assert len(act.runs(integration_id)) == 1
    assert act.crm.salesforce.api_usage()[0] == used_before


def test_a_manual_link_logs_the_email_to_hubspot_with_the_body_when_allowed(act: Activity) -> None:
    # Given a HubSpot portal that allows bodies, and a synced contact whose mail came from
    # an address matching did not know
    integration_id = act.crm.connect("hubspot")
    assert act.crm.integration(integration_id)["log_body"] is False
    switched = act.crm.api(
        "crm-put-activity-logging",
        integration_id,
        role="admin",
        body={"log_activity": True, "log_body": True},
    )
    assert switched["statusCode"] == 200, switched
    assert act.crm.body(switched)["log_body"] is True
    remote_id = act.crm.hubspot.create("contacts", email=CUSTOMER, lastname="Lovelace")
    contact_id = act.contact("ada.home@example.org")
    act.sync(integration_id, contact_id, remote_id)
    email_id = act.mail()
    act.run()
    assert act.crm.hubspot.associated("contacts", remote_id, "emails") == []

    # When someone links the email to the contact by hand
    link = {"kind": "contact", "record_id": contact_id}
    act.m.api("links-create", 201, path={"email_id": email_id}, body=link)
    results = act.consumer.drain()

    # Then one email engagement is associated with the HubSpot contact, with the text
    assert [r["batchItemFailures"] for r in results] == [[]]
    emails = act.crm.hubspot.associated("contacts", remote_id, "emails")
    assert len(emails) == 1
    engagement = act.crm.hubspot.object("emails", emails[0])
    assert engagement.properties["hs_email_subject"] == "Renewal"
    assert "Hello." in engagement.properties["hs_email_text"]


def test_the_sample_batch_is_done_and_a_malformed_record_alone_fails(act: Activity) -> None:
    # Given the sample batch (a tenant without integrations) and one record that is not an event
    event = load_event("sqs/crm-activity-linked.json")
    broken = {**event["Records"][0], "messageId": "broken", "body": '{"detail-type": "email.linked"}'}
    event["Records"].append(broken)

    # When the function gets it
    result = act.consumer.function.lambda_handler(event, FakeLambdaContext())

    # Then only the malformed record is reported back
    assert result["batchItemFailures"] == [{"itemIdentifier": "broken"}]


# ---------------------------------------------------------------------------------- campaigns


class Campaigns:
    """A campaign of ours whose email was queued for some contacts (its send run's recipients)."""

    def __init__(self, act: Activity) -> None:
        self.act = act
        act.m.api("put-features", role="admin", body={"campaigns": True})
        self.campaign_id = str(
            act.m.api("crm-create-campaign", 201, body={"name": "Spring launch"})["campaign_id"]
        )
        self.runs = CampaignRunStore(act.crm.stack.deployed.tables["CrmTable"])

    def recipient(self, contact_id: str) -> None:
        message_id = f"<{contact_id}@campaign.example>"
        assert self.runs.claim_many(TENANT, self.campaign_id, [(contact_id, message_id)]) == {contact_id}
        self.runs.finish_many(
            TENANT,
            self.campaign_id,
            [Outcome(contact_id, "queued", message_id, email_id="em_" + "1" * 26)],
        )

    def sync(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.act.m.api("crm-sync-campaigns", 202, role="admin", body=body or {})
        return answer


def synced_contact(
    act: Activity, integration_id: str, n: int, provider: str = "salesforce"
) -> tuple[str, str]:
    address = f"person{n}@initech-industries.com"
    contact_id = act.contact(address)
    if provider == "salesforce":
        remote_id = act.crm.salesforce.create("Contact", LastName=f"Person{n}", Email=address)
    else:
        remote_id = act.crm.hubspot.create("contacts", email=address, lastname=f"Person{n}")
    act.sync(integration_id, contact_id, remote_id)
    return contact_id, remote_id


def test_a_campaign_goes_to_salesforce_with_its_synced_recipients_and_a_second_sync_changes_nothing(
    act: Activity,
) -> None:
    # Given a campaign sent to two synced contacts and one that is not synced
    integration_id = act.crm.connect()
    c = Campaigns(act)
    (a, a_remote), (b, b_remote) = (synced_contact(act, integration_id, n) for n in (1, 2))
    for contact_id in (a, b, act.contact("unsynced@initech-industries.com")):
        c.recipient(contact_id)

    # When an admin syncs the tenant's campaigns
    queued = c.sync()
    results = act.consumer.drain()

    # Then one Salesforce Campaign has the two synced contacts as its members
    assert queued == {"queued": 1, "integration_ids": [integration_id], "campaign_ids": [c.campaign_id]}
    assert [r["batchItemFailures"] for r in results] == [[]]
    campaigns = act.crm.salesforce.records("Campaign")
    assert [(x["Name"], x["Status"]) for x in campaigns] == [("Spring launch", "Planned")]
    members = act.crm.salesforce.records("CampaignMember")
    assert sorted(m["ContactId"] for m in members) == sorted([a_remote, b_remote])
    assert {m["CampaignId"] for m in members} == {campaigns[0]["Id"]}
    assert act.runs(integration_id)[0]["kind"] == "campaigns"

    # When it is synced again, nothing having changed
    used_before, _ = act.crm.salesforce.api_usage()
    c.sync({"integration_id": integration_id, "campaign_id": c.campaign_id})
    act.consumer.drain()

    # Then Salesforce is not asked anything, no run is written, and it holds the same campaign and members
    assert act.crm.salesforce.api_usage()[0] == used_before
    assert len(act.runs(integration_id)) == 1
    assert len(act.crm.salesforce.records("Campaign")) == 1
    assert len(act.crm.salesforce.records("CampaignMember")) == 2

    # When a third synced contact gets the campaign and it is synced once more
    d, d_remote = synced_contact(act, integration_id, 3)
    c.recipient(d)
    c.sync()
    act.consumer.drain()

    # Then only that member is added: nobody twice
    last = act.runs(integration_id)[0]
    assert (last["total"], last["succeeded"]) == (1, 1)
    members = act.crm.salesforce.records("CampaignMember")
    assert sorted(m["ContactId"] for m in members) == sorted([a_remote, b_remote, d_remote])
    assert len(act.crm.salesforce.records("Campaign")) == 1

    # When a member's contact is no longer synced (its link forgotten) and it is synced again
    act.remote_ids.forget(TENANT, list(act.remote_ids.by_contacts(TENANT, integration_id, [a]).values()))
    c.sync()
    act.consumer.drain()

    # Then that member is removed, the others stay
    members = act.crm.salesforce.records("CampaignMember")
    assert sorted(m["ContactId"] for m in members) == sorted([b_remote, d_remote])


def test_a_campaign_sync_delivered_three_times_writes_the_campaign_once(
    act: Activity, bus_probe: BusReader
) -> None:
    # Given a campaign sent to two synced contacts, and its campaign_sync record on the queue
    integration_id = act.crm.connect()
    c = Campaigns(act)
    for contact_id, _ in (synced_contact(act, integration_id, n) for n in (1, 2)):
        c.recipient(contact_id)
    c.sync()
    [message] = act.consumer.receive()
    act.consumer.sqs.delete_message(QueueUrl=act.consumer.queue_url, ReceiptHandle=message["ReceiptHandle"])
    event = {"Records": [_record(message, act.consumer.queue_url)]}
    bus = bus_seen(bus_probe)
    sf = act.crm.salesforce

    def observe() -> tuple[dict[str, Any], int, int, int]:
        written = len(sf.records("Campaign")), len(sf.records("CampaignMember"))
        return snapshot(act.crm.stack, bus), *written, sf.api_usage()[0]

    # When SQS hands the record to the function three times
    deliveries = three_deliveries(
        lambda e: act.consumer.function.lambda_handler(e, FakeLambdaContext()), event, observe
    )

    # Then the first delivery wrote the Campaign and its two members ...
    assert deliveries.results == [{"batchItemFailures": []}] * 3
    assert deliveries.before[1:3] == (0, 0)
    assert deliveries.once[1:3] == (1, 2)
    assert deliveries.once[0] != deliveries.before[0]
    # ... and the other two wrote nothing, asked Salesforce nothing and stored nothing
    assert deliveries.thrice[1:] == deliveries.once[1:]
    assert deliveries.thrice == deliveries.once


def test_a_campaign_goes_to_hubspot_as_a_static_list_with_its_synced_recipients(act: Activity) -> None:
    # Given a HubSpot portal and a campaign sent to a synced contact
    integration_id = act.crm.connect("hubspot")
    c = Campaigns(act)
    contact_id, remote_id = synced_contact(act, integration_id, 1, "hubspot")
    c.recipient(contact_id)

    # When it is synced twice
    c.sync()
    act.consumer.drain()
    c.sync()
    act.consumer.drain()

    # Then the list holds the contact, once
    stored = act.crm.stack.table("CrmTable").get_item(
        Key={"pk": f"TENANT#{TENANT}", "sk": f"CRMCAMP#{integration_id}#{c.campaign_id}"}
    )["Item"]
    assert act.crm.hubspot.list_members(str(stored["remote_id"])) == [remote_id]
    assert [r["kind"] for r in act.runs(integration_id)] == ["campaigns"]


def test_a_campaign_sync_names_known_integrations_and_campaigns_and_skips_unconnected_ones(
    act: Activity,
) -> None:
    # Given a pending (not connected) integration and a campaign
    pending = act.crm.start()["integration"]["integration_id"]
    c = Campaigns(act)

    # Then an unknown integration or campaign is 404; a member may not sync at all
    answer = act.m.api("crm-sync-campaigns", 404, role="admin", body={"integration_id": "int_" + "0" * 20})
    assert answer["error"]["code"] == "integration_not_found"
    for unknown in ("cp_" + "0" * 26, "not-a-campaign#", "CAMPAIGN#x"):
        answer = act.m.api("crm-sync-campaigns", 404, role="admin", body={"campaign_id": unknown})
        assert answer["error"]["code"] == "campaign_not_found"
    assert act.m.api("crm-sync-campaigns", 403, role="member", body={})["error"]["code"] == "role_required"
    # And control characters in an id are refused by validation, naming the field
    answer = act.m.api("crm-sync-campaigns", 422, role="admin", body={"campaign_id": "cp_1\r\nX"})
    assert "campaign_id" in json.dumps(answer["error"])
    # And with nothing connected nothing is queued by default
    assert act.m.api("crm-sync-campaigns", 202, role="admin", body={})["queued"] == 0
    # And a sync to the pending one, named, is queued and skipped when it runs: no run, no list
    named = act.m.api("crm-sync-campaigns", 202, role="admin", body={"integration_id": pending})
    assert named == {"queued": 1, "integration_ids": [pending], "campaign_ids": [c.campaign_id]}
    assert [r["batchItemFailures"] for r in act.consumer.drain()] == [[]]
    assert act.runs(pending) == []
    assert act.crm.salesforce.records("Campaign") == []


def test_make_run_sets_up_the_task_field_activity_logging_needs() -> None:
    # Given the doubles as make run starts them
    from local.crm_wiring import MESSAGE_ID_FIELD as FIELD
    from local.crm_wiring import wire_crm
    from local.hubspot import HubSpotDouble
    from local.salesforce import SalesforceDouble

    with SalesforceDouble(seed=5) as salesforce, HubSpotDouble(seed=5) as hubspot:
        # When the runner wires them (twice: a restart over the same doubles)
        wire_crm(salesforce, hubspot, "http://127.0.0.1:3000")
        wire_crm(salesforce, hubspot, "http://127.0.0.1:3000")

        # Then Task has the Message-ID field, as an External ID
        task = salesforce.org.sobject("Task")
        assert task is not None
        field = task.field(FIELD)
        assert field is not None
        assert field.describe()["externalId"] is True


def test_activity_logging_switched_off_logs_nothing_and_only_admins_switch_it(act: Activity) -> None:
    # Given a synced contact in an org whose admin switched activity logging off
    integration_id = act.crm.connect()
    act.sync(integration_id, act.contact(), act.salesforce_contact())
    body = {"log_activity": False}
    denied = act.crm.api("crm-put-activity-logging", integration_id, role="member", body=body)
    assert denied["statusCode"] == 403, denied
    switched = act.crm.api("crm-put-activity-logging", integration_id, role="admin", body=body)
    assert (switched["statusCode"], act.crm.body(switched)["log_activity"]) == (200, False)
    used_before, _ = act.crm.salesforce.api_usage()

    # When mail from the contact arrives
    act.mail()
    act.run()

    # Then nothing is logged and Salesforce is not asked
    assert act.tasks() == []
    assert act.runs(integration_id) == []
    assert act.crm.salesforce.api_usage()[0] == used_before
