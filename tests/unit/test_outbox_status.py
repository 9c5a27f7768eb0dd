"""The outbox's status machine without a mail server: queued|scheduled -> sending -> sent|failed,
scheduled -> cancelled, each step a conditional write (EmailStore.transition), on the real stores
on moto (the template's emails and accounts tables, a bucket, a KMS key). SMTP, the IMAP copy to
Sent, the queue, the scheduler and the bus are recording stand-ins: a test checks what a send
returns, what status and failure are stored, and what reached SMTP, IMAP and the bus.

The Graph and Gmail sends (which need the local doubles' sockets, refused in this tier) are in
tests/integration/test_outbox_status_providers.py, on the same World."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from moto import mock_aws

from local.resources import create_table
from local.template import load_template
from mailbridge import aws
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import Conflict, Forbidden, Invalid, NotFound, ProviderError, ProviderUnreachable
from mailbridge.models.account import PublicServerSettings
from mailbridge.outbox.models import OutboxMessage, SendRequest
from mailbridge.outbox.service import OutboxDeps, SendOutcome, cancel_schedule, fail, queue_send, send_queued
from mailbridge.providers.imap.models import Folder, FolderStatus
from mailbridge.providers.imap.protocol import MailFolderSource
from mailbridge.providers.imap.settings import Security
from mailbridge.providers.smtp.errors import Stage, reply_error
from mailbridge.providers.smtp.models import SendResult
from mailbridge.queues import OutboxQueue
from mailbridge.schedules import OneTimeScheduler
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore, status_source
from mailbridge.tenancy import Role, TenantContext
from tests.fixtures.accounts import seed_account

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
NOW = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
BUCKET = "mailbridge-test-mail"


class RecordingQueue(OutboxQueue):
    def __init__(self) -> None:
        super().__init__("unused")
        self.sent: list[Any] = []

    def send(self, body: Any) -> None:
        self.sent.append(body)


class RecordingScheduler(OneTimeScheduler):
    def __init__(self) -> None:
        super().__init__("arn:target", "arn:role")
        self.created: list[str] = []
        self.deleted: list[str] = []

    def create(self, name: str, at: datetime, payload: dict[str, Any]) -> None:
        self.created.append(name)

    def delete(self, name: str) -> bool:
        self.deleted.append(name)
        return True


class RecordingPublisher(EventPublisher):
    def __init__(self) -> None:
        super().__init__("unused")
        self.events: list[DomainEvent] = []

    def publish(self, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)


@dataclass
class Imap:
    """The account's IMAP server as the copy to Sent sees it."""

    sent: str | None = "Sent"
    uid: int | None = 41
    error: Exception | None = None
    appended: list[tuple[str, bytes, list[str], datetime]] = field(default_factory=list)
    settings: list[Any] = field(default_factory=list)

    def connect(self, settings: Any) -> MailFolderSource:
        self.settings.append(settings)
        if self.error is not None:
            raise self.error
        # The outbox uses only sent_folder(), append() and the context manager.
        return cast("MailFolderSource", self)

    def __enter__(self) -> Imap:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def sent_folder(self) -> Folder | None:
        return Folder(self.sent, "/", frozenset({"\\Sent"})) if self.sent else None

    def append(self, folder: str, raw: bytes, flags: list[str], internal_date: datetime) -> int | None:
        self.appended.append((folder, raw, flags, internal_date))
        return self.uid

    def folder_status(self, name: str) -> FolderStatus:
        return FolderStatus(name=name, uidvalidity=9, uidnext=42, messages=1, highestmodseq=None)


@dataclass
class Smtp:
    """The account's SMTP server: what it was given, and what it answers."""

    refused: dict[str, str] = field(default_factory=dict)
    error: Exception | None = None
    calls: list[tuple[Any, Any]] = field(default_factory=list)

    def send(self, settings: Any, composed: Any) -> SendResult:
        self.calls.append((settings, composed))
        if self.error is not None:
            raise self.error
        accepted = [r for r in composed.recipients if r not in self.refused]
        return SendResult(accepted=accepted, refused=self.refused, server_reply="250 2.0.0 queued as 1")


