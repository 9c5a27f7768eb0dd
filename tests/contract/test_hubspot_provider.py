"""What only the HubSpot adapter does, on its double: typed property values over HubSpot's string
wire format, its error codes, keyset paging past the search window, batch answers in no order,
lists, email engagements and their unique Message-ID property, and HubSpot's rate-limit policies.
What every CRM does (create/find/update/delete, changes since a watermark, bulk, idempotent
membership, one activity per Message-ID, refresh and reauthorization) is in the shared suite,
`test_crm_provider.py`, which runs this adapter through `crm_providers.hubspot`.

The double runs on a loopback port with a ManualClock; the adapter's `sleep` moves that clock, so
rate-limit waits cost no wall time and the double sees them pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from mailbridge.crm.remote.hubspot import HubSpotProvider, HubSpotSettings
from mailbridge.crm.remote.protocol import (
    CampaignWrite,
    ContactWrite,
    CrmProvider,
    CrmRecordRejected,
    EmailActivity,
    Feature,
)
from mailbridge.errors import ProviderAuthError, ProviderRateLimited
from mailbridge.providers.http import HttpPolicy
from tests.integration.local_hubspot.conftest import REDIRECT, install

FIELDS = ["email", "firstname", "lastname"]


@dataclass
class Portal:
    """The double, its installed app, and the adapter's refresh calls and waits."""

    hubspot: HubSpotDouble
    clock: ManualClock
    app: App
    refresh_token: str
    access_token: str
    refreshes: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def refresh(self) -> str:
        self.refreshes.append("refresh")
        answer = httpx.post(
            self.hubspot.token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "refresh_token": self.refresh_token,
            },
        )
        if answer.status_code != 200:
            raise ProviderAuthError("the refresh token was refused", code="refresh_refused")
        token: str = answer.json()["access_token"]
        return token

    def provider(
        self, *, sleep: Callable[[float], None] | None = None, page_size: int = 100
    ) -> HubSpotProvider:
        def wait(seconds: float) -> None:
            self.waits.append(seconds)
            self.clock.advance(seconds)

        return HubSpotProvider(
            self.access_token,
            self.refresh,
            HubSpotSettings(api_url=self.hubspot.api_url, page_size=page_size),
            policy=HttpPolicy(local_mode=True),
            sleep=sleep or wait,
            now=self.clock.now,
        )


def start(double: HubSpotDouble, clock: ManualClock) -> Portal:
    app = double.register_app([REDIRECT])
    tokens = install(double, app, scope=" ".join(app.scopes))
    return Portal(double, clock, app, tokens["refresh_token"], tokens["access_token"])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def portal(clock: ManualClock) -> Iterator[Portal]:
    with HubSpotDouble(clock=clock, seed=7) as double:
        yield start(double, clock)


def write(key: str, remote_id: str | None = None, **fields: str | int | float | bool | None) -> ContactWrite:
    return ContactWrite(key=key, remote_id=remote_id, fields=fields)


# ---------------------------------------------------------------------------- shape and fields


def test_it_is_a_crm_provider_with_lists_and_no_device_flow(portal: Portal):
    # Given the adapter
    provider = portal.provider()
    # Then it implements the protocol and says what HubSpot offers
    assert isinstance(provider, CrmProvider)
    assert Feature.LISTS in provider.features()
    assert Feature.BULK in provider.features()
    assert Feature.DEVICE_FLOW not in provider.features()
    assert Feature.CAMPAIGNS not in provider.features()


def test_contact_fields_map_types_custom_read_only_and_options(portal: Portal):
    # Given custom properties made in HubSpot's settings
    portal.hubspot.add_property("contacts", "seats", type_="number", field_type="number")
    portal.hubspot.add_property(
        "contacts", "tier", type_="enumeration", field_type="select", options=["gold", "silver"]
    )
    portal.hubspot.add_property("contacts", "vip", type_="bool", field_type="booleancheckbox")
    # When the adapter reads the contact fields
    fields = {f.name: f for f in portal.provider().contact_fields()}
    # Then types, custom flags, updateability and options follow the properties API
    assert (fields["email"].type, fields["email"].custom, fields["email"].updateable) == (
        "email",
        False,
        True,
    )
    assert fields["phone"].type == "phone"
    assert fields["seats"].type == "number"
    assert fields["seats"].custom is True
    assert (fields["tier"].type, fields["tier"].options) == ("picklist", ["gold", "silver"])
    assert fields["vip"].type == "boolean"
    assert fields["lastmodifieddate"].type == "datetime"
    assert fields["lastmodifieddate"].updateable is False
    assert fields["lifecyclestage"].type == "picklist"


