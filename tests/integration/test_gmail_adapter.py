"""Contract tests of the Gmail adapter against the Google double: every method's typed result,
every typed error, the quota budget and bounded concurrency. Plain httpx; no AWS."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from local.clock import ManualClock
from local.google import GoogleDouble
from local.google.oauth import OAuthClient
from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.gmail.errors import HistoryExpired, MessageNotFound
from mailbridge.providers.gmail.quota import QuotaBudget
from tests.integration.local_google.conftest import REDIRECT, USER, connect, rfc5322

TOPIC = "projects/mailbridge-local/topics/gmail"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def double(
    clock: ManualClock, *, quota_units_per_minute: int = 15_000, quota_status: int = 403
) -> GoogleDouble:
    google = GoogleDouble(
        clock=clock, seed=7, quota_units_per_minute=quota_units_per_minute, quota_status=quota_status
    )
    google.add_user(USER, "Ada Lovelace")
    return google


@pytest.fixture
def google(clock: ManualClock) -> Iterator[GoogleDouble]:
    with double(clock) as started:
        yield started


@pytest.fixture
def client(google: GoogleDouble) -> OAuthClient:
    return google.register_client([REDIRECT])


class Tokens:
    """A TokenSource over the double's token endpoint that records what it was asked."""

    def __init__(self, google: GoogleDouble, client: OAuthClient) -> None:
        body = connect(google, client)
        self.google, self.client = google, client
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        self.forced = 0

    def __call__(self, force_refresh: bool) -> str:
        if force_refresh:
            self.forced += 1
            answer = httpx.post(
                self.google.token_url,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": self.refresh,
                    "client_id": self.client.client_id,
                    "client_secret": self.client.client_secret,
                },
            )
            assert answer.status_code == 200, answer.text
            self.access = answer.json()["access_token"]
        return str(self.access)


@pytest.fixture
def tokens(google: GoogleDouble, client: OAuthClient) -> Tokens:
    return Tokens(google, client)


@pytest.fixture
def gmail(google: GoogleDouble, tokens: Tokens) -> GmailClient:
    return GmailClient(google.gmail_url, tokens, page_size=2)


def seed(google: GoogleDouble, count: int) -> list[str]:
    return [
        google.deliver(USER, rfc5322(subject=f"Quote {i}", message_id=f"<q{i}@customer.example>"))
        for i in range(count)
    ]


def test_get_profile(google: GoogleDouble, gmail: GmailClient) -> None:
    profile = gmail.get_profile()
    assert (profile.email_address, profile.history_id) == (USER, google.history_id(USER))


def test_list_messages_follows_every_page(google: GoogleDouble, gmail: GmailClient) -> None:
    # Given five messages and pages of two
    ids = seed(google, 5)
    # When every message is listed
    listed = gmail.list_messages()
    # Then all five come back (three pages), newest first
    assert [m.id for m in listed.messages] == list(reversed(ids))
    assert gmail.requests == 3


def test_get_raw_decodes_the_rfc5322_bytes(google: GoogleDouble, gmail: GmailClient) -> None:
    raw = rfc5322(subject="Exact bytes", body="caf\u00e9 \u2603\r\n")
    message_id = google.deliver(USER, raw)
    fetched = gmail.get_raw(message_id)
    assert fetched.raw == raw
    assert (fetched.id, fetched.thread_id) == (message_id, google.thread_of(USER, message_id))
    assert set(fetched.label_ids) == {"INBOX", "UNREAD"}
    assert fetched.internal_date is not None


def test_get_message_minimal_and_metadata(google: GoogleDouble, gmail: GmailClient) -> None:
    message_id = google.deliver(USER, rfc5322(subject="Headers only"))
    minimal = gmail.get_message(message_id)
    metadata = gmail.get_message(message_id, "metadata", ["Subject", "From"])
    assert minimal.headers == ()
    assert set(minimal.label_ids) == {"INBOX", "UNREAD"}
    assert dict(metadata.headers)["Subject"] == "Headers only"


def test_a_deleted_message_is_message_not_found(google: GoogleDouble, gmail: GmailClient) -> None:
    message_id = google.deliver(USER, rfc5322())
    google.delete(USER, message_id)
    with pytest.raises(MessageNotFound):
        gmail.get_raw(message_id)


