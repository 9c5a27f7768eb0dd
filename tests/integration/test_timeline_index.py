"""The timeline index (links table gsi2, issue 10 point 3): every writer keeps it (email links,
calendar events, CRM activities), a page is filled past emails that are gone with a cursor that
moves forward, and data written before the index is backfilled (scripts/backfill_timeline.py),
idempotently and resumably. Through the api handler on moto."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailbridge.api import deps
from mailbridge.store.links import LinkRecord, LinkStore
from tests.fixtures.aws import Stack
from tests.integration.calendar_client import Calendar, Invoke
from tests.integration.test_api_crm_tasks import Client
from tests.integration.test_api_emails import TENANT, Seeder, api, body, rfc

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2020, 3, 1, 9, tzinfo=UTC)  # a completed task's task_done is dated now: later


@pytest.fixture(autouse=True)
def _fresh_stores() -> Iterator[None]:
    deps.crm_store.cache_clear()
    yield
    deps.crm_store.cache_clear()


def _at(day: int) -> datetime:
    return DAY + timedelta(days=day)


def _mail(seed: Seeder, day: int) -> str:
    return seed.add(
        rfc(
            msgid=f"tl{day}@example.com",
            sender="ada@example.com",
            to="me@acme.test",
            subject=f"Mail {day}",
            date=_at(day).strftime("%a, %d %b %Y %H:%M:%S +0000"),
        )
    )


def _link_by_hand(invoke: Invoke, email_id: str, kind: str, record_id: str) -> None:
    event = api("links-create", path={"email_id": email_id}, body={"kind": kind, "record_id": record_id})
    assert invoke(event)["statusCode"] == 201


def _auto_links(stack: Stack, links: list[tuple[str, int, str, str]]) -> None:
    """Links as email matching writes them: (email_id, day, kind, record_id)."""
    LinkStore(stack.deployed.tables["LinksTable"]).put_auto_links(
        TENANT,
        [
            LinkRecord(
                email_id=email_id,
                kind=kind,
                record_id=record_id,
                reason="participant",
                via="ada@example.com",
                date=_at(day).isoformat(),
                direction="inbound",
                created_at=DAY.isoformat(),
                created_by="matching",
            )
            for email_id, day, kind, record_id in links
        ],
    )


def _label(item: dict[str, Any]) -> str:
    """An email's subject, an event's title, an activity's kind."""
    return str({"email": item.get("subject"), "event": item.get("title")}.get(item["type"]) or item["kind"])