# ---------------------------------------------------------------------------- one contact


def test_create_find_by_email_update_and_typed_values(portal: Portal):
    # Given custom number, bool, date and datetime properties
    portal.hubspot.add_property("contacts", "seats", type_="number", field_type="number")
    portal.hubspot.add_property("contacts", "vip", type_="bool", field_type="booleancheckbox")
    portal.hubspot.add_property("contacts", "renewal", type_="date", field_type="date")
    portal.hubspot.add_property("contacts", "last_call", type_="datetime", field_type="date")
    provider = portal.provider()
    # When a contact is created with typed values
    made = provider.save_contact(
        write(
            "c1",
            email="ada@example.com",
            firstname="Ada",
            seats=12,
            vip=True,
            renewal="2030-05-01",
            last_call="2030-01-01T08:30:00Z",
        )
    )
    # Then it is created, and found by email in any case with the same Python types back
    assert (made.state, made.created, made.key) == ("succeeded", True, "c1")
    stored = portal.hubspot.object("contacts", str(made.remote_id)).properties
    midnight = int(datetime(2030, 5, 1, tzinfo=UTC).timestamp() * 1000)
    assert stored["renewal"] == str(midnight)  # midnight UTC in epoch ms went over the wire
    assert stored["vip"] == "true"
    found = provider.find_contact_by_email(
        "ADA@example.com", ["email", "seats", "vip", "renewal", "last_call"]
    )
    assert found is not None
    assert found.remote_id == made.remote_id
    assert found.fields == {
        "email": "ada@example.com",
        "seats": 12,
        "vip": True,
        "renewal": "2030-05-01",
        "last_call": "2030-01-01T08:30:00.000Z",
    }
    # When it is updated (a value cleared, another changed)
    portal.clock.advance(60)
    updated = provider.save_contact(write("c1", made.remote_id, firstname=None, seats=13.5))
    # Then the change is read back by id, with the new modification time
    assert (updated.state, updated.created) == ("succeeded", False)
    got = provider.get_contact(str(made.remote_id), ["firstname", "seats"])
    assert got is not None
    assert got.fields == {"firstname": None, "seats": 13.5}
    assert got.modified_at == datetime(2030, 1, 1, 9, 1, tzinfo=UTC)
    assert provider.find_contact_by_email("nobody@example.com", FIELDS) is None


def test_refused_records_are_failed_results_without_their_values(portal: Portal):
    # Given a contact
    provider = portal.provider()
    first = provider.save_contact(write("c1", email="ada@example.com"))
    # When the same email, a bad email, a bad number and a missing id are saved
    duplicate = provider.save_contact(write("c2", email="ADA@example.com"))
    bad_email = provider.save_contact(write("c3", email="not-an-address"))
    bad_number = provider.save_contact(write("c4", email="b@example.com", hs_object_id="x"))
    missing = provider.save_contact(write("c5", "12345", firstname="X"))
    # Then each is a failed result with HubSpot's code, the taken email's owner, and no value
    assert (duplicate.state, duplicate.error_code, duplicate.remote_id) == (
        "failed",
        "CONFLICT",
        first.remote_id,
    )
    assert (bad_email.state, bad_email.error_code) == ("failed", "INVALID_EMAIL")
    assert bad_email.error_message == "INVALID_EMAIL: email"
    assert bad_number.state == "failed"
    assert missing.error_code == "OBJECT_NOT_FOUND"
    for result in (duplicate, bad_email, bad_number, missing):
        assert "ada@" not in (result.error_message or "").lower()
        assert "not-an-address" not in (result.error_message or "")
    assert len(portal.hubspot.crm.objects["contacts"]) == 1