def test_history_follows_every_page_with_every_type(google: GoogleDouble, gmail: GmailClient) -> None:
    # Given a cursor, then mail added, relabelled and deleted (more records than a page)
    start = gmail.get_profile().history_id
    ids = seed(google, 3)
    google.relabel(USER, ids[0], add=["STARRED"], remove=["UNREAD"])
    google.delete(USER, ids[1])

    # When the history since the cursor is read
    history = gmail.list_history(start)

    # Then every record came back across the pages, with the mailbox's historyId to store
    added = [a.message.id for r in history.records for a in r.messages_added]
    assert added == ids
    assert [c.label_ids for r in history.records for c in r.labels_added] == [("STARRED",)]
    assert [c.label_ids for r in history.records for c in r.labels_removed] == [("UNREAD",)]
    assert [d.message.id for r in history.records for d in r.messages_deleted] == [ids[1]]
    assert history.history_id == google.history_id(USER)
    assert gmail.requests >= 4


def test_a_stale_history_id_is_history_expired(google: GoogleDouble, gmail: GmailClient) -> None:
    start = gmail.get_profile().history_id
    seed(google, 1)
    google.truncate_history(USER)
    with pytest.raises(HistoryExpired) as raised:
        gmail.list_history(start)
    assert raised.value.code == "history_expired"


def test_modify_and_batch_modify_change_labels(google: GoogleDouble, gmail: GmailClient) -> None:
    ids = seed(google, 3)
    ref = gmail.modify(ids[0], add=["STARRED"], remove=["UNREAD"])
    gmail.batch_modify(ids[1:], remove=["UNREAD", "INBOX"])
    assert set(ref.label_ids) == {"INBOX", "STARRED"}
    assert set(google.labels_of(USER, ids[0])) == {"INBOX", "STARRED"}
    assert [google.labels_of(USER, i) for i in ids[1:]] == [[], []]


def test_send_threads_into_the_gmail_thread(google: GoogleDouble, gmail: GmailClient) -> None:
    # Given a message in a thread
    original = google.deliver(USER, rfc5322(subject="Renewal", message_id="<r1@customer.example>"))
    thread = google.thread_of(USER, original)
    # When a reply is sent with the thread id
    reply = (
        f"From: {USER}\r\nTo: carol@customer.example\r\nSubject: Re: Renewal\r\n"
        "In-Reply-To: <r1@customer.example>\r\nReferences: <r1@customer.example>\r\n\r\nThanks!\r\n"
    ).encode()
    sent = gmail.send(reply, thread_id=thread)
    # Then Gmail files it in that thread, in SENT, and hands it to the recipient
    assert sent.thread_id == thread
    assert "SENT" in sent.label_ids
    assert google.sent(USER)[-1].recipients == ["carol@customer.example"]


def test_watch_stop_and_labels(google: GoogleDouble, gmail: GmailClient) -> None:
    google.create_topic(TOPIC)
    watch = gmail.watch(TOPIC)
    assert watch.history_id == google.history_id(USER)
    assert google.gmail.mailbox(USER).watch is not None
    gmail.stop()
    assert google.gmail.mailbox(USER).watch is None
    assert {"INBOX", "SENT", "TRASH"} <= {label.id for label in gmail.list_labels()}


def test_a_401_refreshes_once_and_retries(google: GoogleDouble, tokens: Tokens) -> None:
    # Given a cached token that expired at Google
    google.advance(3600)
    gmail = GmailClient(google.gmail_url, tokens)
    # When a call is made
    profile = gmail.get_profile()
    # Then one refresh was forced and the call went through
    assert profile.email_address == USER
    assert tokens.forced == 1


def test_a_401_after_the_refresh_is_reauth_required(google: GoogleDouble) -> None:
    gmail = GmailClient(google.gmail_url, lambda _force: "not-a-token")
    with pytest.raises(ProviderAuthError) as raised:
        gmail.get_profile()
    assert raised.value.code == "reauth_required"
    assert gmail.requests == 2


def test_a_missing_scope_is_insufficient_scope(google: GoogleDouble, client: OAuthClient) -> None:
    readonly = connect(google, client, scope="https://www.googleapis.com/auth/gmail.readonly")["access_token"]
    gmail = GmailClient(google.gmail_url, lambda _force: readonly)
    with pytest.raises(ProviderAuthError) as raised:
        gmail.modify("abc", add=["STARRED"])
    assert raised.value.code == "insufficient_scope"


def test_server_errors_are_retryable(google: GoogleDouble, gmail: GmailClient) -> None:
    google.fail_next("users.getProfile", status=503)
    with pytest.raises(ProviderError) as raised:
        gmail.get_profile()
    assert (raised.value.code, raised.value.retryable) == ("unavailable", True)


