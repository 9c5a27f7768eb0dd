"""Nudges (issue 15 point 3) in-process: sample events -> api handler -> moto; the reminders
function fed the `email.sent` / `email.received` events the RemindersRule delivers and the daily
NudgeSchedule's input, with its scheduled time filled in as EventBridge Scheduler does."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import EventPublishError
from mailbridge.nudges.service import on_thread_mail, scan
from mailbridge.nudges.wiring import nudge_deps
from mailbridge.store.base import Item
from mailbridge.store.emails import EmailStore
from mailbridge.store.nudges import NudgeStore
from tests.events import load_event
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.read_mail import Requests
from tests.integration.redelivery import bus_seen, sample_record, snapshot, three_deliveries
from tests.integration.test_api_emails import ACC_A, OTHER, TENANT, Invoke, Seeder, api, body, rfc

ME = f"Bob <me@{ACC_A}.test>"  # the mailbox's own address: what Bob sends is outbound
SETTINGS = {"enabled": True, "business_days": 3, "working_days": [1, 2, 3, 4, 5], "time_zone": "UTC"}
# Monday 2026-03-02 09:00 UTC: three business days later is Thursday 2026-03-05 09:00 UTC.
SENT = "Mon, 02 Mar 2026 09:00:00 +0000"
DUE = datetime(2026, 3, 5, 9, tzinfo=UTC)


def settings_put(
    invoke_api: Invoke, payload: Any, role: str = "admin", tenant: str = TENANT
) -> dict[str, Any]:
    return invoke_api(api("put-nudge-settings", role=role, tenant=tenant, body=payload))


def nudges(invoke_api: Invoke, tenant: str = TENANT, **query: str) -> list[dict[str, Any]]:
    response = invoke_api(
        api("list-nudges", tenant=tenant, query=query) if query else api("list-nudges", tenant=tenant)
    )
    assert response["statusCode"] == 200, response
    return list(body(response)["items"])


def announced(stack: Stack, detail_type: str, email_id: str, thread_id: str, tenant: str = TENANT) -> None:
    """The `email.sent` / `email.received` event of an email, as the RemindersRule delivers it."""
    records = load_event("sqs/reminders.json")["Records"]
    [sample] = [json.loads(r["body"]) for r in records if detail_type in r["body"]]
    sample["detail"] |= {"tenant_id": tenant}
    sample["detail"]["data"] |= {"thread_id": thread_id, "email_id": email_id}
    boto3.client("sqs").send_message(
        QueueUrl=stack.deployed.queue_urls["RemindersQueue"], MessageBody=json.dumps(sample)
    )
    QueueConsumer(stack, "reminders", "RemindersQueue").drain(expect_success=True)


def send_daily(stack: Stack, at: datetime) -> None:
    """What the NudgeSchedule sends at `at`: its input, `<aws.scheduler.scheduled-time>` filled in."""
    template_input = load_event("scheduler/nudge-scan.json")
    payload = json.dumps(template_input).replace(
        "<aws.scheduler.scheduled-time>", at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    boto3.client("sqs").send_message(
        QueueUrl=stack.deployed.queue_urls["RemindersQueue"], MessageBody=payload
    )


def run_daily(stack: Stack, at: datetime) -> None:
    """The NudgeSchedule's run at `at`, with the per-tenant scans it queues."""
    send_daily(stack, at)
    QueueConsumer(stack, "reminders", "RemindersQueue").drain(expect_success=True)


def created_events(bus: BusReader) -> list[dict[str, Any]]:
    return [e for e in bus() if e["detail-type"] == "nudge.created"]


def thread_of(stack: Stack, email_id: str, tenant: str = TENANT) -> str:
    item = EmailStore(stack.deployed.tables["EmailsTable"]).get_email(tenant, email_id)
    assert item is not None
    return str(item["thread_id"])


@pytest.fixture
def seed(stack: Stack) -> Seeder:
    """One seeder per test: it numbers the IMAP UIDs, so each message gets a location of its own."""
    return Seeder(stack)


