"""Two-way contact sync (mailbridge.crm.sync) on moto with the Salesforce and HubSpot doubles:
field mapping with a custom field, conflicts under each policy (logged, ids only), deletions per
setting, matching by email, echoes of our own writes, redelivery, and the requests it costs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from mailbridge.crm import service as crm_service
from mailbridge.crm.integrations.models import SyncRecord, SyncRun
from mailbridge.crm.integrations.service import IntegrationDeps, provider_for
from mailbridge.crm.integrations.wiring import integration_deps
from mailbridge.crm.models import Contact, ContactCreate, ContactPatch
from mailbridge.crm.remote.protocol import CrmProvider
from mailbridge.crm.sync import service
from mailbridge.crm.sync.models import ContactSync, FieldMapping, SyncSettingsBody, SyncStart
from mailbridge.crm.sync.service import SyncDeps
from mailbridge.crm.sync.wiring import sync_deps
from mailbridge.errors import ProviderRateLimited, Unprocessable
from mailbridge.store.crm import CrmStore
from mailbridge.tenancy import Role, TenantContext
from tests.fixtures.aws import BusReader, FakeLambdaContext, load_function, reset_caches
from tests.integration.crm_integrations_harness import TENANT, CrmStack, crm_stack, reset_crm_caches
from tests.integration.redelivery import bus_seen, sample_record, snapshot, three_deliveries

__all__ = ["crm_stack"]

ADMIN = TenantContext(tenant_id=TENANT, role=Role.ADMIN, subject="user-admin")
MAPPING = [
    FieldMapping(local="first_name", remote="FirstName"),
    FieldMapping(local="last_name", remote="LastName"),
    FieldMapping(local="email", remote="Email"),
    FieldMapping(local="title", remote="Title"),
    FieldMapping(local="custom.region", remote="Region__c"),
]


@dataclass
class Sync:
    crm: CrmStack
    integration_id: str
    deps: SyncDeps
    sent: list[ContactSync] = field(default_factory=list)

    @property
    def sf(self) -> Any:
        return self.crm.salesforce

    def configure(self, **settings: Any) -> None:
        body = SyncSettingsBody(fields=MAPPING, **settings)
        service.put_settings(ADMIN, self.integration_id, body, self.deps)

    def run(self, run_id: str | None = None, remote_ids: list[str] | None = None) -> SyncRun:
        result = service.run(
            ContactSync(
                tenant_id=TENANT, integration_id=self.integration_id, run_id=run_id, remote_ids=remote_ids
            ),
            self.deps,
        )
        assert result is not None
        return result

    def records(self, run: SyncRun) -> list[SyncRecord]:
        return self.deps.integrations.logs.records(TENANT, run)

    def ours(self, name: str, email: str, **extra: Any) -> Contact:
        return crm_service.create_contact(
            ADMIN,
            ContactCreate.model_validate({"name": name, "emails": [{"address": email}], **extra}),
            self.deps.crm,
            None,
            self.crm.clock.now,
        )

    def edit(self, contact_id: str, **changes: Any) -> Contact:
        return crm_service.update_contact(
            ADMIN, contact_id, ContactPatch(**changes), self.deps.crm, None, self.crm.clock.now
        )

    def contact(self, contact_id: str) -> Contact | None:
        return self.deps.crm.get_contact(TENANT, contact_id)

    def by_email(self, email: str) -> Contact | None:
        found = self.deps.crm.find_email(TENANT, email)
        return None if found is None else self.contact(found.contact_id)

    def link_of(self, contact_id: str) -> str | None:
        links = self.deps.integrations.remote_ids.by_contacts(TENANT, self.integration_id, [contact_id])
        return links[contact_id].remote_id if contact_id in links else None

    def remote(self, remote_id: str) -> dict[str, Any]:
        record: dict[str, Any] = self.sf.record("Contact", remote_id)
        return record

    def remote_by_email(self, email: str) -> dict[str, Any] | None:
        return next((r for r in self.sf.records("Contact") if r.get("Email") == email), None)


def mover(crm: CrmStack) -> Callable[[IntegrationDeps, str, str], CrmProvider]:
    """`provider_for` whose waits (bulk job polls, retries) move the doubles' clock instead."""
    return lambda deps, tenant_id, integration_id: provider_for(
        deps, tenant_id, integration_id, sleep=crm.salesforce.advance
    )


