"""CRM v3 on the HubSpot double: contacts, properties, batch, email engagements, associations, lists."""

from __future__ import annotations

import json

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from tests.integration.local_hubspot.conftest import HTTP, Api

CONTACTS = "/crm/v3/objects/contacts"


def test_contact_crud_maintains_lastmodifieddate(api: Api, clock: ManualClock):
    # Given a contact created over the API
    created = api.post(CONTACTS, {"properties": {"email": "ada@example.com", "firstname": "Ada"}})
    assert created.status_code == 201
    contact = created.json()
    assert contact["properties"]["email"] == "ada@example.com"
    assert contact["archived"] is False
    # When it is updated a minute later
    clock.advance(60)
    updated = api.patch(f"{CONTACTS}/{contact['id']}", {"properties": {"lastname": "Lovelace"}})
    read = api.get(f"{CONTACTS}/{contact['id']}").json()
    # Then lastmodifieddate and updatedAt moved, createdate did not; default properties come back
    assert updated.status_code == 200
    assert read["properties"]["lastmodifieddate"] > contact["properties"]["lastmodifieddate"]
    assert read["properties"]["createdate"] == contact["properties"]["createdate"]
    assert read["updatedAt"] == read["properties"]["lastmodifieddate"]
    assert set(read["properties"]) == {
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    }
    by_email = api.get(f"{CONTACTS}/ada@example.com", idProperty="email", properties="lastname")
    assert by_email.json()["properties"] == {"lastname": "Lovelace"}
    # When it is archived
    assert api.delete(f"{CONTACTS}/{contact['id']}").status_code == 204
    # Then it is gone, except when archived ones are asked for
    assert api.get(f"{CONTACTS}/{contact['id']}").status_code == 404
    assert api.get(f"{CONTACTS}/{contact['id']}", archived="true").json()["archived"] is True


def test_validation_and_conflicts(api: Api):
    # Given one contact
    first = api.post(CONTACTS, {"properties": {"email": "ada@example.com"}}).json()
    # When a duplicate email, an unknown property, a read-only property and a bad option are sent
    duplicate = api.post(CONTACTS, {"properties": {"email": "ADA@example.com"}})
    unknown = api.post(CONTACTS, {"properties": {"nickname": "x"}})
    read_only = api.post(CONTACTS, {"properties": {"createdate": "2020-01-01"}})
    option = api.post(CONTACTS, {"properties": {"lifecyclestage": "astronaut"}})
    # Then HubSpot's error body says why
    assert duplicate.status_code == 409
    assert duplicate.json()["message"] == f"Contact already exists. Existing ID: {first['id']}"
    assert unknown.status_code == 400
    assert unknown.json()["category"] == "VALIDATION_ERROR"
    details = json.loads(unknown.json()["message"].removeprefix("Property values were not valid: "))
    assert details[0]["error"] == "PROPERTY_DOESNT_EXIST"
    assert details[0]["name"] == "nickname"
    assert "READ_ONLY_VALUE" in read_only.json()["message"]
    assert "INVALID_OPTION" in option.json()["message"]


def test_custom_property_from_the_control_api(hubspot: HubSpotDouble, api: Api):
    # Given a custom property created in Settings (control API)
    made = HTTP.post(
        hubspot.base_url + "/__double__/properties/contacts",
        json={
            "name": "mailbridge_tier",
            "label": "Tier",
            "type": "enumeration",
            "fieldType": "select",
            "options": ["gold", "silver"],
        },
    )
    assert made.status_code == 201
    # When the client reads the properties API and writes the property
    listed = {p["name"]: p for p in api.get("/crm/v3/properties/contacts").json()["results"]}
    one = api.get("/crm/v3/properties/contacts/mailbridge_tier").json()
    written = api.post(CONTACTS, {"properties": {"email": "b@example.com", "mailbridge_tier": "gold"}})
    # Then it is listed as a custom enumeration with its options, and accepted on write
    assert listed["mailbridge_tier"]["hubspotDefined"] is False
    assert listed["email"]["hubspotDefined"] is True
    assert [o["value"] for o in one["options"]] == ["gold", "silver"]
    assert one["type"] == "enumeration"
    assert listed["lastmodifieddate"]["modificationMetadata"]["readOnlyValue"] is True
    assert written.json()["properties"]["mailbridge_tier"] == "gold"


def test_list_paging_and_batch_endpoints(api: Api):
    # Given 100 contacts made in one batch
    inputs = [{"properties": {"email": f"p{i}@example.com", "firstname": f"P{i}"}} for i in range(100)]
    created = api.post(f"{CONTACTS}/batch/create", {"inputs": inputs})
    assert created.status_code == 201
    assert created.json()["status"] == "COMPLETE"
    ids = [c["id"] for c in created.json()["results"]]
    # When the client pages through them 30 at a time
    seen: list[str] = []
    after = None
    while True:
        page = api.get(CONTACTS, limit=30, **({"after": after} if after else {})).json()
        seen += [c["id"] for c in page["results"]]
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
        assert page["paging"]["next"]["link"].endswith(f"after={after}")
    # Then it sees each once; batch read reports missing ids as a 207; 101 inputs are refused
    assert sorted(seen, key=int) == sorted(ids, key=int)
    read = api.post(
        f"{CONTACTS}/batch/read", {"properties": ["email"], "inputs": [{"id": ids[0]}, {"id": "1"}]}
    )
    assert read.status_code == 207
    assert read.json()["numErrors"] == 1
    assert read.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert read.json()["errors"][0]["context"] == {"ids": ["1"]}
    too_many = api.post(f"{CONTACTS}/batch/create", {"inputs": [*inputs, {"properties": {}}]})
    assert too_many.status_code == 400
    updated = api.post(
        f"{CONTACTS}/batch/update", {"inputs": [{"id": i, "properties": {"lastname": "X"}} for i in ids[:50]]}
    )
    assert updated.status_code == 200
    assert len(updated.json()["results"]) == 50
    assert api.post(f"{CONTACTS}/batch/archive", {"inputs": [{"id": i} for i in ids[:10]]}).status_code == 204
    assert len(api.get(CONTACTS, limit=100).json()["results"]) == 90


