"""CRM sync logs and status: the store API the sync runs call (start_run, record, finish_run) on
moto, and `GET /crm/integrations/{id}/logs` (newest first, paged) and `/status` through the api."""

from __future__ import annotations

from datetime import timedelta

from mailbridge.crm.integrations.models import SyncKind, SyncRecord
from mailbridge.crm.integrations.wiring import integration_deps
from mailbridge.store.crm_sync import SyncLogStore
from tests.integration.crm_integrations_harness import TENANT, CrmStack, crm_stack
from tests.integration.test_crm_integrations import connect_by_device

__all__ = ["crm_stack"]


def logs() -> SyncLogStore:
    return integration_deps().logs


def test_a_run_counts_its_records_and_error_codes_and_keeps_each_record(crm_stack: CrmStack) -> None:
    # Given a contacts pull run
    run = logs().start_run(TENANT, "int_" + "1" * 20, "contacts", "pull", now=crm_stack.clock.now())

    # When two batches are recorded and the run finishes
    logs().record(
        TENANT,
        run,
        [
            SyncRecord(remote_id="003A", local_id="ct_1", direction="pull", state="succeeded"),
            SyncRecord(remote_id="003B", direction="pull", state="failed", error_code="invalid_email"),
        ],
    )
    logs().record(
        TENANT,
        run,
        [
            SyncRecord(remote_id="003C", local_id="ct_3", direction="pull", state="conflict"),
            SyncRecord(remote_id="003D", direction="pull", state="failed", error_code="invalid_email"),
        ],
    )
    finished = logs().finish_run(TENANT, run, watermark="2030-01-01T00:00:00.000Z|003D")

    # Then the run holds the counts and the error codes with how often they happened
    assert (finished.total, finished.succeeded, finished.failed, finished.conflicts) == (4, 1, 2, 1)
    assert [(e.code, e.count) for e in finished.errors] == [("invalid_email", 2)]
    assert (finished.state, finished.ended_at is not None) == ("partial", True)
    # And each record is kept with its ids, direction, state and error code
    records = sorted(logs().records(TENANT, run), key=lambda r: r.remote_id)
    assert [(r.remote_id, r.local_id, r.state, r.error_code) for r in records] == [
        ("003A", "ct_1", "succeeded", None),
        ("003B", None, "failed", "invalid_email"),
        ("003C", "ct_3", "conflict", None),
        ("003D", None, "failed", "invalid_email"),
    ]
    # And the status shows the run, its state, its first error code and the watermark
    status = logs().status(TENANT, run.integration_id)
    assert (status.state, status.last_run_id, status.last_error) == ("partial", run.run_id, "invalid_email")
    assert status.watermarks == {"contacts": "2030-01-01T00:00:00.000Z|003D"}


def test_a_failed_run_records_its_code_and_keeps_the_watermark(crm_stack: CrmStack) -> None:
    # Given a first run that moved the watermark
    integration_id = "int_" + "2" * 20
    first = logs().start_run(TENANT, integration_id, "contacts", "pull", now=crm_stack.clock.now())
    logs().finish_run(TENANT, first, watermark="w1")

    # When a later run fails as a whole
    second = logs().start_run(
        TENANT, integration_id, "contacts", "pull", now=crm_stack.clock.now() + timedelta(seconds=1)
    )
    failed = logs().finish_run(TENANT, second, error_code="reauth_required")

    # Then it is failed with that code, and the watermark is the first run's
    assert failed.state == "failed"
    assert [(e.code, e.count) for e in failed.errors] == [("reauth_required", 1)]
    status = logs().status(TENANT, integration_id)
    assert (status.state, status.last_error, status.watermarks) == (
        "failed",
        "reauth_required",
        {"contacts": "w1"},
    )


def test_an_older_run_finishing_late_does_not_move_the_watermark_back(crm_stack: CrmStack) -> None:
    # Given two overlapping runs of one kind, the newer one finished first
    integration_id = "int_" + "3" * 20
    older = logs().start_run(TENANT, integration_id, "contacts", "pull", now=crm_stack.clock.now())
    newer = logs().start_run(
        TENANT, integration_id, "contacts", "pull", now=crm_stack.clock.now() + timedelta(seconds=1)
    )
    logs().finish_run(TENANT, newer, watermark="newer")

    # When the older one finishes
    logs().finish_run(TENANT, older, watermark="older")

    # Then the watermark and the state are the newer run's
    status = logs().status(TENANT, integration_id)
    assert (status.watermarks, status.last_run_id, status.state) == (
        {"contacts": "newer"},
        newer.run_id,
        "succeeded",
    )


def test_logs_are_listed_newest_first_in_pages_and_status_is_answered(crm_stack: CrmStack) -> None:
    # Given a connected integration with three finished runs
    integration_id = connect_by_device(crm_stack)
    runs = []
    kinds: tuple[SyncKind, ...] = ("contacts", "campaigns", "activity")
    for n, kind in enumerate(kinds):
        run = logs().start_run(
            TENANT, integration_id, kind, "push", now=crm_stack.clock.now() + timedelta(minutes=n)
        )
        logs().record(TENANT, run, [SyncRecord(remote_id=f"r{n}", direction="push", state="succeeded")])
        logs().finish_run(TENANT, run)
        runs.append(run.run_id)

    # When a member reads the logs two at a time
    first = crm_stack.body(
        crm_stack.api("crm-list-sync-logs", integration_id, role="member", query={"limit": "2"})
    )
    second = crm_stack.body(
        crm_stack.api(
            "crm-list-sync-logs",
            integration_id,
            role="member",
            query={"limit": "2", "cursor": first["next_cursor"]},
        )
    )

    # Then the runs come newest first across the pages, with their counts
    assert [r["run_id"] for r in first["items"] + second["items"]] == list(reversed(runs))
    assert second["next_cursor"] is None
    assert (first["items"][0]["kind"], first["items"][0]["total"], first["items"][0]["succeeded"]) == (
        "activity",
        1,
        1,
    )
    # And the status names the newest run
    status = crm_stack.body(crm_stack.api("crm-get-sync-status", integration_id, role="member"))
    assert (status["state"], status["last_run_id"]) == ("succeeded", runs[-1])


def test_a_cursor_of_another_integrations_logs_is_refused(crm_stack: CrmStack) -> None:
    # Given two integrations, the first with three runs
    first_id = connect_by_device(crm_stack)
    for n in range(3):
        run = logs().start_run(
            TENANT, first_id, "contacts", "pull", now=crm_stack.clock.now() + timedelta(minutes=n)
        )
        logs().finish_run(TENANT, run)
    page = crm_stack.body(crm_stack.api("crm-list-sync-logs", first_id, role="member", query={"limit": "1"}))
    second_id = crm_stack.start("hubspot")["integration"]["integration_id"]

    # When the first's cursor is presented for the second
    response = crm_stack.api(
        "crm-list-sync-logs", second_id, role="member", query={"limit": "1", "cursor": page["next_cursor"]}
    )

    # Then it is 400 invalid_cursor
    assert response["statusCode"] == 400
    assert crm_stack.body(response)["error"]["code"] == "invalid_cursor"