def test_a_value_that_does_not_fit_its_type_fails_without_a_request(portal: Portal):
    # Given a custom date property, and the field types already read
    portal.hubspot.add_property("contacts", "renewal", type_="date", field_type="date")
    provider = portal.provider()
    provider.contact_fields()
    before = provider.requests
    # When a contact with an impossible date and one with a non-boolean flag are saved
    bad_date = provider.save_contact(write("c1", email="a@example.com", renewal="2030-13-01"))
    bulk = list(provider.bulk_save_contacts([write("c2", email="b@example.com", renewal="soon")]))
    # Then both are failed with the type's code, and nothing went to HubSpot
    assert (bad_date.state, bad_date.error_code, bad_date.error_message) == (
        "failed",
        "INVALID_DATE",
        "INVALID_DATE: renewal",
    )
    assert [(r.key, r.error_code) for r in bulk] == [("c2", "INVALID_DATE")]
    assert provider.requests == before
    assert portal.hubspot.crm.objects["contacts"] == {}


# ---------------------------------------------------------------------------- changes


def test_archived_contacts_come_after_the_live_changes(portal: Portal):
    # (The shared suite checks what a run returns; the order is HubSpot's own: search has no
    # archived contacts and the archived listing has no filter, so deletions are listed last.)
    # Given three contacts, synced once
    hubspot, clock = portal.hubspot, portal.clock
    ids = [hubspot.create("contacts", email=f"p{i}@example.com") for i in range(3)]
    provider = portal.provider()
    first = provider.changed_contacts(None, ["email"])
    while first.next_page:
        first = provider.changed_contacts(None, ["email"], first.next_page)
    watermark = first.watermark
    # When, later, one is edited, one archived and one created
    clock.advance(5)
    hubspot.update("contacts", ids[0], firstname="Edited")
    clock.advance(1)
    hubspot.delete("contacts", ids[1])
    clock.advance(1)
    new = hubspot.create("contacts", email="new@example.com")
    changes = list(provider.bulk_changed_contacts(watermark, ["email", "firstname"]))
    # Then exactly those three come back, oldest first, the archived one marked deleted
    assert [(c.remote_id, c.deleted) for c in changes] == [(ids[0], False), (new, False), (ids[1], True)]
    assert changes[0].fields == {"email": "p0@example.com", "firstname": "Edited"}
    assert changes[2].modified_at == datetime(2030, 1, 1, 9, 0, 6, tzinfo=UTC)
    # And from the watermark reached, nothing is new
    assert list(provider.bulk_changed_contacts(provider.last_watermark, ["email"])) == []


def test_changes_past_the_search_window_with_equal_timestamps_lose_and_repeat_nothing(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
):
    # Given a search that stops at 60 results per query, and 230 contacts of which 70 share one
    # timestamp, 40 another, the rest one a second
    monkeypatch.setattr("local.hubspot.crm.MAX_SEARCH_RESULTS", 60)
    hubspot, clock = portal.hubspot, portal.clock
    made: list[str] = []
    for i in range(70):
        made.append(hubspot.create("contacts", email=f"a{i}@example.com"))
    for i in range(120):
        clock.advance(1)
        made.append(hubspot.create("contacts", email=f"b{i}@example.com"))
        if i == 59:
            made += [hubspot.create("contacts", email=f"t{j}@example.com") for j in range(40)]
    # When every change is pulled 25 at a time
    provider = portal.provider(page_size=25)
    pulled = list(provider.bulk_changed_contacts(None, ["email"]))
    # Then every contact comes once, in modification order
    assert sorted(c.remote_id for c in pulled) == sorted(made)
    assert len(pulled) == len(made)
    stamps = [c.modified_at for c in pulled]
    assert stamps == sorted(stamps)
    # And HubSpot's five-searches-a-second limit was waited out, not failed on
    assert 1.0 in portal.waits


# ---------------------------------------------------------------------------- bulk


