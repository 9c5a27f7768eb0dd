"""Contract tests of the Graph adapter against the Microsoft double: every call's typed result,
every typed error, the request budget (window and concurrency) and JSON batching. No AWS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.providers.graph.budget import RequestBudget
from mailbridge.providers.graph.client import GraphClient
from mailbridge.providers.graph.errors import DeltaReset, MessageNotFound
from mailbridge.providers.graph.models import DeltaMessage
from tests.emf import emitted
from tests.integration.graph_adapter_harness import Tokens, graph_client
from tests.integration.local_microsoft.conftest import USER, rfc5322


@pytest.fixture
def clock() -> ManualClock:
    # Real time (to the second), so the double's token lifetimes agree with the wall clock.
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def ms(clock: ManualClock) -> Iterator[MicrosoftDouble]:
    with MicrosoftDouble(clock=clock, seed=7) as double:
        yield double


@pytest.fixture
def tokens(ms: MicrosoftDouble) -> Tokens:
    ms.add_user(USER, "Ada Lovelace")
    return Tokens(ms)


@pytest.fixture
def graph(ms: MicrosoftDouble, tokens: Tokens) -> GraphClient:
    return graph_client(ms, tokens, page_size=2)


def seed(ms: MicrosoftDouble, count: int, folder: str = "inbox") -> list[str]:
    """`count` messages delivered; their immutable ids."""
    return [
        ms.deliver(
            USER, rfc5322(subject=f"Quote {i}", message_id=f"<q{i}-{folder}@customer.example>"), folder
        ).immutable_id
        for i in range(count)
    ]


def full_round(
    graph: GraphClient, folder_id: str, link: str | None = None
) -> tuple[list[DeltaMessage], str, int]:
    pages = list(graph.delta_pages(folder_id, link))
    last = pages[-1].delta_link
    assert last is not None
    return [m for p in pages for m in p.messages], last, len(pages)


def test_well_known_folder_names_resolve_to_the_folder_ids(ms, graph):
    # When the adapter resolves the four well-known folders
    folders = graph.well_known_folders()

    # Then each is the double's folder id for that name
    assert {name: f.id for name, f in folders.items()} == {
        name: ms.folder_id(USER, name) for name in ("inbox", "sentitems", "archive", "deleteditems")
    }


def test_an_initial_delta_follows_next_links_to_the_delta_link_in_pages_of_the_size_asked(ms, graph):
    # Given five messages in the inbox (and one elsewhere)
    ids = seed(ms, 5)
    seed(ms, 1, "archive")

    # When the adapter reads a full round with odata.maxpagesize=2
    messages, delta_link, pages = full_round(graph, ms.folder_id(USER, "inbox"))

    # Then three pages carry the five immutable ids with their conversation, and a deltaLink ends it
    assert pages == 3
    assert sorted(m.id for m in messages) == sorted(ids)
    assert all(m.conversation_id and not m.removed for m in messages)
    assert "$deltatoken=" in delta_link


def test_the_delta_link_brings_new_mail_flag_changes_and_removals(ms, graph):
    # Given a complete first round of three messages
    first, second, third = seed(ms, 3)
    inbox = ms.folder_id(USER, "inbox")
    _, delta_link, _ = full_round(graph, inbox)

    # When one arrives, one is read and flagged, one is moved away, and the deltaLink is followed
    (new,) = (
        seed(ms, 1, "inbox") if False else [ms.deliver(USER, rfc5322(subject="New"), "inbox").immutable_id]
    )
    ms.mark_read(USER, first)
    ms.flag(USER, first)
    ms.move(USER, second, "archive")
    messages, _, _ = full_round(graph, inbox, delta_link)

    # Then the new one and the changed one come back, the moved one as @removed
    by_id = {m.id: m for m in messages}
    assert set(by_id) == {new, first, second}
    assert by_id[first].flags == ("\\Seen", "\\Flagged")
    assert by_id[second].removed
    assert not by_id[new].removed
    assert by_id[new].flags == ()
    assert third not in by_id


@pytest.mark.parametrize("how", ["reset", "expire"])
def test_a_reset_or_evicted_sync_state_is_a_delta_reset(ms, graph, how):
    # Given a saved deltaLink
    seed(ms, 1)
    inbox = ms.folder_id(USER, "inbox")
    _, delta_link, _ = full_round(graph, inbox)

    # When Graph resets the sync state (410 Gone + Location) or evicts it (410 SyncStateNotFound)
    if how == "reset":
        ms.reset_delta(USER, "inbox")
    else:
        ms.expire_delta_tokens(USER, "inbox")

    # Then following the link raises DeltaReset (not a retryable error)
    with pytest.raises(DeltaReset) as raised:
        list(graph.delta_pages(inbox, delta_link))
    assert raised.value.code == "delta_reset"
    assert raised.value.details["status"] == 410


def test_mime_by_value_and_by_batches_of_twenty(ms, graph):
    # Given 25 messages, one of them purged since it was listed
    ids = seed(ms, 25)
    ms.purge(USER, ids[3])
    before = graph.requests

    # When one is fetched by $value and all by the batch call
    one = graph.get_mime(ids[0])
    batch = graph.get_mime_many(ids)

    # Then the bytes are the message's MIME, in two $batch calls; the purged one is missing
    assert one == ms.mail.mime(ms.message(USER, ids[0]))
    assert graph.requests - before == 1 + 2
    assert batch.missing == [ids[3]]
    assert set(batch.mime) == set(ids) - {ids[3]}
    assert batch.mime[ids[7]] == ms.mail.mime(ms.message(USER, ids[7]))
    assert not batch.throttled


def test_a_purged_message_by_value_is_message_not_found(ms, graph):
    (gone,) = seed(ms, 1)
    ms.purge(USER, gone)
    with pytest.raises(MessageNotFound):
        graph.get_mime(gone)


def test_patch_sets_read_and_flag_and_move_keeps_the_immutable_id(ms, graph):
    # Given an unread, unflagged message
    (message_id,) = seed(ms, 1)

    # When it is marked read and flagged, then moved to the archive
    graph.update(message_id, is_read=True, flagged=True)
    moved = graph.move(message_id, "archive")

    # Then the mailbox shows it so, in the archive, under the same id
    stored = ms.message(USER, message_id)
    assert stored.is_read
    assert stored.flag["flagStatus"] == "flagged"
    assert moved == message_id
    assert stored.folder_id == ms.folder_id(USER, "archive")

    # When the flag is cleared
    graph.update(message_id, flagged=False)
    assert ms.message(USER, message_id).flag["flagStatus"] == "notFlagged"


def test_send_mime_keeps_our_message_id_and_files_a_copy_in_sent_items(ms, graph):
    # Given MIME with our Message-ID
    raw = rfc5322(
        subject="Proposal", sender=USER, to="carol@customer.example", message_id="<ours-1@mailbridge>"
    )

    # When it is sent by sendMail
    graph.send_mime(raw)

    # Then it is sent, and Sent Items holds a copy with the same Message-ID
    sent = ms.folder_contents(USER, "sentitems")
    assert len(sent) == 1
    assert b"Message-ID: <ours-1@mailbridge>" in ms.mail.mime(sent[0])
    assert len(ms.sent(USER)) == 1


def test_a_401_refreshes_the_token_once_then_reauth_required(ms, graph, tokens):
    # Given an access token that expired
    seed(ms, 1)
    ms.expire_access_tokens(USER)

    # When a call is made, the token is refreshed once and the call succeeds
    assert graph.folder("inbox").total_item_count == 1
    assert tokens.forced == 1

    # Given sign-in sessions revoked and tokens expired: the refresh fails too
    ms.revoke(USER)
    ms.expire_access_tokens(USER)

    # Then the call fails with reauth_required after one more refresh
    with pytest.raises(ProviderAuthError) as raised:
        graph.folder("inbox")
    assert raised.value.code == "reauth_required"
    assert tokens.forced == 2


def test_a_missing_permission_and_a_server_error_are_typed(ms, graph):
    ms.fail_next(1, 503, match="mailFolders")
    with pytest.raises(ProviderError) as raised:
        graph.folder("inbox")
    assert raised.value.code == "unavailable"
    assert raised.value.retryable

    with pytest.raises(ProviderError) as refused:
        graph.move(seed(ms, 1)[0], "no-such-folder")
    assert not refused.value.retryable


@pytest.fixture
def limited(clock: ManualClock) -> Iterator[MicrosoftDouble]:
    # Outlook's window scaled down: 6 requests per 10 minutes
    with MicrosoftDouble(clock=clock, seed=3, requests_per_window=6) as double:
        yield double


def test_graph_429_raises_rate_limited_with_retry_after_and_blocks_the_account(limited, capsys):
    # Given a mailbox whose window another client nearly spent (our budget does not know)
    limited.add_user(USER)
    graph = graph_client(limited, Tokens(limited))
    seed(limited, 1)
    for _ in range(6):
        graph.folder("inbox")
    sent = graph.requests

    # When Graph answers 429 with Retry-After
    with pytest.raises(ProviderRateLimited) as raised:
        graph.folder("inbox")

    # Then the error carries the advised delay, and the next call is refused without a request
    assert 0 < (raised.value.retry_after or 0) <= 600
    with pytest.raises(ProviderRateLimited):
        graph.folder("inbox")
    assert graph.requests == sent + 1
    # And Graph's 429 is counted once for the quota alarm (the refusal here is not Graph's)
    throttled = emitted(capsys.readouterr().out, "ProviderThrottled")
    assert [(r["dimensions"]["provider"], r["dimensions"]["reason"]) for r in throttled] == [
        ("graph", "http_429")
    ]


def test_a_throttled_request_inside_a_batch_is_reported_with_its_delay(limited, capsys):
    # Given a window with room for 4 of 6 batched downloads
    limited.add_user(USER)
    ids = seed(limited, 6)
    graph = graph_client(limited, Tokens(limited))
    graph.folder("inbox")
    graph.folder("inbox")

    # When the six are fetched in one batch
    batch = graph.get_mime_many(ids)

    # Then four came, two are throttled with Retry-After, and the account is blocked until then
    assert len(batch.mime) == 4
    assert len(batch.throttled) == 2
    throttled = emitted(capsys.readouterr().out, "ProviderThrottled")
    assert [(r["dimensions"]["provider"], r["dimensions"]["reason"]) for r in throttled] == [
        ("graph", "batch_429")
    ]
    assert batch.retry_after is not None
    assert batch.retry_after > 0
    with pytest.raises(ProviderRateLimited):
        graph.folder("inbox")


def test_the_budget_refuses_what_graph_would_refuse_without_sending_it(ms, tokens):
    # Given a budget of 3 requests per window
    graph = graph_client(ms, tokens, budget=RequestBudget(3))
    for _ in range(3):
        graph.folder("inbox")

    # When a fourth call is asked for
    with pytest.raises(ProviderRateLimited) as raised:
        graph.folder("inbox")

    # Then it is refused with the time until the window has room, and never sent
    assert 0 < (raised.value.retry_after or 0) <= 600
    assert graph.requests == 3
    assert ms.throttle.throttled == 0


def test_at_most_four_requests_are_in_flight_for_a_mailbox(ms, tokens):
    # Given 8 callers of one mailbox at once while the double holds requests in flight
    graph = graph_client(ms, tokens)
    (message_id,) = seed(ms, 1)
    hold = ms.hold(USER)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            graph.get_mime(message_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()

    # When four are held, then no fifth reaches Graph until they are released
    assert hold.wait_for(4)
    hold.release()
    for thread in threads:
        thread.join(20)

    # Then all eight succeed and Graph never had to refuse one for concurrency
    assert errors == []
    assert ms.throttle.throttled == 0
    assert graph.budget.peak_in_flight == 4


def test_mime_batches_go_out_base64_decoded(ms, graph):
    # A message whose MIME holds 8-bit text arrives byte for byte through the batch's base64 body
    raw = rfc5322(subject="Grüße", body="Schöne Grüße\r\n").replace(
        b"Subject", b"Content-Type: text/plain; charset=utf-8\r\nSubject"
    )
    message_id = ms.deliver(USER, raw).immutable_id
    assert graph.get_mime_many([message_id]).mime[message_id] == ms.mail.mime(ms.message(USER, message_id))