@pytest.fixture
def sent(stack: Stack, invoke_api: Invoke, seed: Seeder) -> dict[str, str]:
    """acme has nudges on (3 business days, Monday to Friday, UTC); Bob sent a proposal on Monday
    and its `email.sent` went out."""
    assert settings_put(invoke_api, SETTINGS)["statusCode"] == 200
    email_id = seed.add(
        rfc(msgid="proposal@acme.test", sender=ME, to="carol@customer.test", subject="Proposal", date=SENT)
    )
    thread_id = thread_of(stack, email_id)
    announced(stack, "email.sent", email_id, thread_id)
    return {"email_id": email_id, "thread_id": thread_id}


def test_settings_default_off_and_only_an_admin_changes_them(invoke_api: Invoke) -> None:
    # Given a tenant that never saved nudge settings
    # When a member reads them
    response = invoke_api(api("get-nudge-settings"))
    # Then they are the defaults: off, 3 business days, Monday to Friday, UTC, no holidays
    assert response["statusCode"] == 200, response
    got = body(response)
    assert (got["enabled"], got["business_days"], got["working_days"], got["time_zone"], got["holidays"]) == (
        False,
        3,
        [1, 2, 3, 4, 5],
        "UTC",
        [],
    )
    # When a member tries to change them: 403 before the body is looked at
    refused = settings_put(invoke_api, {"enabled": True}, role="member")
    assert (refused["statusCode"], body(refused)["error"]["code"]) == (403, "role_required")
    # When an admin saves a Sunday-to-Thursday week in Jerusalem with holidays (repeated, unsorted)
    payload = {
        "enabled": True,
        "business_days": 2,
        "working_days": [7, 1, 2, 3, 4, 4],
        "time_zone": "Asia/Jerusalem",
        "holidays": ["2026-10-02", "2026-09-12", "2026-10-02"],
    }
    saved = settings_put(invoke_api, payload)
    # Then they are stored as given, each list sorted once, and read back the same
    assert saved["statusCode"] == 200, saved
    again = body(invoke_api(api("get-nudge-settings")))
    assert (again["working_days"], again["holidays"]) == ([1, 2, 3, 4, 7], ["2026-09-12", "2026-10-02"])
    assert (again["enabled"], again["business_days"], again["time_zone"]) == (True, 2, "Asia/Jerusalem")
    assert again["updated_by"] is not None


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"time_zone": "Mars/Olympus"}, 400, "invalid_time_zone"),
        ({"time_zone": "../../etc/passwd"}, 422, "validation_error"),
        ({"business_days": 0}, 422, "validation_error"),
        ({"business_days": 31}, 422, "validation_error"),
        ({"working_days": []}, 422, "validation_error"),
        ({"working_days": [0]}, 422, "validation_error"),
        ({"holidays": ["2026-02-30"]}, 422, "validation_error"),
        ({"holidays": ["2026-01-01"] * 367}, 422, "validation_error"),
        ({"enabled": True, "nudge_me": True}, 422, "validation_error"),
    ],
)
def test_bad_settings_are_clear_4xx(invoke_api: Invoke, payload: Any, status: int, code: str) -> None:
    response = settings_put(invoke_api, payload)
    assert (response["statusCode"], body(response)["error"]["code"]) == (status, code)


def test_sent_mail_without_a_reply_is_nudged_after_three_business_days_once(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], bus_probe: BusReader
) -> None:
    # Given Bob's proposal, sent Monday 09:00 UTC, with no reply
    # When the daily run happens Thursday 08:59, less than three business days later
    run_daily(stack, datetime(2026, 3, 5, 8, 59, tzinfo=UTC))
    # Then there is no nudge yet
    assert nudges(invoke_api) == []
    assert created_events(bus_probe) == []
    # When it runs again Friday 06:00
    run_daily(stack, datetime(2026, 3, 6, 6, tzinfo=UTC))
    # Then the proposal has an awaiting_reply nudge, due Thursday 09:00, and nudge.created went out once
    [nudge] = nudges(invoke_api)
    assert (nudge["id"], nudge["kind"], nudge["thread_id"], nudge["state"]) == (
        sent["email_id"],
        "awaiting_reply",
        sent["thread_id"],
        "open",
    )
    assert datetime.fromisoformat(nudge["due_at"]) == DUE
    [event] = created_events(bus_probe)
    assert event["detail"]["data"]["email_id"] == sent["email_id"]
    assert event["detail"]["idempotency_key"] == f"nudge.created:{sent['email_id']}"
    # When the run happens twice more (a retry, the next day), and the email.sent is replayed
    run_daily(stack, datetime(2026, 3, 6, 6, tzinfo=UTC))
    announced(stack, "email.sent", sent["email_id"], sent["thread_id"])
    run_daily(stack, datetime(2026, 3, 9, 6, tzinfo=UTC))
    # Then there is still one nudge and no second event
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    assert created_events(bus_probe) == []