def test_batch_of_250_with_3_bad_rows_reports_247_and_3_by_key(portal: Portal):
    # Given 250 new contacts, rows 10, 150 and 249 with a bad email, and answers in no order
    portal.hubspot.shuffle_batch_results = True
    bad = {10, 150, 249}
    rows = [
        write(f"k{i}", email=f"bad{i}-at-example.com" if i in bad else f"p{i}@example.com", lastname=f"L{i}")
        for i in range(250)
    ]
    provider = portal.provider()
    # When they are saved in bulk
    results = list(provider.bulk_save_contacts(iter(rows)))
    # Then one result per row, in row order, 247 created and 3 failed, each id the row's record
    assert [r.key for r in results] == [f"k{i}" for i in range(250)]
    failed = [r.key for r in results if r.state == "failed"]
    assert failed == ["k10", "k150", "k249"]
    assert {r.error_code for r in results if r.state == "failed"} == {"INVALID_EMAIL"}
    for i, result in enumerate(results):
        if i not in bad:
            stored = portal.hubspot.object("contacts", str(result.remote_id)).properties
            assert (stored["email"], stored["lastname"], result.created) == (
                f"p{i}@example.com",
                f"L{i}",
                True,
            )
    assert len(portal.hubspot.crm.objects["contacts"]) == 247


def test_batch_updates_match_by_id_and_report_missing_records(portal: Portal):
    # Given twelve contacts, and answers in no order
    portal.hubspot.shuffle_batch_results = True
    ids = [portal.hubspot.create("contacts", email=f"p{i}@example.com") for i in range(12)]
    provider = portal.provider()
    # When they are updated in one batch with one id that does not exist
    writes = [write(f"k{i}", remote_id, lastname=f"New{i}") for i, remote_id in enumerate(ids)]
    results = list(provider.bulk_save_contacts([*writes, write("gone", "99999", lastname="X")]))
    # Then each row's result names its own contact, which got that row's value, and the missing
    # one is a failed result
    assert [(r.key, r.state, r.remote_id) for r in results] == [
        *((f"k{i}", "succeeded", remote_id) for i, remote_id in enumerate(ids)),
        ("gone", "failed", None),
    ]
    assert results[-1].error_code == "OBJECT_NOT_FOUND"
    for i, remote_id in enumerate(ids):
        assert portal.hubspot.object("contacts", remote_id).properties["lastname"] == f"New{i}"


# ---------------------------------------------------------------------------- lists and activity


def test_campaign_is_a_manual_list_found_by_id_and_renamed(portal: Portal):
    # Given a campaign made as a static list, and two contacts
    provider = portal.provider()
    made = provider.save_campaign(CampaignWrite(key="camp1", name="Spring launch"))
    a = portal.hubspot.create("contacts", email="a@example.com")
    b = portal.hubspot.create("contacts", email="b@example.com")
    list_id = str(made.remote_id)
    # When members are added with one unknown id (repeats and removals: the shared suite)
    once = provider.set_campaign_members(list_id, [a, b, "424242"], [])
    # Then the list is MANUAL, and only the unknown id failed
    assert made.created is True
    assert portal.hubspot.crm.lists[int(list_id)].processing_type == "MANUAL"
    assert (once.added, [f.key for f in once.failed]) == ([a, b], ["424242"])
    assert portal.hubspot.list_members(list_id) == [a, b]
    # And an existing list is recognised by id, and renamed when our campaign was
    again = provider.save_campaign(CampaignWrite(key="camp1", remote_id=list_id, name="Spring launch"))
    renamed = provider.save_campaign(CampaignWrite(key="camp1", remote_id=list_id, name="Summer launch"))
    assert (again.state, again.created) == ("succeeded", False)
    assert (renamed.state, renamed.remote_id) == ("succeeded", list_id)
    assert portal.hubspot.crm.lists[int(list_id)].name == "Summer launch"
    gone = provider.save_campaign(CampaignWrite(key="camp2", remote_id="98765", name="X"))
    assert (gone.state, gone.error_code) == ("failed", "OBJECT_NOT_FOUND")


