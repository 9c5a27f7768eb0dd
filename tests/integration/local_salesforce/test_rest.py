"""REST on the Salesforce double: sObject rows, describe, SOQL with paging, composite, errors."""

from __future__ import annotations

from local.clock import ManualClock
from local.salesforce import SalesforceDouble
from tests.integration.local_salesforce.conftest import HTTP, Rest


def test_contact_crud_keeps_audit_fields(rest: Rest, clock: ManualClock):
    # Given a contact created over REST
    created = rest.post(
        "/sobjects/Contact", {"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}
    )
    assert created.status_code == 201
    contact_id = created.json()["id"]
    assert created.json() == {"id": contact_id, "success": True, "errors": []}
    assert contact_id.startswith("003")
    assert len(contact_id) == 18
    # When it is updated a minute later
    clock.advance(60)
    assert rest.patch(f"/sobjects/Contact/{contact_id}", {"Title": "Analyst"}).status_code == 204
    read = rest.get(f"/sobjects/Contact/{contact_id}", fields="Name,Title,SystemModstamp,CreatedDate")
    # Then the platform maintained Name and the timestamps, in Salesforce's date-time form
    assert read.json()["Name"] == "Ada Lovelace"
    assert read.json()["Title"] == "Analyst"
    assert read.json()["CreatedDate"] == "2030-01-01T09:00:00.000+0000"
    assert read.json()["SystemModstamp"] == "2030-01-01T09:01:00.000+0000"
    assert read.json()["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v61.0/sobjects/Contact/{contact_id}",
    }
    # When it is deleted
    assert rest.delete(f"/sobjects/Contact/{contact_id}").status_code == 204
    # Then reads say so, query skips it, queryAll sees it in the recycle bin
    gone = rest.get(f"/sobjects/Contact/{contact_id}")
    assert gone.status_code == 404
    assert gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert rest.query("SELECT Id FROM Contact").json()["totalSize"] == 0
    every = rest.get("/queryAll", q="SELECT Id, IsDeleted FROM Contact").json()
    assert [(r["Id"], r["IsDeleted"]) for r in every["records"]] == [(contact_id, True)]


def test_describe_lists_standard_and_custom_fields(salesforce: SalesforceDouble, rest: Rest):
    # Given a custom field added in Setup (control API)
    added = HTTP.post(
        salesforce.base_url + "/__double__/fields",
        json={"object": "Contact", "name": "Tier__c", "type": "picklist", "picklist": ["Gold", "Silver"]},
    )
    assert added.status_code == 201
    # When the client describes Contact
    described = rest.get("/sobjects/Contact/describe").json()
    fields = {f["name"]: f for f in described["fields"]}
    # Then it sees field names, types, lengths, rights and the custom flag
    assert described["name"] == "Contact"
    assert described["keyPrefix"] == "003"
    assert (fields["LastName"]["type"], fields["LastName"]["length"], fields["LastName"]["nillable"]) == (
        "string",
        80,
        False,
    )
    assert (fields["Email"]["type"], fields["Email"]["updateable"]) == ("email", True)
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["Name"]["calculated"] is True
    assert fields["Tier__c"]["custom"] is True
    assert fields["Tier__c"]["type"] == "picklist"
    assert [v["value"] for v in fields["Tier__c"]["picklistValues"]] == ["Gold", "Silver"]
    # And the custom field can be written and queried
    created = rest.post("/sobjects/Contact", {"LastName": "Byron", "Tier__c": "Gold"})
    assert created.status_code == 201
    assert rest.query("SELECT Tier__c FROM Contact").json()["records"][0]["Tier__c"] == "Gold"
    for name in ("Lead", "Campaign", "CampaignMember", "Task", "EmailMessage"):
        assert rest.get(f"/sobjects/{name}/describe").status_code == 200


def test_save_errors_are_salesforce_error_arrays(salesforce: SalesforceDouble, rest: Rest):
    # Given an external-id custom field and one contact using it
    salesforce.add_custom_field("Contact", "Mailbridge_Id__c", external_id=True)
    assert rest.post("/sobjects/Contact", {"LastName": "A", "Mailbridge_Id__c": "m-1"}).status_code == 201
    # When invalid records are sent
    missing = rest.post("/sobjects/Contact", {"FirstName": "No last name"})
    unknown = rest.post("/sobjects/Contact", {"LastName": "X", "Nickname": "x"})
    bad_email = rest.post("/sobjects/Contact", {"LastName": "X", "Email": "not-an-address"})
    duplicate = rest.post("/sobjects/Contact", {"LastName": "B", "Mailbridge_Id__c": "M-1"})
    read_only = rest.post("/sobjects/Contact", {"LastName": "X", "SystemModstamp": "2030-01-01T00:00:00Z"})
    no_type = rest.post("/sobjects/Widget", {"Name": "x"})
    # Then each answers the JSON array Salesforce sends, with its errorCode and fields
    assert missing.status_code == 400
    assert missing.json() == [
        {
            "message": "Required fields are missing: [LastName]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["LastName"],
        }
    ]
    assert unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    assert bad_email.json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert bad_email.json()[0]["fields"] == ["Email"]
    assert duplicate.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    assert read_only.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert (no_type.status_code, no_type.json()[0]["errorCode"]) == (404, "NOT_FOUND")
    anonymous = HTTP.get(salesforce.rest_url + "/sobjects")
    assert (anonymous.status_code, anonymous.json()[0]["errorCode"]) == (401, "INVALID_SESSION_ID")


def test_campaign_members_tasks_and_email_messages(rest: Rest):
    # Given a contact and a campaign
    contact = rest.post("/sobjects/Contact", {"LastName": "Lovelace", "Email": "ada@example.com"}).json()[
        "id"
    ]
    campaign = rest.post("/sobjects/Campaign", {"Name": "Spring launch"}).json()["id"]
    # When the contact joins twice, and an email is logged as a Task and as an EmailMessage
    member = rest.post("/sobjects/CampaignMember", {"CampaignId": campaign, "ContactId": contact})
    again = rest.post("/sobjects/CampaignMember", {"CampaignId": campaign, "ContactId": contact})
    task = rest.post(
        "/sobjects/Task",
        {"WhoId": contact, "Subject": "Email: Hello", "TaskSubtype": "Email", "Status": "Completed"},
    )
    email = rest.post(
        "/sobjects/EmailMessage",
        {
            "Subject": "Hello",
            "Status": "3",
            "MessageIdentifier": "<a@b.example>",
            "FromAddress": "ada@example.com",
            "ToAddress": "bob@example.com",
            "MessageDate": "2030-01-01T08:00:00Z",
            "Incoming": True,
        },
    )
    ghost = rest.post("/sobjects/CampaignMember", {"CampaignId": campaign, "ContactId": "003000000000000AAA"})
    # Then the second membership is a duplicate, the activity rows exist, a dangling reference fails
    assert member.status_code == 201
    assert again.json()[0] == {
        "message": "Already a campaign member.",
        "errorCode": "DUPLICATE_VALUE",
        "fields": [],
    }
    assert task.status_code == 201
    assert email.status_code == 201
    row = rest.query(f"SELECT Status, Email FROM CampaignMember WHERE CampaignId = '{campaign}'").json()
    assert (row["records"][0]["Email"], row["records"][0]["Status"]) == ("ada@example.com", "Sent")
    assert rest.query("SELECT IsClosed FROM Task").json()["records"][0]["IsClosed"] is True
    found = rest.query("SELECT Id FROM EmailMessage WHERE MessageIdentifier = '<a@b.example>'").json()
    assert found["totalSize"] == 1
    assert ghost.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_soql_filters_orders_and_pages_with_next_records_url(rest: Rest, clock: ManualClock):
    # Given 450 contacts made a second apart (composite collections of 200)
    for start in range(0, 450, 200):
        records = [
            {"attributes": {"type": "Contact"}, "LastName": f"L{i:04d}", "Email": f"p{i}@example.com"}
            for i in range(start, min(start + 200, 450))
        ]
        saved = rest.post("/composite/sobjects", {"allOrNone": True, "records": records})
        assert saved.status_code == 200
        assert all(r["success"] for r in saved.json())
        clock.advance(1)
    # When the client pulls what changed after the first batch, 200 at a time
    soql = (
        "SELECT Id, LastName, SystemModstamp FROM Contact WHERE SystemModstamp > 2030-01-01T09:00:00Z "
        "AND Email LIKE 'p%' ORDER BY SystemModstamp, LastName DESC"
    )
    page = rest.query(soql, headers={"Sforce-Query-Options": "batchSize=200"}).json()
    names: list[str] = [r["LastName"] for r in page["records"]]
    while not page["done"]:
        page = HTTP.get(
            rest.base.split("/services/")[0] + page["nextRecordsUrl"], headers=rest.headers
        ).json()
        names += [r["LastName"] for r in page["records"]]
    # Then it gets the 250 later contacts, in order, across pages
    assert page["totalSize"] == 250
    assert len(names) == 250
    assert names[:2] == ["L0399", "L0398"]
    assert names[-1] == "L0400"
    limited = rest.query("SELECT Id FROM Contact ORDER BY LastName LIMIT 5 OFFSET 10").json()
    assert limited["totalSize"] == 5
    assert limited["done"] is True
    assert rest.query("SELECT COUNT() FROM Contact").json() == {"totalSize": 450, "done": True, "records": []}


def test_soql_errors(rest: Rest):
    # When queries are malformed, quote a date-time, or name unknown columns or objects
    malformed = rest.query("SELECT Id FROM Contact WHERE")
    quoted = rest.query("SELECT Id FROM Contact WHERE SystemModstamp > '2030-01-01T00:00:00Z'")
    column = rest.query("SELECT Nickname FROM Contact")
    table = rest.query("SELECT Id FROM Widget")
    mixed = rest.query("SELECT Id FROM Contact WHERE Email = 'a' AND LastName = 'b' OR Title = 'c'")
    # Then each carries Salesforce's code and the caret message
    assert malformed.status_code == 400
    assert malformed.json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:" in malformed.json()[0]["message"]
    assert quoted.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "should not be enclosed in quotes" in quoted.json()[0]["message"]
    assert column.json()[0]["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Nickname'" in column.json()[0]["message"]
    assert table.json()[0]["errorCode"] == "INVALID_TYPE"
    assert mixed.json()[0]["errorCode"] == "MALFORMED_QUERY"
    locator = rest.get("/query/01g000000000000-2000")
    assert locator.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_composite_collections_all_or_none_and_limits(rest: Rest):
    # Given a batch with one invalid record
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "Good"},
        {"attributes": {"type": "Contact"}, "FirstName": "Bad"},
    ]
    # When sent with allOrNone, then without
    strict = rest.post("/composite/sobjects", {"allOrNone": True, "records": records}).json()
    lenient = rest.post("/composite/sobjects", {"allOrNone": False, "records": records}).json()
    # Then allOrNone rolls the good one back, the lenient call keeps it
    assert strict[0]["success"] is False
    assert strict[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert strict[1]["errors"][0] == {
        "statusCode": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [LastName]",
        "fields": ["LastName"],
    }
    assert lenient[0]["success"] is True
    assert lenient[1]["success"] is False
    assert rest.query("SELECT Id FROM Contact").json()["totalSize"] == 1
    # And updates name their Id, and more than 200 records are refused whole
    updated = rest.patch(
        "/composite/sobjects",
        {"records": [{"attributes": {"type": "Contact"}, "id": lenient[0]["id"], "Title": "CEO"}]},
    )
    assert updated.json()[0]["success"] is True
    too_many = rest.post(
        "/composite/sobjects", {"records": [{"attributes": {"type": "Contact"}, "LastName": "x"}] * 201}
    )
    assert too_many.status_code == 400
    assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_demo_seed_for_make_mailbox(salesforce: SalesforceDouble, rest: Rest):
    # Given the seed `make mailbox PROVIDER=salesforce` runs
    from local.salesforce.__main__ import seed_demo

    seed_demo(salesforce)
    # Then the demo senders are contacts with the custom tier field, next to a lead and a campaign
    contacts = rest.query("SELECT Email, Tier__c FROM Contact ORDER BY Email").json()["records"]
    assert [(c["Email"], c["Tier__c"]) for c in contacts] == [
        ("carol@customer.example", "Gold"),
        ("dan@supplier.example", "Silver"),
    ]
    assert rest.query("SELECT COUNT() FROM Lead").json()["totalSize"] == 1
    assert rest.query("SELECT Name FROM Campaign").json()["records"][0]["Name"] == "Spring launch"