def test_a_tenant_scan_delivered_three_times_nudges_once(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], bus_probe: BusReader
) -> None:
    # Given Bob's proposal with no reply, and Friday's scan of acme (the record the daily run's
    # fan-out queues for a tenant with nudges on)
    scan_record = {"kind": "nudge_scan", "tenant_id": TENANT, "scheduled_time": "2026-03-06T06:00:00Z"}
    event = sample_record("reminders", scan_record, 3)
    reminders = QueueConsumer(stack, "reminders", "RemindersQueue").function
    bus = bus_seen(bus_probe)

    def observe() -> tuple[dict[str, Any], int]:
        return snapshot(stack, bus), len(created_events(bus))

    # When SQS hands it to the reminders function three times
    deliveries = three_deliveries(lambda e: reminders.lambda_handler(e, FakeLambdaContext()), event, observe)

    # Then the first delivery created the nudge and announced it ...
    assert deliveries.results == [{"batchItemFailures": []}] * 3
    (stored_before, created_before), (stored_once, created_once) = deliveries.before, deliveries.once
    assert (created_before, created_once) == (0, 1)
    assert stored_once != stored_before
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    # ... and the other two created nothing, announced nothing and stored nothing
    assert deliveries.thrice[1] == created_once
    assert deliveries.thrice == deliveries.once


def test_a_reply_in_the_thread_clears_the_nudge_at_once(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], bus_probe: BusReader, seed: Seeder
) -> None:
    # Given the proposal's awaiting_reply nudge
    run_daily(stack, DUE)
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    # When Carol's reply arrives in the thread and is announced
    reply = seed.add(
        rfc(
            msgid="re-proposal@customer.test",
            sender="carol@customer.test",
            to=ME,
            subject="Re: Proposal",
            date="Fri, 06 Mar 2026 10:00:00 +0000",
            in_reply_to="proposal@acme.test",
            references="<proposal@acme.test>",
        )
    )
    assert thread_of(stack, reply) == sent["thread_id"]
    announced(stack, "email.received", reply, sent["thread_id"])
    # Then the nudge is gone at once, before any daily run
    assert nudges(invoke_api) == []
    # And later runs bring nothing back (Carol is no CRM contact: nobody owes an answer)
    created_events(bus_probe)
    run_daily(stack, datetime(2026, 3, 20, 6, tzinfo=UTC))
    assert nudges(invoke_api) == []
    assert created_events(bus_probe) == []


def test_a_reply_before_the_run_means_no_nudge(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], seed: Seeder
) -> None:
    # Given Carol replied on Tuesday
    reply = seed.add(
        rfc(
            msgid="quick@customer.test",
            sender="carol@customer.test",
            to=ME,
            subject="Re: Proposal",
            date="Tue, 03 Mar 2026 10:00:00 +0000",
            in_reply_to="proposal@acme.test",
        )
    )
    announced(stack, "email.received", reply, sent["thread_id"])
    # When the daily run happens well after the proposal was due
    run_daily(stack, datetime(2026, 3, 10, 6, tzinfo=UTC))
    # Then nothing is nudged
    assert nudges(invoke_api) == []


def test_a_dismissed_nudge_stays_dismissed(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], bus_probe: BusReader
) -> None:
    # Given the proposal's nudge
    run_daily(stack, DUE)
    created_events(bus_probe)
    # When a member dismisses it
    response = invoke_api(api("dismiss-nudge", path={"nudge_id": sent["email_id"]}))
    # Then it answers the dismissed nudge and the list no longer shows it
    assert response["statusCode"] == 200, response
    assert (body(response)["state"], body(response)["dismissed_at"] is not None) == ("dismissed", True)
    assert nudges(invoke_api) == []
    # And later runs and a replayed email.sent do not bring it back
    announced(stack, "email.sent", sent["email_id"], sent["thread_id"])
    run_daily(stack, datetime(2026, 3, 12, 6, tzinfo=UTC))
    assert nudges(invoke_api) == []
    assert created_events(bus_probe) == []
    # And dismissing again is a 404 with a code
    again = invoke_api(api("dismiss-nudge", path={"nudge_id": sent["email_id"]}))
    assert (again["statusCode"], body(again)["error"]["code"]) == (404, "nudge_not_found")


