"""Snooze (issue 15 point 1) in-process: sample events -> api handler -> moto, and the reminders
function fed what the one-time schedule would put on its queue at `until`."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from mailbridge.snooze.service import schedule_name
from tests.events import load_event
from tests.fixtures.aws import BusReader, Stack
from tests.integration.queue_harness import QueueConsumer
from tests.integration.test_api_emails import ACC_B, TENANT, Invoke, _drain, api, body, listing, mail, walk

__all__ = ["mail"]  # the seeded mail fixture of test_api_emails

SEEN = "\\Seen"
ROOT = Path(__file__).resolve().parents[2]


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


def snooze(invoke_api: Invoke, target: str, target_id: str, payload: Any, **kwargs: Any) -> dict[str, Any]:
    key = "email_id" if target == "email" else "thread_id"
    return invoke_api(api(f"snooze-{target}", path={key: target_id}, body=payload, **kwargs))


def cancel(invoke_api: Invoke, target: str, target_id: str) -> dict[str, Any]:
    key = "email_id" if target == "email" else "thread_id"
    return invoke_api(api(f"cancel-{target}-snooze", path={key: target_id}))


def threads(invoke_api: Invoke, **query: str) -> list[str]:
    response = invoke_api(api("list-threads", query=query))
    assert response["statusCode"] == 200, response
    return [t["thread_id"] for t in body(response)["items"]]


def email(invoke_api: Invoke, email_id: str) -> dict[str, Any]:
    response = invoke_api(api("get-email", path={"email_id": email_id}))
    assert response["statusCode"] == 200, response
    return dict(body(response))


def schedule_of(target_id: str) -> dict[str, Any]:
    return dict(boto3.client("scheduler").get_schedule(Name=schedule_name(TENANT, target_id)))


def fire(stack: Stack, schedule: dict[str, Any]) -> dict[str, Any]:
    """What EventBridge Scheduler does at the schedule's time: its input on its target queue, and
    the reminders function consuming it."""
    sqs = boto3.client("sqs")
    assert schedule["Target"]["Arn"].endswith(stack.deployed.queue_urls["RemindersQueue"].rsplit("/", 1)[1])
    sqs.send_message(
        QueueUrl=stack.deployed.queue_urls["RemindersQueue"], MessageBody=schedule["Target"]["Input"]
    )
    reminders = QueueConsumer(stack, "reminders", "RemindersQueue")
    [result] = reminders.drain(expect_success=True)
    return result


def unsnoozed(bus: BusReader) -> list[dict[str, Any]]:
    return [e for e in bus() if e["detail-type"] == "email.unsnoozed"]


def test_a_snoozed_email_is_hidden_until_its_wake_up_brings_it_back_unread_and_announced(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], bus_probe: BusReader
) -> None:
    # Given m2 (read, held by accounts A and B), snoozed for two hours
    until = in_hours(2)
    response = snooze(invoke_api, "email", mail["m2"], {"until": until})
    assert response["statusCode"] == 200, response
    assert body(response)["state"] == "snoozed"
    assert body(response)["until"].startswith(until[:19])
    # Then the default listing no longer shows it, ?snoozed=true does, and a schedule waits at `until`
    assert mail["m2"] not in listing(invoke_api)
    assert listing(invoke_api, snoozed="true") == [mail["m2"]]
    schedule = schedule_of(mail["m2"])
    assert schedule["ScheduleExpression"] == f"at({until[:19]})"
    assert _drain(stack.deployed.queue_urls["SyncQueue"]) == []

    # When the schedule fires
    fire(stack, schedule)

    # Then the email is listed again, unread, nothing is snoozed, the mailboxes get \Seen removed
    assert mail["m2"] in listing(invoke_api)
    assert listing(invoke_api, snoozed="true") == []
    view = email(invoke_api, mail["m2"])
    assert (view["read"], view["snoozed_until"]) == (False, None)
    assert mail["m2"] in listing(invoke_api, unread="true")
    pushes = _drain(stack.deployed.queue_urls["SyncQueue"])
    assert sorted((p["account_id"], p["email_id"], p["add"], p["remove"]) for p in pushes) == [
        ("acc_aaaaaaaaaaaaaaaaaaaa", mail["m2"], [], [SEEN]),
        ("acc_bbbbbbbbbbbbbbbbbbbb", mail["m2"], [], [SEEN]),
    ]
    # And email.unsnoozed is announced once
    [event] = unsnoozed(bus_probe)
    assert event["detail"]["data"]["email_ids"] == [mail["m2"]]
    assert event["detail"]["data"]["reason"] == "time"

    # When the same wake-up is delivered again (at-least-once)
    fire(stack, schedule)
    # Then nothing happens twice: no push, no event
    assert _drain(stack.deployed.queue_urls["SyncQueue"]) == []
    assert unsnoozed(bus_probe) == []


def test_a_page_of_the_default_listing_still_fills_when_snoozed_mail_is_skipped(
    invoke_api: Invoke, mail: dict[str, str]
) -> None:
    # Given the three newest of acme's emails snoozed
    everything = listing(invoke_api)
    for email_id in everything[:3]:
        assert snooze(invoke_api, "email", email_id, {"until": in_hours(5)})["statusCode"] == 200
    # When a page of two is asked for
    response = invoke_api(api("list-emails", query={"limit": "2"}))
    # Then it holds two emails, the next ones not snoozed
    assert [e["email_id"] for e in body(response)["items"]] == everything[3:5]


def test_a_snoozed_thread_hides_every_email_and_the_thread_and_an_email_of_it_cancels_it(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], bus_probe: BusReader
) -> None:
    # Given the thread of m1, m2, m3 snoozed until tomorrow morning in Berlin
    thread_id = email(invoke_api, mail["m1"])["thread_id"]
    response = snooze(invoke_api, "thread", thread_id, {"preset": "tomorrow", "time_zone": "Europe/Berlin"})
    assert response["statusCode"] == 200, response
    assert sorted(body(response)["email_ids"]) == sorted([mail["m1"], mail["m2"], mail["m3"]])
    # Then none of its emails is listed, nor the thread, except with ?snoozed=true
    assert not {mail["m1"], mail["m2"], mail["m3"]} & set(listing(invoke_api))
    assert thread_id not in threads(invoke_api)
    assert threads(invoke_api, snoozed="true") == [thread_id]
    schedule = schedule_of(thread_id)

    # When DELETE /emails/{m2}/snooze cancels it (m2 is hidden by the thread's snooze)
    response = cancel(invoke_api, "email", mail["m2"])
    # Then the thread's snooze is cancelled: all listed again, read as before, schedule deleted
    assert response["statusCode"] == 200, response
    assert (body(response)["target"], body(response)["state"]) == ("thread", "cancelled")
    assert thread_id in threads(invoke_api)
    assert {mail["m1"], mail["m2"], mail["m3"]} <= set(listing(invoke_api))
    assert email(invoke_api, mail["m2"])["read"] is True
    with pytest.raises(boto3.client("scheduler").exceptions.ResourceNotFoundException):
        schedule_of(thread_id)
    # And a wake-up delivered late (it was on its way) changes nothing
    fire(stack, schedule)
    assert email(invoke_api, mail["m2"])["read"] is True
    assert unsnoozed(bus_probe) == []
    # And cancelling again: nothing is snoozed
    again = cancel(invoke_api, "thread", thread_id)
    assert (again["statusCode"], body(again)["error"]["code"]) == (404, "not_snoozed")


def _received(stack: Stack, thread_id: str, email_id: str) -> None:
    """An `email.received` for a new email of the thread, as the RemindersRule delivers it."""
    sample = json.loads(load_event("sqs/reminders.json")["Records"][2]["body"])
    sample["detail"] |= {"tenant_id": TENANT}
    sample["detail"]["data"] |= {"thread_id": thread_id, "email_id": email_id}
    boto3.client("sqs").send_message(
        QueueUrl=stack.deployed.queue_urls["RemindersQueue"], MessageBody=json.dumps(sample)
    )
    QueueConsumer(stack, "reminders", "RemindersQueue").drain(expect_success=True)


def test_a_reply_in_the_thread_wakes_a_wake_on_reply_snooze_early_and_only_that_one(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], bus_probe: BusReader
) -> None:
    # Given m3 snoozed with wake_on_reply and m1 (same thread) snoozed without it
    thread_id = email(invoke_api, mail["m3"])["thread_id"]
    assert (
        snooze(invoke_api, "email", mail["m3"], {"until": in_hours(48), "wake_on_reply": True})["statusCode"]
        == 200
    )
    assert snooze(invoke_api, "email", mail["m1"], {"until": in_hours(48)})["statusCode"] == 200
    # When the snoozed email itself is announced again (a resync), nothing wakes
    _received(stack, thread_id, mail["m3"])
    assert listing(invoke_api, snoozed="true") == [mail["m3"], mail["m1"]]  # newest first
    # When a new email arrives in the thread
    _received(stack, thread_id, "em_0123456789abcdef0123456789")
    # Then m3 is back and unread, its schedule is gone, and the event says a reply woke it
    assert listing(invoke_api, snoozed="true") == [mail["m1"]]
    assert email(invoke_api, mail["m3"])["read"] is False
    with pytest.raises(boto3.client("scheduler").exceptions.ResourceNotFoundException):
        schedule_of(mail["m3"])
    [event] = unsnoozed(bus_probe)
    assert (event["detail"]["data"]["id"], event["detail"]["data"]["reason"]) == (mail["m3"], "reply")


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"until": "2020-01-01T00:00:00Z"}, 422, "snooze_in_past"),
        ({"until": "2099-01-01T00:00:00Z"}, 422, "snooze_too_far"),
        ({"preset": "tomorrow", "time_zone": "Mars/Olympus"}, 400, "invalid_time_zone"),
        ({"preset": "tomorrow", "until": "2099-01-01T00:00:00Z"}, 422, "validation_error"),
        ({"until": "2030-01-01T00:00:00"}, 422, "validation_error"),  # no offset
        ({}, 422, "validation_error"),
    ],
)
def test_a_snooze_time_that_cannot_be_kept_is_a_4xx_with_a_code(
    invoke_api: Invoke, mail: dict[str, str], payload: dict[str, Any], status: int, code: str
) -> None:
    # Given an email; When it is snoozed with a time that cannot be kept
    response = snooze(invoke_api, "email", mail["m5"], payload)
    # Then the answer names the reason, and the email stays listed
    assert (response["statusCode"], body(response)["error"]["code"]) == (status, code)
    assert mail["m5"] in listing(invoke_api)


def test_viewers_and_other_tenants_cannot_snooze(invoke_api: Invoke, mail: dict[str, str]) -> None:
    # Given acme's m5 and globex's b1
    # When a viewer snoozes m5, and acme snoozes globex's email
    viewer = snooze(invoke_api, "email", mail["m5"], {"until": in_hours(2)}, role="viewer")
    foreign = snooze(invoke_api, "email", mail["b1"], {"until": in_hours(2)})
    # Then 403 and 404, and nothing is hidden
    assert (viewer["statusCode"], body(viewer)["error"]["code"]) == (403, "role_required")
    assert (foreign["statusCode"], body(foreign)["error"]["code"]) == (404, "not_found")
    assert listing(invoke_api, snoozed="true") == []


def snoozed_index(stack: Stack, tenant: str = TENANT) -> list[str]:
    """The email ids the snoozed index (emails table gsi7) holds for `tenant`, newest first."""
    response = stack.table("EmailsTable").query(
        IndexName="gsi7",
        KeyConditionExpression=Key("gsi7pk").eq(f"TENANT#{tenant}#SNOOZED"),
        ScanIndexForward=False,
    )
    return [str(item["email_id"]) for item in response["Items"]]


def test_the_snoozed_index_holds_exactly_the_emails_a_snooze_hides_now(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str]
) -> None:
    # Given m4 snoozed on its own and the thread of m1, m2, m3 snoozed
    thread_id = email(invoke_api, mail["m1"])["thread_id"]
    assert snooze(invoke_api, "email", mail["m4"], {"until": in_hours(2)})["statusCode"] == 200
    assert snooze(invoke_api, "thread", thread_id, {"until": in_hours(3)})["statusCode"] == 200
    # Then the index holds those four, newest first, and nothing of another tenant
    assert snoozed_index(stack) == [mail["m4"], mail["m3"], mail["m2"], mail["m1"]]
    assert snoozed_index(stack, "globex") == []
    assert listing(invoke_api, tenant="globex", snoozed="true") == []

    # When m4's wake-up fires and the thread's snooze is cancelled
    fire(stack, schedule_of(mail["m4"]))
    assert cancel(invoke_api, "thread", thread_id)["statusCode"] == 200
    # Then the index holds none of them (the same updates that showed them again took them out)
    assert snoozed_index(stack) == []
    assert listing(invoke_api, snoozed="true") == []


def test_snoozed_pages_are_full_newest_first_and_their_cursors_walk_every_email_once(
    invoke_api: Invoke, mail: dict[str, str]
) -> None:
    # Given five emails snoozed, one of them (m2) held by two accounts
    for name in ("m1", "m2", "m4", "m5", "m6"):
        assert snooze(invoke_api, "email", mail[name], {"until": in_hours(4)})["statusCode"] == 200
    # When ?snoozed=true is read two at a time, following next_cursor
    seen, pages = walk(invoke_api, snoozed="true", limit="2")
    # Then every snoozed email comes once, newest first, in full pages
    assert seen == [mail[n] for n in ("m6", "m5", "m4", "m2", "m1")]
    assert pages == 3
    # And the filters of the listing still apply to the snoozed mail (account B holds m6 and m2)
    assert listing(invoke_api, snoozed="true", account_id=ACC_B) == [mail["m6"], mail["m2"]]
    assert listing(invoke_api, snoozed="true", unread="true") == [mail["m5"]]


def _backfill_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "backfill_snoozed", ROOT / "scripts" / "backfill_snoozed.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_before_the_index(stack: Stack) -> None:
    """What earlier versions stored: `snoozed_until` on snoozed emails, no snoozed index key."""
    table = stack.table("EmailsTable")
    for item in table.scan()["Items"]:
        if "gsi7pk" in item:
            table.update_item(Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="REMOVE gsi7pk")


def test_the_backfill_indexes_emails_snoozed_before_the_index_resumes_after_a_crash_and_is_idempotent(
    invoke_api: Invoke,
    stack: Stack,
    mail: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    # Given m1, m4 and m6 snoozed as they were before the snoozed index (hidden, but not listed)
    for name in ("m1", "m4", "m6"):
        assert snooze(invoke_api, "email", mail[name], {"until": in_hours(6)})["statusCode"] == 200
    _as_before_the_index(stack)
    assert listing(invoke_api, snoozed="true") == []
    argv = ["--emails", stack.deployed.tables["EmailsTable"], "--state", str(tmp_path / "position.json")]
    # When the backfill reads one item a page and crashes after five pages
    import mailbridge.store.snooze_backfill as backfill

    monkeypatch.setattr(backfill, "PAGE_SIZE", 1)
    real, calls = backfill.run_page, []

    def crashing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 6:
            raise RuntimeError("the machine went away")
        return real(*args)

    monkeypatch.setattr(backfill, "run_page", crashing)
    with pytest.raises(RuntimeError):
        _backfill_script().main(argv)
    assert (tmp_path / "position.json").exists()
    # And it is run again
    monkeypatch.setattr(backfill, "run_page", real)
    assert _backfill_script().main(argv) == 0
    # Then it carried on from where it stopped and finished: the snoozed listing holds the three
    assert "resuming after a saved position" in capsys.readouterr().out
    assert not (tmp_path / "position.json").exists()
    assert listing(invoke_api, snoozed="true") == [mail["m6"], mail["m4"], mail["m1"]]
    # And a second run changes nothing
    assert _backfill_script().main(argv) == 0
    assert "emails indexed: 0," in capsys.readouterr().out
    assert listing(invoke_api, snoozed="true") == [mail["m6"], mail["m4"], mail["m1"]]


def test_the_backfill_leaves_out_an_email_woken_between_its_read_and_its_write(
    invoke_api: Invoke, stack: Stack, mail: dict[str, str], capsys: Any
) -> None:
    # Given m4 snoozed before the snoozed index
    assert snooze(invoke_api, "email", mail["m4"], {"until": in_hours(6)})["statusCode"] == 200
    _as_before_the_index(stack)
    from mailbridge.store import snooze_backfill
    from mailbridge.store.emails import EmailStore

    store = EmailStore(stack.deployed.tables["EmailsTable"])

    class CancelledAfterTheScan:
        """The emails table, with m4's snooze cancelled right after each Scan page is read."""

        def scan(self, **kwargs: Any) -> Any:
            page = store.table.scan(**kwargs)
            cancel(invoke_api, "email", mail["m4"])
            return page

        def update_item(self, **kwargs: Any) -> Any:
            return store.table.update_item(**kwargs)

    racing = type("Racing", (), {"table": CancelledAfterTheScan()})()
    counts, start = snooze_backfill.Counts(), None
    # When the backfill runs over the table
    while True:
        start = snooze_backfill.run_page(racing, start, counts)
        if start is None:
            break
    # Then m4, woken meanwhile, is neither indexed nor listed as snoozed
    assert (counts.indexed, counts.woken_meanwhile) == (0, 1)
    assert snoozed_index(stack) == []
    assert listing(invoke_api, snoozed="true") == []