@pytest.fixture
def sync(crm_stack: CrmStack) -> Sync:
    crm_stack.salesforce.add_custom_field("Contact", "Region__c", "picklist", picklist=("EMEA", "APAC"))
    crm_stack.salesforce.add_custom_field("Contact", "Score__c", "number")
    integration_id = crm_stack.connect("salesforce")
    sent: list[ContactSync] = []

    def send(messages: Sequence[ContactSync]) -> None:
        sent.extend(messages)

    deps = SyncDeps(
        integrations=integration_deps(),
        crm=CrmStore(crm_stack.stack.deployed.tables["CrmTable"]),
        publisher=None,
        send=send,
        provider=mover(crm_stack),
        now=crm_stack.clock.now,
    )
    return Sync(crm_stack, integration_id, deps, sent)


def test_first_sync_links_by_email_creates_both_ways_and_maps_the_custom_field(sync: Sync) -> None:
    # Given a contact on each side only, and one on both with the same email and values
    sync.configure()
    sf_only = sync.sf.create(
        "Contact", FirstName="Grace", LastName="Hopper", Email="grace@example.com", Region__c="APAC"
    )
    both_remote = sync.sf.create("Contact", FirstName="Alan", LastName="Turing", Email="alan@example.com")
    ours_only = sync.ours("Ada Lovelace", "ada@example.com", title="CTO", custom={"region": "EMEA"})
    both_ours = sync.ours("Alan Turing", "alan@example.com")
    sync.crm.clock.advance(5)

    # When the first sync runs
    run = sync.run()

    # Then the CRM-only contact is ours now, with the custom field mapped
    grace = sync.by_email("grace@example.com")
    assert grace is not None
    assert grace.name == "Grace Hopper"
    assert grace.custom == {"region": "APAC"}
    assert sync.link_of(grace.contact_id) == sf_only
    # and ours is in the CRM with its first/last name, title and region
    remote_id = sync.link_of(ours_only.contact_id)
    assert remote_id is not None
    ada = sync.remote(remote_id)
    assert (ada["FirstName"], ada["LastName"], ada["Title"], ada["Region__c"]) == (
        "Ada",
        "Lovelace",
        "CTO",
        "EMEA",
    )
    # and the pair with one email is linked, not duplicated on either side
    assert sync.link_of(both_ours.contact_id) == both_remote
    assert sum(1 for r in sync.sf.records("Contact") if r["Email"] == "alan@example.com") == 1
    assert run.state == "succeeded"
    assert run.conflicts == 0
    assert run.failed == 0
    status = sync.deps.integrations.logs.status(TENANT, sync.integration_id)
    assert {"contacts", "contacts_push"} <= set(status.watermarks)


def test_a_second_sync_without_changes_writes_nothing_and_our_own_writes_do_not_echo(sync: Sync) -> None:
    # Given a synced pair from each side
    sync.configure()
    sync.sf.create("Contact", LastName="Hopper", Email="grace@example.com")
    ada = sync.ours("Ada Lovelace", "ada@example.com")
    sync.crm.clock.advance(5)
    sync.run()
    grace = sync.by_email("grace@example.com")
    assert grace is not None
    sync.crm.clock.advance(120)
    used_before = sync.sf.api_usage()[0]

    # When it runs again
    run = sync.run()

    # Then nothing was written either side: no records, our contacts unchanged
    assert run.total == 0, sync.records(run)
    assert sync.contact(ada.contact_id) == sync.contact(ada.contact_id)
    assert sync.contact(grace.contact_id).version == grace.version  # type: ignore[union-attr]
    # and it cost the describe, the changes query and nothing per contact
    assert sync.sf.api_usage()[0] - used_before <= 4