@dataclass
class World:
    tenant: str
    deps: OutboxDeps
    smtp: Smtp
    imap: Imap
    queue: RecordingQueue
    scheduler: RecordingScheduler
    publisher: RecordingPublisher
    key_id: str

    @property
    def member(self) -> TenantContext:
        return TenantContext(tenant_id=self.tenant, role=Role.MEMBER, subject="user-1")

    def account(self, *, smtp: bool = True, smtp_password: str | None = "smtp-pw") -> str:
        """A mailbox of the member's (`member.subject` connected it)."""
        account_id = "acc_" + uuid.uuid4().hex[:20]
        username = f"u{account_id[-6:]}"
        server: dict[str, Any] = {"port": 465, "security": Security.SSL, "username": username}
        return seed_account(
            self.deps.accounts.table_name,
            self.key_id,
            tenant=self.tenant,
            owner=self.member.subject,
            account_id=account_id,
            address=f"alice.{account_id[-6:]}@example.com",
            imap=PublicServerSettings(host="imap.example.com", **server),
            smtp=PublicServerSettings(host="smtp.example.com", **server) if smtp else None,
            with_smtp=False,
            secrets={"imap_password": "imap-pw", "smtp_password": smtp_password},
            created_at=NOW,
        ).account_id

    def queued(self, account_id: str | None = None, *, send_at: datetime | None = None) -> str:
        request = SendRequest.model_validate(
            {
                "account_id": account_id or self.account(),
                "to": [{"address": "bob@example.org"}, {"address": "carol@example.org"}],
                "subject": "Quote",
                "text": "Hello",
                "send_at": send_at.isoformat() if send_at else None,
            }
        )
        return queue_send(self.member, request, self.deps).email_id

    def send(self, email_id: str) -> SendOutcome:
        return send_queued(OutboxMessage(tenant_id=self.tenant, email_id=email_id), self.deps)

    def item(self, email_id: str) -> dict[str, Any]:
        item = self.deps.emails.get_email(self.tenant, email_id)
        assert item is not None
        return item


@pytest.fixture(scope="module")
def aws_stack() -> Iterator[tuple[EmailStore, AccountStore, BlobStore, str]]:
    """The emails and accounts tables, the bucket and the data key, once per module."""
    with mock_aws():
        aws.reset_clients()
        key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
        TEMPLATE.physical_ids["DataKey"] = key_id
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        emails, accounts_table = (
            create_table(dynamodb, TEMPLATE, t) for t in ("EmailsTable", "AccountsTable")
        )
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield EmailStore(emails), AccountStore(accounts_table), BlobStore(BUCKET), key_id
        aws.reset_clients()


@pytest.fixture
def world(aws_stack: tuple[EmailStore, AccountStore, BlobStore, str]) -> World:
    emails, account_store, blobs, key_id = aws_stack
    smtp, imap = Smtp(), Imap()
    queue, scheduler, publisher = RecordingQueue(), RecordingScheduler(), RecordingPublisher()
    deps = OutboxDeps(
        emails=emails,
        accounts=account_store,
        blobs=blobs,
        queue=queue,
        scheduler=scheduler,
        publisher=publisher,
        connect_imap=imap.connect,
        send_smtp=smtp.send,
        now=lambda: NOW,
    )
    return World("t" + uuid.uuid4().hex[:12], deps, smtp, imap, queue, scheduler, publisher, key_id)


# ------------------------------------------------------------------------------ sending


