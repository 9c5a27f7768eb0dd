"""Through the local runner (`python -m local`'s wiring): connect Salesforce by the device flow
with the double's approve control, see the org in `GET /crm/orgs`, then read a contact from the
double through `provider_for` in a process configured like the api function."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest

from local.clock import ManualClock
from local.functions import sandbox_environment
from local.hubspot import HubSpotDouble
from local.runner import Runner
from local.salesforce import SalesforceDouble
from tests.e2e.conftest import ROOT, SharedRunners, call

TENANT = "crm-e2e"


class CrmRunner(Runner):
    """A runner wired to its own Salesforce and HubSpot doubles, started and stopped with it."""

    def __init__(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.sf = SalesforceDouble(clock=ManualClock(now), seed=31)
        self.hs = HubSpotDouble(clock=ManualClock(now), seed=31)
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
