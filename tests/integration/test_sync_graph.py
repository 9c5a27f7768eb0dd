"""Graph sync (sync/graph.py) against the Microsoft double and moto: initial delta of several
folders, new mail, flag changes, `@removed`, a 410 reset with no duplicates, replays, throttling
that slows but completes, continuation at the run's budget. Only what is stored and announced is
asserted."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import EventPublishError, ProviderRateLimited
from mailbridge.models.account import Account
from mailbridge.providers.graph.budget import RequestBudget
from mailbridge.providers.graph.client import GraphClient
from mailbridge.sync.engine import Budget, SyncDeps, SyncReport
from mailbridge.sync.graph import sync_graph_account
from mailbridge.sync.ingest import ingest_batch
from mailbridge.sync.wiring import service_deps
from tests.fixtures.aws import Stack
from tests.integration.graph_adapter_harness import Tokens, graph_client
from tests.integration.local_microsoft.conftest import USER, rfc5322

TENANT = "acme"
ACCOUNT_ID = "acc_graph0123456789abcd"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def ms(clock: ManualClock) -> Iterator[MicrosoftDouble]:
    with MicrosoftDouble(clock=clock, seed=11) as double:
        double.add_user(USER, "Ada Lovelace")
        yield double


@pytest.fixture
def deps(stack: Stack) -> SyncDeps:
    return service_deps().sync


@pytest.fixture
def account() -> Account:
    return Account(
        account_id=ACCOUNT_ID,
        tenant_id=TENANT,
        provider="graph",
        address=USER,
        folders=["archive"],
        created_at=datetime.now(UTC),
        created_by="user-1",
    )


def client_for(ms: MicrosoftDouble, clock: ManualClock, page_size: int = 2) -> GraphClient:
    # The budget runs on the double's clock, so a test can move time past a Retry-After.
    budget = RequestBudget(clock=lambda: clock.now().timestamp())
    return graph_client(ms, Tokens(ms), budget=budget, page_size=page_size)


def sync(client: GraphClient, account: Account, deps: SyncDeps, max_messages: int = 1000) -> SyncReport:
    return sync_graph_account(client, account, deps, Budget(max_messages=max_messages))


def deliver(ms: MicrosoftDouble, n: int, folder: str = "inbox", **kw: Any) -> str:
    raw = rfc5322(subject=f"Quote {n}", message_id=f"<q{n}@customer.example>", **kw)
    return ms.deliver(USER, raw, folder).immutable_id


def stored(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    table = stack.table("EmailsTable")
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": f"TENANT#{TENANT}"},
    }
    while True:
        page = table.query(**kwargs)
        out += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {
        "emails": [i for i in out if str(i["sk"]).startswith("EMAIL#")],
        "locations": [i for i in out if str(i["sk"]).startswith("LOC#")],
    }


def by_message_id(stack: Stack) -> dict[str, dict[str, Any]]:
    return {str(e["message_id"]): e for e in stored(stack)["emails"]}


def test_an_initial_delta_of_several_folders_stores_each_message_once(
    stack, deps, account, ms, clock, bus_probe
):
    # Given three messages in the inbox (two of one conversation), one sent, two in the selected archive
    inbox = [deliver(ms, n) for n in range(2)]
    reply = ms.deliver(
        USER,
        rfc5322(
            subject="Re: Quote 0", message_id="<r0@customer.example>", in_reply_to="<q0@customer.example>"
        ),
    ).immutable_id
    ms.deliver(
        USER,
        rfc5322(subject="Sent", sender=USER, to="carol@customer.example", message_id="<s0@mb>"),
        "sentitems",
    )
    archived = [deliver(ms, n, "archive") for n in range(10, 12)]

    # When the account is synced (pages of two)
    report = sync(client_for(ms, clock), account, deps)

    # Then every message is one email with one location keyed by its immutable id, in its folder
    assert report.complete
    state = stored(stack)
    assert len(state["emails"]) == 6
    locations = {str(loc["provider_id"]): loc for loc in state["locations"]}
    assert set(locations) == {*inbox, reply, *archived, ms.folder_contents(USER, "sentitems")[0].immutable_id}
    assert {str(loc["folder"]) for loc in state["locations"]} == {"inbox", "sentitems", "archive"}
    # And the conversation is the thread; the sent copy is outbound
    emails = by_message_id(stack)
    assert emails["q0@customer.example"]["thread_id"] == emails["r0@customer.example"]["thread_id"]
    assert emails["q1@customer.example"]["thread_id"] != emails["q0@customer.example"]["thread_id"]
    assert emails["s0@mb"]["direction"] == "outbound"
    # And each email was announced once; each folder's cursor is its deltaLink
    announced = Counter(e["detail"]["data"]["email_id"] for e in bus_probe())
    assert sorted(announced.values()) == [1] * 6
    for name in ("inbox", "sentitems", "archive"):
        assert "$deltatoken=" in str(deps.accounts.folder_state(TENANT, ACCOUNT_ID, name).delta_link)


def test_the_next_sync_brings_new_mail_flag_changes_and_removals(stack, deps, account, ms, clock):
    # Given a synced inbox of three
    first, second, _ = (deliver(ms, n) for n in range(3))
    client = client_for(ms, clock)
    sync(client, account, deps)

    # When one arrives, one is read and flagged in Outlook, one is deleted for good, and the account syncs
    deliver(ms, 3)
    ms.mark_read(USER, first)
    ms.flag(USER, first)
    ms.purge(USER, second)
    report = sync(client, account, deps)

    # Then the new one is stored, the flags are on the email, the purged one is marked deleted
    emails = by_message_id(stack)
    assert report.stored == 1
    assert set(emails) == {f"q{n}@customer.example" for n in range(4)}
    assert emails["q0@customer.example"]["read"] is True
    assert emails["q0@customer.example"]["flagged"] is True
    assert emails["q1@customer.example"]["deleted"] is True
    assert emails["q2@customer.example"]["deleted"] is False
    assert second not in {str(loc["provider_id"]) for loc in stored(stack)["locations"]}


class _RefusingBus(EventPublisher):
    """PutEvents refusing every entry after its retries, as `EventPublisher` reports it."""

    def publish(self, events: Sequence[DomainEvent]) -> None:
        raise EventPublishError("1 event(s) rejected after 4 attempts", details=["InternalFailure"])


def test_read_and_flag_changes_in_outlook_are_announced_as_email_updated_once(
    stack, deps, account, ms, clock, bus_probe
):
    # Given a synced inbox of three, its email.received events read
    first, second, _ = (deliver(ms, n) for n in range(3))
    client = client_for(ms, clock)
    sync(client, account, deps)
    bus_probe()
    # When one is read in Outlook, another flagged, and the first sync of it fails at PutEvents
    ms.mark_read(USER, first)
    ms.flag(USER, second)
    with pytest.raises(EventPublishError):
        sync(client, account, replace(deps, publisher=_RefusingBus("unused")))
    # And the sync runs again, then once more with nothing changed in Outlook
    sync(client, account, deps)
    announced = bus_probe()
    sync(client, account, deps)
    # Then each change was announced once, with the detail PATCH /emails/{id} announces
    emails = by_message_id(stack)
    got = {
        e["detail"]["data"]["email_id"]: e["detail"]["data"]
        for e in announced
        if e["detail-type"] == "email.updated"
    }
    assert len([e for e in announced if e["detail-type"] == "email.updated"]) == 2
    q0, q1 = emails["q0@customer.example"], emails["q1@customer.example"]
    assert got == {
        q0["email_id"]: {
            "email_id": q0["email_id"],
            "account_id": ACCOUNT_ID,
            "thread_id": q0["thread_id"],
            "changes": {"read": True},
        },
        q1["email_id"]: {
            "email_id": q1["email_id"],
            "account_id": ACCOUNT_ID,
            "thread_id": q1["thread_id"],
            "changes": {"flagged": True},
        },
    }
    assert (q0["read"], q1["flagged"], emails["q2@customer.example"]["read"]) == (True, True, False)
    assert [e for e in bus_probe() if e["detail-type"] == "email.updated"] == []


def test_the_thread_is_graphs_conversation(stack, deps, account, ms, clock):
    # Given two messages Outlook puts in one conversation by Thread-Index alone (no References,
    # unrelated subjects: header threading would keep them apart)
    root = base64.b64encode(bytes(range(22))).decode()
    child = base64.b64encode(bytes(range(22)) + b"\x01\x02\x03\x04\x05").decode()
    for n, index in ((0, root), (1, child)):
        raw = rfc5322(subject=f"Topic {n}", message_id=f"<t{n}@customer.example>")
        ms.deliver(USER, raw.replace(b"Subject:", f"Thread-Index: {index}\r\nSubject:".encode()))

    # When the account is synced
    sync(client_for(ms, clock), account, deps)

    # Then both emails are in one thread
    emails = by_message_id(stack)
    assert emails["t0@customer.example"]["thread_id"] == emails["t1@customer.example"]["thread_id"]


def test_the_cursor_moves_only_after_the_page_is_stored(stack, deps, account, ms, clock, monkeypatch):
    # Given three inbox messages and a store that fails the first batch
    for n in range(3):
        deliver(ms, n)
    client = client_for(ms, clock)
    calls: list[int] = []
    real = ingest_batch

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("DynamoDB failed")
        return real(*args, **kwargs)

    monkeypatch.setattr("mailbridge.sync.graph.ingest_batch", failing_once)

    # When a sync fails while storing its first page
    with pytest.raises(RuntimeError):
        sync(client, account, deps)

    # Then the inbox's cursor did not move, and the next run stores all three, once
    assert deps.accounts.folder_state(TENANT, ACCOUNT_ID, "inbox").delta_link is None
    assert sync(client, account, deps).complete
    assert len(stored(stack)["emails"]) == 3
    assert len(stored(stack)["locations"]) == 3


def test_a_message_moved_between_synced_folders_stays_one_email(stack, deps, account, ms, clock):
    # Given a synced message in the inbox
    message_id = deliver(ms, 0)
    client = client_for(ms, clock)
    sync(client, account, deps)

    # When it is moved to the archive (its immutable id stays) and the account syncs
    ms.move(USER, message_id, "archive")
    sync(client, account, deps)

    # Then one email, not deleted, located in the archive only
    state = stored(stack)
    assert len(state["emails"]) == 1
    assert state["emails"][0]["deleted"] is False
    assert [(loc["folder"], loc["provider_id"]) for loc in state["locations"]] == [("archive", message_id)]


@pytest.mark.parametrize("how", ["reset", "expire"])
def test_a_410_reset_restarts_the_folder_and_stores_nothing_twice(
    stack, deps, account, ms, clock, bus_probe, how
):
    # Given a synced inbox of three
    for n in range(3):
        deliver(ms, n)
    client = client_for(ms, clock)
    sync(client, account, deps)
    bus_probe()

    # When Graph resets (410 Gone) or evicts (SyncStateNotFound) the inbox's sync state, mail
    # arrives, and the account syncs
    if how == "reset":
        ms.reset_delta(USER, "inbox")
    else:
        ms.expire_delta_tokens(USER, "inbox")
    deliver(ms, 3)
    before = client.requests
    report = sync(client, account, deps)

    # Then the full round stored only the new message: four emails, four locations, one announcement
    state = stored(stack)
    assert report.complete
    assert len(state["emails"]) == 4
    assert len(state["locations"]) == 4
    assert [e["detail"]["data"]["message_id"] for e in bus_probe()] == ["q3@customer.example"]
    # And only the new message was downloaded: 3 folders, the 410, a full round of 2 pages, one
    # batch, the 2 other folders' rounds
    assert client.requests - before <= 3 + 1 + 2 + 1 + 2


def test_replays_and_duplicates_inside_pages_are_harmless(stack, deps, account, ms, clock, bus_probe):
    # Given pages that repeat the last item of the page before
    for n in range(7):
        deliver(ms, n)
    ms.inject_replays(USER, pages=10)

    # When the account is synced in pages of two
    sync(client_for(ms, clock), account, deps)

    # Then each message is stored and announced once
    state = stored(stack)
    assert len(state["emails"]) == 7
    assert len(state["locations"]) == 7
    assert sorted(Counter(e["detail"]["data"]["email_id"] for e in bus_probe()).values()) == [1] * 7


def test_a_run_out_of_budget_hands_over_and_the_continuation_completes(stack, deps, account, ms, clock):
    # Given six inbox messages and a run allowed four messages
    for n in range(6):
        deliver(ms, n)
    client = client_for(ms, clock)

    # When a run stops at its budget
    first = sync(client, account, deps, max_messages=4)

    # Then it is incomplete with what it stored kept and its nextLink saved
    assert not first.complete
    assert len(stored(stack)["emails"]) == 4
    assert "$skiptoken=" in str(deps.accounts.folder_state(TENANT, ACCOUNT_ID, "inbox").delta_link)

    # When the continuation runs, the rest is stored, nothing twice
    assert sync(client, account, deps).complete
    assert len(stored(stack)["emails"]) == 6
    assert len(stored(stack)["locations"]) == 6


@pytest.fixture
def limited(clock: ManualClock) -> Iterator[MicrosoftDouble]:
    # Outlook's window scaled down so a sync of 12 messages meets it: 10 requests per 10 minutes
    with MicrosoftDouble(clock=clock, seed=5, requests_per_window=10) as double:
        double.add_user(USER, "Ada Lovelace")
        yield double


def test_throttling_slows_the_sync_but_it_completes(stack, deps, account, limited, clock, bus_probe):
    # Given 12 inbox messages and a mailbox allowed 10 requests per 10 minutes (our budget
    # does not know that limit: Graph's 429s and throttled batch items must slow us down)
    for n in range(12):
        deliver(limited, n)
    client = client_for(limited, clock, page_size=4)

    # When the account is synced, and each rate limit is waited out on the clock before the next run
    waits: list[float] = []
    for _ in range(20):
        try:
            if sync(client, account, deps).complete:
                break
        except ProviderRateLimited as limited_error:
            waits.append(limited_error.retry_after or 0.0)
            clock.advance(limited_error.retry_after or 0.0)
    else:
        pytest.fail("the sync never completed")

    # Then it was slowed down (never in a tight loop) and every message is stored and announced once
    assert waits
    assert all(w > 0 for w in waits)
    assert len(stored(stack)["emails"]) == 12
    assert sorted(Counter(e["detail"]["data"]["email_id"] for e in bus_probe()).values()) == [1] * 12
