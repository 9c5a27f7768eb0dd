"""/crm/tasks and /crm/activities in-process: sample events -> api handler -> CRM table (moto), and
the tasks function's due-soon scan over the same table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.api import deps
from tests.events import load_event
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack, load_function, reset_caches
from tests.integration.test_api_crm import api, body

Invoke = Callable[[dict[str, Any]], dict[str, Any]]

TENANT, OTHER = "acme", "globex"
MISSING_CONTACT = "ct_018f2a6b3c4d5e6f7a8b9c0d1e"
MISSING_DEAL = "dl_018f2a6b3c4d5e6f7a8b9c0d1e"
MISSING_EMAIL = "em_018f2a6b3c4d5e6f7a8b9c0d1e"


@pytest.fixture(autouse=True)
def _fresh_crm_store() -> Iterator[None]:
    deps.crm_store.cache_clear()
    yield
    deps.crm_store.cache_clear()


class Client:
    """The sample events of /crm with the caller's tenant and role; asserts the expected status."""

    def __init__(self, invoke: Invoke, tenant: str = TENANT, role: str = "member") -> None:
        self.invoke, self.tenant, self.role = invoke, tenant, role

    def raw(self, name: str, headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("tenant", self.tenant)
        kwargs.setdefault("role", self.role)
        event = api(name, **kwargs)
        event["headers"].pop("idempotency-key", None)
        event["headers"].update(headers or {})
        return self.invoke(event)

    def call(self, name: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.raw(name, **kwargs)
        assert response["statusCode"] == status, response
        return body(response)

    def contact(self, name: str, address: str) -> str:
        created = self.call("create-contact", 201, body={"name": name, "emails": [{"address": address}]})
        return str(created["contact_id"])

    def task(self, **fields: Any) -> dict[str, Any]:
        return self.call("create-task", 201, body={"title": "Follow up", **fields})  # type: ignore[no-any-return]

    def as_(self, tenant: str = TENANT, role: str = "member") -> Client:
        return Client(self.invoke, tenant, role)


@pytest.fixture
def crm(invoke_api: Invoke) -> Client:
    return Client(invoke_api)


def of_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["detail-type"] == detail_type]


def assert_sample_shape(event: dict[str, Any], sample: str) -> None:
    """The published event carries the fields of its sample in events/eventbridge/ (what consumers
    such as automations are written against)."""
    expected = load_event(f"eventbridge/{sample}")
    assert event["detail-type"] == expected["detail-type"]
    data, want = event["detail"]["data"], expected["detail"]["data"]
    assert set(data) == set(want)
    for name, value in want.items():
        if isinstance(value, dict):
            assert set(data[name]) == set(value), name


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------ tasks


def test_task_crud(crm: Client, bus_probe: BusReader) -> None:
    # Given a contact, and a task about it due at a time given with an offset
    cid = crm.contact("Ada Lovelace", "ada@example.com")
    created = crm.task(title="Call Ada", due="2026-12-01T10:00:00+01:00", priority="high", contact_id=cid)
    tid = created["task_id"]
    # Then it is open, assigned to its creator, due in UTC, at version 1, and announced
    assert created["status"] == "open"
    assert created["assignee"] == created["created_by"]
    assert created["due"] == "2026-12-01T09:00:00Z"
    assert created["version"] == 1
    (announced,) = of_type(bus_probe(), "task.created")
    assert announced["detail"]["data"]["task"]["task_id"] == tid
    assert_sample_shape(announced, "task-created.json")
    assert crm.call("get-task", path={"task_id": tid}) == created
    # When it is changed
    changed = crm.call("patch-task", path={"task_id": tid}, body={"title": "Call Ada back", "version": 1})
    # Then the change is stored at the next version, and listed
    assert (changed["title"], changed["version"]) == ("Call Ada back", 2)
    assert [t["task_id"] for t in crm.call("list-tasks", query={"contact_id": cid})["items"]] == [tid]
    # When it is deleted, it is gone
    assert crm.call("delete-task", path={"task_id": tid}) == {"id": tid, "deleted": True}
    assert crm.call("get-task", 404, path={"task_id": tid})["error"]["code"] == "task_not_found"


def test_list_tasks_by_due_date_with_filters(crm: Client) -> None:
    # Given tasks due at different times (one without a due date), one of them done
    late = crm.task(title="late", due="2026-12-20T09:00:00Z")["task_id"]
    undated = crm.task(title="undated")["task_id"]
    soon = crm.task(title="soon", due="2026-12-02T09:00:00Z")["task_id"]
    done = crm.task(title="done", due="2026-12-01T09:00:00Z")["task_id"]
    crm.call("patch-task", path={"task_id": done}, body={"status": "done"})
    # Then the listing is soonest first, undated last; filters narrow it
    assert [t["task_id"] for t in crm.call("list-tasks")["items"]] == [done, soon, late, undated]
    open_before = crm.call("list-tasks", query={"status": "open", "due_before": "2026-12-10T00:00:00Z"})
    assert [t["task_id"] for t in open_before["items"]] == [soon]
    assert crm.call("list-tasks", query={"assignee": "someone-else"})["items"] == []
    # And bounds at the ends of the calendar are answered, not failed on
    for bound, expected in (("9999-12-31T23:59:59-01:00", 3), ("0001-01-01T00:00:00+01:00", 0)):
        assert len(crm.call("list-tasks", query={"due_before": bound})["items"]) == expected


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"title": "Call\u202eAda"}, 422, "validation_error"),
        ({"description": "line\x00"}, 422, "validation_error"),
        ({"due": "2026-12-01T09:00:00"}, 422, "validation_error"),  # no offset
        ({"due": "not a date"}, 422, "validation_error"),
        ({"due": "0001-01-01T00:00:00+01:00"}, 422, "validation_error"),  # before year 1 in UTC
        ({"priority": "urgent"}, 422, "validation_error"),
        ({"contact_id": "ct_nothex"}, 422, "validation_error"),
        ({"contact_id": MISSING_CONTACT}, 400, "unknown_contact"),
        ({"deal_id": MISSING_DEAL}, 400, "unknown_deal"),
        ({"email_id": MISSING_EMAIL}, 400, "unknown_email"),
        ({"company_id": "co_018f2a6b3c4d5e6f7a8b9c0d1e"}, 400, "unknown_company"),
    ],
)
def test_bad_task_input_is_a_4xx_with_a_code(
    crm: Client, bus_probe: BusReader, fields: dict[str, Any], status: int, code: str
) -> None:
    # When a task is created with a refused value
    answer = crm.call("create-task", status, body={"title": "Follow up", **fields})
    # Then it is refused with its code, nothing is stored and nothing announced
    assert answer["error"]["code"] == code
    assert crm.call("list-tasks")["items"] == []
    assert bus_probe() == []


