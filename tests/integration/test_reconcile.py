"""The completeness reconciler (sync/reconcile.py) per provider: a gap made on purpose (a message
deleted from our store; a message added on the server with its push dropped; one removed on the
server unseen) is found, repaired through the sync's own storing code, and the folder's verdict
in `GET /accounts/{id}/status` says so; the next reconcile finds the folder whole. IMAP against a
real Dovecot, Gmail and Graph against their local doubles, all on moto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
import pytest

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from mailbridge import accounts as account_service
from mailbridge.config import get_settings
from mailbridge.models.account import Account, OAuthGrant
from mailbridge.providers.graph.budget import RequestBudget
from mailbridge.store.keys import location_prefix, location_sk
from mailbridge.sync.gmail import gmail_uid
from mailbridge.sync.messages import Reconcile, SyncRequest
from mailbridge.sync.wiring import service_deps
from tests.events import load_event
from tests.fixtures.aws import FakeLambdaContext, Stack, load_function
from tests.integration.dovecot import DovecotServer, DovecotUser
from tests.integration.gmail_harness import USER as GMAIL_USER
from tests.integration.gmail_harness import GmailStack
from tests.integration.graph_adapter_harness import Tokens, graph_client
from tests.integration.local_google.conftest import rfc5322 as gmail_rfc5322
from tests.integration.local_microsoft.conftest import USER as MS_USER
from tests.integration.local_microsoft.conftest import rfc5322
from tests.integration.sync_harness import TENANT, SyncHarness, _record, message
from tests.integration.test_gmail_sync import ALL_MAIL as GMAIL_ALL_MAIL
from tests.integration.test_gmail_sync import sync as gmail_sync

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def lose_location(sk: str) -> None:
    """Our store loses a message's location (the email item stays, as after a partial failure)."""
    emails = service_deps().sync.emails
    location = emails.get_location(TENANT, sk)
    assert location is not None, sk
    emails.delete_location(TENANT, sk)
    emails.detach_location(TENANT, str(location["email_id"]), sk)


def post_reconcile(invoke_api: Invoke, account_id: str) -> dict[str, Any]:
    event = load_event("api/reconcile-account.json", tenant=TENANT, role="member")
    event["pathParameters"] = {"account_id": account_id}
    path = f"/accounts/{account_id}/reconcile"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    response: dict[str, Any] = invoke_api(event)
    return response


