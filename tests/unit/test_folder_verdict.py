"""The per-folder verdict of `GET /accounts/{id}/status` (`accounts.folder_verdict`), rule by
rule in its order of precedence, and the figures `folder_status` derives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.accounts import folder_status, folder_verdict
from mailbridge.models.account import (
    Account,
    FolderPresence,
    FolderState,
    ReconcileFindings,
    SyncStage,
    SyncState,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def account(**sync: object) -> Account:
    return Account(
        account_id="acc_" + "a" * 20,
        tenant_id="acme",
        provider="gmail",
        address="ada@example.com",
        created_at=NOW - timedelta(days=3),
        created_by="user-1",
        sync=SyncState(**sync),  # type: ignore[arg-type]
    )


def findings(missing: int = 0, extra: int = 0, error: str | None = None) -> ReconcileFindings:
    return ReconcileFindings(
        at=NOW - timedelta(hours=2),
        server_count=10,
        stored_count=10 - missing + extra,
        missing=missing,
        extra=extra,
        repaired=missing + extra,
        error=error,
    )


def folder(
    synced_ago: timedelta | None = timedelta(minutes=5),
    reconcile: ReconcileFindings | None = None,
    state: FolderPresence = FolderPresence.ACTIVE,
) -> FolderState:
    return FolderState(
        name="INBOX",
        state=state,
        last_synced_at=None if synced_ago is None else NOW - synced_ago,
        messages_on_server=10,
        messages_stored=10,
        reconcile=reconcile,
    )


@pytest.mark.parametrize(
    ("the_account", "the_folder", "verdict"),
    [
        # a folder synced five minutes ago whose last reconcile found nothing
        (account(stage=SyncStage.IDLE), folder(reconcile=findings()), "healthy"),
        # its cursor has not moved for more than an hour, or it was never synced
        (account(stage=SyncStage.IDLE), folder(synced_ago=timedelta(minutes=61)), "lagging"),
        (account(stage=SyncStage.PENDING), folder(synced_ago=None), "lagging"),
        # the last reconcile found (and repaired) missing or extra mail: shown, lagging or not
        (account(stage=SyncStage.IDLE), folder(reconcile=findings(missing=1)), "gap_found"),
        (account(stage=SyncStage.IDLE), folder(timedelta(hours=3), findings(extra=2)), "gap_found"),
        # the last reconcile stopped with an error, the folder is gone, or the sync failed
        (account(stage=SyncStage.IDLE), folder(reconcile=findings(missing=1, error="unavailable")), "failed"),
        (account(stage=SyncStage.IDLE), folder(state=FolderPresence.MISSING), "failed"),
        (account(stage=SyncStage.FAILED, reason="unavailable"), folder(reconcile=findings(1)), "failed"),
        # the grant is revoked or the password refused: whatever else holds
        (
            account(stage=SyncStage.FAILED, reason="reauth_required"),
            folder(reconcile=findings(1)),
            "reauth_required",
        ),
        (account(stage=SyncStage.FAILED, reason="auth_failed"), folder(), "reauth_required"),
    ],
)
def test_each_rule_gives_its_verdict_in_order(
    the_account: Account, the_folder: FolderState, verdict: str
) -> None:
    # Given an account and one of its folders / When its verdict is asked for / Then it is the rule's
    assert folder_verdict(the_account, the_folder, NOW) == verdict


def test_the_status_figures_come_from_the_state_and_the_last_push() -> None:
    # Given a folder synced 90 s ago, reconciled, and a push 30 s ago
    state = folder(synced_ago=timedelta(seconds=90), reconcile=findings(missing=2))
    the_account = account(stage=SyncStage.IDLE, last_push_at=NOW - timedelta(seconds=30))

    # When its status is made
    status = folder_status(the_account, state, NOW)

    # Then the figures are the state's, in seconds
    assert (status.server_count, status.stored_count) == (10, 10)
    assert status.last_reconcile_at == NOW - timedelta(hours=2)
    assert status.cursor_age_seconds == 90.0
    assert status.since_last_push_seconds == 30.0
    assert status.verdict == "gap_found"
    assert status.reconcile is not None
    assert status.reconcile.missing == 2