def test_patch_refuses_bad_values_and_unknown_records(crm: Client) -> None:
    tid = crm.task()["task_id"]
    assert (
        crm.call("patch-task", 400, path={"task_id": tid}, body={"title": None})["error"]["code"]
        == "invalid_record"
    )
    assert (
        crm.call("patch-task", 400, path={"task_id": tid}, body={"status": None})["error"]["code"]
        == "invalid_record"
    )
    assert crm.call("patch-task", 400, path={"task_id": tid}, body={})["error"]["code"] == "empty_patch"
    patch = {"deal_id": MISSING_DEAL}
    assert crm.call("patch-task", 400, path={"task_id": tid}, body=patch)["error"]["code"] == "unknown_deal"
    assert (
        crm.call("patch-task", 422, path={"task_id": tid}, body={"status": "closed"})["error"]["code"]
        == "validation_error"
    )
    assert (
        crm.call("patch-task", 404, path={"task_id": "tk_x"}, body={"title": "x"})["error"]["code"]
        == "task_not_found"
    )


def test_viewer_reads_but_cannot_write(crm: Client) -> None:
    # Given a task
    tid = crm.task()["task_id"]
    viewer = crm.as_(role="viewer")
    # Then a viewer reads it but cannot create, change or delete (role checked before the body)
    assert viewer.call("get-task", path={"task_id": tid})["task_id"] == tid
    assert viewer.call("create-task", 403, body={"title": "x"})["error"]["code"] == "role_required"
    assert viewer.call("create-task", 403, body={"bogus": 1})["error"]["code"] == "role_required"
    assert (
        viewer.call("patch-task", 403, path={"task_id": tid}, body={"status": "done"})["error"]["code"]
        == "role_required"
    )
    assert viewer.call("delete-task", 403, path={"task_id": tid})["error"]["code"] == "role_required"
    assert viewer.call("create-activity", 403)["error"]["code"] == "role_required"
    assert crm.call("get-task", path={"task_id": tid})["status"] == "open"