def test_email_engagement_with_associations_v4(hubspot: HubSpotDouble, app, api: Api):
    # Given a contact, and a token allowed to write emails
    contact = api.post(CONTACTS, {"properties": {"email": "ada@example.com"}}).json()["id"]
    headers = json.dumps(
        {"from": {"email": "me@example.com"}, "to": [{"email": "ada@example.com"}], "cc": [], "bcc": []}
    )
    # When an email engagement is logged with its association, and one without hs_timestamp
    email = api.post(
        "/crm/v3/objects/emails",
        {
            "properties": {
                "hs_timestamp": "2030-01-01T09:00:00Z",
                "hs_email_direction": "EMAIL",
                "hs_email_subject": "Hello",
                "hs_email_headers": headers,
            },
            "associations": [
                {
                    "to": {"id": contact},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 198}],
                }
            ],
        },
    )
    missing = api.post("/crm/v3/objects/emails", {"properties": {"hs_email_subject": "x"}})
    # Then the email exists, both directions of the association are readable through v4
    assert email.status_code == 201
    email_id = email.json()["id"]
    from_contact = api.get(f"/crm/v4/objects/contact/{contact}/associations/emails").json()
    assert from_contact["results"] == [
        {
            "toObjectId": int(email_id),
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 197, "label": None}],
        }
    ]
    assert hubspot.associated("emails", email_id, "contacts") == [contact]
    assert missing.status_code == 400
    assert "hs_timestamp" in missing.json()["message"]
    # When a company is associated by default and then unlinked
    company = hubspot.create("companies", name="Analytical Engines", domain="engines.example")
    linked = api.put(f"/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}")
    assert linked.json()["results"][0]["associationSpec"] == {
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": 279,
    }
    assert hubspot.associated("companies", company, "contacts") == [contact]
    assert (
        api.delete(f"/crm/v4/objects/contacts/{contact}/associations/companies/{company}").status_code == 204
    )
    assert hubspot.associated("companies", company, "contacts") == []


def test_manual_list_memberships(hubspot: HubSpotDouble, api: Api):
    # Given a manual contact list and two contacts
    listed = api.post(
        "/crm/v3/lists", {"name": "Spring launch", "objectTypeId": "0-1", "processingType": "MANUAL"}
    )
    assert listed.status_code == 200
    list_id = listed.json()["list"]["listId"]
    a = api.post(CONTACTS, {"properties": {"email": "a@example.com"}}).json()["id"]
    b = api.post(CONTACTS, {"properties": {"email": "b@example.com"}}).json()["id"]
    # When members are added (one unknown) and one is removed
    added = api.put(f"/crm/v3/lists/{list_id}/memberships/add", [a, b, "999"]).json()
    removed = api.put(f"/crm/v3/lists/{list_id}/memberships/remove", [b]).json()
    members = api.get(f"/crm/v3/lists/{list_id}/memberships").json()
    # Then the answers say what happened and the list holds the one left
    assert added == {"recordIdsAdded": [a, b], "recordIdsMissing": ["999"]}
    assert removed == {"recordIdsRemoved": [b], "recordIdsMissing": []}
    assert [m["recordId"] for m in members["results"]] == [a]
    assert hubspot.list_members(list_id) == [a]


def test_demo_seed_for_make_mailbox(hubspot: HubSpotDouble, api: Api):
    # Given the seed `make mailbox PROVIDER=hubspot` runs
    from local.hubspot.__main__ import seed_demo

    seed_demo(hubspot)
    # Then the demo senders are contacts with the custom tier property, and a company exists
    rows = api.get(CONTACTS, properties="email,mailbridge_tier").json()["results"]
    assert sorted((r["properties"]["email"], r["properties"]["mailbridge_tier"]) for r in rows) == [
        ("carol@customer.example", "gold"),
        ("dan@supplier.example", "silver"),
    ]
    assert [c.properties["domain"] for c in hubspot.crm.objects["companies"].values()] == ["customer.example"]


def test_a_changed_email_is_unique_under_its_new_value_and_free_under_the_old(api: Api):
    # Given a contact whose email then changes
    first = api.post(CONTACTS, {"properties": {"email": "old@example.com"}}).json()["id"]
    assert api.patch(f"{CONTACTS}/{first}", {"properties": {"email": "new@example.com"}}).status_code == 200
    # When another contact takes the new email, then the old one
    taken = api.post(CONTACTS, {"properties": {"email": "NEW@example.com"}})
    freed = api.post(CONTACTS, {"properties": {"email": "old@example.com"}})
    # Then the new email is taken by the first contact and the old one is free again
    assert taken.status_code == 409
    assert taken.json()["message"] == f"Contact already exists. Existing ID: {first}"
    assert freed.status_code == 201