def test_mail_from_a_crm_contact_without_an_answer_needs_a_reply(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], seed: Seeder
) -> None:
    # Given Dana is a CRM contact, and wrote on Monday (new thread); Eve, no contact, wrote too
    contact = load_event(
        "api/crm-create-contact.json",
        tenant=TENANT,
        body={"name": "Dana", "emails": [{"address": "Dana@VendorCo.com"}]},
    )
    assert invoke_api(contact)["statusCode"] == 201
    dana = seed.add(
        rfc(msgid="q@vendorco.com", sender="Dana <dana@vendorco.com>", to=ME, subject="Question", date=SENT)
    )
    eve = seed.add(rfc(msgid="hi@shop.test", sender="eve@shop.test", to=ME, subject="Deals", date=SENT))
    announced(stack, "email.received", dana, thread_of(stack, dana))
    announced(stack, "email.received", eve, thread_of(stack, eve))
    # When the daily run happens after three business days
    run_daily(stack, DUE)
    # Then Dana's mail needs a reply, Eve's does not, and the kind filter separates them
    assert [(n["id"], n["kind"]) for n in nudges(invoke_api, kind="needs_reply")] == [(dana, "needs_reply")]
    assert [n["id"] for n in nudges(invoke_api, kind="awaiting_reply")] == [sent["email_id"]]
    assert sorted(n["id"] for n in nudges(invoke_api)) == sorted([dana, sent["email_id"]])


def test_the_categorizers_no_reply_needed_wins(invoke_api: Invoke, stack: Stack, seed: Seeder) -> None:
    # Given nudges on, Dana a CRM contact, and her mail categorized as needing no reply
    assert settings_put(invoke_api, SETTINGS)["statusCode"] == 200
    contact = load_event(
        "api/crm-create-contact.json",
        tenant=TENANT,
        body={"name": "Dana", "emails": [{"address": "dana@vendorco.com"}]},
    )
    assert invoke_api(contact)["statusCode"] == 201
    dana = seed.add(
        rfc(msgid="fyi@vendorco.com", sender="dana@vendorco.com", to=ME, subject="FYI", date=SENT)
    )
    EmailStore(stack.deployed.tables["EmailsTable"]).update_email(TENANT, dana, needs_reply=False)
    announced(stack, "email.received", dana, thread_of(stack, dana))
    # When the daily run happens after three business days
    run_daily(stack, DUE)
    # Then there is no nudge
    assert nudges(invoke_api) == []


def test_nudges_off_means_no_nudges(invoke_api: Invoke, stack: Stack, sent: dict[str, str]) -> None:
    # Given the proposal waiting for a reply, then an admin switches nudges off
    assert settings_put(invoke_api, {**SETTINGS, "enabled": False})["statusCode"] == 200
    # When the daily run happens after it was due
    run_daily(stack, DUE)
    # Then nothing is nudged
    assert nudges(invoke_api) == []


def test_another_tenant_sees_nothing(invoke_api: Invoke, stack: Stack, sent: dict[str, str]) -> None:
    # Given acme's nudge on the proposal
    run_daily(stack, DUE)
    assert len(nudges(invoke_api)) == 1
    # When globex lists nudges, reads settings and tries to dismiss acme's nudge
    listed = nudges(invoke_api, tenant=OTHER)
    settings = body(invoke_api(api("get-nudge-settings", tenant=OTHER)))
    dismissed = invoke_api(api("dismiss-nudge", tenant=OTHER, path={"nudge_id": sent["email_id"]}))
    # Then it sees nothing of acme's, and acme's nudge is untouched
    assert listed == []
    assert settings["enabled"] is False
    assert (dismissed["statusCode"], body(dismissed)["error"]["code"]) == (404, "nudge_not_found")
    assert [n["state"] for n in nudges(invoke_api)] == ["open"]


