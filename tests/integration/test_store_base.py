"""The repository base against a real (moto) table built from template.yaml."""

from __future__ import annotations

import pytest
from boto3.dynamodb.conditions import Key

from mailbridge.errors import Conflict, Invalid
from mailbridge.store.base import DynamoRepository
from tests.fixtures.aws import Stack


@pytest.fixture
def repo(stack: Stack) -> DynamoRepository:
    return DynamoRepository(stack.deployed.tables["SettingsTable"])


def test_create_refuses_an_existing_key(repo: DynamoRepository) -> None:
    repo.create({"pk": "TENANT#a", "sk": "X", "v": 1})
    with pytest.raises(Conflict) as raised:
        repo.create({"pk": "TENANT#a", "sk": "X", "v": 2})
    assert raised.value.code == "already_exists"
    assert repo.get("TENANT#a", "X") == {"pk": "TENANT#a", "sk": "X", "v": 1, "version": 1}


def test_a_stale_version_loses(repo: DynamoRepository) -> None:
    # Given an item at version 1 that two writers read
    repo.create({"pk": "TENANT#a", "sk": "X", "v": 1})
    # When the first saves, the item moves to version 2
    saved = repo.replace({"pk": "TENANT#a", "sk": "X", "v": 2}, expected_version=1)
    assert saved["version"] == 2
    # Then the second, still holding version 1, gets a Conflict and changes nothing
    with pytest.raises(Conflict) as raised:
        repo.replace({"pk": "TENANT#a", "sk": "X", "v": 3}, expected_version=1)
    assert raised.value.code == "version_conflict"
    assert repo.get("TENANT#a", "X")["v"] == 2  # type: ignore[index]


def test_pages_walk_everything_once_and_cursors_stay_with_their_tenant(repo: DynamoRepository) -> None:
    # Given 7 items for tenant a and 3 for tenant b
    for i in range(7):
        repo.create({"pk": "TENANT#a", "sk": f"ITEM#{i:02d}"})
    for i in range(3):
        repo.create({"pk": "TENANT#b", "sk": f"ITEM#{i:02d}"})
    # When tenant a pages with limit 3
    seen: list[str] = []
    cursors: list[str] = []
    cursor: str | None = None
    while True:
        items, cursor = repo.query_page(
            tenant_id="a", key_condition=Key("pk").eq("TENANT#a"), cursor=cursor, limit=3
        )
        seen += [item["sk"] for item in items]
        if cursor is None:
            break
        cursors.append(cursor)
    # Then every item comes exactly once, in order
    assert seen == [f"ITEM#{i:02d}" for i in range(7)]
    # And tenant b cannot replay a's cursor
    with pytest.raises(Invalid):
        repo.query_page(tenant_id="b", key_condition=Key("pk").eq("TENANT#b"), cursor=cursors[0])


def test_newest_first_and_limits(repo: DynamoRepository) -> None:
    for i in range(3):
        repo.create({"pk": "TENANT#a", "sk": f"ITEM#{i}"})
    items, _ = repo.query_page(tenant_id="a", key_condition=Key("pk").eq("TENANT#a"), newest_first=True)
    assert [i["sk"] for i in items] == ["ITEM#2", "ITEM#1", "ITEM#0"]
    for bad in (0, 101):
        with pytest.raises(Invalid):
            repo.query_page(tenant_id="a", key_condition=Key("pk").eq("TENANT#a"), limit=bad)


def test_detaching_a_location_keeps_accounts_and_folders_in_step(stack: Stack) -> None:
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.keys import location_sk

    store = EmailStore(stack.deployed.tables["EmailsTable"])
    store.create_email("t", {"email_id": "em_1", "thread_id": "th_1", "deleted": False})
    inbox = location_sk("acc_a", "INBOX", 1, 5)
    archive = location_sk("acc_a", "Archive/2026 #1", 3, 9)
    other = location_sk("acc_b", "INBOX", 1, 2)
    for key, account, folder in (
        (inbox, "acc_a", "INBOX"),
        (archive, "acc_a", "Archive/2026 #1"),
        (other, "acc_b", "INBOX"),
    ):
        store.attach_location("t", "em_1", key, account, folder)
    # When one mailbox loses it, the derived sets follow
    assert store.detach_location("t", "em_1", other) is False
    item = store.get_email("t", "em_1")
    assert item is not None
    assert item["accounts"] == {"acc_a"}
    assert item["folders"] == {"acc_a:INBOX", "acc_a:Archive/2026 #1"}
    # And when the last location goes, the email is marked deleted
    store.detach_location("t", "em_1", inbox)
    assert store.detach_location("t", "em_1", archive) is True
    item = store.get_email("t", "em_1")
    assert item is not None
    assert item["deleted"] is True
    assert "accounts" not in item