def folder(status: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [f for f in status["folders"] if f["name"] == name]
    assert found, [f["name"] for f in status["folders"]]
    return found[0]


# ---------------------------------------------------------------------- IMAP


@pytest.fixture
def imap(
    stack: Stack, invoke_api: Invoke, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> SyncHarness:
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    service_deps().sleep = lambda _s: None
    return h


@pytest.mark.dovecot
def test_imap_gaps_are_found_repaired_and_shown_by_the_verdict(imap: SyncHarness, invoke_api: Invoke) -> None:
    # Given a synced INBOX of three messages
    for n in range(3):
        imap.server.append(imap.user, "INBOX", message(f"Quote {n}", msgid=f"q{n}@customer.example"))
    status, _ = imap.connect()
    assert status == 201
    imap.drain()
    inbox = folder(imap.status(), "INBOX")
    assert inbox["verdict"] == "healthy"
    assert inbox["stored_count"] == 3
    # ... whose second message our store then loses, a fourth arriving unseen (no poll ran),
    # and the third expunged on the server unseen
    uidvalidity = inbox["uidvalidity"]
    lose_location(location_sk(imap.account_id, "INBOX", uidvalidity, 2))
    imap.server.append(imap.user, "INBOX", message("Quote 3", msgid="q3@customer.example"))
    imap.server.expunge(imap.user, "INBOX", 3)

    # When a reconcile is requested twice and the queue is drained
    first = post_reconcile(invoke_api, imap.account_id)
    second = post_reconcile(invoke_api, imap.account_id)
    queued = [json.loads(m["Body"]) for m in imap.receive()]
    imap.drain()

    # Then both requests answer 202 with the status location, and one reconcile was queued
    assert first["statusCode"] == second["statusCode"] == 202
    assert first["headers"]["Location"] == f"/accounts/{imap.account_id}/status"
    assert json.loads(first["body"])["reconcile_queued_at"] is not None
    assert [m["kind"] for m in queued] == ["reconcile"]
    # ... the lost and the unseen message are stored again, the expunged one is gone
    uids = sorted(int(loc["uid"]) for loc in imap.locations() if loc["folder"] == "INBOX")
    assert uids == [1, 2, 4]
    # ... and the status shows what was found and repaired, and the gap in the verdict
    after = imap.status()
    inbox = folder(after, "INBOX")
    assert after["reconcile_queued_at"] is None
    assert inbox["verdict"] == "gap_found"
    assert inbox["reconcile"]["missing"] == 2
    assert inbox["reconcile"]["extra"] == 1
    assert inbox["reconcile"]["repaired"] == 3
    assert inbox["server_count"] == inbox["stored_count"] == 3

    # When it is reconciled again
    assert post_reconcile(invoke_api, imap.account_id)["statusCode"] == 202
    imap.drain()

    # Then it finds the folder whole: healthy, and the sync stores nothing twice
    inbox = folder(imap.status(), "INBOX")
    assert inbox["verdict"] == "healthy"
    assert (inbox["reconcile"]["missing"], inbox["reconcile"]["extra"]) == (0, 0)
    assert imap.api("sync-account.json", params={"account_id": imap.account_id})[0] == 202
    imap.drain()
    assert sorted(int(loc["uid"]) for loc in imap.locations() if loc["folder"] == "INBOX") == [1, 2, 4]
    assert len(imap.emails()) == 4  # the expunged message's email stays (marked deleted)


# ---------------------------------------------------------------------- shared drivers


def drain(stack: Stack, max_records: int = 50) -> None:
    """Hand SyncQueue records to the sync function until none is left (as the event source
    mapping would: deleted when they succeed)."""
    sqs: Any = boto3.client("sqs")
    url = stack.deployed.queue_urls["SyncQueue"]
    for _ in range(max_records):
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0, AttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return
        (msg,) = got
        result = load_function("sync").lambda_handler({"Records": [_record(msg, url)]}, FakeLambdaContext())
        assert not result["batchItemFailures"], result
        sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    raise AssertionError("the sync queue did not drain")


def get_status(invoke_api: Invoke, account_id: str) -> dict[str, Any]:
    event = load_event("api/get-account-status.json", tenant=TENANT, role="viewer")
    event["pathParameters"] = {"account_id": account_id}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/accounts/{account_id}/status"
    response = invoke_api(event)
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = json.loads(response["body"])
    return body


def store_account(account: Account) -> None:
    sealed = account_service.seal_secrets(
        {"refresh_token": "unused"}, TENANT, account.account_id, key_id=get_settings().data_key_id
    )
    service_deps().sync.accounts.create_account(account, sealed)


def oauth_account(account_id: str, provider: Literal["gmail", "graph"], address: str) -> Account:
    return Account(
        account_id=account_id,
        tenant_id=TENANT,
        provider=provider,
        address=address,
        oauth=OAuthGrant(scopes=["mail"]),
        created_at=datetime.now(UTC),
        created_by="user-1",
    )


def locations_in(stack: Stack, account_id: str, folder: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = stack.table("EmailsTable").query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": location_prefix(account_id, folder)},
    )["Items"]
    return items


# ---------------------------------------------------------------------- Graph

GRAPH_ACCOUNT = "acc_0123456789abcdef0abc"


@pytest.fixture
def ms() -> Iterator[MicrosoftDouble]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    with MicrosoftDouble(clock=clock, seed=17) as double:
        double.add_user(MS_USER, "Ada Lovelace")
        client = graph_client(
            double, Tokens(double), budget=RequestBudget(clock=lambda: clock.now().timestamp())
        )
        service_deps().graph_client = lambda _account: client
        yield double


def test_graph_gaps_are_found_repaired_and_shown_by_the_verdict(
    stack: Stack, invoke_api: Invoke, ms: MicrosoftDouble
) -> None:
    # Given a synced Graph account with three messages in its Inbox
    ids = [
        ms.deliver(MS_USER, rfc5322(subject=f"Quote {n}", message_id=f"<g{n}@customer.example>")).immutable_id
        for n in range(3)
    ]
    store_account(oauth_account(GRAPH_ACCOUNT, "graph", MS_USER))
    service_deps().queue.send(SyncRequest(tenant_id=TENANT, account_id=GRAPH_ACCOUNT, reason="connected"))
    drain(stack)
    assert folder(get_status(invoke_api, GRAPH_ACCOUNT), "inbox")["verdict"] == "healthy"
    # ... whose first message our store loses, a fourth arriving with its notification dropped,
    # and the third purged on the server unseen
    lose_location(location_sk(GRAPH_ACCOUNT, "inbox", 0, ids[0]))
    added = ms.deliver(MS_USER, rfc5322(subject="Quote 3", message_id="<g3@customer.example>")).immutable_id
    ms.purge(MS_USER, ids[2])

    # When it is reconciled
    assert post_reconcile(invoke_api, GRAPH_ACCOUNT)["statusCode"] == 202
    drain(stack)

    # Then the lost and the unseen message are stored, the purged one is gone
    stored = {str(loc["sk"]).rsplit("#", 1)[-1] for loc in locations_in(stack, GRAPH_ACCOUNT, "inbox")}
    assert stored == {ids[0], ids[1], added}
    # ... and the verdict says a gap was found, all of it repaired
    inbox = folder(get_status(invoke_api, GRAPH_ACCOUNT), "inbox")
    assert inbox["verdict"] == "gap_found"
    assert (inbox["reconcile"]["missing"], inbox["reconcile"]["extra"], inbox["reconcile"]["repaired"]) == (
        2,
        1,
        3,
    )
    assert inbox["server_count"] == inbox["stored_count"] == 3

    # When it is reconciled again, then the folder is whole
    assert post_reconcile(invoke_api, GRAPH_ACCOUNT)["statusCode"] == 202
    drain(stack)
    inbox = folder(get_status(invoke_api, GRAPH_ACCOUNT), "inbox")
    assert inbox["verdict"] == "healthy"
    assert (inbox["reconcile"]["missing"], inbox["reconcile"]["extra"]) == (0, 0)


def test_a_folder_whose_listing_fails_shows_the_failure_on_its_status(
    stack: Stack, invoke_api: Invoke, ms: MicrosoftDouble
) -> None:
    # Given a synced Graph account with one message in its Inbox
    ms.deliver(MS_USER, rfc5322(subject="Quote", message_id="<gf@customer.example>"))
    store_account(oauth_account(GRAPH_ACCOUNT, "graph", MS_USER))
    service_deps().queue.send(SyncRequest(tenant_id=TENANT, account_id=GRAPH_ACCOUNT, reason="connected"))
    drain(stack)
    assert folder(get_status(invoke_api, GRAPH_ACCOUNT), "inbox")["verdict"] == "healthy"
    # ... whose Inbox listing Graph answers with server errors, retries included
    ms.fail_next(20, status=500, match=f"/mailFolders/{ms.folder_id(MS_USER, 'inbox')}/messages")

    # When it is reconciled
    assert post_reconcile(invoke_api, GRAPH_ACCOUNT)["statusCode"] == 202
    drain(stack)

    # Then the Inbox's status says the reconcile failed there, with the provider's error code
    inbox = folder(get_status(invoke_api, GRAPH_ACCOUNT), "inbox")
    assert inbox["verdict"] == "failed"
    assert inbox["reconcile"]["error"] == "unavailable"


# ---------------------------------------------------------------------- Gmail


def test_gmail_gaps_are_found_repaired_and_shown_by_the_verdict(gmail_stack: GmailStack) -> None:
    # Given a synced Gmail account of three messages
    google = gmail_stack.google
    ids = [
        google.deliver(GMAIL_USER, gmail_rfc5322(f"Quote {n}", message_id=f"<m{n}@customer.example>"))
        for n in range(3)
    ]
    account_id = gmail_stack.connect()
    gmail_sync(gmail_stack)

    def invoke_api(event: dict[str, Any]) -> dict[str, Any]:
        return gmail_stack.invoke("api", event)

    assert folder(get_status(invoke_api, account_id), GMAIL_ALL_MAIL)["verdict"] == "healthy"
    # ... whose first message our store loses, a fourth arriving with its push dropped,
    # and the third deleted on the server unseen
    lose_location(location_sk(account_id, GMAIL_ALL_MAIL, 1, gmail_uid(ids[0])))
    added = google.deliver(GMAIL_USER, gmail_rfc5322("Quote 3", message_id="<m3@customer.example>"))
    google.delete(GMAIL_USER, ids[2])
    gmail_stack.sync_messages()  # whatever push was queued is lost

    # When it is reconciled
    answer = post_reconcile(invoke_api, account_id)
    assert answer["statusCode"] == 202, answer
    results = gmail_sync(gmail_stack)

    # Then the lost and the unseen message are stored (and in the Inbox), the deleted one is gone
    assert all(r == {"batchItemFailures": []} for r in results), results
    anchors = {int(loc["uid"]) for loc in locations_in(stack_of(gmail_stack), account_id, GMAIL_ALL_MAIL)}
    assert anchors == {gmail_uid(i) for i in (ids[0], ids[1], added)}
    inbox = {int(loc["uid"]) for loc in locations_in(stack_of(gmail_stack), account_id, "INBOX")}
    assert inbox == anchors
    # ... and the verdict says a gap was found, all of it repaired
    all_mail = folder(get_status(invoke_api, account_id), GMAIL_ALL_MAIL)
    assert all_mail["verdict"] == "gap_found"
    found = all_mail["reconcile"]
    assert (found["missing"], found["extra"], found["repaired"]) == (2, 1, 3)
    assert all_mail["server_count"] == all_mail["stored_count"] == 3

    # When it is reconciled again, then the folder is whole
    assert post_reconcile(invoke_api, account_id)["statusCode"] == 202
    gmail_sync(gmail_stack)
    all_mail = folder(get_status(invoke_api, account_id), GMAIL_ALL_MAIL)
    assert all_mail["verdict"] == "healthy"
    assert (all_mail["reconcile"]["missing"], all_mail["reconcile"]["extra"]) == (0, 0)


def stack_of(gmail_stack: GmailStack) -> Stack:
    return gmail_stack.stack


def units_counted(gmail_stack: GmailStack) -> tuple[int, int]:
    """Quota units of the last minute: as the double counted them for the user, and as the
    mailbox's budgets in this process counted them."""
    from mailbridge.providers.gmail import quota

    google = gmail_stack.google
    return google.quota.used(GMAIL_USER, google.now()), sum(b.used() for b in quota._budgets.values())


def test_gmail_reconciles_each_synced_label_with_its_own_verdict(gmail_stack: GmailStack) -> None:
    # Given a Gmail account syncing its user label Customers besides INBOX and SENT, synced with
    # two messages in both INBOX and Customers and one only in INBOX
    google = gmail_stack.google
    customers = google.create_label(GMAIL_USER, "Customers")
    kept, lost = (
        google.deliver(GMAIL_USER, gmail_rfc5322(name, message_id=f"<{name}@customer.example>"))
        for name in ("Kept", "Lost")
    )
    google.relabel(GMAIL_USER, kept, add=[customers])
    google.relabel(GMAIL_USER, lost, add=[customers])
    archived = google.deliver(GMAIL_USER, gmail_rfc5322("Archived", message_id="<archived@customer.example>"))
    account_id = gmail_stack.connect()
    patched = gmail_stack.api("patch-account", account_id, role="member", body={"folders": ["Customers"]})
    assert patched["statusCode"] == 200, patched
    gmail_sync(gmail_stack)

    def invoke_api(event: dict[str, Any]) -> dict[str, Any]:
        return gmail_stack.invoke("api", event)

    # ... whose Customers location of one message our store then loses, while on the server
    # another message is archived (INBOX removed) and a new one is filed under Customers only,
    # both with their pushes dropped
    lose_location(location_sk(account_id, "Customers", 1, gmail_uid(lost)))
    google.relabel(GMAIL_USER, archived, remove=["INBOX"])
    filed = google.deliver(
        GMAIL_USER, gmail_rfc5322("Filed", message_id="<filed@customer.example>"), labels=[customers]
    )
    gmail_stack.sync_messages()  # whatever push was queued is lost
    double_before, ours_before = units_counted(gmail_stack)

    # When it is reconciled
    assert post_reconcile(invoke_api, account_id)["statusCode"] == 202
    results = gmail_sync(gmail_stack)

    # Then the status shows one verdict per synced label: Customers missed two messages, INBOX
    # held one too many, SENT is whole; All Mail missed the one never stored
    assert all(r == {"batchItemFailures": []} for r in results), results
    status = get_status(invoke_api, account_id)
    found = {
        f["name"]: (
            f["verdict"],
            f["server_count"],
            f["reconcile"]["stored_count"],
            f["reconcile"]["missing"],
            f["reconcile"]["extra"],
            f["reconcile"]["repaired"],
        )
        for f in status["folders"]
    }
    assert found == {
        GMAIL_ALL_MAIL: ("gap_found", 4, 3, 1, 0, 1),
        "INBOX": ("gap_found", 2, 3, 0, 1, 1),
        "SENT": ("healthy", 0, 0, 0, 0, 0),
        "Customers": ("gap_found", 3, 1, 2, 0, 2),
    }
    # ... and the repair fetched the missing message and put every location right
    stack = stack_of(gmail_stack)
    in_customers = {int(loc["uid"]) for loc in locations_in(stack, account_id, "Customers")}
    in_inbox = {int(loc["uid"]) for loc in locations_in(stack, account_id, "INBOX")}
    assert in_customers == {gmail_uid(i) for i in (kept, lost, filed)}
    assert in_inbox == {gmail_uid(i) for i in (kept, lost)}
    assert {f["name"]: f["stored_count"] for f in status["folders"]}["Customers"] == 3
    # ... spending the quota units Gmail counts (messages.list 5 a page), none refused
    double_after, ours_after = units_counted(gmail_stack)
    assert double_after - double_before == ours_after - ours_before > 0
    assert google.quota.rejected == 0

    # When it is reconciled again, then every label is whole
    assert post_reconcile(invoke_api, account_id)["statusCode"] == 202
    gmail_sync(gmail_stack)
    verdicts = {f["name"]: f["verdict"] for f in get_status(invoke_api, account_id)["folders"]}
    assert verdicts == dict.fromkeys((GMAIL_ALL_MAIL, "INBOX", "SENT", "Customers"), "healthy")


def test_gmail_label_locations_left_behind_are_removed_and_an_absent_label_fails(
    gmail_stack: GmailStack,
) -> None:
    # Given a Gmail account selecting Customers and Projects, a label the mailbox does not have,
    # synced with three inbox messages
    google = gmail_stack.google
    google.create_label(GMAIL_USER, "Customers")
    kept, deleted, archived = (
        google.deliver(GMAIL_USER, gmail_rfc5322(name, message_id=f"<{name}@customer.example>"))
        for name in ("Kept", "Deleted", "Archived")
    )
    account_id = gmail_stack.connect()
    body = {"folders": ["Customers", "Projects"]}
    assert gmail_stack.api("patch-account", account_id, role="member", body=body)["statusCode"] == 200
    gmail_sync(gmail_stack)

    def invoke_api(event: dict[str, Any]) -> dict[str, Any]:
        return gmail_stack.invoke("api", event)

    # ... whose All Mail anchors of two messages our store then loses (their INBOX locations
    # stay), while on the server one of them is deleted and the other archived, unseen
    for message_id in (deleted, archived):
        lose_location(location_sk(account_id, GMAIL_ALL_MAIL, 1, gmail_uid(message_id)))
    google.delete(GMAIL_USER, deleted)
    google.relabel(GMAIL_USER, archived, remove=["INBOX"])
    gmail_stack.sync_messages()  # whatever push was queued is lost

    # When it is reconciled
    assert post_reconcile(invoke_api, account_id)["statusCode"] == 202
    results = gmail_sync(gmail_stack)

    # Then the archived message is stored again without its INBOX location, and the deleted
    # one's INBOX location (no message behind it) is gone
    assert all(r == {"batchItemFailures": []} for r in results), results
    stack = stack_of(gmail_stack)
    anchors = {int(loc["uid"]) for loc in locations_in(stack, account_id, GMAIL_ALL_MAIL)}
    in_inbox = {int(loc["uid"]) for loc in locations_in(stack, account_id, "INBOX")}
    assert anchors == {gmail_uid(kept), gmail_uid(archived)}
    assert in_inbox == {gmail_uid(kept)}
    # ... the status says INBOX held two too many, both repaired; the absent label failed
    folders = {f["name"]: f for f in get_status(invoke_api, account_id)["folders"]}
    inbox, projects = folders["INBOX"], folders["Projects"]
    assert (inbox["verdict"], inbox["reconcile"]["extra"], inbox["reconcile"]["repaired"]) == (
        "gap_found",
        2,
        2,
    )
    assert inbox["stored_count"] == inbox["server_count"] == 1
    assert (projects["verdict"], projects["reconcile"]["error"]) == ("failed", "folder_not_found")
    assert folders["Customers"]["verdict"] == "healthy"


def test_the_nightly_schedule_reconciles_every_account_and_the_status_shows_the_last_push(
    stack: Stack, invoke_api: Invoke, ms: MicrosoftDouble
) -> None:
    # Given a synced Graph account whose first message our store lost, and a push received
    ids = [
        ms.deliver(MS_USER, rfc5322(subject=f"Note {n}", message_id=f"<n{n}@customer.example>")).immutable_id
        for n in range(2)
    ]
    store_account(oauth_account(GRAPH_ACCOUNT, "graph", MS_USER))
    service_deps().queue.send(SyncRequest(tenant_id=TENANT, account_id=GRAPH_ACCOUNT, reason="push"))
    drain(stack)
    lose_location(location_sk(GRAPH_ACCOUNT, "inbox", 0, ids[0]))
    assert get_status(invoke_api, GRAPH_ACCOUNT)["folders"][0]["since_last_push_seconds"] is not None

    # When the nightly schedule's message (events/scheduler) reaches the sync function
    schedule = load_event("scheduler/reconcile-nightly.json")
    service_deps().queue.send(Reconcile.model_validate(schedule))
    drain(stack)

    # Then the account was reconciled: the lost message is back and the verdict shows the gap
    stored = {str(loc["sk"]).rsplit("#", 1)[-1] for loc in locations_in(stack, GRAPH_ACCOUNT, "inbox")}
    assert stored == set(ids)
    status = get_status(invoke_api, GRAPH_ACCOUNT)
    inbox = folder(status, "inbox")
    assert inbox["verdict"] == "gap_found"
    assert inbox["reconcile"]["missing"] == inbox["reconcile"]["repaired"] == 1
    assert status["reconcile_queued_at"] is None


def test_a_revoked_grant_met_by_the_reconcile_shows_reauth_required(
    stack: Stack, invoke_api: Invoke, ms: MicrosoftDouble
) -> None:
    # Given a synced Graph account whose grant the user then revokes
    ms.deliver(MS_USER, rfc5322(subject="Note", message_id="<r0@customer.example>"))
    store_account(oauth_account(GRAPH_ACCOUNT, "graph", MS_USER))
    service_deps().queue.send(SyncRequest(tenant_id=TENANT, account_id=GRAPH_ACCOUNT, reason="connected"))
    drain(stack)
    ms.revoke(MS_USER)
    ms.expire_access_tokens(MS_USER)  # so the next call must refresh, which the revocation refuses

    # When it is reconciled
    assert post_reconcile(invoke_api, GRAPH_ACCOUNT)["statusCode"] == 202
    drain(stack)

    # Then every folder's verdict asks for a reconnect, and no reconcile is left queued
    status = get_status(invoke_api, GRAPH_ACCOUNT)
    assert {f["verdict"] for f in status["folders"]} == {"reauth_required"}
    assert status["reconcile_queued_at"] is None
    # ... and a new request is refused until the user reconnects
    refused = post_reconcile(invoke_api, GRAPH_ACCOUNT)
    assert refused["statusCode"] == 409
    assert json.loads(refused["body"])["error"]["code"] == "reauth_required"