def test_other_tenant_cannot_see_or_touch(crm: Client) -> None:
    # Given a task and a contact of one tenant
    cid = crm.contact("Ada", "ada@example.com")
    tid = crm.task(contact_id=cid)["task_id"]
    other = crm.as_(tenant=OTHER)
    # Then another tenant gets 404s, an empty listing, and cannot relate its records to them
    assert other.call("get-task", 404, path={"task_id": tid})["error"]["code"] == "task_not_found"
    assert (
        other.call("patch-task", 404, path={"task_id": tid}, body={"status": "done"})["error"]["code"]
        == "task_not_found"
    )
    assert other.call("delete-task", 404, path={"task_id": tid})["error"]["code"] == "task_not_found"
    assert other.call("list-tasks")["items"] == []
    assert (
        other.call("create-task", 400, body={"title": "x", "contact_id": cid})["error"]["code"]
        == "unknown_contact"
    )
    assert (
        other.call("list-contact-activities", 404, path={"contact_id": cid})["error"]["code"]
        == "contact_not_found"
    )
    assert crm.call("get-task", path={"task_id": tid})["status"] == "open"


def test_idempotency_key_creates_one_task(crm: Client, bus_probe: BusReader) -> None:
    # Given a create with an Idempotency-Key header
    key = {"idempotency-key": "rule-7:v3:event-42:action-1"}
    first = crm.call("create-task", 201, headers=key, body={"title": "Welcome call"})
    # When the same request comes again (an automation retrying)
    again = crm.call("create-task", 201, headers=key, body={"title": "Welcome call"})
    # Then it is the same task, stored once and announced once
    assert again == first
    assert len(crm.call("list-tasks")["items"]) == 1
    assert len(of_type(bus_probe(), "task.created")) == 1
    # And a retry still answers with it after its contact is gone (no 400 unknown_contact)
    cid = crm.contact("Ada", "ada@example.com")
    keyed = {"idempotency-key": "rule-7:v3:event-43:action-1"}
    with_contact = crm.call("create-task", 201, headers=keyed, body={"title": "Call", "contact_id": cid})
    crm.call("delete-contact", path={"contact_id": cid})
    retried = crm.call("create-task", 201, headers=keyed, body={"title": "Call", "contact_id": cid})
    assert retried == with_contact
    assert len(of_type(bus_probe(), "task.created")) == 1
    # And the same key in another tenant is another task
    theirs = crm.as_(tenant=OTHER).call("create-task", 201, headers=key, body={"title": "Welcome call"})
    assert theirs["task_id"] != first["task_id"]
    # And a key out of bounds is refused
    long_key = {"idempotency-key": "k" * 513}
    assert (
        crm.call("create-task", 400, headers=long_key, body={"title": "x"})["error"]["code"]
        == "invalid_idempotency_key"
    )


def test_completing_publishes_task_completed_once_and_logs_task_done(
    crm: Client, bus_probe: BusReader
) -> None:
    # Given an open task about a contact
    cid = crm.contact("Ada", "ada@example.com")
    tid = crm.task(title="Send the quote", contact_id=cid)["task_id"]
    bus_probe()
    # When it is set done twice
    done = crm.call("patch-task", path={"task_id": tid}, body={"status": "done"})
    again = crm.call("patch-task", path={"task_id": tid}, body={"status": "done"})
    # Then it is done with a completion time, unchanged by the repeat, and announced once
    assert done["status"] == "done"
    assert done["completed_at"] is not None
    assert again == done
    completed = of_type(bus_probe(), "task.completed")
    assert len(completed) == 1
    assert completed[0]["detail"]["data"]["completed_at"] == done["completed_at"]
    assert_sample_shape(completed[0], "task-completed.json")
    # And the contact's activity log shows it
    log = crm.call("list-contact-activities", path={"contact_id": cid})["items"]
    assert [(a["kind"], a["task_id"], a["body"]) for a in log] == [("task_done", tid, "Send the quote")]
    # When it is reopened, the completion time is cleared
    reopened = crm.call("patch-task", path={"task_id": tid}, body={"status": "open"})
    assert (reopened["status"], reopened["completed_at"]) == ("open", None)


