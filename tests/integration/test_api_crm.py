"""/crm end to end in-process: sample events -> api handler -> CRM table (moto, built from template.yaml)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbridge.api import deps
from tests.events import EVENTS_DIR, load_event
from tests.fixtures.aws import BusReader, Stack

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

TENANT, OTHER = "acme", "globex"


@pytest.fixture(autouse=True)
def _fresh_crm_store() -> Iterator[None]:
    # The shared reset_caches() predates the CRM store; each test has its own moto tables.
    deps.crm_store.cache_clear()
    yield
    deps.crm_store.cache_clear()


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def api(
    name: str,
    *,
    tenant: str = TENANT,
    role: str = "member",
    path: dict[str, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The sample event events/api/crm-{name}.json with its path parameters and query replaced."""
    event = load_event(f"api/crm-{name}.json", tenant=tenant, role=role, **kwargs)
    if path:
        raw = event["routeKey"].split(" ", 1)[1]
        for key, value in path.items():
            raw = raw.replace("{" + key + "}", value)
        event["pathParameters"] = dict(path)
        event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    if "query" not in kwargs:
        event.pop("queryStringParameters", None)
        event["rawQueryString"] = ""
    return event


class Crm:
    """Small client over the sample events; asserts the status it expects."""

    def __init__(self, invoke: Invoke, tenant: str = TENANT, role: str = "member") -> None:
        self.invoke, self.tenant, self.role = invoke, tenant, role

    def call(self, name: str, status: int = 200, **kwargs: Any) -> Any:
        kwargs.setdefault("tenant", self.tenant)
        kwargs.setdefault("role", self.role)
        response = self.invoke(api(name, **kwargs))
        assert response["statusCode"] == status, response
        return body(response)

    def contact(self, name: str, *addresses: str, **fields: Any) -> dict[str, Any]:
        emails = [{"address": a} for a in addresses]
        return self.call("create-contact", 201, body={"name": name, "emails": emails, **fields})  # type: ignore[no-any-return]

    def company(self, name: str, *domains: str) -> dict[str, Any]:
        return self.call("create-company", 201, body={"name": name, "domains": list(domains)})  # type: ignore[no-any-return]

    def deal(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.call("create-deal", 201, body={"name": name, **fields})  # type: ignore[no-any-return]

    def walk(self, name: str, **query: str) -> tuple[list[str], int]:
        """Every id over all pages, and the number of pages."""
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            data = self.call(name, query=params)
            assert len(data["items"]) <= int(query.get("limit", 25))
            seen += [
                next(v for k, v in item.items() if k.endswith("_id") and k != "company_id")
                for item in data["items"]
            ]
            pages += 1
            cursor = data["next_cursor"]
            if cursor is None:
                return seen, pages
            assert pages < 30


@pytest.fixture
def crm(invoke_api: Invoke) -> Crm:
    return Crm(invoke_api)


def set_flags(invoke_api: Invoke, tenant: str = TENANT, **flags: bool) -> None:
    response = invoke_api(load_event("api/put-features.json", tenant=tenant, role="admin", body=flags))
    assert response["statusCode"] == 200, response


# ------------------------------------------------------------------------------------ contacts


def test_contact_crud(crm: Crm, stack: Stack) -> None:
    # Given a member creates a contact with a mixed-case address
    created = crm.contact("Ada Lovelace", "Ada@Example.COM", title="CTO", custom={"score": 4.5, "vip": True})
    cid = created["contact_id"]
    # Then it is stored lower-cased, primary, owned by the creator, at version 1
    assert created["emails"] == [{"address": "ada@example.com", "primary": True, "label": None}]
    assert created["owner"] == created["created_by"] == "54c84948-7061-70a8-a0b5-0d7e1c5a6f21"
    assert created["version"] == 1
    assert created["custom"] == {"score": 4.5, "vip": True}
    assert crm.call("get-contact", path={"contact_id": cid}) == created
    # And the address lookup item points at it
    lookup = stack.table("CrmTable").get_item(Key={"pk": "TENANT#acme", "sk": "EMAIL#ada@example.com"})
    assert lookup["Item"]["contact_id"] == cid
    # When the title changes and an address is added
    patched = crm.call(
        "patch-contact",
        path={"contact_id": cid},
        body={"title": "CEO", "emails": [*created["emails"], {"address": "ada@work.example"}]},
    )
    # Then only those fields changed and the version went up
    assert patched["title"] == "CEO"
    assert [e["address"] for e in patched["emails"]] == ["ada@example.com", "ada@work.example"]
    assert patched["version"] == 2
    assert patched["created_at"] == created["created_at"]
    # And clearing a field with null works
    assert crm.call("patch-contact", path={"contact_id": cid}, body={"title": None})["title"] is None
    # When it is deleted
    assert crm.call("delete-contact", path={"contact_id": cid}) == {"id": cid, "deleted": True}
    # Then it is gone and its addresses are free again
    assert crm.call("get-contact", 404, path={"contact_id": cid})["error"]["code"] == "contact_not_found"
    crm.contact("Someone else", "ada@work.example")


def test_an_address_belongs_to_one_contact(crm: Crm) -> None:
    # Given a contact with an address
    first = crm.contact("Ada", "ada@example.com")
    # When another contact claims it in another case
    error = crm.call(
        "create-contact", 409, body={"name": "Imposter", "emails": [{"address": "ADA@example.com"}]}
    )["error"]
    # Then it is refused with the address and the contact holding it named, and nothing was written
    assert error["code"] == "email_in_use"
    assert error["details"] == {"address": "ada@example.com", "contact_id": first["contact_id"]}
    assert [c["name"] for c in crm.call("list-contacts")["items"]] == ["Ada"]
    # And an update cannot take it either
    second = crm.contact("Bob", "bob@example.com")
    error = crm.call(
        "patch-contact",
        409,
        path={"contact_id": second["contact_id"]},
        body={"emails": [{"address": "bob@example.com"}, {"address": "ada@example.com"}]},
    )["error"]
    assert error["code"] == "email_in_use"
    assert crm.call("get-contact", path={"contact_id": second["contact_id"]})["version"] == 1
    # While the owner may keep and reorder its own addresses
    crm.call(
        "patch-contact",
        path={"contact_id": first["contact_id"]},
        body={"emails": [{"address": "ada2@example.com"}, {"address": "ada@example.com", "primary": True}]},
    )


def test_a_stale_version_is_a_conflict(crm: Crm) -> None:
    cid = crm.contact("Ada", "ada@example.com")["contact_id"]
    crm.call("patch-contact", path={"contact_id": cid}, body={"title": "CTO", "version": 1})
    error = crm.call("patch-contact", 409, path={"contact_id": cid}, body={"title": "CEO", "version": 1})
    assert error["error"]["code"] == "version_conflict"
    # Without a version the last write wins
    assert crm.call("patch-contact", path={"contact_id": cid}, body={"title": "CEO"})["version"] == 3


def test_contact_pages_walk_everything_once(crm: Crm) -> None:
    # Given seven contacts, three of them tagged
    ids = [
        crm.contact(f"Person {i}", f"p{i}@example.com", tags=["vip"] if i % 2 else [])["contact_id"]
        for i in range(7)
    ]
    # When walking pages of three
    seen, pages = crm.walk("list-contacts", limit="3")
    # Then each shows once, in creation order
    assert seen == ids
    assert pages == 3
    # And a filtered walk loses and repeats nothing
    seen, _ = crm.walk("list-contacts", limit="2", tag="vip")
    assert seen == [ids[1], ids[3], ids[5]]


def test_contact_filters(crm: Crm) -> None:
    company = crm.company("Example", "example.com")["company_id"]
    ada = crm.contact("Ada Lovelace", "ada@example.com", company_id=company, tags=["vip"])["contact_id"]
    bob = crm.contact("Bob", "bob@other.example.org")["contact_id"]

    def listing(**query: str) -> list[str]:
        return [c["contact_id"] for c in crm.call("list-contacts", query=query)["items"]]

    assert listing(q="LOVE") == [ada]
    assert listing(q="other.example.org") == [bob]
    assert listing(company_id=company) == [ada]
    assert listing(tag="vip") == [ada]
    assert listing(tag="nope") == []


def test_by_email_finds_the_contact_in_any_case(crm: Crm) -> None:
    # Given a contact at a company with one open and one won deal
    company = crm.company("Example", "example.com")
    contact = crm.contact("Ada", "ada@example.com", "ada@home.example.net", company_id=company["company_id"])
    cid = contact["contact_id"]
    open_deal = crm.deal("Renewal", contact_ids=[cid])
    crm.deal("Pilot", contact_ids=[cid], stage="won")
    # When looked up by a secondary address in upper case
    view = crm.call("get-contact-by-email", path={"address": "ADA%40Home.Example.NET"})
    # Then the contact, its company and only the open deal come back; last_emails is the empty hook
    assert view["contact"]["contact_id"] == cid
    assert view["company"]["company_id"] == company["company_id"]
    assert [d["deal_id"] for d in view["open_deals"]] == [open_deal["deal_id"]]
    assert view["last_emails"] == []
    # And an unknown address is a 404
    missing = crm.call("get-contact-by-email", 404, path={"address": "nobody@example.com"})
    assert missing["error"]["code"] == "contact_not_found"


# ------------------------------------------------------------------------------------ companies


def test_company_crud_and_domains(crm: Crm, stack: Stack) -> None:
    created = crm.company("Example Corp", "Example.COM.", "example.co.uk")
    co = created["company_id"]
    assert created["domains"] == ["example.com", "example.co.uk"]
    assert crm.call("get-company", path={"company_id": co}) == created
    # A second company cannot take a domain, and is told which company holds it
    error = crm.call("create-company", 409, body={"name": "Copycat", "domains": ["example.com"]})["error"]
    assert error["code"] == "domain_in_use"
    assert error["details"] == {"domain": "example.com", "company_id": co}
    other = crm.company("Other", "other.example")["company_id"]
    error = crm.call(
        "patch-company", 409, path={"company_id": other}, body={"domains": ["other.example", "example.co.uk"]}
    )["error"]
    assert error["details"] == {"domain": "example.co.uk", "company_id": co}
    # Dropping a domain frees it
    patched = crm.call("patch-company", path={"company_id": co}, body={"domains": ["example.co.uk"]})
    assert patched["domains"] == ["example.co.uk"]
    assert patched["version"] == 2
    table = stack.table("CrmTable")
    assert "Item" not in table.get_item(Key={"pk": "TENANT#acme", "sk": "DOMAIN#example.com"})
    crm.company("Now theirs", "example.com")
    assert [c["name"] for c in crm.call("list-companies", query={"q": "corp"})["items"]] == ["Example Corp"]
    # Delete removes the company and its lookups
    crm.call("delete-company", path={"company_id": co})
    assert crm.call("get-company", 404, path={"company_id": co})["error"]["code"] == "company_not_found"
    assert "Item" not in table.get_item(Key={"pk": "TENANT#acme", "sk": "DOMAIN#example.co.uk"})


@pytest.mark.parametrize(
    "domain", ["not a domain", "localhost", "-bad.example", "a..b.example", "x" * 64 + ".com"]
)
def test_invalid_domains_are_rejected(crm: Crm, domain: str) -> None:
    error = crm.call("create-company", 422, body={"name": "Bad", "domains": [domain]})["error"]
    assert error["code"] == "validation_error"


# ------------------------------------------------------------------------------------ deals


def test_deal_crud_and_stage_change_event(crm: Crm, stack: Stack, bus_probe: BusReader) -> None:
    read_bus = bus_probe
    company = crm.company("Example", "example.com")["company_id"]
    contact = crm.contact("Ada", "ada@example.com")["contact_id"]
    # Given a deal created without a stage
    deal = crm.deal("50 seats", amount="12500.50", currency="eur", company_id=company, contact_ids=[contact])
    did = deal["deal_id"]
    # Then it starts in the pipeline's first stage, open, with the amount kept exactly
    assert deal["stage"] == "lead"
    assert deal["open"] is True
    assert deal["amount"] == "12500.5"
    assert deal["currency"] == "EUR"
    assert crm.call("get-deal", path={"deal_id": did}) == deal
    # When it moves to proposal
    moved = crm.call("patch-deal", path={"deal_id": did}, body={"stage": "proposal"})
    assert moved["stage"] == "proposal"
    assert moved["version"] == 2
    # Then created, updated and stage_changed are on the bus with business idempotency keys
    events = {e["detail-type"]: e["detail"] for e in read_bus()}
    assert {
        "contact.created",
        "company.created",
        "deal.created",
        "deal.updated",
        "deal.stage_changed",
    } <= set(events)
    changed = events["deal.stage_changed"]
    assert changed["tenant_id"] == TENANT
    assert changed["idempotency_key"] == f"deal.stage_changed:{did}:2"
    assert changed["data"]["old_stage"] == "lead"
    assert changed["data"]["new_stage"] == "proposal"
    assert events["deal.updated"]["data"]["changed"] == ["stage"]
    assert events["deal.created"]["idempotency_key"] == f"deal.created:{did}"
    # And a change that is not a stage change announces only deal.updated
    crm.call("patch-deal", path={"deal_id": did}, body={"name": "60 seats"})
    assert [e["detail-type"] for e in read_bus()] == ["deal.updated"]
    # And a contact update is announced with its version
    crm.call("patch-contact", path={"contact_id": contact}, body={"title": "CTO"})
    updated = read_bus()
    assert [e["detail"]["idempotency_key"] for e in updated] == [f"contact.updated:{contact}:2"]
    # When it is deleted it is gone, also from the contact's and company's deal listings
    crm.call("delete-deal", path={"deal_id": did})
    assert crm.call("get-deal", 404, path={"deal_id": did})["error"]["code"] == "deal_not_found"
    assert crm.call("list-deals", query={"contact_id": contact})["items"] == []
    assert crm.call("list-deals", query={"company_id": company})["items"] == []


def test_deal_filters(crm: Crm) -> None:
    acme = crm.company("Acme", "acme.example.net")["company_id"]
    other = crm.company("Other", "other.example.org")["company_id"]
    ada = crm.contact("Ada", "ada@acme.example.net")["contact_id"]
    d1 = crm.deal("one", company_id=acme, contact_ids=[ada])["deal_id"]
    d2 = crm.deal("two", company_id=acme, stage="won")["deal_id"]
    d3 = crm.deal("three", company_id=other, contact_ids=[ada], stage="proposal")["deal_id"]
    d4 = crm.deal("four")["deal_id"]
    # d1 was updated last: company and contact listings show it first
    crm.call("patch-deal", path={"deal_id": d1}, body={"name": "one (renamed)"})

    def listing(**query: str) -> list[str]:
        return [d["deal_id"] for d in crm.call("list-deals", query=query)["items"]]

    assert listing() == [d1, d2, d3, d4]
    assert listing(stage="proposal") == [d3]
    assert listing(open="true") == [d1, d3, d4]
    assert listing(open="false") == [d2]
    assert listing(company_id=acme) == [d1, d2]
    assert listing(company_id=acme, open="true") == [d1]
    assert listing(contact_id=ada) == [d1, d3]
    assert listing(contact_id=ada, company_id=other) == [d3]
    assert listing(contact_id=ada, stage="proposal") == [d3]
    # Removing the contact from a deal takes it off the contact's listing
    crm.call("patch-deal", path={"deal_id": d3}, body={"contact_ids": []})
    assert listing(contact_id=ada) == [d1]
    # Paging the contact index walks each deal once
    for i in range(4):
        crm.deal(f"extra {i}", contact_ids=[ada])
    seen, _ = crm.walk("list-deals", contact_id=ada, limit="2")
    assert len(seen) == len(set(seen)) == 5


def test_pipeline_default_and_change(crm: Crm, invoke_api: Invoke) -> None:
    default = crm.call("get-pipeline")
    assert default["stages"] == ["lead", "qualified", "proposal", "negotiation", "won", "lost"]
    assert default["version"] == 0
    # Members cannot change it; admins can
    crm.call("put-pipeline", 403, body={"stages": ["a", "won", "lost"]})
    changed = crm.call("put-pipeline", role="admin", body={"stages": ["Intro", "demo", "won", "lost"]})
    assert changed["stages"] == ["intro", "demo", "won", "lost"]
    assert changed["version"] == 1
    # New deals start in the new first stage, and old stage names are refused
    assert crm.deal("x")["stage"] == "intro"
    error = crm.call("create-deal", 400, body={"name": "y", "stage": "proposal"})["error"]
    assert error["code"] == "unknown_stage"
    assert error["details"]["stages"] == ["intro", "demo", "won", "lost"]
    # A pipeline without the closed stages is refused
    crm.call("put-pipeline", 422, role="admin", body={"stages": ["a", "b", "won"]})
    stale = crm.call("put-pipeline", 409, role="admin", body={"stages": ["a", "won", "lost"], "version": 0})
    assert stale["error"]["code"] == "version_conflict"


# ------------------------------------------------------------------------------------ campaigns


def test_campaigns_need_their_flag(crm: Crm, invoke_api: Invoke) -> None:
    # Off by default: every campaign route is absent
    assert crm.call("list-campaigns", 404)["error"]["code"] == "feature_disabled"
    assert crm.call("create-campaign", 404, body={"name": "Spring"})["error"]["code"] == "feature_disabled"
    # On: full CRUD
    set_flags(invoke_api, campaigns=True)
    created = crm.call("create-campaign", 201, body={"name": "Spring"})
    cp = created["campaign_id"]
    assert created["status"] == "draft"
    assert crm.call("get-campaign", path={"campaign_id": cp}) == created
    assert (
        crm.call("patch-campaign", path={"campaign_id": cp}, body={"status": "active"})["status"] == "active"
    )
    crm.call("patch-campaign", 422, path={"campaign_id": cp}, body={"status": "launched"})
    assert [c["campaign_id"] for c in crm.call("list-campaigns")["items"]] == [cp]
    crm.call("delete-campaign", path={"campaign_id": cp})
    assert crm.call("get-campaign", 404, path={"campaign_id": cp})["error"]["code"] == "campaign_not_found"


# ------------------------------------------------------------------------------------ access


SAMPLES = sorted(
    p.name.removeprefix("crm-").removesuffix(".json") for p in (EVENTS_DIR / "api").glob("crm-*.json")
)


def test_crm_flag_off_hides_every_route(invoke_api: Invoke) -> None:
    # Given acme switched the CRM off
    set_flags(invoke_api, crm=False, campaigns=True)
    # Then every /crm sample answers 404 feature_disabled, whatever the role
    for name in SAMPLES:
        event = load_event(f"api/crm-{name}.json", tenant=TENANT, role="owner")
        response = invoke_api(event)
        assert response["statusCode"] == 404, name
        assert body(response)["error"]["code"] == "feature_disabled", name
    # And another tenant still has it
    assert Crm(invoke_api, tenant=OTHER).call("list-contacts")["items"] == []


def test_viewers_read_but_cannot_write(crm: Crm, invoke_api: Invoke) -> None:
    contact = crm.contact("Ada", "ada@example.com")
    viewer = Crm(invoke_api, role="viewer")
    cid = {"contact_id": contact["contact_id"]}
    assert viewer.call("get-contact", path=cid)["name"] == "Ada"
    assert len(viewer.call("list-contacts")["items"]) == 1
    for name, kwargs in (
        ("create-contact", {"body": {"name": "X", "emails": [{"address": "x@example.com"}]}}),
        ("patch-contact", {"path": cid, "body": {"title": "x"}}),
        ("delete-contact", {"path": cid}),
        ("create-company", {"body": {"name": "X"}}),
        ("create-deal", {"body": {"name": "X"}}),
    ):
        assert viewer.call(name, 403, **kwargs)["error"]["code"] == "role_required", name
    assert viewer.call("get-contact", path=cid)["version"] == 1


def test_tenants_never_see_each_others_records(crm: Crm, invoke_api: Invoke) -> None:
    # Given acme has a contact, a company and a deal
    company = crm.company("Example", "example.com")["company_id"]
    contact = crm.contact("Ada", "ada@example.com", company_id=company)["contact_id"]
    deal = crm.deal("Big", company_id=company, contact_ids=[contact])["deal_id"]
    globex = Crm(invoke_api, tenant=OTHER)
    # Then globex gets 404 for each of them, by id and by address
    assert (
        globex.call("get-contact", 404, path={"contact_id": contact})["error"]["code"] == "contact_not_found"
    )
    assert (
        globex.call("get-company", 404, path={"company_id": company})["error"]["code"] == "company_not_found"
    )
    assert globex.call("get-deal", 404, path={"deal_id": deal})["error"]["code"] == "deal_not_found"
    globex.call("get-contact-by-email", 404, path={"address": "ada@example.com"})
    globex.call("patch-contact", 404, path={"contact_id": contact}, body={"title": "pwned"})
    globex.call("delete-deal", 404, path={"deal_id": deal})
    # And never sees them in lists, even filtered by acme's ids
    assert globex.call("list-contacts")["items"] == []
    assert globex.call("list-companies")["items"] == []
    assert globex.call("list-deals")["items"] == []
    assert globex.call("list-deals", query={"contact_id": contact})["items"] == []
    assert globex.call("list-deals", query={"company_id": company})["items"] == []
    # And cannot link acme's records to its own
    error = globex.call("create-deal", 400, body={"name": "x", "company_id": company})["error"]
    assert error["code"] == "unknown_company"
    # While addresses and domains are unique per tenant only
    globex.contact("Ada at globex", "ada@example.com")
    globex.company("Example at globex", "example.com")
    # And acme's cursor is refused for globex
    for i in range(3):
        crm.contact(f"P{i}", f"p{i}@example.com")
    cursor = crm.call("list-contacts", query={"limit": "1"})["next_cursor"]
    assert globex.call("list-contacts", 400, query={"cursor": cursor})["error"]["code"] == "invalid_cursor"


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "X", "emails": []},
        {"name": "X"},
        {"name": "", "emails": [{"address": "x@example.com"}]},
        {"name": "X", "emails": [{"address": "not-an-address"}]},
        {
            "name": "X",
            "emails": [
                {"address": "a@example.com", "primary": True},
                {"address": "b@example.com", "primary": True},
            ],
        },
        {"name": "X", "emails": [{"address": "a@example.com"}, {"address": "A@example.com"}]},
        {"name": "X", "emails": [{"address": "x@example.com"}], "nickname": "x"},
        {"name": "X", "emails": [{"address": "x@example.com"}], "custom": {"k": {"nested": 1}}},
        {"name": "X", "emails": [{"address": "x@example.com"}], "custom": {f"k{i}": i for i in range(51)}},
        {"name": "X", "emails": [{"address": "x@example.com"}], "custom": {"k": "v" * 1001}},
        {"name": "X", "emails": [{"address": "x@example.com"}], "company_id": "acme"},
    ],
)
def test_invalid_contacts_are_422(crm: Crm, bad: dict[str, Any]) -> None:
    error = crm.call("create-contact", 422, body=bad)["error"]
    assert error["code"] == "validation_error"
    assert error["details"]


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "X", "amount": "-1", "currency": "EUR"},
        {"name": "X", "amount": "10"},
        {"name": "X", "amount": "10", "currency": "EURO"},
        {"name": "X", "amount": "ten", "currency": "EUR"},
        {"name": "X", "close_date": "someday"},
        {"name": "X", "contact_ids": ["ct_1"]},
    ],
)
def test_invalid_deals_are_422(crm: Crm, bad: dict[str, Any]) -> None:
    assert crm.call("create-deal", 422, body=bad)["error"]["code"] == "validation_error"