@pytest.mark.parametrize("status", [403, 429])
def test_googles_rate_limit_blocks_the_account_for_a_backoff(clock: ManualClock, status: int) -> None:
    # Given a double whose per-user quota is smaller than our budget (another app spends it too)
    with double(clock, quota_units_per_minute=3, quota_status=status) as google:
        tokens = Tokens(google, google.register_client([REDIRECT]))
        budget = QuotaBudget(jitter=lambda: 0.0)
        gmail = GmailClient(google.gmail_url, tokens, budget=budget)
        for _ in range(3):
            gmail.get_profile()

        # When Google refuses the next call
        with pytest.raises(ProviderRateLimited) as refused:
            gmail.get_profile()
        sent = gmail.requests

        # Then the error carries the backoff (no Retry-After from Gmail: 1 s after the first refusal)
        assert refused.value.retry_after == 1.0
        assert refused.value.details["reason"] in ("userRateLimitExceeded", "rateLimitExceeded")
        # And the next call within the backoff is refused here, without asking Google
        with pytest.raises(ProviderRateLimited):
            gmail.get_profile()
        assert gmail.requests == sent
        assert google.quota.rejected == 1


def test_the_budget_refuses_what_google_would_refuse(clock: ManualClock) -> None:
    # Given the double and our budget with the same per-minute quota (12 messages.get of 5 units = 60)
    with double(clock, quota_units_per_minute=60) as google:
        tokens = Tokens(google, google.register_client([REDIRECT]))
        message_id = google.deliver(USER, rfc5322())
        now = [0.0]
        budget = QuotaBudget(units_per_minute=60, clock=lambda: now[0])
        gmail = GmailClient(google.gmail_url, tokens, budget=budget)

        # When more is asked within the minute than the quota allows
        for step in range(12):
            now[0] = step * 2.0
            gmail.get_raw(message_id)
        now[0] = 30.0
        with pytest.raises(ProviderRateLimited) as refused:
            gmail.get_raw(message_id)

        # Then the budget refused before Google did, saying when the window frees
        assert google.quota.rejected == 0
        assert refused.value.retry_after == pytest.approx(30.0)  # the first spend (t=0) leaves at t=60
        assert gmail.requests == 12


def test_get_raw_many_is_bounded_and_keeps_order(google: GoogleDouble, tokens: Tokens) -> None:
    # Given twenty messages, one deleted since it was listed, and a transport that counts
    ids = seed(google, 20)
    google.delete(USER, ids[4])
    in_flight, peak = [0], [0]
    lock = threading.Lock()

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            try:
                return super().handle_request(request)
            finally:
                with lock:
                    in_flight[0] -= 1

    gmail = GmailClient(google.gmail_url, tokens, http=httpx.Client(transport=Counting()), max_concurrency=4)

    # When they are fetched in one batch
    batch = gmail.get_raw_many(ids)

    # Then every one came back in order, the deleted one is named, and at most 4 ran at once
    assert [m.id for m in batch.messages] == [i for i in ids if i != ids[4]]
    assert batch.missing == [ids[4]]
    assert batch.error is None
    assert 1 < peak[0] <= 4


def test_get_raw_many_stops_at_the_first_error(clock: ManualClock) -> None:
    # Given six messages and a per-user quota Google lets two messages.get through
    with double(clock, quota_units_per_minute=10) as google:
        ids = seed(google, 6)
        gmail = GmailClient(
            google.gmail_url, Tokens(google, google.register_client([REDIRECT])), max_concurrency=1
        )

        # When they are fetched in one batch
        batch = gmail.get_raw_many(ids)

        # Then the two fetched come back, the refusal is the batch's error, and nothing more was asked
        assert [m.id for m in batch.messages] == ids[:2]
        assert isinstance(batch.error, ProviderRateLimited)
        assert gmail.requests == 3


def test_get_raw_many_does_not_start_what_follows_an_error(google: GoogleDouble, tokens: Tokens) -> None:
    # Given ten messages, the first fetch failing at Google (a 500)
    ids = seed(google, 10)
    google.fail_next("users.messages.get", count=1, status=500)
    gmail = GmailClient(google.gmail_url, tokens, max_concurrency=1)

    # When they are fetched in one batch
    batch = gmail.get_raw_many(ids)

    # Then the error stops the batch: nothing counts as fetched and the queued calls are not made
    # (at most the one a worker had already picked up)
    assert batch.error is not None
    assert batch.error.code == "unavailable"
    assert batch.messages == []
    assert gmail.requests <= 2