def test_a_queued_email_is_sent_filed_in_sent_and_announced(world: World) -> None:
    # Given a queued email
    account_id = world.account()
    email_id = world.queued(account_id)
    assert world.item(email_id)["send_status"] == "queued"
    raw = world.deps.blobs.get(str(world.item(email_id)["raw_key"]))
    # When the outbox sends it
    outcome = world.send(email_id)
    # Then the stored bytes went to the account's SMTP server with its password and envelope
    ((settings, composed),) = world.smtp.calls
    assert (settings.host, settings.port, settings.username) == (
        "smtp.example.com",
        465,
        f"u{account_id[-6:]}",
    )
    assert settings.password.get_secret_value() == "smtp-pw"
    assert settings.allow_private is False
    assert composed.raw == raw
    assert composed.envelope_from == f"alice.{account_id[-6:]}@example.com"
    assert composed.recipients == ["bob@example.org", "carol@example.org"]
    assert composed.subject == "Quote"
    assert composed.message_id == world.item(email_id)["message_id"]
    # And it is sent, at the send time, nobody refused
    assert outcome == SendOutcome("sent", {})
    item = world.item(email_id)
    assert (item["send_status"], item["sent_at"], item.get("refused")) == ("sent", NOW.isoformat(), None)
    # And a copy was filed in Sent (seen, dated now) and recorded as a location there
    assert world.imap.appended == [("Sent", raw, ["\\Seen"], NOW)]
    assert world.imap.settings[0].password.get_secret_value() == "imap-pw"
    assert any("Sent" in str(k) for k in item["loc_keys"])
    # And email.sent was announced once
    assert [(e.detail_type, e.data["email_id"]) for e in world.publisher.events] == [("email.sent", email_id)]


def test_recipients_the_server_refused_are_kept_with_the_sent_status(world: World) -> None:
    world.smtp.refused = {"carol@example.org": "550 5.1.1 no such user"}
    email_id = world.queued()
    assert world.send(email_id) == SendOutcome("sent", {"carol@example.org": "550 5.1.1 no such user"})
    assert world.item(email_id)["refused"] == {"carol@example.org": "550 5.1.1 no such user"}


def test_without_an_smtp_password_the_imap_password_is_used(world: World) -> None:
    email_id = world.queued(world.account(smtp_password=None))
    world.send(email_id)
    assert world.smtp.calls[0][0].password.get_secret_value() == "imap-pw"


def test_an_email_sent_failed_or_cancelled_is_never_sent_again(world: World) -> None:
    email_id = world.queued()
    world.send(email_id)
    for status in ("sent", "failed", "cancelled"):
        world.deps.emails.update_email(world.tenant, email_id, send_status=status)
        assert world.send(email_id) == SendOutcome(status, {})
    assert len(world.smtp.calls) == 1


def test_an_email_left_sending_by_a_crash_is_sent_on_redelivery(world: World) -> None:
    email_id = world.queued()
    world.deps.emails.update_email(world.tenant, email_id, send_status="sending")
    assert world.send(email_id).status == "sent"


def test_a_send_that_lost_the_race_sends_nothing(world: World) -> None:
    # Given a record read as queued while another delivery already moved it on
    email_id = world.queued()
    stale = world.item(email_id)
    world.deps.emails.update_email(world.tenant, email_id, send_status="sent")
    world.deps.emails = StaleReads(world.deps.emails.table_name, stale)
    # When this delivery runs / Then it sends nothing and says so
    assert world.send(email_id) == SendOutcome("raced", {})
    assert world.smtp.calls == []


class StaleReads(EmailStore):
    def __init__(self, table_name: str, stale: dict[str, Any]) -> None:
        super().__init__(table_name)
        self.stale = stale

    def get_email(self, tenant_id: str, email_id: str) -> dict[str, Any] | None:
        return self.stale


def test_an_unknown_email_is_missing(world: World) -> None:
    assert world.send("em_" + "0" * 26) == SendOutcome("missing", {})
    assert world.smtp.calls == []


def test_a_removed_account_fails_the_send(world: World) -> None:
    account_id = world.account()
    email_id = world.queued(account_id)
    world.deps.accounts.delete_account(world.tenant, account_id)
    assert world.send(email_id) == SendOutcome("failed", {})
    assert world.item(email_id)["failure"] == {
        "code": "account_removed",
        "message": "the sending account was removed",
        "smtp_code": None,
        "smtp_reply": None,
    }
    assert world.smtp.calls == []