@pytest.mark.parametrize(
    ("policy", "ours_later", "winner"),
    [
        ("crm_wins", True, "crm"),
        ("mailbridge_wins", False, "mailbridge"),
        ("newest_wins", True, "mailbridge"),
        ("newest_wins", False, "crm"),
    ],
)
def test_a_contact_changed_on_both_sides_is_settled_by_the_policy_and_logged(
    sync: Sync, policy: str, ours_later: bool, winner: str
) -> None:
    # Given a synced contact
    sync.configure(conflict_policy=policy)
    ada = sync.ours("Ada Lovelace", "ada@example.com", title="CTO")
    sync.crm.clock.advance(5)
    sync.run()
    remote_id = sync.link_of(ada.contact_id)
    assert remote_id is not None
    sync.crm.clock.advance(120)

    # When both sides change its title, in either order
    if ours_later:
        sync.sf.update("Contact", remote_id, Title="Countess")
        sync.crm.clock.advance(10)
        sync.edit(ada.contact_id, title="Analyst")
    else:
        sync.edit(ada.contact_id, title="Analyst")
        sync.crm.clock.advance(10)
        sync.sf.update("Contact", remote_id, Title="Countess")
    sync.crm.clock.advance(5)
    run = sync.run()

    # Then the policy's side wins on both sides
    expected = "Countess" if winner == "crm" else "Analyst"
    assert sync.contact(ada.contact_id).title == expected  # type: ignore[union-attr]
    assert sync.remote(remote_id)["Title"] == expected
    # and the conflict is in the run's log with the winner, without values
    conflicts = [r for r in sync.records(run) if r.state == "conflict"]
    assert [(c.remote_id, c.local_id, c.winner) for c in conflicts] == [(remote_id, ada.contact_id, winner)]
    assert run.conflicts == 1
    assert "Countess" not in str(conflicts)
    assert "Analyst" not in str(conflicts)


def test_one_sided_changes_flow_each_way_without_a_conflict(sync: Sync) -> None:
    sync.configure(conflict_policy="mailbridge_wins")
    ada = sync.ours("Ada Lovelace", "ada@example.com", custom={"region": "EMEA"})
    grace_remote = sync.sf.create("Contact", LastName="Hopper", Email="grace@example.com")
    sync.crm.clock.advance(5)
    sync.run()
    ada_remote = sync.link_of(ada.contact_id)
    assert ada_remote is not None
    sync.crm.clock.advance(120)

    # When the CRM changes one and we change the other
    sync.sf.update("Contact", grace_remote, FirstName="Grace", Region__c="APAC")
    grace = sync.by_email("grace@example.com")
    assert grace is not None
    sync.edit(ada.contact_id, custom={"region": "APAC"}, name="Ada King")
    sync.crm.clock.advance(5)
    run = sync.run()

    # Then each change reaches the other side and no conflict is logged
    grace_after = sync.contact(grace.contact_id)
    assert grace_after is not None
    assert grace_after.name == "Grace Hopper"
    assert grace_after.custom == {"region": "APAC"}
    remote = sync.remote(ada_remote)
    assert (remote["FirstName"], remote["LastName"], remote["Region__c"]) == ("Ada", "King", "APAC")
    assert run.conflicts == 0
    assert run.failed == 0


def test_a_value_the_crm_field_cannot_hold_fails_that_record_only(sync: Sync) -> None:
    sync.configure()
    bad = sync.ours("Bad Region", "bad@example.com", custom={"region": "Mars"})
    good = sync.ours("Good Region", "good@example.com", custom={"region": "EMEA"})
    sync.crm.clock.advance(5)

    run = sync.run()

    assert sync.link_of(good.contact_id) is not None
    assert sync.link_of(bad.contact_id) is None
    failed = [r for r in sync.records(run) if r.state == "failed"]
    assert [(r.local_id, r.error_code) for r in failed] == [(bad.contact_id, "invalid_value")]
    assert run.state == "partial"


