"""Notifications (issue 15 point 4) in-process: source events put on the template's bus reach the
NotificationsQueue through the NotificationsRule (moto routes them), the notifications function
drains it, and the api function answers from the notifications table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import boto3
import pytest

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import EventPublishError
from mailbridge.models.account import PublicServerSettings
from mailbridge.providers.imap.settings import Security
from mailbridge.store.accounts import AccountStore
from tests.events import load_event
from tests.fixtures.accounts import seed_account
from tests.fixtures.aws import BusReader, Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.test_api_emails import TENANT, Invoke, Seeder, body, rfc

ADA, BOB = "ada-0b1c2d3e", "bob-4f5a6b7c"


def make_account(stack: Stack, owner: str, tenant: str = TENANT) -> str:
    """A mailbox connected by `owner` (its `created_by`)."""
    env = stack.env("ApiFunction")
    server = PublicServerSettings(host="mail.example.com", port=993, security=Security.SSL, username=owner)
    return seed_account(
        env["ACCOUNTS_TABLE"],
        env["DATA_KEY_ID"],
        tenant=tenant,
        owner=owner,
        address=f"{owner}@example.com",
        imap=server,
        smtp=server,
    ).account_id


def emit(
    stack: Stack,
    sample: str,
    *,
    tenant: str = TENANT,
    key: str | None = None,
    occurred_at: str | None = None,
    drain: bool = True,
    **data: Any,
) -> None:
    """Put the events/eventbridge sample on the bus as its producer would (tenant, data and
    idempotency key replaced), then (unless `drain` is false) let the notifications function
    drain its queue."""
    event = load_event(f"eventbridge/{sample}.json")
    detail = event["detail"] | {"tenant_id": tenant}
    detail["data"] = detail["data"] | data
    if key is not None:
        detail["idempotency_key"] = key
    if occurred_at is not None:
        detail["occurred_at"] = occurred_at
    boto3.client("events").put_events(
        Entries=[
            {
                "Source": "mailbridge",
                "DetailType": event["detail-type"],
                "Detail": json.dumps(detail),
                "EventBusName": stack.deployed.buses["EventBus"],
            }
        ]
    )
    if drain:
        deliver(stack)


def deliver(stack: Stack) -> None:
    QueueConsumer(stack, "notifications", "NotificationsQueue").drain(expect_success=True)


def call(
    invoke_api: Invoke, name: str, sub: str, *, tenant: str = TENANT, role: str = "member", **kw: Any
) -> Any:
    path = kw.pop("path", None)
    event = load_event(f"api/{name}.json", tenant=tenant, role=role, sub=sub, **kw)
    if path is not None:
        raw = event["routeKey"].split(" ", 1)[1].replace("{notification_id}", path)
        event["pathParameters"] = {"notification_id": path}
        event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    if "query" not in kw:
        event.pop("queryStringParameters", None)
        event["rawQueryString"] = ""
    return invoke_api(event)


def listing(invoke_api: Invoke, sub: str, tenant: str = TENANT, **query: str) -> dict[str, Any]:
    response = call(invoke_api, "list-notifications", sub, tenant=tenant, query=query)
    assert response["statusCode"] == 200, response
    return body(response)  # type: ignore[no-any-return]


def created(bus: BusReader) -> list[dict[str, Any]]:
    return [e["detail"] for e in bus() if e["detail-type"] == "notification.created"]


@pytest.fixture
def world(stack: Stack) -> dict[str, str]:
    """acme: Ada's mailbox holds an email, Bob has a mailbox of his own."""
    ada_account, bob_account = make_account(stack, ADA), make_account(stack, BOB)
    email_id = Seeder(stack).add(
        rfc(
            msgid="quote@acme.test",
            sender="Carol <carol@customer.test>",
            to=f"{ADA}@example.com",
            subject="Quote",
            date="Mon, 02 Mar 2026 09:00:00 +0000",
        ),
        account=ada_account,
    )
    return {"ada_account": ada_account, "bob_account": bob_account, "email_id": email_id}


SOURCES = [
    ("nudge-created", "nudge", "email_id"),
    ("email-unsnoozed", "email_unsnoozed", "email_ids"),
    ("email-send-failed", "send_failed", "email_id"),
    ("account-reauth-required", "account_reauth_required", "account_id"),
    ("automation-failed", "automation_failed", "owner"),
]


