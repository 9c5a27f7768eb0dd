"""The folder cursor the sync really moves (`AccountStore.save_folder_state`) against the template's
accounts table on moto: within one UIDVALIDITY it only moves forward; a new UIDVALIDITY (the
server renumbered the folder, RFC 3501 section 2.3.1.1) is the one legitimate reset."""

from __future__ import annotations

import pytest

from mailbridge.errors import Conflict
from mailbridge.models.account import FolderState
from mailbridge.store.accounts import AccountStore
from tests.fixtures.aws import Stack

TENANT, ACCOUNT = "acme", "acc_0123456789abcdef0123"


@pytest.fixture
def store(stack: Stack) -> AccountStore:
    return AccountStore(stack.deployed.tables["AccountsTable"])


def saved(store: AccountStore) -> FolderState:
    return store.folder_state(TENANT, ACCOUNT, "INBOX")


def test_the_cursor_moves_forward_and_may_be_saved_again_unchanged(store: AccountStore) -> None:
    # Given a folder first seen at UIDVALIDITY 7
    store.save_folder_state(TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=7))
    # When the sync stores batches up to UID 10, saves the same cursor again (counts only), then 25
    store.save_folder_state(TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=7, last_uid=10))
    store.save_folder_state(
        TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=7, last_uid=10, messages_stored=10)
    )
    store.save_folder_state(TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=7, last_uid=25))
    # Then the stored cursor is the last one
    assert (saved(store).uidvalidity, saved(store).last_uid) == (7, 25)


def test_the_cursor_never_moves_backwards_within_one_uidvalidity(store: AccountStore) -> None:
    # Given a cursor at UID 25
    store.save_folder_state(
        TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=7, last_uid=25, messages_stored=25)
    )
    # When a late or replayed run tries to save UID 24 under the same UIDVALIDITY
    with pytest.raises(Conflict) as raised:
        store.save_folder_state(
            TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=7, last_uid=24, messages_stored=3)
        )
    # Then it is refused and nothing of it is stored
    assert (raised.value.code, raised.value.message) == (
        "cursor_backwards",
        "the folder cursor cannot move backwards",
    )
    assert (saved(store).last_uid, saved(store).messages_stored) == (25, 25)


def test_a_new_uidvalidity_resets_the_cursor(store: AccountStore) -> None:
    # Given a cursor at UID 25 of UIDVALIDITY 7
    store.save_folder_state(TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=7, last_uid=25))
    # When the server renumbered the folder (UIDVALIDITY 8) and the sync starts it over
    store.save_folder_state(TENANT, ACCOUNT, FolderState(name="INBOX", uidvalidity=8, last_uid=0))
    # Then the cursor starts again from 0 under the new UIDVALIDITY
    assert (saved(store).uidvalidity, saved(store).last_uid) == (8, 0)