def test_rule_violations_are_clear_400s(crm: Crm) -> None:
    ghost_company = "co_" + "0" * 26
    ghost_contact = "ct_" + "0" * 26
    assert (
        crm.call(
            "create-contact",
            400,
            body={"name": "X", "emails": [{"address": "x@example.com"}], "company_id": ghost_company},
        )["error"]["code"]
        == "unknown_company"
    )
    error = crm.call("create-deal", 400, body={"name": "X", "contact_ids": [ghost_contact]})["error"]
    assert error["code"] == "unknown_contact"
    assert error["details"] == {"contact_ids": [ghost_contact]}
    cid = crm.contact("Ada", "ada@example.com")["contact_id"]
    assert crm.call("patch-contact", 400, path={"contact_id": cid}, body={})["error"]["code"] == "empty_patch"
    error = crm.call("patch-contact", 400, path={"contact_id": cid}, body={"name": None})["error"]
    assert error["code"] == "invalid_record"
    assert crm.call("list-contacts", 422, query={"limit": "101"})["error"]["code"] == "validation_error"
    assert crm.call("list-contacts", 400, query={"cursor": "garbage!"})["error"]["code"] == "invalid_cursor"
    assert crm.call("create-contact", 400, body="{not json")["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("record", ["contact", "company", "deal"])
def test_malformed_and_unknown_ids_are_404(crm: Crm, record: str) -> None:
    key = f"{record}_id"
    for value in ("nope", f"{record[:2]}_" + "0" * 26):
        assert crm.call(f"get-{record}", 404, path={key: value})["error"]["code"] == f"{record}_not_found"


def test_openapi_documents_the_crm_routes(invoke_api: Invoke) -> None:
    spec = body(invoke_api(load_event("api/get-openapi.json")))
    paths = spec["paths"]
    assert set(paths["/crm/contacts/{contact_id}"]) == {"get", "patch", "delete"}
    assert {"400", "403", "404", "409", "422"} <= set(paths["/crm/contacts"]["post"]["responses"])
    params = {p["name"] for p in paths["/crm/deals"]["get"]["parameters"]}
    assert params == {"stage", "company_id", "contact_id", "open", "limit", "cursor"}
    assert "5 newest linked emails" in json.dumps(spec["components"]["schemas"]["ContactView"])


def test_every_crm_route_has_its_sample(invoke_api: Invoke) -> None:
    from local.template import load_template
    from tests.fixtures.aws import TEMPLATE

    crm_routes = {r.route_key for r in load_template([TEMPLATE]).routes() if r.path.startswith("/crm/")}
    samples = {json.loads(Path(EVENTS_DIR, "api", f"crm-{n}.json").read_text())["routeKey"] for n in SAMPLES}
    assert crm_routes == samples
    # 23 + the timelines and /crm/settings of email matching + 8 of tasks and activities + the
    # engagement of a contact and of a campaign + 9 of the Salesforce/HubSpot integrations and
    # orgs + 3 of the suppression list + a campaign's send and its status + the campaign sync and
    # an integration's activity logging switch + 3 of the contact sync (the mapping's GET and PUT,
    # POST /crm/sync/contacts)
    assert len(crm_routes) == 57
