"""The `CrmProvider` contract, run against every adapter on its local double (crm_providers.py).

Each test names an observable behaviour of the protocol: what the CRM ends up holding, what the
adapter answers, or the typed error it raises.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailbridge.crm.remote.protocol import (
    CampaignWrite,
    ContactWrite,
    CrmProvider,
    EmailActivity,
    Feature,
    RemoteContact,
)
from mailbridge.errors import ProviderAuthError, ProviderRateLimited
from tests.contract.crm_providers import CrmHarness
from tests.emf import emitted


def pull_all(
    provider: CrmProvider, since: str | None, fields: list[str]
) -> tuple[list[RemoteContact], str | None]:
    contacts: list[RemoteContact] = []
    page = provider.changed_contacts(since, fields)
    contacts += page.contacts
    while page.next_page is not None:
        page = provider.changed_contacts(since, fields, page.next_page)
        contacts += page.contacts
    return contacts, page.watermark


def test_features_and_contact_fields(crm: CrmHarness, provider: CrmProvider):
    # When the adapter describes the CRM's contact fields
    fields = {f.name: f for f in provider.contact_fields()}
    # Then standard and custom fields come with their types, and the custom picklist its values
    assert fields[crm.email_field].type == "email"
    assert {f.name for f in fields.values() if f.required} == crm.required_fields
    name, options = crm.custom_picklist
    assert fields[name].custom
    assert fields[name].type == "picklist"
    assert fields[name].options == options
    assert {Feature.BULK, Feature.EMAIL_ACTIVITY, Feature.CUSTOM_FIELDS} <= provider.features()


def test_create_then_find_by_email_and_get(crm: CrmHarness, provider: CrmProvider):
    # Given a contact created through the adapter
    created = provider.save_contact(
        ContactWrite(key="c-1", fields=crm.contact("Ada.Lovelace@example.com", "Lovelace", "Ada"))
    )
    assert (created.key, created.state, created.created) == ("c-1", "succeeded", True)
    assert created.remote_id
    # When it is looked up by email in another case, and by id
    found = provider.find_contact_by_email("ada.lovelace@EXAMPLE.com", [crm.last_name_field])
    got = provider.get_contact(created.remote_id, [crm.last_name_field, crm.email_field])
    # Then both find it with its fields
    assert found is not None
    assert found.remote_id == created.remote_id
    assert found.fields[crm.last_name_field] == "Lovelace"
    assert got is not None
    assert got.fields[crm.email_field] == "Ada.Lovelace@example.com"
    assert not got.deleted
    assert provider.find_contact_by_email("nobody@example.com", [crm.last_name_field]) is None


def test_find_by_email_returns_the_oldest_of_several(crm: CrmHarness, provider: CrmProvider):
    # Given two contacts with one address, made a minute apart
    older = provider.save_contact(ContactWrite(key="c-6", fields=crm.contact("twice@example.com", "Older")))
    crm.advance(60)
    provider.save_contact(ContactWrite(key="c-7", fields=crm.contact("twice@example.com", "Newer")))
    # When the address is looked up
    found = provider.find_contact_by_email("twice@example.com", [crm.last_name_field])
    # Then the older contact is the one returned
    assert found is not None
    assert found.remote_id == older.remote_id


def test_find_by_email_treats_quotes_as_data(crm: CrmHarness, provider: CrmProvider):
    # Given a contact whose address holds a quote and a backslash
    odd = "o'brien\\x@example.com"
    created = provider.save_contact(ContactWrite(key="c-2", fields=crm.contact(odd, "OBrien")))
    other = provider.save_contact(ContactWrite(key="c-3", fields=crm.contact("else@example.com", "Else")))
    # When it is found by that address, and by an address that tries to widen the query
    found = provider.find_contact_by_email(odd, [crm.last_name_field])
    widened = provider.find_contact_by_email("x' OR Email != 'x", [crm.last_name_field])
    # Then the exact one is found, and the attempt matches nothing
    assert found is not None
    assert found.remote_id == created.remote_id
    assert widened is None
    assert other.state == "succeeded"


def test_update_changes_the_record(crm: CrmHarness, provider: CrmProvider):
    # Given a contact
    created = provider.save_contact(ContactWrite(key="c-4", fields=crm.contact("up@example.com", "Before")))
    assert created.remote_id is not None
    crm.advance(5)
    # When it is saved again with its remote id
    updated = provider.save_contact(
        ContactWrite(key="c-4", remote_id=created.remote_id, fields={crm.last_name_field: "After"})
    )
    # Then the CRM holds the new value and no second record was made
    assert (updated.state, updated.created, updated.remote_id) == ("succeeded", False, created.remote_id)
    assert crm.value_of(created.remote_id, crm.last_name_field) == "After"
    found = provider.find_contact_by_email("up@example.com", [crm.last_name_field])
    assert found is not None
    assert found.remote_id == created.remote_id


def test_delete_twice(crm: CrmHarness, provider: CrmProvider):
    # Given a contact
    created = provider.save_contact(ContactWrite(key="c-5", fields=crm.contact("del@example.com", "Gone")))
    assert created.remote_id is not None
    # When it is deleted twice
    first = provider.delete_contact(created.remote_id)
    second = provider.delete_contact(created.remote_id)
    # Then the first delete removes it and the second finds it already gone
    assert (first, second) == (True, False)
    assert provider.get_contact(created.remote_id, [crm.last_name_field]) is None


def test_refused_record_is_reported_not_raised(crm: CrmHarness, provider: CrmProvider):
    # Given a record the CRM refuses
    fields, value = crm.refused_contact()
    # When it is saved
    result = provider.save_contact(ContactWrite(key="bad-1", fields=fields))
    # Then the result says failed with the CRM's code, and the message does not quote the value
    assert (result.key, result.state) == ("bad-1", "failed")
    assert result.error_code
    assert value not in (result.error_message or "")


def test_changes_since_a_watermark_include_updates_and_deletions(crm: CrmHarness, provider: CrmProvider):
    # Given two contacts already pulled
    a, b = crm.user_creates(2)
    fields = [crm.last_name_field]
    first, watermark = pull_all(provider, None, fields)
    assert {c.remote_id for c in first} == {a, b}
    # When one changes, the other is deleted and a third is made, later
    crm.advance(10)
    crm.user_updates(a, "Changed")
    crm.advance(1)
    crm.user_deletes(b)
    crm.advance(1)
    (c,) = crm.user_creates(1)
    changes, later = pull_all(provider, watermark, fields)
    # Then exactly those three come back once each, the changes oldest first, the deletion marked
    # (where a deletion falls in the order is the CRM's: see each adapter's own tests)
    assert sorted(x.remote_id for x in changes) == sorted([a, b, c])
    assert [x.remote_id for x in changes if not x.deleted] == [a, c]
    assert [x.remote_id for x in changes if x.deleted] == [b]
    assert changes[0].fields[crm.last_name_field] == "Changed"
    # And nothing is left after the new watermark
    assert pull_all(provider, later, fields)[0] == []


def test_equal_timestamps_across_a_page_boundary_are_neither_lost_nor_repeated(
    crm: CrmHarness, provider: CrmProvider
):
    # Given more contacts than a page holds, all modified at the same instant
    made = crm.user_creates(crm.page_size + 50)
    fields = [crm.last_name_field]
    # When a run reads only the first page and stores its watermark, and the next run resumes from it
    page = provider.changed_contacts(None, fields)
    assert page.next_page is not None
    assert len(page.contacts) == crm.page_size
    rest, _ = pull_all(provider, page.watermark, fields)
    # Then the second run returns exactly the contacts the first page did not
    first_ids = [c.remote_id for c in page.contacts]
    rest_ids = [c.remote_id for c in rest]
    assert len(rest_ids) == 50
    assert not set(first_ids) & set(rest_ids)
    assert set(first_ids) | set(rest_ids) == set(made)


def test_a_change_made_while_pages_are_read_is_not_lost(crm: CrmHarness, provider: CrmProvider):
    # Given more contacts than a page holds, and a run that has read the first page
    made = crm.user_creates(crm.page_size + 50)
    fields = [crm.last_name_field]
    page = provider.changed_contacts(None, fields)
    first_ids = {c.remote_id for c in page.contacts}
    # When, before the run reads on, a contact already delivered changes, then every undelivered one
    crm.advance(5)
    early = page.contacts[0].remote_id
    crm.user_updates(early, "ChangedEarly")
    crm.advance(5)
    for remote_id in set(made) - first_ids:
        crm.user_updates(remote_id, "ChangedLate")
    rest_of_run: list[RemoteContact] = []
    while page.next_page is not None:
        page = provider.changed_contacts(None, fields, page.next_page)
        rest_of_run += page.contacts
    # Then the rest of this run or the next run, from the watermark this one ended on, brings
    # the early change (a CRM whose pages are fresh queries delivers it in this run)
    later, _ = pull_all(provider, page.watermark, fields)
    delivered = [c.fields[crm.last_name_field] for c in rest_of_run + later if c.remote_id == early]
    assert "ChangedEarly" in delivered


def test_bulk_save_of_1000_with_3_bad_rows(crm: CrmHarness, provider: CrmProvider):
    # Given 1,000 new contacts, three of them refused by the CRM
    bad = {17, 500, 998}
    refused, _ = crm.refused_contact()
    writes = [
        ContactWrite(
            key=f"k{i}",
            fields=refused if i in bad else crm.contact(f"bulk{i}@example.com", f"Bulk{i:04d}"),
        )
        for i in range(1000)
    ]
    # When they are saved in bulk
    results = list(provider.bulk_save_contacts(iter(writes)))
    # Then each record has exactly one result, 997 succeeded and the 3 refused ones failed
    by_key = {r.key: r for r in results}
    assert len(results) == len(by_key) == 1000
    failed = {k for k, r in by_key.items() if r.state == "failed"}
    assert failed == {f"k{i}" for i in bad}
    assert sum(r.state == "succeeded" and r.created for r in results) == 997
    # And each success names the record made from that key's row
    assert crm.value_of(by_key["k42"].remote_id or "", crm.last_name_field) == "Bulk0042"
    assert crm.value_of(by_key["k999"].remote_id or "", crm.email_field) == "bulk999@example.com"


def test_bulk_update_and_bulk_pull(crm: CrmHarness, provider: CrmProvider):
    # Given 300 contacts in the CRM
    ids = crm.user_creates(300)
    crm.advance(5)
    # When 300 are updated in bulk by remote id, then everything changed is pulled in bulk
    writes = [
        ContactWrite(key=f"u{i}", remote_id=rid, fields={crm.last_name_field: f"Bulk{i:04d}"})
        for i, rid in enumerate(ids)
    ]
    results = {r.key: r for r in provider.bulk_save_contacts(writes)}
    pulled = list(provider.bulk_changed_contacts(None, [crm.last_name_field]))
    # Then each update landed on its own record
    assert all(r.state == "succeeded" and not r.created for r in results.values())
    assert [results[f"u{i}"].remote_id for i in range(300)] == ids
    assert crm.value_of(ids[7], crm.last_name_field) == "Bulk0007"
    # And the pull returns every contact with its new value, and a watermark past all of them
    assert {c.remote_id: c.fields[crm.last_name_field] for c in pulled} == {
        rid: f"Bulk{i:04d}" for i, rid in enumerate(ids)
    }
    assert pull_all(provider, provider.last_watermark, [crm.last_name_field])[0] == []


def test_campaign_membership_is_idempotent(crm: CrmHarness, provider: CrmProvider):
    # Given a campaign and two contacts
    campaign = provider.save_campaign(CampaignWrite(key="camp-1", name="Spring launch", status="Planned"))
    assert campaign.state == "succeeded"
    assert campaign.remote_id
    a, b = crm.user_creates(2)
    # When both are added twice, then one is removed twice
    first = provider.set_campaign_members(campaign.remote_id, [a, b], [])
    again = provider.set_campaign_members(campaign.remote_id, [a, b], [])
    assert crm.campaign_members(campaign.remote_id) == {a, b}
    removed = provider.set_campaign_members(campaign.remote_id, [], [a])
    removed_again = provider.set_campaign_members(campaign.remote_id, [], [a])
    # Then adding an existing member is no error, and removal reports only what it removed
    assert set(first.added) == set(again.added) == {a, b}
    assert first.failed == again.failed == []
    assert (removed.removed, removed_again.removed) == ([a], [])
    assert crm.campaign_members(campaign.remote_id) == {b}


def test_email_logged_once_per_message_id(crm: CrmHarness, provider: CrmProvider):
    # Given a contact and an email to it
    (contact,) = crm.user_creates(1)
    activity = EmailActivity(
        message_id="<abc.123@mail.example.com>",
        subject="Proposal",
        sent_at=datetime(2030, 1, 1, 8, 30, tzinfo=UTC),
        direction="outgoing",
        from_address="me@example.com",
        to_addresses=["same0@example.com"],
        body_preview="Hello",
        remote_contact_ids=[contact],
    )
    # When it is logged twice (a retry, or a second mailbox that saw it)
    first = provider.log_email(activity)
    second = provider.log_email(activity)
    # Then the CRM holds one activity for it, and the second call points at the same one
    assert (first.created, second.created) == (True, False)
    assert first.remote_id == second.remote_id
    assert crm.activities(activity.message_id) == 1
    # And another Message-ID logs a new one
    other = provider.log_email(activity.model_copy(update={"message_id": "<other@mail.example.com>"}))
    assert other.created
    assert other.remote_id != first.remote_id


def test_expired_token_is_refreshed_once(crm: CrmHarness, provider: CrmProvider):
    # Given a contact and an access token that has since expired
    (contact,) = crm.user_creates(1)
    crm.expire_sessions()
    # When the adapter calls the CRM
    got = provider.get_contact(contact, [crm.last_name_field])
    # Then it refreshed the token once and the call succeeded
    assert got is not None
    assert got.remote_id == contact
    assert crm.refreshes == 1
    assert provider.get_contact(contact, [crm.last_name_field]) is not None
    assert crm.refreshes == 1


def test_revoked_access_needs_reauthorization(crm: CrmHarness, provider: CrmProvider):
    # Given an admin revoked the app's access
    crm.revoke()
    # When the adapter calls the CRM
    with pytest.raises(ProviderAuthError) as raised:
        provider.find_contact_by_email("a@example.com", [crm.last_name_field])
    # Then it asks for the user to reconnect
    assert raised.value.code == "reauth_required"
    assert crm.refreshes == 1


def test_a_refused_refreshed_token_is_not_refreshed_again(crm: CrmHarness, provider: CrmProvider):
    # Given an expired token, and a refresh that hands out a token the CRM refuses too
    crm.expire_sessions()
    crm.refresh_yields_dead_tokens()
    # When the adapter calls the CRM
    with pytest.raises(ProviderAuthError) as raised:
        provider.find_contact_by_email("a@example.com", [crm.last_name_field])
    # Then it refreshed once, then gave up asking for the user to reconnect
    assert raised.value.code == "reauth_required"
    assert crm.refreshes == 1


def test_rate_limit_raises_with_retry_after(
    crm: CrmHarness, provider: CrmProvider, capsys: pytest.CaptureFixture[str]
):
    # Given the org has spent its API requests
    crm.spend_request_allowance()
    capsys.readouterr()
    # When the adapter calls the CRM
    with pytest.raises(ProviderRateLimited) as raised:
        provider.find_contact_by_email("a@example.com", [crm.last_name_field])
    # Then the error says when to try again
    assert raised.value.retry_after is not None
    assert raised.value.retry_after > 0
    # And the provider quota alarm's ProviderThrottled counts the CRM's refusal
    throttled = emitted(capsys.readouterr().out, "ProviderThrottled")
    assert {(r["dimensions"]["provider"], r["dimensions"]["reason"]) for r in throttled} == {crm.throttled}