# ------------------------------------------------------------------------------------ activities


def test_activities_are_listed_newest_first_in_pages(crm: Client, bus_probe: BusReader) -> None:
    # Given a contact with five activities at different times (written out of order)
    cid = crm.contact("Ada", "ada@example.com")
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    hours = [3, 0, 4, 1, 2]
    kinds = ["note", "call", "meeting", "note", "call"]
    ids = {}
    for hour, kind in zip(hours, kinds, strict=True):
        when = iso(start + timedelta(hours=hour))
        created = crm.call(
            "create-activity",
            201,
            body={"kind": kind, "body": f"at {hour}", "occurred_at": when, "contact_id": cid},
        )
        ids[hour] = created["activity_id"]
    # When the log is read two at a time
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = crm.call("list-contact-activities", path={"contact_id": cid}, query=query)
        seen += [a["activity_id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then every activity comes once, newest first; only notes announce note.created
    assert seen == [ids[h] for h in (4, 3, 2, 1, 0)]
    assert pages == 3
    notes = of_type(bus_probe(), "note.created")
    assert sorted(e["detail"]["data"]["activity"]["activity_id"] for e in notes) == sorted([ids[3], ids[1]])
    assert_sample_shape(notes[0], "note-created.json")


def test_activity_on_a_deal_and_a_contact_is_on_both_logs(crm: Client) -> None:
    cid = crm.contact("Ada", "ada@example.com")
    did = crm.call("create-deal", 201, body={"name": "50 seats", "contact_ids": [cid]})["deal_id"]
    # When one note names both
    note = crm.call(
        "create-activity", 201, body={"kind": "note", "body": "Quote sent", "contact_id": cid, "deal_id": did}
    )
    # Then both logs list it
    assert [
        a["activity_id"] for a in crm.call("list-contact-activities", path={"contact_id": cid})["items"]
    ] == [note["activity_id"]]
    assert [a["activity_id"] for a in crm.call("list-deal-activities", path={"deal_id": did})["items"]] == [
        note["activity_id"]
    ]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"kind": "note", "body": "x"}, 422, "validation_error"),  # about no record
        ({"kind": "task_done", "body": "x", "contact_id": MISSING_CONTACT}, 422, "validation_error"),
        ({"kind": "email_sent", "body": "x", "contact_id": MISSING_CONTACT}, 422, "validation_error"),
        ({"kind": "note", "body": "a\x1bb", "contact_id": MISSING_CONTACT}, 422, "validation_error"),
        ({"kind": "note", "body": "", "contact_id": MISSING_CONTACT}, 422, "validation_error"),
        (
            {"kind": "note", "body": "x", "occurred_at": "yesterday", "contact_id": MISSING_CONTACT},
            422,
            "validation_error",
        ),
        ({"kind": "note", "body": "x", "contact_id": MISSING_CONTACT}, 400, "unknown_contact"),
        ({"kind": "note", "body": "x", "deal_id": MISSING_DEAL}, 400, "unknown_deal"),
    ],
)
def test_bad_activity_input_is_a_4xx_with_a_code(
    crm: Client, fields: dict[str, Any], status: int, code: str
) -> None:
    assert crm.call("create-activity", status, body=fields)["error"]["code"] == code


def test_activity_log_of_an_unknown_record_is_404(crm: Client) -> None:
    assert (
        crm.call("list-contact-activities", 404, path={"contact_id": MISSING_CONTACT})["error"]["code"]
        == "contact_not_found"
    )
    assert (
        crm.call("list-deal-activities", 404, path={"deal_id": "nope"})["error"]["code"] == "deal_not_found"
    )


# ------------------------------------------------------------------------------------ due soon