@pytest.mark.parametrize("deletions", ["none", "both"])
def test_deletions_propagate_both_ways_only_when_set(sync: Sync, deletions: str) -> None:
    # Given two synced contacts
    sync.configure(deletions=deletions)
    ada = sync.ours("Ada Lovelace", "ada@example.com")
    grace_remote = sync.sf.create("Contact", LastName="Hopper", Email="grace@example.com")
    sync.crm.clock.advance(5)
    sync.run()
    ada_remote = sync.link_of(ada.contact_id)
    grace = sync.by_email("grace@example.com")
    assert ada_remote is not None
    assert grace is not None
    sync.crm.clock.advance(120)

    # When we delete one and the CRM the other
    crm_service.delete_contact(ADMIN, ada.contact_id, sync.deps.crm, None, sync.crm.clock.now)
    sync.sf.delete("Contact", grace_remote)
    sync.crm.clock.advance(5)
    sync.run()

    # Then with `both` each deletion reached the other side; with `none` neither did
    propagated = deletions == "both"
    assert sync.remote(ada_remote)["IsDeleted"] is propagated
    assert (sync.contact(grace.contact_id) is None) is propagated
    # and our deleted contact's pair is unlinked either way (with `none`, the surviving copy of
    # the other is synced again as a new record, so its link may come back to a new CRM record)
    assert sync.link_of(ada.contact_id) is None
    if propagated:
        assert sync.link_of(grace.contact_id) is None
    else:
        assert sync.link_of(grace.contact_id) != grace_remote


def test_a_scheduled_run_stopped_by_the_rate_limit_ends_failed_not_running(sync: Sync) -> None:
    # Given an org whose daily API requests are spent, and a run this message starts (no run_id:
    # the schedule's fan-out or a webhook's pull)
    sync.configure()
    sync.ours("Ada Lovelace", "ada@example.com")
    sync.crm.clock.advance(5)
    used, _daily = sync.sf.api_usage()
    sync.sf.set_daily_api_requests(used)
    # When it runs, the rate limit goes back to the queue for the redelivery
    with pytest.raises(ProviderRateLimited):
        sync.run()
    # Then the run it started is logged as failed with the limit's code, not left running
    runs, _ = sync.deps.integrations.logs.runs(TENANT, sync.integration_id, limit=10)
    assert [(r.state, [e.code for e in r.errors]) for r in runs] == [("failed", ["provider_rate_limited"])]


def test_a_redelivered_run_continues_and_never_doubles(sync: Sync) -> None:
    # Given a run started by the API and delivered once
    sync.configure()
    for n in range(3):
        sync.ours(f"Person {n}", f"p{n}@example.com")
    sync.crm.clock.advance(5)
    started = service.start(ADMIN, SyncStart(integration_id=sync.integration_id), sync.deps)
    run_id = started.runs[0].run_id
    assert [m.run_id for m in sync.sent] == [run_id]
    first = sync.run(run_id)

    # When the same message comes again (after the run ended) and a fresh run follows
    sync.crm.clock.advance(60)
    again = sync.run(run_id)
    sync.crm.clock.advance(120)
    later = sync.run()

    # Then the redelivery did nothing and the CRM holds each contact once
    assert again == first
    assert first.total == 3
    assert later.total == 0
    emails = sorted(r["Email"] for r in sync.sf.records("Contact"))
    assert emails == ["p0@example.com", "p1@example.com", "p2@example.com"]