@pytest.mark.parametrize(("sample", "kind", "field"), SOURCES)
def test_each_source_event_makes_exactly_one_notification_for_the_owner(
    stack: Stack,
    invoke_api: Invoke,
    world: dict[str, str],
    bus_probe: BusReader,
    sample: str,
    kind: str,
    field: str,
) -> None:
    # Given a source event about Ada's email, Ada's mailbox, or Ada's rule
    about: Any = {
        "email_id": world["email_id"],
        "email_ids": [world["email_id"]],
        "account_id": world["ada_account"],
        "owner": ADA,
    }[field]
    # When it is announced twice (a redelivery, the same idempotency key)
    # (its data also carrying an address, which no producer sends and nothing may keep)
    data: dict[str, Any] = {field: about, "from": "carol@customer.test"}
    emit(stack, sample, **data)
    emit(stack, sample, **data)
    # Then Ada has exactly one notification of that type, unread
    ada = listing(invoke_api, ADA)
    assert [(n["type"], n["read_at"]) for n in ada["items"]] == [(kind, None)]
    assert ada["unread_count"] == 1
    assert "@" not in json.dumps(ada["items"])
    # And Bob, in the same tenant, has none
    assert listing(invoke_api, BOB) == {"items": [], "next_cursor": None, "unread_count": 0}
    # And notification.created went out once, for Ada, small and without addresses
    [announced] = created(bus_probe)
    assert announced["data"]["user_id"] == ADA
    assert announced["data"]["notification_id"] == ada["items"][0]["notification_id"]
    assert announced["data"]["type"] == kind
    assert "@" not in json.dumps(announced)


def test_the_follow_up_due_of_an_email_notifies_each_owner_of_a_mailbox_holding_it(
    stack: Stack, invoke_api: Invoke, world: dict[str, str], bus_probe: BusReader
) -> None:
    # Given the same email also seen in Bob's mailbox
    Seeder(stack).add(
        rfc(
            msgid="quote@acme.test",
            sender="Carol <carol@customer.test>",
            to=f"{ADA}@example.com",
            subject="Quote",
            date="Mon, 02 Mar 2026 09:00:00 +0000",
        ),
        account=world["bob_account"],
    )
    # When its follow-up comes due (follow_up.due, as mailbridge.followups.service.remind puts it)
    emit(
        stack,
        "follow-up-due",
        key=f"follow_up.due:{world['email_id']}:2026-03-03T09:00:00+00:00",
        email_id=world["email_id"],
    )
    # Then each of them has one follow_up_due notification about that email, and another tenant's
    # user of the same name has nothing
    for user in (ADA, BOB):
        [item] = listing(invoke_api, user)["items"]
        assert (item["type"], item["subject_id"]) == ("follow_up_due", world["email_id"])
    assert sorted(d["data"]["user_id"] for d in created(bus_probe)) == [ADA, BOB]
    assert listing(invoke_api, ADA, tenant="globex")["items"] == []


def test_unread_count_read_and_read_all_touch_only_the_callers_own(
    stack: Stack, invoke_api: Invoke, world: dict[str, str]
) -> None:
    # Given three notifications of Ada's (three nudges on the same email, each its own event)
    for n in range(3):
        emit(
            stack,
            "nudge-created",
            key=f"nudge.created:{n}",
            occurred_at=f"2026-11-2{n}T06:00:00+00:00",
            email_id=world["email_id"],
        )
    first = listing(invoke_api, ADA, limit="2")
    # Then pages fill: two, then the third, newest first, each page with the unread count
    assert (len(first["items"]), first["unread_count"]) == (2, 3)
    rest = listing(invoke_api, ADA, limit="2", cursor=first["next_cursor"])
    assert (len(rest["items"]), rest["next_cursor"], rest["unread_count"]) == (1, None, 3)
    ids = [n["notification_id"] for n in first["items"] + rest["items"]]
    days = [n["created_at"][:10] for n in first["items"] + rest["items"]]
    assert days == ["2026-11-22", "2026-11-21", "2026-11-20"]
    # And an edited cursor is refused, and Bob cannot use Ada's cursor, nor read her notification
    cursor = first["next_cursor"]
    edited = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    tampered = call(invoke_api, "list-notifications", ADA, query={"cursor": edited})
    assert (tampered["statusCode"], body(tampered)["error"]["code"]) == (400, "invalid_cursor")
    refused = call(invoke_api, "list-notifications", BOB, query={"cursor": first["next_cursor"]})
    assert (refused["statusCode"], body(refused)["error"]["code"]) == (400, "invalid_cursor")
    other = call(invoke_api, "read-notification", BOB, path=ids[0])
    assert (other["statusCode"], body(other)["error"]["code"]) == (404, "notification_not_found")
    # When Ada reads one (twice)
    read = call(invoke_api, "read-notification", ADA, path=ids[0])
    again = call(invoke_api, "read-notification", ADA, path=ids[0])
    # Then it is read once, leaves the unread listing, and the count drops by one
    assert read["statusCode"] == 200, read
    assert body(read)["read_at"] is not None
    assert body(again)["read_at"] == body(read)["read_at"]
    unread = listing(invoke_api, ADA, unread="true")
    assert ([n["notification_id"] for n in unread["items"]], unread["unread_count"]) == (ids[1:], 2)
    # When she marks all read
    response = call(invoke_api, "read-all-notifications", ADA)
    # Then the other two are marked, none is unread, and all three are still listed
    assert body(response) == {"marked": 2, "unread_count": 0}
    assert listing(invoke_api, ADA, unread="true")["items"] == []
    assert len(listing(invoke_api, ADA)["items"]) == 3


