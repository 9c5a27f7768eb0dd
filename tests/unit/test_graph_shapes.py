"""Graph shapes without a network: delta entries as the adapter reads them, the MIME sendMail
gets, and a folder's saved delta link kept out of API answers."""

from __future__ import annotations

from datetime import UTC, datetime

from mailbridge.accounts import folder_status
from mailbridge.compose.models import ComposedMessage
from mailbridge.models.account import Account, AccountStatus, FolderState, SyncStage
from mailbridge.providers.graph.models import DeltaMessage
from mailbridge.providers.graph.wiring import mime_for_send_mail

RAW = (
    b"From: ada@contoso.example\r\nTo: Carol <carol@customer.example>,\r\n bob@customer.example\r\n"
    b"Cc: eve@customer.example\r\nSubject: Hi\r\nMessage-ID: <m1@mb>\r\n\r\nHello\r\n"
)


def composed(recipients: list[str]) -> ComposedMessage:
    return ComposedMessage(
        raw=RAW, message_id="m1@mb", envelope_from="ada@contoso.example", recipients=recipients, subject="Hi"
    )


def test_delta_entries_read_removed_flags_and_a_string_is_read():
    # Given entries shaped as in Graph's delta sample (isRead as the string "true") and @removed
    changed = DeltaMessage.from_graph(
        {"id": "A", "isRead": "true", "flag": {"flagStatus": "flagged"}, "conversationId": "C"}
    )
    removed = DeltaMessage.from_graph({"id": "B", "@removed": {"reason": "deleted"}})

    # Then the flags are the IMAP system flags the ingest stores, and the removal is marked
    assert changed.flags == ("\\Seen", "\\Flagged")
    assert changed.conversation_id == "C"
    assert not changed.removed
    assert removed.removed
    assert removed.flags == ()


def test_send_mail_mime_names_the_blind_copies_in_a_bcc_header_only():
    # Given an envelope with the To/Cc recipients (one header folded) and one blind copy
    visible = ["carol@customer.example", "bob@customer.example", "eve@customer.example"]

    # Then only the blind recipient is added, in a Bcc header; without one the MIME is unchanged
    assert mime_for_send_mail(composed([*visible, "dan@customer.example"])) == (
        b"Bcc: dan@customer.example\r\n" + RAW
    )
    assert mime_for_send_mail(composed(visible)) == RAW


def test_a_folders_delta_link_is_never_in_an_api_answer():
    # Given a folder state holding a Graph delta link
    state = FolderState(name="inbox", delta_link="https://graph.example/delta?$deltatoken=secret")

    # When the account status is serialized for the API (each folder as GET .../status shows it)
    now = datetime.now(UTC)
    account = Account(
        account_id="acc_1",
        tenant_id="t",
        provider="graph",
        address="a@b.example",
        created_at=now,
        created_by="u",
    )
    status = AccountStatus(
        account_id="acc_1",
        stage=SyncStage.IDLE,
        reason=None,
        last_success_at=None,
        last_error=None,
        last_error_at=None,
        queued_at=None,
        folders=[folder_status(account, state, now)],
    )

    # Then the link is not in it
    assert "deltatoken" not in status.model_dump_json()
    assert state.delta_link is not None
