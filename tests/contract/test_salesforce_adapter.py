"""What only the Salesforce adapter does, on its double: the instance URL check, SOQL literal
escaping, opaque tokens refused when forged, upserts on an external-id key, bulk jobs split by size,
one email Task per contact, and 5xx answers retried."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from mailbridge.crm.remote.protocol import ContactWrite, EmailActivity
from mailbridge.crm.remote.salesforce import (
    SalesforceProvider,
    SalesforceSession,
    soql_string,
)
from mailbridge.errors import Invalid
from mailbridge.providers.http import HttpPolicy, InsecureUrl
from tests.contract.crm_providers import SalesforceHarness, salesforce


def never() -> SalesforceSession:
    raise AssertionError("no refresh expected")


@pytest.fixture
def sf() -> Iterator[SalesforceHarness]:
    with salesforce() as harness:
        assert isinstance(harness, SalesforceHarness)
        yield harness


def with_settings(sf: SalesforceHarness, **changes: object) -> SalesforceProvider:
    """A second adapter on the same org and session, with other settings."""
    old = sf.provider
    return SalesforceProvider(
        old._session,
        sf.refresh,
        settings=replace(old.settings, **changes),  # type: ignore[arg-type]
        policy=HttpPolicy(local_mode=True, max_attempts=3),
        sleep=sf.double.advance,
        jitter=lambda: 0.0,
    )


def test_instance_url_must_be_https_outside_local_mode():
    # When the token answer names an http instance, or one with a path, outside local mode
    # Then the adapter refuses it before any request
    with pytest.raises(InsecureUrl):
        SalesforceProvider(SalesforceSession("t", "http://example.my.salesforce.com"), never)
    with pytest.raises(Invalid) as raised:
        SalesforceProvider(SalesforceSession("t", "https://example.my.salesforce.com/x?y=1"), never)
    assert raised.value.code == "invalid_url"
    # And an https origin is taken as it is
    ok = SalesforceProvider(SalesforceSession("t", "https://example.my.salesforce.com"), never)
    assert ok.name == "salesforce"


def test_soql_string_escapes_quotes_backslashes_and_controls():
    assert soql_string('o\'brien\\x\n"q"') == "'o\\'brien\\\\x\\n\\\"q\\\"'"


def test_forged_watermark_and_page_token_are_refused(sf: SalesforceHarness):
    # When a watermark is not one the adapter made, or a page token points anywhere else
    # Then each is a 4xx-mapped Invalid with its own code, and nothing is requested
    before = sf.requests
    with pytest.raises(Invalid) as bad_watermark:
        sf.provider.changed_contacts("2030-01-01T00:00:00.000Z|x' OR Id != '", ["LastName"])
    with pytest.raises(Invalid) as bad_page:
        sf.provider.changed_contacts(
            None,
            ["LastName"],
            json.dumps(
                {
                    "url": "https://attacker.example/steal",
                    "watermark": None,
                    "ceiling": "2030-01-01T00:00:00.000Z",
                }
            ),
        )
    with pytest.raises(Invalid) as bad_field:
        sf.provider.get_contact("003000000000001AAA", ["LastName FROM User --"])
    assert (bad_watermark.value.code, bad_page.value.code) == ("invalid_watermark", "invalid_page")
    assert bad_field.value.code == "invalid_field_name"
    assert sf.requests == before


def test_a_deletion_comes_in_its_time_order_among_the_changes(sf: SalesforceHarness):
    # (Salesforce's queryAll returns deleted rows with live ones, by SystemModstamp; HubSpot lists
    # deletions last, see test_hubspot_provider.py.)
    # Given two contacts already pulled
    a, b = sf.user_creates(2)
    first = sf.provider.changed_contacts(None, ["LastName"])
    # When one changes, then the other is deleted, then a third is made
    sf.advance(10)
    sf.user_updates(a, "Changed")
    sf.advance(1)
    sf.user_deletes(b)
    sf.advance(1)
    (c,) = sf.user_creates(1)
    changes = sf.provider.changed_contacts(first.watermark, ["LastName"])
    # Then the three come back in the order they happened, the deletion in its place
    assert [(x.remote_id, x.deleted) for x in changes.contacts] == [(a, False), (b, True), (c, False)]
    assert changes.next_page is None


def test_key_field_makes_creates_upserts(sf: SalesforceHarness):
    # Given an External ID field holding our contact id
    sf.double.add_custom_field("Contact", "Mailbridge_Id__c", "text", external_id=True)
    provider = with_settings(sf, key_field="Mailbridge_Id__c")
    # When the same new contact is saved twice (a retried create), one at a time and in bulk
    first = provider.save_contact(ContactWrite(key="our-1", fields={"LastName": "Once"}))
    second = provider.save_contact(ContactWrite(key="our-1", fields={"LastName": "Twice"}))
    bulk = [ContactWrite(key=f"our-{i}", fields={"LastName": f"Bulk{i}"}) for i in range(1, 4)]
    bulk_first = {r.key: r for r in provider.bulk_save_contacts(bulk)}
    bulk_again = {r.key: r for r in provider.bulk_save_contacts(bulk)}
    # Then one record per key exists, and only the first save of a key created it
    assert (first.created, second.created, first.remote_id) == (True, False, second.remote_id)
    assert bulk_first["our-1"].remote_id == first.remote_id
    assert [bulk_first[f"our-{i}"].created for i in range(1, 4)] == [False, True, True]
    assert not any(r.created for r in bulk_again.values())
    assert len(sf.double.records("Contact")) == 3
    assert sf.value_of(first.remote_id or "", "Mailbridge_Id__c") == "our-1"


def test_bulk_input_is_cut_into_jobs_by_record_count(sf: SalesforceHarness):
    # Given an adapter that puts at most 100 rows in a job
    provider = with_settings(sf, bulk_job_max_records=100)
    writes = [ContactWrite(key=f"k{i}", fields={"LastName": f"L{i}"}) for i in range(250)]
    # When 250 contacts are saved in bulk
    results = list(provider.bulk_save_contacts(iter(writes)))
    # Then three ingest jobs ran and every key got its own record
    assert len(sf.double.bulk.ingest) == 3
    assert sorted(r.key for r in results) == sorted(w.key for w in writes)
    assert sf.value_of(next(r.remote_id for r in results if r.key == "k249") or "", "LastName") == "L249"


def test_an_email_logs_one_task_per_contact_once(sf: SalesforceHarness):
    # Given two contacts on one email
    a, b = sf.user_creates(2)
    activity = EmailActivity(
        message_id="<two@mail.example.com>",
        sent_at=datetime(2030, 1, 1, 8, 0, tzinfo=UTC),
        direction="incoming",
        from_address="same0@example.com",
        remote_contact_ids=[a],
    )
    # When it is logged for the first, then for both
    sf.provider.log_email(activity)
    both = sf.provider.log_email(activity.model_copy(update={"remote_contact_ids": [a, b]}))
    # Then each contact has one completed email Task carrying the Message-ID
    tasks = [
        t for t in sf.double.records("Task") if t["Mailbridge_Message_Id__c"] == "<two@mail.example.com>"
    ]
    assert sorted(t["WhoId"] for t in tasks) == sorted([a, b])
    assert {(t["TaskSubtype"], t["Status"]) for t in tasks} == {("Email", "Completed")}
    assert both.created


def test_server_errors_are_retried(sf: SalesforceHarness):
    # Given a contact, and Salesforce answering the next request with 503
    (contact,) = sf.user_creates(1)
    sf.double.fail_next(1, 503)
    # When the adapter reads it
    got = sf.provider.get_contact(contact, ["LastName"])
    # Then the retry returns it
    assert got is not None
    assert got.fields["LastName"] == "Same0000"


def test_an_ingest_job_running_too_long_is_aborted_and_its_rows_reported_unprocessed(sf: SalesforceHarness):
    # Given an adapter that waits for no job
    provider = with_settings(sf, bulk_max_wait=0.0)
    writes = [ContactWrite(key=f"k{i}", fields={"LastName": f"L{i}"}) for i in range(5)]
    # When contacts are saved in bulk
    results = list(provider.bulk_save_contacts(writes))
    # Then the job was aborted, nothing was saved, and each row is reported unprocessed
    assert [(r.key, r.state, r.error_code) for r in results] == [
        (f"k{i}", "unprocessed", "job_aborted") for i in range(5)
    ]
    assert [job.state for job in sf.double.bulk.ingest.values()] == ["Aborted"]
    assert sf.double.records("Contact") == []


def test_a_failed_ingest_job_reports_every_row(sf: SalesforceHarness):
    # Given rows naming a field the org does not have (the job fails as a whole)
    writes = [ContactWrite(key=f"k{i}", fields={"LastName": "L", "Nope__c": "x"}) for i in range(3)]
    # When they are saved in bulk
    results = list(sf.provider.bulk_save_contacts(writes))
    # Then every row has a result saying the job failed
    assert [(r.key, r.state, r.error_code) for r in results] == [
        (f"k{i}", "unprocessed", "job_failed") for i in range(3)
    ]
