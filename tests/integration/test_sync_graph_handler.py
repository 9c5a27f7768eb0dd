"""The sync function with Graph accounts: a SyncQueue record of a Graph account runs the Graph
sync (the provider dispatch in `sync.service.run_sync`), and a rate limit sends the record back
for the delay Graph advised instead of retrying at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from mailbridge import accounts as account_service
from mailbridge.config import get_settings
from mailbridge.models.account import Account, OAuthGrant, SyncStage
from mailbridge.outbox.models import OutboxMessage, SendRequest
from mailbridge.outbox.service import queue_send, send_queued
from mailbridge.outbox.wiring import outbox_deps
from mailbridge.providers.graph.budget import RequestBudget
from mailbridge.providers.graph.wiring import mime_for_send_mail
from mailbridge.sync.messages import PushFlags, SyncRequest
from mailbridge.sync.wiring import service_deps
from mailbridge.tenancy import Role, TenantContext
from tests.fixtures.aws import FakeLambdaContext, Stack, load_function
from tests.integration.graph_adapter_harness import Tokens, graph_client
from tests.integration.local_microsoft.conftest import USER, rfc5322
from tests.integration.sync_harness import _record

TENANT = "acme"
ACCOUNT_ID = "acc_0123456789abcdef0abc"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def start(clock: ManualClock, **limits: Any) -> MicrosoftDouble:
    double = MicrosoftDouble(clock=clock, seed=13, **limits).start()
    double.add_user(USER, "Ada Lovelace")
    for n in range(6):
        double.deliver(USER, rfc5322(subject=f"Quote {n}", message_id=f"<q{n}@customer.example>"))
    return double


def connect(stack: Stack, ms: MicrosoftDouble, clock: ManualClock) -> None:
    """A Graph account in the store, and the sync service's adapter pointed at the double."""
    account = Account(
        account_id=ACCOUNT_ID,
        tenant_id=TENANT,
        provider="graph",
        address=USER,
        oauth=OAuthGrant(scopes=["Mail.ReadWrite", "Mail.Send", "offline_access"]),
        created_at=datetime.now(UTC),
        created_by="user-1",
    )
    sealed = account_service.seal_secrets(
        {"refresh_token": "unused"}, TENANT, ACCOUNT_ID, key_id=get_settings().data_key_id
    )
    service_deps().sync.accounts.create_account(account, sealed)
    client = graph_client(ms, Tokens(ms), budget=RequestBudget(clock=lambda: clock.now().timestamp()))
    service_deps().graph_client = lambda _account: client


def queue_sync(stack: Stack) -> None:
    service_deps().queue.send(SyncRequest(tenant_id=TENANT, account_id=ACCOUNT_ID, reason="connected"))


def deliver(stack: Stack) -> tuple[dict[str, Any], str]:
    """Hand the next SyncQueue record to the sync function; (its result, the record's receipt)."""
    sqs: Any = boto3.client("sqs")
    url = stack.deployed.queue_urls["SyncQueue"]
    (msg,) = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0, AttributeNames=["All"]
    )["Messages"]
    try:
        result: dict[str, Any] = load_function("sync").lambda_handler(
            {"Records": [_record(msg, url)]}, FakeLambdaContext()
        )
    except BatchProcessingError:  # every record failed: Powertools fails the invocation
        result = {"batchItemFailures": [{"itemIdentifier": msg["MessageId"]}]}
    if not result["batchItemFailures"]:  # the event source mapping deletes what succeeded
        sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    return result, msg["ReceiptHandle"]


def drain(stack: Stack) -> None:
    """Deliver SyncQueue records until none is left (a loaded machine can hand a sync over to a
    continuation), each one succeeding."""
    sqs: Any = boto3.client("sqs")
    url = stack.deployed.queue_urls["SyncQueue"]
    for _ in range(20):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        if attributes["Attributes"]["ApproximateNumberOfMessages"] == "0":
            return
        assert deliver(stack)[0] == {"batchItemFailures": []}
    raise AssertionError("the SyncQueue did not drain")


@pytest.fixture
def ms(clock: ManualClock) -> Iterator[MicrosoftDouble]:
    double = start(clock)
    yield double
    double.stop()


def test_a_sync_record_of_a_graph_account_runs_the_graph_sync(stack, ms, clock):
    # Given a connected Graph account with six messages and a queued sync
    connect(stack, ms, clock)
    queue_sync(stack)

    # When the sync function takes the record
    result, _ = deliver(stack)

    # Then it succeeded, the six are stored and the account is idle
    assert result == {"batchItemFailures": []}
    table = stack.table("EmailsTable")
    emails = table.query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": "EMAIL#"},
    )["Items"]
    assert len(emails) == 6
    account = service_deps().sync.accounts.get_account(TENANT, ACCOUNT_ID)
    assert account.sync.stage is SyncStage.IDLE


@pytest.fixture
def limited(clock: ManualClock) -> Iterator[MicrosoftDouble]:
    double = start(clock, requests_per_window=2)
    yield double
    double.stop()


def test_a_rate_limited_sync_record_comes_back_after_the_advised_delay(stack, limited, clock):
    # Given a Graph account whose mailbox is throttled after two requests
    connect(stack, limited, clock)
    queue_sync(stack)

    # When the sync function takes the record
    result, _ = deliver(stack)

    # Then the record failed and is hidden for the delay (not redelivered at once); the state says why
    assert len(result["batchItemFailures"]) == 1
    sqs = boto3.client("sqs")
    url = stack.deployed.queue_urls["SyncQueue"]
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", []) == []
    account = service_deps().sync.accounts.get_account(TENANT, ACCOUNT_ID)
    assert account.sync.reason == "rate_limited"


