"""`make mailbox PROVIDER=salesforce|hubspot` (local/crm_seed.py) seeds the doubles `make run`
started, found through the state file the runner writes (local/crm_wiring.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import crm_seed
from local.crm_wiring import write_state
from local.hubspot import HubSpotDouble
from local.salesforce import SalesforceDouble

RUNNER = "http://127.0.0.1:3999"


@pytest.mark.parametrize("provider", ["salesforce", "hubspot"])
def test_seeds_the_running_double_with_the_demo_records_and_push_to_the_runner(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the doubles a runner started, and the state file it wrote
    with SalesforceDouble() as salesforce, HubSpotDouble() as hubspot:
        state = tmp_path / "crm-doubles.json"
        write_state(salesforce, hubspot, RUNNER, state)
        monkeypatch.setattr(crm_seed, "STATE_FILE", state)

        # When make mailbox PROVIDER=... runs
        assert crm_seed.main(["--provider", provider]) == 0

        # Then the double holds the demo contacts with the custom field, and pushes to the runner
        if provider == "salesforce":
            emails = sorted(r["Email"] for r in salesforce.org.records["Contact"].values())
            assert emails == ["carol@customer.example", "dan@supplier.example"]
            assert {r["Tier__c"] for r in salesforce.org.records["Contact"].values()} == {"Gold", "Silver"}
            assert [a.endpoint_url for a in salesforce.outbound.actions.values()] == [
                RUNNER + "/webhooks/salesforce"
            ]
        else:
            assert sorted(c.properties["email"] for c in hubspot.crm.objects["contacts"].values()) == [
                "carol@customer.example",
                "dan@supplier.example",
            ]
            assert hubspot.webhooks.target_url == RUNNER + "/webhooks/hubspot"
        assert "/crm/integrations" in capsys.readouterr().out


def test_without_a_running_make_run_it_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crm_seed, "STATE_FILE", tmp_path / "absent.json")
    assert crm_seed.main(["--provider", "salesforce"]) == 1