@pytest.mark.parametrize("kind", ["run", "targeted", "fan_out"])
def test_a_record_delivered_three_times_to_the_function_syncs_once(
    sync: Sync, bus_probe: BusReader, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # Given three contacts of ours and one of the CRM's, and a record for the CrmSyncQueue: a
    # run the API started, a targeted pull of the CRM's contact (what a webhook queues), or the
    # schedule's fan-out to every connected integration
    sync.configure()
    for n in range(3):
        sync.ours(f"Person {n}", f"p{n}@example.com")
    remote_id = sync.sf.create("Contact", LastName="Crm", Email="crm@example.com")
    sync.crm.clock.advance(5)
    if kind == "run":
        service.start(ADMIN, SyncStart(integration_id=sync.integration_id), sync.deps)
        [message] = sync.sent
    elif kind == "targeted":
        message = ContactSync(tenant_id=TENANT, integration_id=sync.integration_id, remote_ids=[remote_id])
    else:
        message = ContactSync()
    event = sample_record("crm-sync", message)
    # And the crmsync function after a cold start with its template environment (the doubles'
    # CRM settings kept), its waits moving the doubles' clock
    crm_env = {k: v for k, v in os.environ.items() if k.startswith(("SALESFORCE_", "HUBSPOT_", "OAUTH_"))}
    for name, value in {**sync.crm.stack.env("CrmSyncFunction"), **crm_env}.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    reset_crm_caches()
    sync_deps.cache_clear()
    function = load_function("crmsync")
    deps = sync_deps()
    deps.provider, deps.now = mover(sync.crm), sync.crm.clock.now
    deps.integrations.now, deps.integrations.sleep = sync.crm.clock.now, lambda _seconds: None
    bus = bus_seen(bus_probe)

    def observe() -> tuple[dict[str, Any], list[str], int]:
        emails = sorted(r["Email"] for r in sync.sf.records("Contact"))
        return snapshot(sync.crm.stack, bus), emails, sync.sf.api_usage()[0]

    # When SQS hands the record to the function three times
    deliveries = three_deliveries(lambda e: function.lambda_handler(e, FakeLambdaContext()), event, observe)

    # Then the first delivery acted: pushed our three contacts and ended the run, pulled the
    # CRM's contact, or queued one run of the integration ...
    assert deliveries.results == [{"batchItemFailures": []}] * 3
    (stored_before, before, used_before), (stored_once, once, used_once) = deliveries.before, deliveries.once
    assert stored_once != stored_before
    runs, _ = sync.deps.integrations.logs.runs(TENANT, sync.integration_id, limit=10)
    if kind == "run":
        assert once == ["crm@example.com", "p0@example.com", "p1@example.com", "p2@example.com"]
        assert [(r.state, r.total) for r in runs] == [("succeeded", 4)]
    elif kind == "targeted":
        assert (once, used_once > used_before) == (before, True)
        assert sync.by_email("crm@example.com") is not None
        assert [(r.state, r.total) for r in runs] == [("succeeded", 1)]
    else:
        assert (once, used_once) == (before, used_before)
        assert [r.state for r in runs] == ["running"]
        assert stored_once["queues"]["CrmSyncQueue"] == stored_before["queues"]["CrmSyncQueue"] + 1
    # ... and the other two wrote nothing to the CRM, asked it nothing and stored nothing
    assert deliveries.thrice[1:] == deliveries.once[1:]
    assert deliveries.thrice == deliveries.once
    sync_deps.cache_clear()


def test_a_crash_after_the_crm_write_is_matched_by_email_not_created_twice(sync: Sync) -> None:
    # Given a contact pushed to the CRM whose link was lost (the run died before writing it)
    sync.configure()
    ada = sync.ours("Ada Lovelace", "ada@example.com")
    sync.crm.clock.advance(5)
    sync.run()
    remote_id = sync.link_of(ada.contact_id)
    assert remote_id is not None
    links = sync.deps.integrations.remote_ids.by_contacts(TENANT, sync.integration_id, [ada.contact_id])
    sync.deps.integrations.remote_ids.forget(TENANT, list(links.values()))
    status_item = sync.crm.stack.table("CrmTable")
    status_item.update_item(
        Key={"pk": f"TENANT#{TENANT}", "sk": f"CRMSTATUS#{sync.integration_id}"},
        UpdateExpression="REMOVE watermarks, started",
    )
    sync.crm.clock.advance(120)

    # When the sync runs again
    sync.run()

    # Then the CRM record is linked again, and there is still one
    assert sync.link_of(ada.contact_id) == remote_id
    assert sum(1 for r in sync.sf.records("Contact") if r["Email"] == "ada@example.com") == 1


def test_a_targeted_pull_applies_just_those_records(sync: Sync) -> None:
    sync.configure()
    one = sync.sf.create("Contact", LastName="One", Email="one@example.com")
    sync.crm.clock.advance(5)
    sync.run()
    sync.crm.clock.advance(60)
    sync.sf.update("Contact", one, Title="Boss")
    sync.sf.create("Contact", LastName="Two", Email="two@example.com")
    sync.ours("Three Local", "three@example.com")

    sync.run(remote_ids=[one])

    contact = sync.by_email("one@example.com")
    assert contact is not None
    assert contact.title == "Boss"
    # and nothing else moved either way: the next full run takes those
    assert sync.by_email("two@example.com") is None
    assert sync.remote_by_email("three@example.com") is None


@pytest.mark.parametrize(
    ("mapping", "code"),
    [
        ([FieldMapping(local="email", remote="Nope__c")], "unknown_remote_field"),
        (
            [FieldMapping(local="email", remote="Email"), FieldMapping(local="title", remote="Score__c")],
            "field_type_mismatch",
        ),
        (
            [FieldMapping(local="email", remote="Email"), FieldMapping(local="custom.x", remote="Id")],
            "field_not_updateable",
        ),
        (
            [FieldMapping(local="email", remote="Email"), FieldMapping(local="title", remote="email")],
            "duplicate_field_mapping",
        ),
        ([FieldMapping(local="title", remote="Title")], "email_not_mapped"),
    ],
)
def test_a_mapping_the_crm_cannot_take_is_refused_with_a_code(
    sync: Sync, mapping: list[FieldMapping], code: str
) -> None:
    with pytest.raises(Unprocessable) as refused:
        service.put_settings(ADMIN, sync.integration_id, SyncSettingsBody(fields=mapping), sync.deps)
    assert refused.value.code == code
    assert service.get_settings(ADMIN, sync.integration_id, sync.deps).default


def test_hubspot_syncs_with_its_default_mapping(crm_stack: CrmStack) -> None:
    integration_id = crm_stack.connect("hubspot")
    deps = SyncDeps(
        integrations=integration_deps(),
        crm=CrmStore(crm_stack.stack.deployed.tables["CrmTable"]),
        publisher=None,
        send=lambda _messages: None,
        provider=mover(crm_stack),
        now=crm_stack.clock.now,
    )
    body = ContactCreate.model_validate(
        {"name": "Ada Lovelace", "emails": [{"address": "ada@example.com"}], "title": "CTO"}
    )
    ada = crm_service.create_contact(ADMIN, body, deps.crm, None, crm_stack.clock.now)
    crm_stack.clock.advance(5)

    run = service.run(ContactSync(tenant_id=TENANT, integration_id=integration_id), deps)

    assert run is not None
    assert run.succeeded == 1, run
    settings = service.get_settings(ADMIN, integration_id, deps)
    assert settings.default
    assert settings.conflict_policy == "newest_wins"
    links = deps.integrations.remote_ids.by_contacts(TENANT, integration_id, [ada.contact_id])
    remote = crm_stack.hubspot.object("contacts", links[ada.contact_id].remote_id)
    assert (remote.properties["email"], remote.properties["jobtitle"]) == ("ada@example.com", "CTO")
