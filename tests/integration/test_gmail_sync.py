"""The Gmail sync against the Google double, through the real sync function on moto: a mailbox
connected by the OAuth flow syncs in full, then by history (new mail, label changes, deletions),
resyncs without duplicates when its history expired, stops at a revoked grant and resumes after
a reconnect, and waits out rate limits. What is checked is what the API answers and what the
double saw."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from local.google.gmail import Mailbox as DoubleMailbox
from mailbridge.errors import ProviderRateLimited
from mailbridge.models.account import Account
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.gmail.quota import QuotaBudget
from mailbridge.sync.engine import Budget
from mailbridge.sync.messages import SyncRequest
from mailbridge.sync.service import run_sync
from mailbridge.sync.wiring import service_deps
from tests.emf import emitted
from tests.events import load_event
from tests.integration.gmail_harness import TENANT, USER, GmailStack
from tests.integration.local_google.conftest import rfc5322
from tests.integration.sync_harness import without_ages

ALL_MAIL = "[Gmail]/All Mail"


def sync(gmail_stack: GmailStack, *extra: dict[str, Any], rounds: int = 20) -> list[dict[str, Any]]:
    """Deliver what is on the SyncQueue (and `extra`) to the sync function until it is empty;
    every record's result."""
    template = load_event("sqs/sync-renew-watches.json")["Records"][0]
    results: list[dict[str, Any]] = []
    pending = list(extra)
    for _ in range(rounds):
        pending += gmail_stack.sync_messages()
        if not pending:
            return results
        records = []
        for i, body in enumerate(pending):
            record = json.loads(json.dumps(template))
            record["messageId"] = f"m-{len(results)}-{i}"
            record["body"] = json.dumps(body, default=str)
            records.append(record)
        try:
            results.append(gmail_stack.invoke("sync", {"Records": records}))
        except BatchProcessingError:  # every record failed: the invocation fails, SQS redelivers
            results.append({"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]})
        pending = []
    raise AssertionError("the sync kept queueing work")


def push(account_id: str) -> dict[str, Any]:
    return {"kind": "sync", "tenant_id": TENANT, "account_id": account_id, "reason": "push"}


def api(gmail_stack: GmailStack, name: str, path: dict[str, str] | None = None, **query: str) -> Any:
    event = load_event(f"api/{name}.json", tenant=TENANT, sub="user-1")
    if path:
        for key, value in path.items():
            event["rawPath"] = event["rawPath"].replace(event["pathParameters"][key], value)
            event["pathParameters"][key] = value
        event["requestContext"]["http"]["path"] = event["rawPath"]
    event["queryStringParameters"] = dict(query) or None
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    response = gmail_stack.invoke("api", event)
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])


def emails(gmail_stack: GmailStack, account_id: str, folder: str | None = None) -> dict[str, dict[str, Any]]:
    """The account's emails as GET /emails lists them, by subject."""
    query = {"account_id": account_id, "limit": "100"}
    if folder:
        query["folder"] = folder
    listed = api(gmail_stack, "list-emails", None, **query)
    return {str(e["subject"]): e for e in listed["items"]}


def status(gmail_stack: GmailStack, account_id: str) -> dict[str, Any]:
    return dict(api(gmail_stack, "get-account-status", path={"account_id": account_id}))


def mailbox(gmail_stack: GmailStack) -> DoubleMailbox:
    return gmail_stack.google.gmail.mailbox(USER)