@pytest.mark.parametrize("bad", ["nt_x", "nt_" + "0" * 25 + "G", "nt_" + "0" * 26, "em_" + "0" * 26])
def test_a_malformed_notification_id_is_a_404(invoke_api: Invoke, bad: str) -> None:
    response = call(invoke_api, "read-notification", ADA, path=bad)
    assert (response["statusCode"], body(response)["error"]["code"]) == (404, "notification_not_found")


def test_preferences_off_suppress_and_email_digest_keeps_them_out_of_the_app(
    stack: Stack, invoke_api: Invoke, world: dict[str, str], bus_probe: BusReader
) -> None:
    # Given Ada turned nudges off and wants unsnoozed mail in her digest
    saved = call(
        invoke_api,
        "put-notification-preferences",
        ADA,
        body={"types": {"nudge": "off", "email_unsnoozed": "email_digest"}, "digest_frequency": "weekly"},
    )
    assert saved["statusCode"] == 200, saved
    prefs = body(call(invoke_api, "get-notification-preferences", ADA))
    assert prefs["types"]["nudge"] == "off"
    assert prefs["types"]["email_unsnoozed"] == "email_digest"
    assert prefs["types"]["send_failed"] == "in_app"
    assert prefs["digest_frequency"] == "weekly"
    # And Bob's preferences are still the defaults
    assert set(body(call(invoke_api, "get-notification-preferences", BOB))["types"].values()) == {"in_app"}
    # When a nudge, an unsnooze and a failed send of hers are announced
    emit(stack, "nudge-created", email_id=world["email_id"])
    emit(stack, "email-unsnoozed", email_ids=[world["email_id"]])
    emit(stack, "email-send-failed", email_id=world["email_id"])
    # Then only the failed send is in the app and announced
    ada = listing(invoke_api, ADA)
    assert ([n["type"] for n in ada["items"]], ada["unread_count"]) == (["send_failed"], 1)
    assert [d["data"]["type"] for d in created(bus_probe)] == ["send_failed"]


@pytest.mark.parametrize(
    "payload",
    [
        {"types": {"nudges": "off"}},
        {"types": {"nudge": "sms"}},
        {"digest_frequency": "hourly"},
        {"types": {}, "extra": True},
    ],
)
def test_bad_preferences_are_a_422(invoke_api: Invoke, payload: Any) -> None:
    response = call(invoke_api, "put-notification-preferences", ADA, body=payload)
    assert (response["statusCode"], body(response)["error"]["code"]) == (422, "validation_error")


def test_only_an_admin_sets_the_digest_sender_and_only_to_an_account_of_the_tenant(
    stack: Stack, invoke_api: Invoke, world: dict[str, str]
) -> None:
    # Given no sender yet
    assert body(call(invoke_api, "get-notification-settings", ADA))["digest_sender_account_id"] is None
    # When a member tries to set one: 403 before the body is read
    refused = call(invoke_api, "put-notification-settings", ADA, body={"digest_sender_account_id": "bad"})
    assert (refused["statusCode"], body(refused)["error"]["code"]) == (403, "role_required")
    # When an admin names an account the tenant does not have (another tenant's)
    elsewhere = make_account(stack, ADA, tenant="globex")
    missing = call(
        invoke_api,
        "put-notification-settings",
        ADA,
        role="admin",
        body={"digest_sender_account_id": elsewhere},
    )
    assert (missing["statusCode"], body(missing)["error"]["code"]) == (404, "account_not_found")
    # When an admin names Ada's account
    saved = call(
        invoke_api,
        "put-notification-settings",
        ADA,
        role="admin",
        body={"digest_sender_account_id": world["ada_account"]},
    )
    # Then it is stored
    assert saved["statusCode"] == 200, saved
    got = body(call(invoke_api, "get-notification-settings", BOB))
    assert (got["digest_sender_account_id"], got["updated_by"]) == (world["ada_account"], ADA)


# ------------------------------------------------------------------- the producers announce them