def test_an_email_engagement_is_associated_and_found_by_a_second_mailbox(portal: Portal):
    # Given a contact, and two mailboxes' adapters
    contact = portal.hubspot.create("contacts", email="ada@example.com")
    first, second = portal.provider(), portal.provider()
    activity = EmailActivity(
        message_id="<m1/x@mail.example>",
        subject="Hello",
        sent_at=datetime(2030, 1, 1, 8, 0, tzinfo=UTC),
        direction="outgoing",
        from_address="me@example.com",
        to_addresses=["ada@example.com"],
        body_preview="Hi Ada",
        remote_contact_ids=[contact],
    )
    # When both log the same email
    logged = first.log_email(activity)
    before = second.requests
    again = second.log_email(activity)
    # Then one engagement exists, associated to the contact, and the second call found it
    assert logged.created is True
    assert (again.remote_id, again.created) == (logged.remote_id, False)
    emails = portal.hubspot.crm.objects["emails"]
    assert list(emails) == [int(logged.remote_id)]
    stored = emails[int(logged.remote_id)].properties
    assert (stored["hs_email_direction"], stored["hs_email_subject"]) == ("EMAIL", "Hello")
    assert stored["hs_timestamp"] == "2030-01-01T08:00:00.000Z"
    assert portal.hubspot.associated("emails", logged.remote_id, "contacts") == [contact]
    assert second.requests - before == 2  # the property check, then the lookup
    # When an email names a contact that does not exist
    with pytest.raises(CrmRecordRejected):
        first.log_email(activity.model_copy(update={"message_id": "<m2@x>", "remote_contact_ids": ["777"]}))


def test_a_writer_that_lost_the_race_returns_the_first_engagement(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
):
    # Given an email logged by one mailbox, and a second mailbox whose lookup misses it once
    # (both looked before either created)
    contact = portal.hubspot.create("contacts", email="ada@example.com")
    activity = EmailActivity(
        message_id="<race@mail.example>",
        sent_at=datetime(2030, 1, 1, 8, 0, tzinfo=UTC),
        direction="incoming",
        from_address="ada@example.com",
        remote_contact_ids=[contact],
    )
    logged = portal.provider().log_email(activity)
    crm, real_get = portal.hubspot.crm, portal.hubspot.crm.get
    missed: list[str] = []

    def get_missing_once(kind, object_id, id_property=None, archived=False):
        if id_property == "mailbridge_message_id" and not missed:
            missed.append(object_id)
            return real_get(kind, "0", None, archived)  # 404, as before the first create
        return real_get(kind, object_id, id_property, archived)

    monkeypatch.setattr(crm, "get", get_missing_once)
    # When the second mailbox logs it
    again = portal.provider().log_email(activity)
    # Then HubSpot refused the duplicate (unique Message-ID) and the first engagement is returned
    assert missed == ["<race@mail.example>"]
    assert (again.remote_id, again.created) == (logged.remote_id, False)
    assert len(portal.hubspot.crm.objects["emails"]) == 1


# ---------------------------------------------------------------------------- tokens and limits


def test_429_waits_the_rate_limit_interval_then_gives_up_with_retry_after(clock: ManualClock):
    # Given a portal allowing 2 requests per 10 seconds
    with HubSpotDouble(clock=clock, seed=3, requests_per_10s=2) as double:
        portal = start(double, clock)
        contact = double.create("contacts", email="ada@example.com")
        provider = portal.provider()
        # When three reads go out (after the one properties read) with time passing while it waits
        reads = [provider.get_contact(contact, FIELDS) for _ in range(3)]
        # Then the second read waited the 10-second interval and all went through
        assert all(r is not None for r in reads)
        assert portal.waits == [10.0]
        # When time does not pass (HubSpot keeps refusing)
        stuck: list[float] = []
        frozen = portal.provider(sleep=stuck.append)
        with pytest.raises(ProviderRateLimited) as raised:
            frozen.get_contact(contact, FIELDS)
        # Then it waited its bounded number of times and says when to come back
        assert stuck == [10.0, 10.0, 10.0]
        assert raised.value.retry_after == 10.0


def test_the_daily_limit_is_not_waited_for():
    # Given a private app allowed 2 requests a day, at 21:00 UTC
    late = ManualClock(datetime(2030, 1, 1, 21, 0, tzinfo=UTC))
    with HubSpotDouble(clock=late, seed=4, app_type="private", daily_limit=2) as double:
        portal = start(double, late)
        contact = double.create("contacts", email="ada@example.com")
        provider = portal.provider()
        assert provider.get_contact(contact, FIELDS) is not None  # the properties read and this one
        # When the day's allowance is used up
        with pytest.raises(ProviderRateLimited) as raised:
            provider.get_contact(contact, FIELDS)
        # Then the adapter does not wait; it says to come back at midnight UTC
        assert portal.waits == []
        assert raised.value.retry_after == 3 * 3600