def _walk(invoke: Invoke, kind: str, record_id: str, size: int) -> tuple[list[str], int]:
    """Every item of the record's timeline over all pages of `size`, and the number of pages."""
    name, key = (
        ("crm-get-contact-timeline", "contact_id") if kind == "contact" else ("deal-timeline", "deal_id")
    )
    seen: list[str] = []
    cursor: str | None = None
    for pages in range(1, 50):
        query = {"limit": str(size), **({"cursor": cursor} if cursor else {})}
        response = invoke(api(name, path={key: record_id}, query=query))
        assert response["statusCode"] == 200, response
        page = body(response)
        assert len(page["items"]) <= size
        seen += [_label(i) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, pages
    raise AssertionError("the cursor never ended")


def test_every_writer_keeps_the_timeline_index(invoke_api: Invoke, stack: Stack) -> None:
    # Given a contact and a deal of theirs
    crm, cal, seed = Client(invoke_api), Calendar(invoke_api), Seeder(stack)
    cid = crm.contact("Ada", "ada@example.com")
    did = crm.call("create-deal", 201, body={"name": "50 seats", "contact_ids": [cid]})["deal_id"]
    # And mail: day 1 linked by hand to the contact, day 3 by matching to both, day 9 linked by
    # hand and unlinked again
    _link_by_hand(invoke_api, _mail(seed, 1), "contact", cid)
    third = _mail(seed, 3)
    _auto_links(stack, [(third, 3, "contact", cid), (third, 3, "deal", did)])
    unlinked = _mail(seed, 9)
    _link_by_hand(invoke_api, unlinked, "contact", cid)
    delete = api("links-delete", path={"email_id": unlinked, "link_id": cid})
    assert invoke_api(delete)["statusCode"] == 200
    # And events: day 2 on both; one made on day 8 and moved to day 5 with a new title; day 7 deleted
    cal.create(title="Kick-off", start={"date_time": _at(2).isoformat()}, contact_ids=[cid], deal_id=did)
    moved = cal.create(title="Draft", start={"date_time": _at(8).isoformat()}, contact_ids=[cid])
    cal.put(moved["event_id"], title="Review", start={"date_time": _at(5).isoformat()}, contact_ids=[cid])
    cal.delete(
        cal.create(title="Cancelled", start={"date_time": _at(7).isoformat()}, contact_ids=[cid])["event_id"]
    )
    # And activities: a note on day 4 on both, a task completed (task_done, now: the newest)
    crm.call(
        "create-activity",
        201,
        body={
            "kind": "note",
            "body": "Quote",
            "occurred_at": _at(4).isoformat(),
            "contact_id": cid,
            "deal_id": did,
        },
    )
    task = crm.task(contact_id=cid)
    crm.call("patch-task", path={"task_id": task["task_id"]}, body={"status": "done"})
    # When both timelines are read whole, and in pages of 2 and of 1
    contact, _ = _walk(invoke_api, "contact", cid, 100)
    deal, _ = _walk(invoke_api, "deal", did, 100)
    # Then each holds what every writer put there, newest first, each once
    assert contact == ["task_done", "Review", "note", "Mail 3", "Kick-off", "Mail 1"]
    assert deal == ["note", "Mail 3", "Kick-off"]
    # And every page size walks the same items in the same order, with a cursor that moves forward
    for size in (1, 2, 4):
        walked, pages = _walk(invoke_api, "contact", cid, size)
        assert walked == contact, size
        assert pages <= len(contact) // size + 1, size


def test_a_page_passes_over_emails_that_are_gone_and_still_fills(invoke_api: Invoke, stack: Stack) -> None:
    # Given a contact with six linked emails (days 1 to 6), of which days 5 and 4 are gone from
    # the emails table (their links stay)
    crm, seed = Client(invoke_api), Seeder(stack)
    cid = crm.contact("Ada", "ada@example.com")
    ids = {day: _mail(seed, day) for day in range(1, 7)}
    _auto_links(stack, [(ids[day], day, "contact", cid) for day in ids])
    emails = stack.table("EmailsTable")
    for day in (5, 4):
        emails.delete_item(Key={"pk": f"TENANT#{TENANT}", "sk": f"EMAIL#{ids[day]}"})
    # When the timeline is read three at a time
    first = body(invoke_api(api("crm-get-contact-timeline", path={"contact_id": cid}, query={"limit": "3"})))
    query = {"limit": "3", "cursor": first["next_cursor"]}
    second = body(invoke_api(api("crm-get-contact-timeline", path={"contact_id": cid}, query=query)))
    # Then the first page is full, past the gone emails, and the next one starts right after it
    assert [_label(i) for i in first["items"]] == ["Mail 6", "Mail 3", "Mail 2"]
    assert [_label(i) for i in second["items"]] == ["Mail 1"]
    assert second["next_cursor"] is None


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "backfill_timeline", ROOT / "scripts" / "backfill_timeline.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_before_the_index(stack: Stack) -> None:
    """Turn the stored data into what earlier versions wrote: links without gsi2, no entries for
    events and activities, the calendar's REL items under each record."""
    links, calendar = stack.table("LinksTable"), stack.table("CalendarTable")
    for item in links.scan()["Items"]:
        if "source" in item:
            links.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
            if item["source"] == "EVENT":
                record = str(item["sk"]).split("#")[-1]
                calendar.put_item(
                    Item={
                        "pk": f"TENANT#{TENANT}#REL#{record}",
                        "sk": item["gsi2sk"],
                        "event_id": item["source_id"],
                        "summary": {"title": "legacy"},
                    }
                )
        elif "gsi2pk" in item:
            links.update_item(
                Key={"pk": item["pk"], "sk": item["sk"]}, UpdateExpression="REMOVE gsi2pk, gsi2sk"
            )


def test_backfill_indexes_older_data_resumes_after_a_crash_and_is_idempotent(
    invoke_api: Invoke, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # Given a contact and deal with mail, an event and a note, as written before the index
    crm, cal, seed = Client(invoke_api), Calendar(invoke_api), Seeder(stack)
    cid = crm.contact("Ada", "ada@example.com")
    did = crm.call("create-deal", 201, body={"name": "50 seats", "contact_ids": [cid]})["deal_id"]
    first, third = _mail(seed, 1), _mail(seed, 3)
    _auto_links(stack, [(first, 1, "contact", cid), (third, 3, "contact", cid), (third, 3, "deal", did)])
    cal.create(title="Kick-off", start={"date_time": _at(2).isoformat()}, contact_ids=[cid], deal_id=did)
    crm.call(
        "create-activity",
        201,
        body={
            "kind": "note",
            "body": "Quote",
            "occurred_at": _at(4).isoformat(),
            "contact_id": cid,
            "deal_id": did,
        },
    )
    _as_before_the_index(stack)
    assert _walk(invoke_api, "contact", cid, 50)[0] == []
    tables = stack.deployed.tables
    argv = [
        "--links",
        tables["LinksTable"],
        "--calendar",
        tables["CalendarTable"],
        "--crm",
        tables["CrmTable"],
    ]
    state = tmp_path / "position.json"
    argv += ["--state", str(state)]
    # When the backfill runs a page of one item at a time and crashes after four pages
    import mailbridge.store.timeline_backfill as backfill

    monkeypatch.setattr(backfill, "PAGE_SIZE", 1)
    real, calls = backfill.run_page, []

    def crashing(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("the machine went away")
        return real(*args)

    monkeypatch.setattr(backfill, "run_page", crashing)
    with pytest.raises(RuntimeError):
        _script().main(argv)
    saved = state.read_text()
    # And it is run again
    monkeypatch.setattr(backfill, "run_page", real)
    assert _script().main(argv) == 0
    # Then it carried on from where it stopped, and finished
    assert "resuming at" in capsys.readouterr().out
    assert '"step"' in saved
    assert not state.exists()
    # And the timelines hold the older data, newest first
    assert _walk(invoke_api, "contact", cid, 2)[0] == ["note", "Mail 3", "Kick-off", "Mail 1"]
    assert _walk(invoke_api, "deal", did, 50)[0] == ["note", "Mail 3", "Kick-off"]
    # And the calendar's legacy REL items are gone
    assert [i for i in stack.table("CalendarTable").scan()["Items"] if "#REL#" in str(i["pk"])] == []
    # And a second run changes nothing
    assert _script().main(argv) == 0
    assert "links indexed: 0," in capsys.readouterr().out
    assert _walk(invoke_api, "contact", cid, 50)[0] == ["note", "Mail 3", "Kick-off", "Mail 1"]