@pytest.mark.parametrize("nudge_id", ["em_nope", "EM_3F9A1C0B7D2E4F6A8B9C0D1E2F", "em_" + "0" * 26])
def test_unknown_or_malformed_nudge_ids_are_404(invoke_api: Invoke, stack: Stack, nudge_id: str) -> None:
    response = invoke_api(api("dismiss-nudge", path={"nudge_id": nudge_id}))
    assert (response["statusCode"], body(response)["error"]["code"]) == (404, "nudge_not_found")


def test_nudge_pages_fill_and_follow_their_cursor(invoke_api: Invoke, stack: Stack, seed: Seeder) -> None:
    # Given five sent emails in five threads, all due
    assert settings_put(invoke_api, SETTINGS)["statusCode"] == 200
    ids = []
    for n in range(5):
        email_id = seed.add(
            rfc(msgid=f"s{n}@acme.test", sender=ME, to="x@customer.test", subject=f"S{n}", date=SENT)
        )
        announced(stack, "email.sent", email_id, thread_of(stack, email_id))
        ids.append(email_id)
    run_daily(stack, DUE)
    # When they are listed two at a time
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = body(invoke_api(api("list-nudges", query=query)))
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every nudge is seen once, in id order
    assert seen == sorted(ids)


def test_edited_and_foreign_nudge_cursors_are_a_400(invoke_api: Invoke, stack: Stack, seed: Seeder) -> None:
    # (The make-run attack probe cannot hold nudges: it would have to move the runner's clock
    # three business days, waking the snoozes and scheduled sends its other probes rely on. So the
    # listing's cursors are attacked here, as the probe attacks the others.)
    # Given two due nudges and a real second-page cursor
    assert settings_put(invoke_api, SETTINGS)["statusCode"] == 200
    for n in range(2):
        email_id = seed.add(
            rfc(msgid=f"c{n}@acme.test", sender=ME, to="x@customer.test", subject=f"C{n}", date=SENT)
        )
        announced(stack, "email.sent", email_id, thread_of(stack, email_id))
    run_daily(stack, DUE)
    cursor = body(invoke_api(api("list-nudges", query={"limit": "1"})))["next_cursor"]
    assert isinstance(cursor, str)
    assert invoke_api(api("list-nudges", query={"limit": "1", "cursor": cursor}))["statusCode"] == 200
    middle = len(cursor) // 2
    edited = cursor[:middle] + ("A" if cursor[middle] != "A" else "B") + cursor[middle + 1 :]
    # When it is edited, truncated, extended, or presented by another tenant
    answers = [
        invoke_api(api("list-nudges", tenant=tenant, query={"limit": "1", "cursor": c}))
        for tenant, c in (
            (TENANT, edited),
            (TENANT, cursor[: len(cursor) * 2 // 3]),
            (TENANT, cursor + "AAAA"),
            (TENANT, "not base64!*"),
            (OTHER, cursor),
        )
    ]
    # Then each is 400 invalid_cursor
    assert [(a["statusCode"], body(a)["error"]["code"]) for a in answers] == [(400, "invalid_cursor")] * 5


def test_mail_of_a_tenant_that_never_set_nudges_costs_one_request(stack: Stack, seed: Seeder) -> None:
    # Given a tenant that never saved nudge settings (the default: off), and an email of it
    email_id = seed.add(
        rfc(msgid="hello@acme.test", sender=ME, to="carol@customer.test", subject="Hi", date=SENT)
    )
    deps = nudge_deps()
    counter = Requests()
    clients = {
        id(c): c
        for c in (
            *(t.meta.client for t in (deps.nudges.table, deps.emails.table, deps.crm.table)),
            *(s.client for s in (deps.nudges, deps.emails, deps.crm)),  # batched reads: low-level
        )
    }
    for client in clients.values():
        client.meta.events.register("before-call.dynamodb.*", counter)
    try:
        # When its email.sent reaches the nudges' thread bookkeeping
        outcome = on_thread_mail(TENANT, email_id, deps)
    finally:
        for client in clients.values():
            client.meta.events.unregister("before-call.dynamodb.*", counter)
    # Then nothing is kept, after one read of the settings and nothing else
    assert outcome == "ignored"
    assert counter.names == ["GetItem"]


def automatic(raw: bytes, value: str) -> bytes:
    """`raw` with an `Auto-Submitted: value` header (RFC 3834 section 5)."""
    return raw.replace(b"MIME-Version: 1.0", f"Auto-Submitted: {value}\r\nMIME-Version: 1.0".encode(), 1)


def test_an_out_of_office_answer_does_not_clear_the_nudge(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], seed: Seeder
) -> None:
    # Given the proposal's awaiting_reply nudge
    run_daily(stack, DUE)
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    # When Carol's mail server answers in the thread by itself (Auto-Submitted: auto-replied)
    reply = seed.add(
        automatic(
            rfc(
                msgid="ooo-proposal@customer.test",
                sender="carol@customer.test",
                to=ME,
                subject="Out of office: Proposal",
                date="Fri, 06 Mar 2026 10:00:00 +0000",
                in_reply_to="proposal@acme.test",
                references="<proposal@acme.test>",
            ),
            "auto-replied",
        )
    )
    assert thread_of(stack, reply) == sent["thread_id"]
    announced(stack, "email.received", reply, sent["thread_id"])
    # Then the nudge stays: nobody answered yet
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]