def test_a_permanent_refusal_fails_with_the_servers_reply(world: World) -> None:
    # the error the SMTP client raises for a 553 to MAIL FROM
    world.smtp.error = reply_error(
        553, b"5.7.1 not yours", stage=Stage.MAIL, host="smtp.example.com", port=587
    )
    email_id = world.queued()
    assert world.send(email_id) == SendOutcome("failed", {})
    item = world.item(email_id)
    assert item["send_status"] == "failed"
    assert item["failure"] == {
        "code": "smtp_rejected",
        "message": "SMTP server smtp.example.com:587: rejected with 553 at mail",
        "smtp_code": Decimal(553),
        "smtp_reply": "5.7.1 not yours",
    }
    assert world.imap.appended == []
    # And the failure is announced once, with the email id and the code only (for notifications)
    assert [(e.detail_type, e.data) for e in world.publisher.events] == [
        ("email.send_failed", {"email_id": email_id, "code": "smtp_rejected"})
    ]


def test_a_transient_failure_puts_it_back_in_the_queue_and_is_raised(world: World) -> None:
    world.smtp.error = ProviderUnreachable("down", code="unreachable")
    email_id = world.queued()
    with pytest.raises(ProviderUnreachable):
        world.send(email_id)
    assert world.item(email_id)["send_status"] == "queued"
    assert "failure" not in world.item(email_id) or world.item(email_id)["failure"] is None


def test_a_guard_refusal_fails_for_good(world: World) -> None:
    world.smtp.error = Invalid("private", code="host_not_allowed")
    email_id = world.queued()
    assert world.send(email_id).status == "failed"
    assert world.item(email_id)["failure"]["code"] == "host_not_allowed"


def test_the_copy_to_sent_failing_does_not_undo_the_send(world: World) -> None:
    for imap in (
        Imap(error=ProviderUnreachable("down", code="unreachable")),
        Imap(sent=None),
        Imap(uid=None),
    ):
        world.deps.connect_imap = imap.connect
        email_id = world.queued()
        assert world.send(email_id).status == "sent"
        assert not any("Sent" in str(k) for k in world.item(email_id).get("loc_keys") or ()), imap
    assert len(world.publisher.events) == 3


