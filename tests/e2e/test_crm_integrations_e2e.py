"""Through the local runner (`python -m local`'s wiring): connect Salesforce by the device flow
with the double's approve control, see the org in `GET /crm/orgs`, then read a contact from the
double through `provider_for` in a process configured like the api function."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.clock import ManualClock, RealClock
from local.functions import sandbox_environment
from local.hubspot import HubSpotDouble
from local.runner import Runner
from local.salesforce import SalesforceDouble
from local.salesforce.outbound import envelope
from tests.e2e.conftest import ROOT, SharedRunners, call, connect_mailbox
from tests.integration.dovecot import DovecotServer, DovecotUser

TENANT = "crm-e2e"


class CrmRunner(Runner):
    """A runner wired to its own Salesforce and HubSpot doubles, started and stopped with it."""

    def __init__(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        # The doubles on the wall clock, as `make run` starts them: the functions wait for bulk
        # jobs in real seconds, and a job of the double progresses with its clock
        self.sf = SalesforceDouble(clock=RealClock(), seed=31)
        self.hs = HubSpotDouble(clock=RealClock(), seed=31)
        super().__init__(
            templates=[ROOT / "template.yaml"],
            port=0,
            clock=ManualClock(now),
            parameters={"AllowPrivateMailHosts": "true"},
            salesforce=self.sf,
            hubspot=self.hs,
        )

    def start(self) -> CrmRunner:
        self.sf.start()
        self.hs.start()
        super().start()
        return self

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.sf.stop()
            self.hs.stop()


@pytest.fixture(scope="module")
def crm_runner(shared_runners: SharedRunners) -> CrmRunner:
    runner = shared_runners.get("crm_runner", CrmRunner)
    assert isinstance(runner, CrmRunner)
    return runner


def read_contact(runner: CrmRunner, integration_id: str, contact_id: str) -> dict[str, object]:
    """`provider_for(...)` in a process with the api function's environment (moto, settings)."""
    assert runner._pool is not None
    env = sandbox_environment(runner._pool.functions["ApiFunction"].function, runner.endpoint_url)
    script = (
        "import json, sys\n"
        "from mailbridge.crm.integrations.service import provider_for\n"
        "from mailbridge.crm.integrations.wiring import integration_deps\n"
        "adapter = provider_for(integration_deps(), sys.argv[1], sys.argv[2])\n"
        "contact = adapter.get_contact(sys.argv[3], ['LastName', 'Email'])\n"
        "print(json.dumps(contact.fields if contact else None))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, TENANT, integration_id, contact_id],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    fields: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return fields


def test_connect_salesforce_by_the_device_flow_then_list_the_org_and_read_a_contact(
    crm_runner: CrmRunner,
) -> None:
    # Given a member and a contact in the Salesforce org
    token = crm_runner.token(tenant=TENANT, role="member")
    contact_id = crm_runner.sf.create("Contact", LastName="Lovelace", Email="ada@example.com")

    # When they start the device flow and the user approves the code at the double
    status, started = call(crm_runner, "POST", "/crm/integrations/device", token, {"provider": "salesforce"})
    assert status == 201, started
    approved = httpx.post(
        crm_runner.sf.base_url + "/__double__/device/approve",
        json={"user_code": started["user_code"]},
        timeout=10,
    )
    assert approved.status_code == 200, approved.text
    integration_id = started["integration"]["integration_id"]
    status, polled = call(crm_runner, "POST", f"/crm/integrations/{integration_id}/device/poll", token)

    # Then the integration is connected and GET /crm/orgs lists the org
    assert (status, polled["status"]) == (200, "connected"), polled
    status, orgs = call(crm_runner, "GET", "/crm/orgs", token)
    assert status == 200
    assert [(o["provider"], o["org_id"], o["state"]) for o in orgs["items"]] == [
        ("salesforce", crm_runner.sf.org_id, "connected")
    ]
    # And the adapter provider_for builds reads the contact from the double with the sealed token
    assert read_contact(crm_runner, integration_id, contact_id) == {
        "LastName": "Lovelace",
        "Email": "ada@example.com",
    }


WALK = "crm-walk"


def contacts_of(runner: CrmRunner, token: str) -> dict[str, dict[str, Any]]:
    status, page = call(runner, "GET", "/crm/contacts?limit=100", token)
    assert status == 200, page
    return {c["name"]: c for c in page["items"]}


def mail_from_ada(to: str) -> bytes:
    return (
        "From: Ada Lovelace <ada@example.com>\r\n"
        f"To: {to}\r\n"
        "Subject: Renewal terms\r\n"
        "Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n"
        "Message-ID: <renewal-1@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Here are the terms.\r\n"
    ).encode()


@pytest.mark.dovecot
def test_acceptance_walk_two_way_sync_conflict_outbound_message_and_activity_logged_once(
    crm_runner: CrmRunner, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    """Issue 18's acceptance through the runner's HTTP API and the Salesforce double: connect by
    the device flow, sync contacts both ways with a custom field mapped, change one contact on
    both sides and see the policy win and the conflict logged, an outbound message update our
    contact, and an email to a synced contact logged once."""
    runner = crm_runner
    member, admin = runner.token(tenant=WALK, role="member"), runner.token(tenant=WALK, role="admin")
    runner.sf.add_custom_field("Contact", "Region__c", "picklist", picklist=("EMEA", "APAC"))
    # Given Salesforce connected by the device flow
    status, started = call(runner, "POST", "/crm/integrations/device", member, {"provider": "salesforce"})
    assert status == 201, started
    runner.sf.approve_device(started["user_code"])
    integration_id = started["integration"]["integration_id"]
    status, polled = call(runner, "POST", f"/crm/integrations/{integration_id}/device/poll", member)
    assert (status, polled["status"]) == (200, "connected"), polled
    # and a mapping with a custom field, our side winning conflicts
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
    status, saved = call(runner, "PUT", f"/crm/integrations/{integration_id}/mapping", admin, mapping)
    assert status == 200, saved

    # When a contact on each side is synced both ways
    grace = runner.sf.create(
        "Contact", FirstName="Grace", LastName="Hopper", Email="grace@example.com", Region__c="APAC"
    )
    ada = {"name": "Ada Lovelace", "emails": [{"address": "ada@example.com"}], "custom": {"region": "EMEA"}}
    status, created = call(runner, "POST", "/crm/contacts", member, ada)
    assert status == 201, created
    runner.sf.advance(5)
    assert call(runner, "POST", "/crm/sync/contacts", member, {})[0] == 202
    runner.drain(timeout=300)
    # Then each side holds both, the custom field mapped
    ada_remote = next(r for r in runner.sf.records("Contact") if r["Email"] == "ada@example.com")
    assert ada_remote["Region__c"] == "EMEA"
    assert contacts_of(runner, member)["Grace Hopper"]["custom"] == {"region": "APAC"}

    # When Ada is changed on both sides and synced again
    runner.sf.advance(120)
    runner.sf.update("Contact", ada_remote["Id"], Title="Countess")
    status, patched = call(
        runner, "PATCH", f"/crm/contacts/{created['contact_id']}", member, {"title": "Analyst"}
    )
    assert status == 200, patched
    runner.sf.advance(5)
    assert call(runner, "POST", "/crm/sync/contacts", member, {"integration_id": integration_id})[0] == 202
    runner.drain(timeout=300)
    # Then ours won on both sides and the run logged the conflict
    assert runner.sf.record("Contact", ada_remote["Id"])["Title"] == "Analyst"
    assert contacts_of(runner, member)["Ada Lovelace"]["title"] == "Analyst"
    status, logs = call(runner, "GET", f"/crm/integrations/{integration_id}/logs", member)
    assert (status, logs["items"][0]["conflicts"]) == (200, 1), logs

    # When Salesforce changes Grace and sends its outbound message to the webhook
    runner.sf.advance(60)
    runner.sf.update("Contact", grace, Region__c="EMEA")
    soap = envelope(
        polled["integration"]["org_id"], "04k5g000000XYZAAA2", None, runner.sf.base_url, "61.0",
        [("04l5g00000ABCDEAA9", "Contact", {"Id": grace})],
    )  # fmt: skip
    answer = httpx.post(
        runner.url + "/webhooks/salesforce", content=soap, headers={"Content-Type": "text/xml"}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    assert "<Ack>true</Ack>" in answer.text
    runner.drain(timeout=300)
    # Then our contact has the change
    assert contacts_of(runner, member)["Grace Hopper"]["custom"] == {"region": "EMEA"}

    # When mail from Ada reaches a mailbox of the tenant shared at `subject`, and syncs twice
    dovecot_server.append(dovecot_user, "INBOX", mail_from_ada(f"{dovecot_user.name}@example.com"))
    account_id = connect_mailbox(runner, member, dovecot_server, dovecot_user)
    assert call(runner, "PATCH", f"/accounts/{account_id}", member, {"visibility": "subject"})[0] == 200
    runner.drain(timeout=300)
    assert call(runner, "POST", f"/accounts/{account_id}/sync", member)[0] in (200, 202)
    runner.drain(timeout=300)
    # Then it is logged once, as a completed email Task on Ada's Contact
    tasks = [t for t in runner.sf.records("Task") if t["WhoId"] == ada_remote["Id"]]
    assert [(t["Subject"], t["TaskSubtype"]) for t in tasks] == [("Renewal terms", "Email")]