class RawGets:
    """Counts users.messages.get?format=raw requests the adapter sends."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.ids: list[str] = []
        original = GmailClient.get_raw

        def counted(client: GmailClient, message_id: str) -> Any:
            self.ids.append(message_id)
            return original(client, message_id)

        monkeypatch.setattr(GmailClient, "get_raw", counted)


def seed(gmail_stack: GmailStack) -> dict[str, str]:
    """A mailbox before connecting: a conversation of two (the reply starred and read), mail Ada
    sent, and one under a user label."""
    google = gmail_stack.google
    projects = google.create_label(USER, "Projects")
    return {
        "quote": google.deliver(USER, rfc5322("Renewal quote", message_id="<q1@customer.example>")),
        "reply": google.deliver(
            USER,
            rfc5322(
                "Re: Renewal quote",
                message_id="<q2@customer.example>",
                in_reply_to="<q1@customer.example>",
            ),
            labels=["INBOX", "STARRED"],
        ),
        "sent": google.deliver(
            USER,
            rfc5322("Kickoff", sender=f"Ada <{USER}>", to="bob@partner.example", message_id="<k1@x>"),
            labels=["SENT"],
        ),
        "labelled": google.deliver(
            USER, rfc5322("Plans", message_id="<p1@customer.example>"), labels=[projects, "UNREAD"]
        ),
    }


def test_connecting_syncs_the_mailbox_in_full_with_folders_flags_and_threads(gmail_stack: GmailStack) -> None:
    # Given a Gmail mailbox with mail in it, among it a reply by subject only, which Gmail keeps
    # out of the quote's thread (no References or In-Reply-To names the quote)
    seed(gmail_stack)
    gmail_stack.google.deliver(USER, rfc5322("RE: Renewal quote", message_id="<ps@customer.example>"))

    # When it is connected by the OAuth flow and the queued sync runs
    account_id = gmail_stack.connect()
    assert gmail_stack.account(account_id).sync.stage == "pending"
    results = sync(gmail_stack)

    # Then every message is one email, listed under its labels' folders
    assert all(r == {"batchItemFailures": []} for r in results), results
    stored = emails(gmail_stack, account_id, ALL_MAIL)
    assert sorted(stored) == ["Kickoff", "Plans", "RE: Renewal quote", "Re: Renewal quote", "Renewal quote"]
    assert sorted(emails(gmail_stack, account_id, "INBOX")) == [
        "RE: Renewal quote",
        "Re: Renewal quote",
        "Renewal quote",
    ]
    assert sorted(emails(gmail_stack, account_id, "Projects")) == ["Plans"]
    assert sorted(emails(gmail_stack, account_id, "SENT")) == ["Kickoff"]
    # And UNREAD / STARRED became read and flagged
    flags = {s: (e["read"], e["flagged"]) for s, e in stored.items()}
    assert flags == {
        "Renewal quote": (False, False),
        "Re: Renewal quote": (True, True),
        "Kickoff": (True, False),
        "Plans": (False, False),
        "RE: Renewal quote": (False, False),
    }
    # And threads are Gmail's: the conversation is one, the reply by subject only another
    assert stored["Renewal quote"]["thread_id"] == stored["Re: Renewal quote"]["thread_id"]
    assert stored["RE: Renewal quote"]["thread_id"] != stored["Renewal quote"]["thread_id"]
    assert stored["Plans"]["thread_id"] != stored["Renewal quote"]["thread_id"]
    # And the account went idle with its time of success
    state = status(gmail_stack, account_id)
    assert (state["stage"], state["reason"]) == ("idle", None)
    assert state["last_success_at"] is not None
    [cursor] = [f for f in state["folders"] if f["name"] == ALL_MAIL]
    assert cursor["history_id"] is not None


def test_history_brings_new_mail_label_changes_and_deletions(
    gmail_stack: GmailStack, bus_probe: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given a synced mailbox, its first sync's events read
    ids = seed(gmail_stack)
    account_id = gmail_stack.connect()
    sync(gmail_stack)
    google = gmail_stack.google
    bus_probe()

    # When mail arrives, the quote is read and starred, the labelled one leaves its label for the
    # inbox, and the sent one is deleted for good; then a push names the account
    google.deliver(USER, rfc5322("Order confirmed", message_id="<o1@customer.example>"))
    google.relabel(USER, ids["quote"], add=["STARRED"], remove=["UNREAD"])
    projects = next(label for label in mailbox(gmail_stack).labels.values() if label.name == "Projects")
    google.relabel(USER, ids["labelled"], add=["INBOX"], remove=[projects.id])
    google.delete(USER, ids["sent"])
    results = sync(gmail_stack, push(account_id))

    # Then the new mail is stored once, flags and folders follow the labels, the deleted one is gone
    assert all(r == {"batchItemFailures": []} for r in results), results
    stored = emails(gmail_stack, account_id, ALL_MAIL)
    assert sorted(stored) == ["Order confirmed", "Plans", "Re: Renewal quote", "Renewal quote"]
    assert (stored["Renewal quote"]["read"], stored["Renewal quote"]["flagged"]) == (True, True)
    assert sorted(emails(gmail_stack, account_id, "INBOX")) == [
        "Order confirmed",
        "Plans",
        "Re: Renewal quote",
        "Renewal quote",
    ]
    assert emails(gmail_stack, account_id, "Projects") == {}
    assert emails(gmail_stack, account_id, "SENT") == {}
    # And the quote's read and starred state was announced once as email.updated (with the detail
    # PATCH /emails/{id} announces); the label move changed no read or flagged state
    updated = [e["detail"]["data"] for e in bus_probe() if e["detail-type"] == "email.updated"]
    quote = stored["Renewal quote"]
    assert updated == [
        {
            "email_id": quote["email_id"],
            "account_id": account_id,
            "thread_id": quote["thread_id"],
            "changes": {"read": True, "flagged": True},
        }
    ]
    # When another push names the account with nothing changed since
    sync(gmail_stack, push(account_id))
    # Then nothing is announced again
    assert [e for e in bus_probe() if e["detail-type"] == "email.updated"] == []


def test_a_stale_history_id_resyncs_with_no_duplicates(
    gmail_stack: GmailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a synced mailbox whose history Gmail no longer has, with mail arrived and one message
    # deleted since
    ids = seed(gmail_stack)
    account_id = gmail_stack.connect()
    sync(gmail_stack)
    google = gmail_stack.google
    google.deliver(USER, rfc5322("After the gap", message_id="<g1@customer.example>"))
    google.delete(USER, ids["labelled"])
    google.truncate_history(USER)
    before = {s: e["email_id"] for s, e in emails(gmail_stack, account_id, ALL_MAIL).items()}
    gets = RawGets(monkeypatch)

    # When the account syncs
    results = sync(gmail_stack, push(account_id))

    # Then the full resync stored the new mail, removed the deleted one, and duplicated nothing
    assert all(r == {"batchItemFailures": []} for r in results), results
    after = {s: e["email_id"] for s, e in emails(gmail_stack, account_id, ALL_MAIL).items()}
    assert sorted(after) == ["After the gap", "Kickoff", "Re: Renewal quote", "Renewal quote"]
    assert {s: after[s] for s in after if s in before} == {s: before[s] for s in after if s in before}
    # And only the one message it did not have was fetched again
    assert len(gets.ids) == 1
    assert status(gmail_stack, account_id)["stage"] == "idle"


def test_a_revoked_grant_stops_the_sync_and_a_reconnect_resumes_from_the_cursor(
    gmail_stack: GmailStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a synced mailbox whose user then revokes the app's access
    seed(gmail_stack)
    account_id = gmail_stack.connect()
    sync(gmail_stack)
    cursor = next(f for f in status(gmail_stack, account_id)["folders"] if f["name"] == ALL_MAIL)
    gmail_stack.google.revoke(USER)
    gmail_stack.google.deliver(USER, rfc5322("While away", message_id="<w1@customer.example>"))

    # When a push names the account
    from mailbridge.oauth.tokens import default_tokens

    default_tokens().forget(gmail_stack.account(account_id))
    sync(gmail_stack, push(account_id))

    # Then the account waits for its user with reason reauth_required, nothing new stored
    state = status(gmail_stack, account_id)
    assert (state["stage"], state["reason"]) == ("failed", "reauth_required")
    assert "While away" not in emails(gmail_stack, account_id, ALL_MAIL)
    # And the refused refresh is counted for the token-refresh alarm, by provider and reason
    failed = emitted(capsys.readouterr().out, "TokenRefreshFailed")
    assert [(r["dimensions"]["provider"], r["dimensions"]["reason"]) for r in failed] == [
        ("gmail", "revoked")
    ]
    # And further pushes are dropped: the account is not tried again (its failure stays as it was)
    sync(gmail_stack, push(account_id))
    assert without_ages(status(gmail_stack, account_id)) == without_ages(state)

    # When the user reconnects
    gmail_stack.connect(account_id=account_id)
    gets = RawGets(monkeypatch)
    sync(gmail_stack)

    # Then the sync resumed from the saved history id: only the new message was fetched
    assert "While away" in emails(gmail_stack, account_id, ALL_MAIL)
    assert len(gets.ids) == 1
    again = next(f for f in status(gmail_stack, account_id)["folders"] if f["name"] == ALL_MAIL)
    assert again["uidvalidity"] == cursor["uidvalidity"]  # no full resync (a new generation)
    assert status(gmail_stack, account_id)["stage"] == "idle"


def test_a_quota_storm_slows_the_sync_but_completes_it(
    gmail_stack: GmailStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a mailbox of 30 messages and a Gmail that allows 60 units a minute (12 messages.get)
    for i in range(30):
        gmail_stack.google.deliver(USER, rfc5322(f"Note {i}", message_id=f"<n{i}@customer.example>"))
    account_id = gmail_stack.connect()
    gmail_stack.sync_messages()
    gmail_stack.google.quota.units_per_minute = 60
    waits: list[float] = []
    clock = gmail_stack.clock

    def sleep(seconds: float) -> None:  # time passes for Gmail and for the budget alike
        waits.append(seconds)
        clock.advance(seconds)

    budget = QuotaBudget(clock=lambda: clock.now().timestamp(), jitter=lambda: 0.0)

    def client(account: Account) -> GmailClient:
        from mailbridge.config import get_settings
        from mailbridge.oauth.tokens import token_source

        return GmailClient(get_settings().google.gmail_api_url, token_source(account), budget=budget)

    deps = service_deps()
    deps.sleep, deps.gmail_client = sleep, client
    try:
        # When the sync runs
        # (asked for two minutes before the run starts)
        asked = deps.sync.now() - timedelta(minutes=2)
        report = run_sync(
            SyncRequest(tenant_id=TENANT, account_id=account_id, requested_at=asked),
            deps,
            Budget(max_messages=10**6),
        )
    finally:
        service_deps.cache_clear()

    # Then it waited for Gmail (every wait a backoff, not a loop) and stored everything
    assert report is not None
    assert report.complete
    assert waits
    assert all(w >= 1 for w in waits)
    assert len(emails(gmail_stack, account_id, ALL_MAIL)) == 30
    assert gmail_stack.google.quota.rejected > 0
    # And each refusal is counted for the quota alarm, and the run's lag for the sync-lag alarm
    out = capsys.readouterr().out
    throttled = emitted(out, "ProviderThrottled")
    assert len(throttled) >= gmail_stack.google.quota.rejected
    assert {r["dimensions"]["provider"] for r in throttled} == {"gmail"}
    assert {r["dimensions"]["reason"] for r in throttled} <= {
        "http_429",
        "user_rate_limit_exceeded",
        "rate_limit_exceeded",
        "budget",
    }
    [lag] = emitted(out, "SyncLag")
    assert lag["dimensions"] == {"provider": "gmail", "service": lag["dimensions"]["service"]}
    assert 120 <= lag["value"] < 3600  # from the request two minutes back to the end of the run


def test_a_long_rate_limit_puts_the_record_back_on_the_queue(
    gmail_stack: GmailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a connected mailbox and a Gmail that asks to wait 10 minutes
    account_id = gmail_stack.connect()
    request = gmail_stack.sync_messages()

    def limited(*_: Any, **__: Any) -> Any:
        raise ProviderRateLimited("slow down", retry_after=600)

    monkeypatch.setattr(GmailClient, "get_profile", limited)
    held: list[tuple[str, float]] = []
    queue_type = type(service_deps().queue)
    monkeypatch.setattr(queue_type, "retry_later", lambda _self, handle, delay: held.append((handle, delay)))

    # When the sync function takes the queued sync
    [result] = sync(gmail_stack, *request)

    # Then the record failed and was held back for the 10 minutes asked, with nothing retried here
    assert len(result["batchItemFailures"]) == 1
    assert [delay for _, delay in held] == [600]
    assert status(gmail_stack, account_id)["stage"] == "syncing"


def test_a_poll_syncs_only_an_account_no_push_synced_in_15_minutes(
    gmail_stack: GmailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an account a push synced just now, and mail that arrived since
    account_id = gmail_stack.connect()
    sync(gmail_stack)
    gmail_stack.google.deliver(USER, rfc5322("Late news", message_id="<l1@customer.example>"))
    gets = RawGets(monkeypatch)
    poll = {"kind": "sync", "tenant_id": TENANT, "account_id": account_id, "reason": "poll"}

    # When the 15-minute poll names it
    sync(gmail_stack, poll)

    # Then Gmail is not asked: the push keeps it current
    assert gets.ids == []

    # When a poll comes 16 minutes later (no push in that time)
    deps = service_deps()
    later = deps.sync.now() + timedelta(minutes=16)
    monkeypatch.setattr(deps.sync, "now", lambda: later)
    sync(gmail_stack, poll)

    # Then it syncs and brings the mail in
    assert len(gets.ids) == 1
    assert "Late news" in emails(gmail_stack, account_id, ALL_MAIL)


def _updated(bus_probe: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [e["detail"]["data"] for e in bus_probe() if e["detail-type"] == "email.updated"]


def test_archive_and_trash_in_gmail_are_announced_once_and_an_api_move_not_twice(
    gmail_stack: GmailStack, bus_probe: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given a synced mailbox, its first sync's events read
    ids = seed(gmail_stack)
    account_id = gmail_stack.connect()
    sync(gmail_stack)
    google = gmail_stack.google
    bus_probe()
    stored = emails(gmail_stack, account_id, ALL_MAIL)
    quote, reply = stored["Renewal quote"], stored["Re: Renewal quote"]

    # When in Gmail the quote is archived (INBOX removed) and the reply trashed, then a push
    google.relabel(USER, ids["quote"], remove=["INBOX"])
    google.trash(USER, ids["reply"])
    sync(gmail_stack, push(account_id))
    # Then each is announced once, named as PATCH /emails/{id} names the change
    assert sorted(_updated(bus_probe), key=lambda d: str(d["email_id"])) == sorted(
        [
            {
                "email_id": quote["email_id"],
                "account_id": account_id,
                "thread_id": quote["thread_id"],
                "changes": {"archived": True},
            },
            {
                "email_id": reply["email_id"],
                "account_id": account_id,
                "thread_id": reply["thread_id"],
                "changes": {"trashed": True},
            },
        ],
        key=lambda d: str(d["email_id"]),
    )

    # When another push names the account with nothing changed since
    sync(gmail_stack, push(account_id))
    # Then nothing is announced again
    assert _updated(bus_probe) == []

    # When the reply is restored from the trash in Gmail (untrash: back in the inbox), then a push
    google.untrash(USER, ids["reply"])
    sync(gmail_stack, push(account_id))
    # Then that is announced too (the trashed state was stored with the first change)
    assert [(d["email_id"], d["changes"]) for d in _updated(bus_probe)] == [
        (reply["email_id"], {"trashed": False})
    ]

    # When the user puts the quote back in the inbox through the API, the write-back reaches
    # Gmail, and a push brings Gmail's history of that change
    event = load_event("api/patch-email.json", tenant=TENANT, sub="user-1", body={"archived": False})
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/emails/{quote['email_id']}"
    event["pathParameters"] = {"email_id": quote["email_id"]}
    response = gmail_stack.invoke("api", event)
    assert response["statusCode"] == 200, response
    sync(gmail_stack)
    assert "INBOX" in google.labels_of(USER, ids["quote"])
    sync(gmail_stack, push(account_id))
    # Then only the API's announcement went out, not the mailbox's echo of it
    assert [d["changes"] for d in _updated(bus_probe)] == [{"archived": False}]
    assert "Renewal quote" in emails(gmail_stack, account_id, "INBOX")