def test_mail_a_process_sent_awaits_no_reply(invoke_api: Invoke, stack: Stack, seed: Seeder) -> None:
    # Given nudges on, and an email this mailbox sent that a process wrote (a digest, a receipt)
    assert settings_put(invoke_api, SETTINGS)["statusCode"] == 200
    email_id = seed.add(
        automatic(
            rfc(msgid="digest@acme.test", sender=ME, to="carol@customer.test", subject="Digest", date=SENT),
            "auto-generated",
        )
    )
    announced(stack, "email.sent", email_id, thread_of(stack, email_id))
    # When the daily run comes after N business days
    run_daily(stack, DUE)
    # Then it is not nudged
    assert nudges(invoke_api) == []


def _consume(consumer: QueueConsumer, count: int) -> list[dict[str, Any]]:
    """Receive `count` records of the queue (moto may hand them out over several calls)."""
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        messages += consumer.receive()
        if len(messages) >= count:
            break
    assert len(messages) == count, messages
    return messages


def test_the_daily_run_scans_each_tenant_in_a_record_of_its_own(
    invoke_api: Invoke,
    stack: Stack,
    sent: dict[str, str],
    seed: Seeder,
    bus_probe: BusReader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given acme's unanswered proposal (the `sent` fixture) and globex's own, both nudges on
    assert settings_put(invoke_api, SETTINGS, tenant=OTHER)["statusCode"] == 200
    theirs = seed.add(
        rfc(msgid="offer@globex.test", sender=ME, to="dan@customer.test", subject="Offer", date=SENT),
        tenant=OTHER,
    )
    announced(stack, "email.sent", theirs, thread_of(stack, theirs, OTHER), tenant=OTHER)
    # And reading acme's waiting threads fails (DynamoDB throttling), acme sorting first
    real_waiting = NudgeStore.waiting

    def throttled(self: NudgeStore, tenant_id: str) -> Iterator[Item]:
        if tenant_id == TENANT:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Query")
        return real_waiting(self, tenant_id)

    monkeypatch.setattr(NudgeStore, "waiting", throttled)
    consumer = QueueConsumer(stack, "reminders", "RemindersQueue")
    # When the schedule's record is processed, then the two per-tenant records it queued
    send_daily(stack, DUE)
    assert consumer.invoke(_consume(consumer, 1))["batchItemFailures"] == []
    records = _consume(consumer, 2)
    result = consumer.invoke(records)
    # Then only acme's record failed, and globex's nudge was created and announced all the same
    [failed] = [
        r for r in records if r["MessageId"] in {f["itemIdentifier"] for f in result["batchItemFailures"]}
    ]
    assert json.loads(failed["Body"])["tenant_id"] == TENANT
    assert [n["id"] for n in nudges(invoke_api, tenant=OTHER)] == [theirs]
    assert nudges(invoke_api) == []
    assert [
        (e["detail"]["tenant_id"], e["detail"]["data"]["email_id"]) for e in created_events(bus_probe)
    ] == [(OTHER, theirs)]
    # When SQS redelivers acme's record once DynamoDB answers again
    monkeypatch.setattr(NudgeStore, "waiting", real_waiting)
    boto3.client("sqs").change_message_visibility(
        QueueUrl=consumer.queue_url, ReceiptHandle=failed["ReceiptHandle"], VisibilityTimeout=0
    )
    consumer.drain(expect_success=True)
    # Then acme's nudge is created and announced, and globex's is not created or announced again
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    assert [
        (e["detail"]["tenant_id"], e["detail"]["data"]["email_id"]) for e in created_events(bus_probe)
    ] == [(TENANT, sent["email_id"])]
    # When the whole run is replayed
    run_daily(stack, DUE)
    # Then nothing is created or announced twice
    assert [n["id"] for n in nudges(invoke_api, tenant=OTHER)] == [theirs]
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    assert created_events(bus_probe) == []


class _RefusingBus(EventPublisher):
    """PutEvents refusing every entry after the retries, as `EventPublisher` reports it."""

    def publish(self, events: Sequence[DomainEvent]) -> None:
        raise EventPublishError("1 event(s) rejected after 4 attempts", details=["InternalFailure"])


def test_a_nudge_written_but_not_announced_is_announced_by_the_retry_once(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], bus_probe: BusReader
) -> None:
    # Given a scan of acme whose PutEvents fails after the nudge was written
    refusing = replace(nudge_deps(), publisher=_RefusingBus("unused"))
    with pytest.raises(EventPublishError):
        scan(TENANT, refusing, DUE)
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    assert created_events(bus_probe) == []
    # When the run is retried (the record comes back), then replayed again
    run_daily(stack, DUE)
    first = created_events(bus_probe)
    run_daily(stack, datetime(2026, 3, 6, 6, tzinfo=UTC))
    # Then the retry announced the nudge it did not write again, once; the next run announced nothing
    assert [e["detail"]["data"] for e in first] == [
        {
            "nudge_id": sent["email_id"],
            "kind": "awaiting_reply",
            "email_id": sent["email_id"],
            "thread_id": sent["thread_id"],
            "since": datetime(2026, 3, 2, 9, tzinfo=UTC).isoformat(),
            "due_at": DUE.isoformat(),
        }
    ]
    assert [e["detail"]["idempotency_key"] for e in first] == [f"nudge.created:{sent['email_id']}"]
    assert [n["id"] for n in nudges(invoke_api)] == [sent["email_id"]]
    assert created_events(bus_probe) == []