def test_flag_changes_made_through_the_api_are_written_to_the_graph_mailbox(stack, ms, clock):
    # Given a synced Graph account
    connect(stack, ms, clock)
    queue_sync(stack)
    deliver(stack)
    table = stack.table("EmailsTable")
    (location,) = [
        loc
        for loc in table.query(
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": "LOC#"},
        )["Items"]
        if loc["provider_id"] == ms.folder_contents(USER, "inbox")[0].immutable_id
    ]

    # When the API asks for the email to be read and flagged (the PushFlags record it queues)
    service_deps().queue.send(
        PushFlags(
            tenant_id=TENANT,
            account_id=ACCOUNT_ID,
            email_id=str(location["email_id"]),
            add=["\\Seen", "\\Flagged"],
        )
    )
    result, _ = deliver(stack)

    # Then Outlook has the message read and flagged, and the stored location says so
    assert result == {"batchItemFailures": []}
    message = ms.message(USER, str(location["provider_id"]))
    assert message.is_read
    assert message.flag["flagStatus"] == "flagged"
    stored = table.get_item(Key={"pk": location["pk"], "sk": location["sk"]})["Item"]
    assert sorted(stored["flags"]) == ["\\Flagged", "\\Seen"]


def test_archive_and_trash_move_the_graph_message_and_the_location_follows(stack, ms, clock):
    # Given a synced Graph account and one of its inbox messages
    connect(stack, ms, clock)
    queue_sync(stack)
    drain(stack)
    table = stack.table("EmailsTable")

    def locations() -> list[dict[str, Any]]:
        return list(
            table.query(
                KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
                ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": "LOC#"},
            )["Items"]
        )

    first = ms.folder_contents(USER, "inbox")[0]
    (location,) = [loc for loc in locations() if loc["provider_id"] == first.immutable_id]
    email_id = str(location["email_id"])
    before = len(locations())

    def push(archived: bool | None = None, trashed: bool | None = None) -> None:
        service_deps().queue.send(
            PushFlags(
                tenant_id=TENANT, account_id=ACCOUNT_ID, email_id=email_id, archived=archived, trashed=trashed
            )
        )
        drain(stack)

    def stored() -> dict[str, Any]:
        (loc,) = [loc for loc in locations() if loc["email_id"] == email_id]
        return loc

    # When it is archived
    push(archived=True)

    # Then Outlook has it in Archive, and the stored location is that folder and the id Graph gave
    assert [m.immutable_id for m in ms.folder_contents(USER, "archive")] == [first.immutable_id]
    assert first.immutable_id not in [m.immutable_id for m in ms.folder_contents(USER, "inbox")]
    assert (stored()["folder"], stored()["provider_id"]) == ("archive", first.immutable_id)

    # When it is trashed, then restored
    push(trashed=True)
    assert [m.immutable_id for m in ms.folder_contents(USER, "deleteditems")] == [first.immutable_id]
    assert stored()["folder"] == "deleteditems"
    push(trashed=False)

    # Then it is back in the inbox, and a sync stores nothing new and deletes nothing
    assert first.immutable_id in [m.immutable_id for m in ms.folder_contents(USER, "inbox")]
    assert stored()["folder"] == "inbox"
    queue_sync(stack)
    drain(stack)
    assert len(locations()) == before
    email = table.get_item(Key={"pk": f"TENANT#{TENANT}", "sk": f"EMAIL#{email_id}"})["Item"]
    assert email["deleted"] is False


def test_a_send_from_a_graph_account_goes_once_by_send_mail_and_its_sent_copy_is_the_same_email(
    stack, ms, clock
):
    # Given a connected Graph account and the outbox's sendMail pointed at the double
    connect(stack, ms, clock)
    graph = service_deps().graph_client
    assert graph is not None
    client = graph(service_deps().sync.accounts.get_account(TENANT, ACCOUNT_ID))
    deps = outbox_deps()
    deps.send_graph = lambda _account, composed: client.send_mime(mime_for_send_mail(composed))
    member = TenantContext(tenant_id=TENANT, role=Role.MEMBER, subject="user-1")
    request = SendRequest.model_validate(
        {
            "account_id": ACCOUNT_ID,
            "to": [{"address": "carol@customer.example"}],
            "bcc": [{"address": "dan@customer.example"}],
            "subject": "Proposal",
            "text": "Hello Carol",
        }
    )

    # When the email is queued and the outbox sends it (and its record is delivered twice)
    email_id = queue_send(member, request, deps).email_id
    first = send_queued(OutboxMessage(tenant_id=TENANT, email_id=email_id), deps)
    again = send_queued(OutboxMessage(tenant_id=TENANT, email_id=email_id), deps)

    # Then Graph sent it once, with our Message-ID, to the visible and the blind recipient
    assert (first.status, again.status) == ("sent", "sent")
    (sent,) = ms.sent(USER)
    email = service_deps().sync.emails.get_email(TENANT, email_id)
    assert email is not None
    assert sent.internet_message_id == f"<{email['message_id']}>"
    assert sorted(sent.recipients) == ["carol@customer.example", "dan@customer.example"]

    # When the account syncs (the Sent Items copy comes by delta)
    queue_sync(stack)
    deliver(stack)

    # Then the copy is the same email, now located in Sent Items, not a second one
    emails = stack.table("EmailsTable").query(
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": f"TENANT#{TENANT}", ":s": "EMAIL#"},
    )["Items"]
    assert [e["email_id"] for e in emails if e["message_id"] == email["message_id"]] == [email_id]
    synced = service_deps().sync.emails.get_email(TENANT, email_id)
    assert synced is not None
    assert any("#sentitems#" in key for key in synced["loc_keys"])
