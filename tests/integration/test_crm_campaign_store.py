"""Our campaigns as a CRM integration holds them (`store/crm_campaigns.py`), on the template's crm
table in moto: a member set of any size survives the 400 KB item limit, a write that dies half way
leaves the members as last completely stored, and a smaller set drops the chunks of a larger one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from boto3.dynamodb.conditions import Key

from mailbridge.store import crm_campaigns
from mailbridge.store.crm_campaigns import CHUNK_MEMBERS, INLINE_MEMBERS, RemoteCampaign, RemoteCampaignStore
from tests.fixtures.aws import Stack

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TENANT, INTEGRATION, CAMPAIGN = "t1", "int_" + "a" * 20, "cmp_01JDZ0000000000000000000"


def ids(n: int, start: int = 0) -> frozenset[str]:
    """`n` Salesforce-shaped contact ids (18 characters)."""
    return frozenset(f"003{i:015d}" for i in range(start, start + n))


@pytest.fixture
def store(stack: Stack) -> RemoteCampaignStore:
    return RemoteCampaignStore(stack.deployed.tables["CrmTable"])


def campaign_items(store: RemoteCampaignStore) -> list[dict[str, Any]]:
    return store.table.query(
        KeyConditionExpression=Key("pk").eq(f"TENANT#{TENANT}")
        & Key("sk").begins_with(crm_campaigns.prefix(INTEGRATION))
    )["Items"]


def test_a_tag_audience_of_40000_members_is_stored_and_read_back_whole(store: RemoteCampaignStore) -> None:
    # Given a campaign whose members would not fit one item (40,000 ids of 18 characters: 760 KB)
    members = ids(40_000)
    # When it is stored and read back
    store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h1", members), AT)
    got = store.get_remote(TENANT, INTEGRATION, CAMPAIGN)
    # Then every member is there, in a head and chunks of at most CHUNK_MEMBERS ids each
    assert got == RemoteCampaign("701A", "h1", members)
    items = campaign_items(store)
    assert len(items) == 1 + 40_000 // CHUNK_MEMBERS
    assert max(len(i.get("members") or ()) for i in items) <= CHUNK_MEMBERS


def test_a_write_that_dies_before_its_head_leaves_the_members_last_stored(
    store: RemoteCampaignStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stored campaign of 12,000 members
    before = ids(12_000)
    store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h1", before), AT)

    # When the next write of 20,000 other members dies after its chunks, before its head
    def dies(**kwargs: Any) -> None:
        raise RuntimeError("the function timed out")

    monkeypatch.setattr(store.table, "put_item", dies)
    with pytest.raises(RuntimeError):
        store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h2", ids(20_000, 50_000)), AT)
    monkeypatch.undo()

    # Then the campaign reads as it was: no member of the unfinished write, none lost
    assert store.get_remote(TENANT, INTEGRATION, CAMPAIGN) == RemoteCampaign("701A", "h1", before)

    # And the next complete write replaces it, leaving no chunk of the dead write or of the one before
    after = ids(11_000, 100_000)
    store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h3", after), AT)
    assert store.get_remote(TENANT, INTEGRATION, CAMPAIGN) == RemoteCampaign("701A", "h3", after)
    assert len(campaign_items(store)) == 1 + 3  # 11,000 ids: three chunks


def test_a_smaller_member_set_drops_the_chunks_of_a_larger_one(store: RemoteCampaignStore) -> None:
    # Given a campaign stored with 12,000 members, then with 3 (inline in its head)
    store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h1", ids(12_000)), AT)
    store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h2", ids(3)), AT)
    # Then only the head is left, and it reads as the 3
    assert store.get_remote(TENANT, INTEGRATION, CAMPAIGN) == RemoteCampaign("701A", "h2", ids(3))
    assert [i["sk"] for i in campaign_items(store)] == [crm_campaigns.prefix(INTEGRATION) + CAMPAIGN]
    # And an empty set is stored as none
    store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h3", frozenset()), AT)
    assert store.get_remote(TENANT, INTEGRATION, CAMPAIGN) == RemoteCampaign("701A", "h3", frozenset())


def test_campaigns_whose_ids_share_a_beginning_read_only_their_own_members(
    store: RemoteCampaignStore, stack: Stack
) -> None:
    # Given two campaigns whose ids share a beginning, the first one chunked
    other = CAMPAIGN[:-1] + "1"
    store.put_remote(TENANT, INTEGRATION, other, RemoteCampaign("701B", "h", ids(INLINE_MEMBERS + 1)), AT)
    # When the second is stored with a set that fits its head, then read
    store.put_remote(TENANT, INTEGRATION, CAMPAIGN, RemoteCampaign("701A", "h", ids(INLINE_MEMBERS)), AT)
    # Then each reads as its own
    assert store.get_remote(TENANT, INTEGRATION, CAMPAIGN) == RemoteCampaign("701A", "h", ids(INLINE_MEMBERS))
    assert store.get_remote(TENANT, INTEGRATION, other) == RemoteCampaign(
        "701B", "h", ids(INLINE_MEMBERS + 1)
    )
    # And removing the integration removes both, chunks included
    store.delete_all(TENANT, INTEGRATION)
    assert campaign_items(store) == []