def test_a_nudge_dismissed_before_its_announcement_is_not_announced(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], bus_probe: BusReader
) -> None:
    # Given a nudge written by a scan whose PutEvents failed, then dismissed
    with pytest.raises(EventPublishError):
        scan(TENANT, replace(nudge_deps(), publisher=_RefusingBus("unused")), DUE)
    dismissed = invoke_api(api("dismiss-nudge", path={"nudge_id": sent["email_id"]}))
    assert dismissed["statusCode"] == 200, dismissed
    # When the run is retried
    run_daily(stack, DUE)
    # Then nothing is announced for it, and it stays dismissed
    assert created_events(bus_probe) == []
    assert nudges(invoke_api) == []


def test_the_tenants_own_business_days_and_holidays_decide_the_due_time(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str]
) -> None:
    # Given acme's nudges after one business day, with Tuesday 2026-03-03 a holiday
    payload = {**SETTINGS, "business_days": 1, "holidays": ["2026-03-03"]}
    assert settings_put(invoke_api, payload)["statusCode"] == 200
    # When the daily run happens Wednesday 08:59, then Wednesday 09:00
    run_daily(stack, datetime(2026, 3, 4, 8, 59, tzinfo=UTC))
    before = nudges(invoke_api)
    run_daily(stack, datetime(2026, 3, 4, 9, tzinfo=UTC))
    # Then the proposal (sent Monday 09:00) is nudged from Wednesday 09:00, not before
    assert before == []
    [nudge] = nudges(invoke_api)
    assert datetime.fromisoformat(nudge["due_at"]) == datetime(2026, 3, 4, 9, tzinfo=UTC)


def test_a_tenant_scan_queued_before_nudges_were_switched_off_creates_nothing(
    invoke_api: Invoke, stack: Stack, sent: dict[str, str], bus_probe: BusReader
) -> None:
    # Given acme's scan queued by the daily run, then nudges switched off before it ran
    assert settings_put(invoke_api, {**SETTINGS, "enabled": False})["statusCode"] == 200
    # When the scan runs after the proposal was due
    created = scan(TENANT, nudge_deps(), DUE)
    # Then it creates and announces nothing, and reports none created
    assert created == 0
    assert nudges(invoke_api) == []
    assert created_events(bus_probe) == []