def test_a_failed_automation_run_notifies_the_rules_owner_once(
    stack: Stack, invoke_api: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailbridge.automations.execution import handle_trigger
    from mailbridge.errors import Invalid
    from tests.integration.test_automations_execution import CONTACT, TRACK, Automations, _trigger

    # Given a rule whose action fails for good
    auto = Automations(stack, invoke_api, monkeypatch)
    rule = auto.rule([TRACK])

    def broken(action: Any, step: Any) -> tuple[Any, Any]:
        raise Invalid("bad", code="invalid_action")

    deps = auto.deps({"analytics.track": broken})
    # When an event runs it, and the same event comes again
    (run,) = handle_trigger(_trigger({"contact": CONTACT}), deps)
    handle_trigger(_trigger({"contact": CONTACT}), deps)
    deliver(stack)
    # Then the rule's owner has one automation_failed notification naming the rule, run and code
    [item] = listing(invoke_api, rule["owner"])["items"]
    assert (item["type"], item["subject_id"], item["data"]["run_id"], item["data"]["code"]) == (
        "automation_failed",
        rule["rule_id"],
        run.run_id,
        "invalid_action",
    )


@pytest.mark.dovecot
def test_a_send_rejected_for_good_notifies_the_mailbox_owner_once(
    stack: Stack, invoke_api: Invoke, dovecot_server: Any, dovecot_user: Any, smtp_sink: Any
) -> None:
    from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER
    from tests.integration.sync_harness import SyncHarness
    from tests.integration.test_outbox import send

    # Given a connected mailbox whose SMTP server refuses the recipient for good
    h = SyncHarness(stack, invoke_api, dovecot_server, dovecot_user)
    status, connected = h.connect(
        smtp={
            "host": smtp_sink.host,
            "port": smtp_sink.plain_port,
            "security": "none",
            "username": SINK_USER,
            "password": SINK_PASSWORD,
        }
    )
    assert status == 201, connected
    owner = (
        AccountStore(stack.env("ApiFunction")["ACCOUNTS_TABLE"]).get_account(TENANT, h.account_id).created_by
    )
    smtp_sink.reject_recipient("carol@customer.example", reply="550 5.1.1 No such user")
    _status, accepted = send(h)
    # When the outbox tries it, and the same record comes again
    outbox = QueueConsumer(stack, "outbox", "OutboxQueue")
    records = outbox.receive()
    outbox.invoke(records)
    outbox.invoke(records)
    deliver(stack)
    # Then the owner has one send_failed notification about that email, with the code only
    [item] = listing(invoke_api, owner)["items"]
    assert (item["type"], item["subject_id"], item["data"]) == (
        "send_failed",
        accepted["email_id"],
        {"email_id": accepted["email_id"], "code": "smtp_rejected"},
    )


def test_a_notification_whose_announcement_failed_is_announced_by_the_retry_once(
    stack: Stack,
    invoke_api: Invoke,
    world: dict[str, str],
    bus_probe: BusReader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given PutEvents refusing the first notification.created (after the retries), as
    # EventPublisher reports it, and accepting from then on
    real_publish = EventPublisher.publish
    refused: list[str] = []

    def refuse_once(self: EventPublisher, events: Sequence[DomainEvent]) -> None:
        if not refused and any(e.detail_type == "notification.created" for e in events):
            refused.extend(e.idempotency_key for e in events)
            raise EventPublishError("1 event(s) rejected after 4 attempts", details=["InternalFailure"])
        real_publish(self, events)

    monkeypatch.setattr(EventPublisher, "publish", refuse_once)
    consumer = QueueConsumer(stack, "notifications", "NotificationsQueue")
    # When a nudge about Ada's email is delivered and its record fails at the PutEvents
    emit(stack, "nudge-created", drain=False, email_id=world["email_id"])
    [record] = consumer.receive()
    assert consumer.invoke([record])["batchItemFailures"] == [{"itemIdentifier": record["MessageId"]}]
    [stored] = listing(invoke_api, ADA)["items"]
    assert created(bus_probe) == []
    # And SQS redelivers the record
    boto3.client("sqs").change_message_visibility(
        QueueUrl=consumer.queue_url, ReceiptHandle=record["ReceiptHandle"], VisibilityTimeout=0
    )
    consumer.drain(expect_success=True)
    # Then the retry announced the notification the first delivery wrote, once, with its own key
    [announced] = created(bus_probe)
    assert announced["idempotency_key"] == f"notification.created:{stored['notification_id']}"
    assert refused == [announced["idempotency_key"]]
    created_at = datetime.fromisoformat(announced["data"].pop("created_at"))
    assert created_at == datetime.fromisoformat(stored["created_at"])
    assert announced["data"] == {
        "notification_id": stored["notification_id"],
        "user_id": ADA,
        "type": "nudge",
        "title": stored["title"],
        "subject_id": world["email_id"],
    }
    # When the source event is delivered once more (an ordinary redelivery)
    emit(stack, "nudge-created", email_id=world["email_id"])
    # Then nothing more is announced, and Ada still has the one notification
    assert created(bus_probe) == []
    assert [n["notification_id"] for n in listing(invoke_api, ADA)["items"]] == [stored["notification_id"]]
