"""Gmail contact import against the Google double (issue 11 point 5): connect with the tenant's
`contact_import` flag on, then the queued import (and the daily schedule's) runs in the sync
function and creates CRM contacts under the contact policy."""

from __future__ import annotations

import json
from typing import Any

from mailbridge.config import get_settings
from mailbridge.crm.contact_import import ImportDeps, import_contacts
from mailbridge.store.accounts import AccountStore
from mailbridge.store.crm import CrmStore
from mailbridge.store.policy import PolicyStore
from tests.events import load_event
from tests.integration.gmail_harness import TENANT, USER, GmailStack


def run_sync(gs: GmailStack, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Hand `bodies` to the sync function as SQS records of the FIFO SyncQueue."""
    template = load_event("sqs/sync-renew-watches.json")["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"m-{i}"
        record["body"] = json.dumps(body)
        records.append(record)
    return gs.invoke("sync", {"Records": records})


def contacts(gs: GmailStack) -> dict[str, dict[str, Any]]:
    """The CRM's contacts by their first address (GET /crm/contacts)."""
    response = gs.api("crm-list-contacts", query={"limit": "100"})
    assert response["statusCode"] == 200, response
    items = json.loads(response["body"])["items"]
    return {c["emails"][0]["address"]: c for c in items}


def connect_with_contact_import(gs: GmailStack) -> str:
    on = gs.api("put-features", role="admin", body={"contact_import": True})
    assert on["statusCode"] == 200, on
    return gs.connect()


def import_deps() -> ImportDeps:
    settings = get_settings()
    return ImportDeps(
        crm=CrmStore(settings.tables.crm),
        policies=PolicyStore(settings.tables.settings),
        accounts=AccountStore(settings.tables.accounts),
    )


def test_connecting_imports_contacts_under_the_contact_policy(gmail_stack: GmailStack) -> None:
    google = gmail_stack.google
    # Given Google contacts: a customer, one at a blocklisted domain, one at the tenant's own
    # domain, a no-reply address, and a customer with a blocked and an allowed address
    google.add_contact(USER, "Carol Customer", ["carol@customer.example"], "Customer Ltd", "Buyer")
    google.add_contact(USER, "Sam Spammer", ["sam@spam.example"])
    google.add_contact(USER, "Colleague", ["bob@example.com"])
    google.add_contact(USER, "Robot", ["no-reply@shop.example"])
    google.add_contact(USER, "Dana Two", ["dana@spam.example", "dana@partner.example"])
    # And a tenant that blocks spam.example
    policy = load_event("api/crm-put-settings.json")["body"]
    body = json.loads(policy) | {"own_domains": None, "blocklist": {"domains": ["spam.example"]}}
    saved = gmail_stack.api("crm-put-settings", role="admin", body=body)
    assert saved["statusCode"] == 200, saved

    # When the mailbox is connected with contact import on, and the sync function runs the queue
    account_id = connect_with_contact_import(gmail_stack)
    queued = gmail_stack.sync_messages()
    assert {
        "kind": "import_contacts",
        "provider": "gmail",
        "tenant_id": TENANT,
        "account_id": account_id,
    } in [m for m in queued if m["kind"] == "import_contacts"]
    assert run_sync(gmail_stack, queued) == {"batchItemFailures": []}

    # Then the customers are CRM contacts (only the allowed address of the mixed one), and the
    # blocklisted, own-domain and no-reply ones are not
    imported = contacts(gmail_stack)
    assert set(imported) == {"carol@customer.example", "dana@partner.example"}
    carol = imported["carol@customer.example"]
    assert carol["name"] == "Carol Customer"
    assert carol["title"] == "Buyer"
    assert "google-contacts" in carol["tags"]
    assert [e["address"] for e in imported["dana@partner.example"]["emails"]] == ["dana@partner.example"]


def test_the_daily_import_reads_only_the_changes_and_a_stale_token_lists_all_again(
    gmail_stack: GmailStack,
) -> None:
    google = gmail_stack.google
    google.add_contact(USER, "Carol Customer", ["carol@customer.example"])
    account_id = connect_with_contact_import(gmail_stack)
    assert run_sync(gmail_stack, gmail_stack.sync_messages()) == {"batchItemFailures": []}
    assert set(contacts(gmail_stack)) == {"carol@customer.example"}

    # Given a new Google contact, when the daily schedule's message runs (fanned out per account)
    google.add_contact(USER, "Eve Newcomer", ["eve@newco.example"])
    assert run_sync(gmail_stack, [load_event("scheduler/gmail-contact-import.json")]) == {
        "batchItemFailures": []
    }
    fanned = gmail_stack.sync_messages()
    assert fanned == [
        {"kind": "import_contacts", "provider": "gmail", "tenant_id": TENANT, "account_id": account_id}
    ]
    assert run_sync(gmail_stack, fanned) == {"batchItemFailures": []}

    # Then the newcomer is a contact too
    assert set(contacts(gmail_stack)) == {"carol@customer.example", "eve@newco.example"}

    # And with nothing changed in Google since, a run reads no contact at all (the saved token)
    report = import_contacts(TENANT, account_id, import_deps())
    assert (report.full, report.created, report.existing, report.skipped) == (False, 0, 0, 0)

    # Given Google no longer honours the saved token, when the import runs again
    google.people.expire_sync_tokens()
    google.add_contact(USER, "Finn Later", ["finn@later.example"])
    report = import_contacts(TENANT, account_id, import_deps())

    # Then it listed everything again, created the new one, and duplicated nothing
    assert report.full is True
    assert report.created == 1
    assert report.existing == 2
    assert set(contacts(gmail_stack)) == {
        "carol@customer.example",
        "eve@newco.example",
        "finn@later.example",
    }


def test_every_page_of_contacts_is_imported(gmail_stack: GmailStack) -> None:
    from mailbridge.oauth.tokens import token_source
    from mailbridge.providers.gmail.people import PeopleClient

    # Given five Google contacts, read two a page
    for n in range(5):
        gmail_stack.google.add_contact(USER, f"Customer {n}", [f"c{n}@customer.example"])
    account_id = connect_with_contact_import(gmail_stack)
    url = get_settings().google.people_api_url
    deps = import_deps()
    deps.people_for = lambda account: PeopleClient(url, token_source(account), page_size=2)

    # When the import runs
    report = import_contacts(TENANT, account_id, deps)

    # Then all five are contacts
    assert report.created == 5
    assert set(contacts(gmail_stack)) == {f"c{n}@customer.example" for n in range(5)}


def test_an_account_without_the_contacts_grant_imports_nothing(gmail_stack: GmailStack) -> None:
    # Given a Gmail account connected without contact import
    gmail_stack.google.add_contact(USER, "Carol Customer", ["carol@customer.example"])
    account_id = gmail_stack.connect()
    # Then connecting queued no import, and an import asked for anyway creates nothing
    assert [m for m in gmail_stack.sync_messages() if m["kind"] == "import_contacts"] == []
    assert run_sync(
        gmail_stack, [{"kind": "import_contacts", "tenant_id": TENANT, "account_id": account_id}]
    ) == {"batchItemFailures": []}
    assert contacts(gmail_stack) == {}