def test_the_copy_to_sent_failing_is_logged_with_the_email_id_and_no_address_or_body(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a queued email whose IMAP server is down when the copy is filed in Sent
    world.imap.error = ProviderUnreachable("down", code="unreachable")
    account_id = world.account()
    email_id = world.queued(account_id)
    caplog.clear()  # forget what queueing logged
    # When the outbox sends it
    assert world.send(email_id).status == "sent"
    # Then one warning names the email (and the error code), so the missing copy can be traced
    warnings = [r for r in caplog.records if r.getMessage() == "sent copy not stored"]
    assert [(w.levelname, getattr(w, "email_id", None), getattr(w, "code", None)) for w in warnings] == [
        ("WARNING", email_id, "unreachable")
    ]
    # And no record (message or extra field) carries the sender's or a recipient's address, or the body
    logged = " ".join(str(vars(r)) for r in caplog.records)
    for secret in (f"alice.{account_id[-6:]}@example.com", "bob@example.org", "carol@example.org", "Hello"):
        assert secret not in logged


# ------------------------------------------------------------------------------ fail


def test_a_failure_without_details_or_code_is_stored_plainly(world: World) -> None:
    email_id = world.queued()
    message = OutboxMessage(tenant_id=world.tenant, email_id=email_id)
    fail(world.deps, message, ProviderError("gone", code="gone", details=["a list"]))
    assert world.item(email_id)["failure"] == {
        "code": "gone",
        "message": "gone",
        "smtp_code": None,
        "smtp_reply": None,
    }
    other = world.queued()
    fail(world.deps, OutboxMessage(tenant_id=world.tenant, email_id=other), RuntimeError("boom"))
    assert world.item(other)["failure"] == {
        "code": "send_failed",
        "message": "the send failed",
        "smtp_code": None,
        "smtp_reply": None,
    }
    assert world.item(other)["send_status"] == "failed"


def test_a_sent_email_is_never_marked_failed(world: World) -> None:
    email_id = world.queued()
    world.send(email_id)
    fail(world.deps, OutboxMessage(tenant_id=world.tenant, email_id=email_id), RuntimeError("late"))
    assert world.item(email_id)["send_status"] == "sent"
    assert world.item(email_id).get("failure") is None


# ------------------------------------------------------------------------------ scheduled


def test_a_scheduled_send_can_be_cancelled_once(world: World) -> None:
    email_id = world.queued(send_at=NOW + timedelta(hours=1))
    assert world.item(email_id)["send_status"] == "scheduled"
    cancel_schedule(world.member, email_id, world.deps)
    assert world.item(email_id)["send_status"] == "cancelled"
    assert world.scheduler.deleted == [f"send-{email_id}"]
    # And a cancelled send is not sent when its schedule fires anyway
    assert world.send(email_id) == SendOutcome("cancelled", {})
    # And it cannot be cancelled again
    with pytest.raises(Conflict) as caught:
        cancel_schedule(world.member, email_id, world.deps)
    assert (caught.value.code, caught.value.message) == (
        "not_scheduled",
        "the email is cancelled, not scheduled",
    )


def test_only_a_scheduled_send_of_ones_tenant_can_be_cancelled(world: World) -> None:
    queued = world.queued()
    with pytest.raises(Conflict) as caught:
        cancel_schedule(world.member, queued, world.deps)
    assert caught.value.message == "the email is queued, not scheduled"
    assert world.scheduler.deleted == []
    with pytest.raises(NotFound) as missing:
        cancel_schedule(world.member, "em_" + "0" * 26, world.deps)
    assert (missing.value.code, missing.value.message) == ("not_found", "no such outbound email")
    other = TenantContext(tenant_id="other", role=Role.MEMBER, subject="x")
    with pytest.raises(NotFound):
        cancel_schedule(other, queued, world.deps)
    viewer = TenantContext(tenant_id=world.tenant, role=Role.VIEWER, subject="v")
    with pytest.raises(Forbidden):
        cancel_schedule(viewer, queued, world.deps)


def test_an_inbound_email_is_not_an_outbound_one(world: World) -> None:
    email_id = world.queued()
    world.deps.emails.update_email(world.tenant, email_id, send_status=None)
    with pytest.raises(NotFound):
        cancel_schedule(world.member, email_id, world.deps)


# ------------------------------------------------------------------------------ transition


def test_a_transition_happens_only_from_an_allowed_status_and_moves_the_status_index(world: World) -> None:
    email_id = world.queued()
    emails = world.deps.emails
    assert not emails.transition(world.tenant, email_id, ("scheduled", "sending"), send_status="failed")
    assert world.item(email_id)["send_status"] == "queued"
    assert emails.transition(world.tenant, email_id, ("scheduled", "queued"), send_status="sending", note="x")
    item = world.item(email_id)
    assert (item["send_status"], item["note"]) == ("sending", "x")
    # And the tenant's listing of sending mail (the status index) now holds it
    source = status_source(world.tenant, "sending")
    listed = emails.table.query(
        IndexName=source.index, KeyConditionExpression=Key(source.pk_attr).eq(source.partition)
    )["Items"]
    assert [i["email_id"] for i in listed] == [email_id]
    # A change without a new status leaves the index where it is
    assert emails.transition(world.tenant, email_id, ("sending",), note="y")
    assert world.item(email_id)["gsi6pk"] == item["gsi6pk"]
    # An unknown email is not transitioned
    assert not emails.transition(world.tenant, "em_" + "0" * 26, ("queued",), send_status="sending")


def test_a_transition_the_table_refuses_for_another_reason_raises(world: World) -> None:
    email_id = world.queued()
    # (a float, which the DynamoDB serializer refuses: not a failed condition)
    with pytest.raises(TypeError):
        world.deps.emails.transition(world.tenant, email_id, ("queued",), send_status="sending", note=0.5)
    assert world.item(email_id)["send_status"] == "queued"
