"""The contact <-> CRM record links of an integration (`store/crm_remote_ids.py`) on moto: both
directions found in one BatchGetItem, rewrites are harmless, relinking drops the stale side, and an
integration's links go with it without touching another integration's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailbridge.crm.integrations.models import RemoteLink
from mailbridge.store.crm_remote_ids import RemoteIdStore
from tests.fixtures.aws import Stack

TENANT = "acme"
SF = "int_" + "a" * 20
HS = "int_" + "b" * 20
AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def link(integration_id: str, contact_id: str, remote_id: str, **extra: Any) -> RemoteLink:
    return RemoteLink(
        integration_id=integration_id, contact_id=contact_id, remote_id=remote_id, synced_at=AT, **extra
    )


def store(stack: Stack) -> RemoteIdStore:
    return RemoteIdStore(stack.deployed.tables["CrmTable"])


def count_requests(links: RemoteIdStore) -> list[str]:
    """The names of the DynamoDB operations the store's client calls from now on."""
    seen: list[str] = []
    links.client.meta.events.register(
        "before-call.dynamodb.*", lambda **kwargs: seen.append(kwargs["model"].name)
    )
    return seen


def test_a_link_is_found_from_either_side_with_what_each_side_stood_at(stack: Stack) -> None:
    links = store(stack)
    written = [
        link(SF, f"ct_{n}", f"003{n:015d}", remote_modified=f"2030-01-0{n % 9 + 1}T00:00:00.000+0000")
        for n in range(120)
    ]
    links.put(TENANT, [*written, link(SF, "ct_x", "003X", local_updated_at="2030-01-01T00:00:00+00:00")])

    by_contact = links.by_contacts(TENANT, SF, ["ct_5", "ct_119", "ct_x", "ct_missing"])
    by_remote = links.by_remote(TENANT, SF, ["003000000000000007", "003X", "nope"])

    assert sorted(by_contact) == ["ct_119", "ct_5", "ct_x"]
    assert by_contact["ct_5"] == written[5]
    assert by_contact["ct_x"].local_updated_at == "2030-01-01T00:00:00+00:00"
    assert {r: link.contact_id for r, link in by_remote.items()} == {
        "003000000000000007": "ct_7",
        "003X": "ct_x",
    }
    # another integration of the tenant knows none of them
    assert links.by_contacts(TENANT, HS, ["ct_5"]) == {}
    assert links.by_remote("other-tenant", SF, ["003X"]) == {}


def test_lookups_are_batched_not_one_request_per_contact(stack: Stack) -> None:
    links = store(stack)
    links.put(TENANT, [link(SF, f"ct_{n}", f"r{n}") for n in range(150)])
    seen = count_requests(links)

    found = links.by_contacts(TENANT, SF, [f"ct_{n}" for n in range(150)])

    assert len(found) == 150
    assert seen == ["BatchGetItem", "BatchGetItem"]  # 100 keys a request


def test_writing_a_link_again_changes_nothing_and_a_later_write_replaces_it(stack: Stack) -> None:
    links = store(stack)
    links.put(TENANT, [link(SF, "ct_1", "r1", fields_hash="a" * 64)])
    links.put(TENANT, [link(SF, "ct_1", "r1", fields_hash="a" * 64)])
    links.put(TENANT, [link(SF, "ct_1", "r1", fields_hash="b" * 64)])

    assert links.by_contacts(TENANT, SF, ["ct_1"])["ct_1"].fields_hash == "b" * 64
    items = stack.table("CrmTable").query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": f"TENANT#{TENANT}", ":p": f"CRMID#{SF}#"},
    )["Items"]
    assert sorted(i["sk"] for i in items) == [f"CRMID#{SF}#C#ct_1", f"CRMID#{SF}#R#r1"]


def test_relinking_a_contact_to_another_record_forgets_the_old_record(stack: Stack) -> None:
    links = store(stack)
    old = link(SF, "ct_1", "r_old")
    links.put(TENANT, [old])

    links.relink(TENANT, [old], [link(SF, "ct_1", "r_new")])

    assert links.by_contacts(TENANT, SF, ["ct_1"])["ct_1"].remote_id == "r_new"
    assert links.by_remote(TENANT, SF, ["r_old", "r_new"]).keys() == {"r_new"}


def test_forget_and_delete_all_leave_other_integrations_alone(stack: Stack) -> None:
    links = store(stack)
    links.put(TENANT, [link(SF, f"ct_{n}", f"r{n}") for n in range(30)] + [link(HS, "ct_1", "h1")])

    links.forget(TENANT, [link(SF, "ct_0", "r0")])
    assert links.by_contacts(TENANT, SF, ["ct_0", "ct_1"]).keys() == {"ct_1"}
    assert links.by_remote(TENANT, SF, ["r0"]) == {}

    links.delete_all(TENANT, SF)
    assert links.by_contacts(TENANT, SF, [f"ct_{n}" for n in range(30)]) == {}
    assert links.by_contacts(TENANT, HS, ["ct_1"]).keys() == {"ct_1"}