@pytest.fixture
def run_due_soon(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Callable[[], dict[str, Any]]:
    """The tasks function as its schedule invokes it (its own environment, the sample input)."""
    for name, value in stack.env("TasksFunction").items():
        monkeypatch.setenv(name, value)
    reset_caches()
    module = load_function("tasks")
    event = load_event("scheduler/tasks-due-soon.json")

    def run() -> dict[str, Any]:
        return module.lambda_handler(event, FakeLambdaContext())  # type: ignore[no-any-return]

    return run


def test_due_soon_announces_once_per_task_and_due_time(
    crm: Client, bus_probe: BusReader, run_due_soon: Callable[[], dict[str, Any]]
) -> None:
    # Given tasks due in 2 hours (two tenants), in 2 days, one done, and one without a due date
    now = datetime.now(UTC)
    soon = crm.task(title="soon", due=iso(now + timedelta(hours=2)))["task_id"]
    theirs = crm.as_(tenant=OTHER).task(title="theirs", due=iso(now + timedelta(hours=23)))["task_id"]
    later = crm.task(title="later", due=iso(now + timedelta(days=2)))["task_id"]
    done = crm.task(title="done", due=iso(now + timedelta(hours=1)))["task_id"]
    crm.call("patch-task", path={"task_id": done}, body={"status": "done"})
    crm.task(title="undated")
    bus_probe()
    # When the hourly scan runs twice
    assert run_due_soon() == {"announced": 2}
    assert run_due_soon() == {"announced": 0}
    # Then each open task due within 24 hours was announced once, to its own tenant
    announced = of_type(bus_probe(), "activity.due_soon")
    assert sorted(
        (e["detail"]["tenant_id"], e["detail"]["data"]["task"]["task_id"]) for e in announced
    ) == sorted([(TENANT, soon), (OTHER, theirs)])
    # When one is moved to another time within the window, and the later one into it
    crm.call("patch-task", path={"task_id": soon}, body={"due": iso(now + timedelta(hours=5))})
    crm.call("patch-task", path={"task_id": later}, body={"due": iso(now + timedelta(hours=6))})
    crm.call("patch-task", path={"task_id": theirs}, body={"title": "renamed"}, tenant=OTHER)
    # Then the next run announces those two again (a title change does not), and only once
    assert run_due_soon() == {"announced": 2}
    assert run_due_soon() == {"announced": 0}
    again = of_type(bus_probe(), "activity.due_soon")
    assert sorted(e["detail"]["data"]["task"]["task_id"] for e in again) == sorted([soon, later])
    assert_sample_shape(announced[0], "activity-due-soon.json")
    assert announced[0]["detail"]["data"]["due"] == announced[0]["detail"]["data"]["task"]["due"]
    keys = {e["detail"]["idempotency_key"] for e in announced + again}
    assert len(keys) == 4
    stored = crm.call("get-task", path={"task_id": soon})
    assert stored["due_soon_for"] == stored["due"]


def test_activities_are_on_the_contact_and_deal_timelines_in_time_order(crm: Client) -> None:
    # Given a contact and a deal with three activities, one of them a completed task's task_done
    cid = crm.contact("Ada", "ada@example.com")
    did = crm.call("create-deal", 201, body={"name": "50 seats", "contact_ids": [cid]})["deal_id"]
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    call = crm.call(
        "create-activity",
        201,
        body={"kind": "call", "body": "Intro", "occurred_at": iso(start), "contact_id": cid},
    )
    note = crm.call(
        "create-activity",
        201,
        body={
            "kind": "note",
            "body": "Quote",
            "occurred_at": iso(start + timedelta(hours=2)),
            "contact_id": cid,
            "deal_id": did,
        },
    )
    task = crm.task(contact_id=cid, deal_id=did)
    crm.call("patch-task", path={"task_id": task["task_id"]}, body={"status": "done"})
    # When the contact's timeline is read one item a page, and the deal's in one page
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = crm.call("get-contact-timeline", path={"contact_id": cid}, query=query)
        seen += [(i["type"], i["kind"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    deal_items = crm.call("get-deal-timeline", path={"deal_id": did})["items"]
    # Then both show their activities beside the mail, newest first, each once
    assert seen == [("activity", "task_done"), ("activity", "note"), ("activity", "call")]
    assert [(i["type"], i["kind"]) for i in deal_items] == [("activity", "task_done"), ("activity", "note")]
    assert [i["activity_id"] for i in deal_items][1] == note["activity_id"]
    assert call["activity_id"] not in [i["activity_id"] for i in deal_items]
