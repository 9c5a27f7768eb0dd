"""ImapConnection over a scripted stand-in for IMAPClient (no network)."""

from __future__ import annotations

import datetime as dt
import imaplib
from typing import Any

import pytest
from imapclient import exceptions as imap_exc  # type: ignore[import-untyped]

from mailbridge.errors import Invalid, ProviderError, ProviderUnreachable
from mailbridge.providers.imap import Flag, ImapConnection

UIDVALIDITY = 42


class ScriptedClient:
    """Answers like IMAPClient would; `fail_next` makes the next command raise."""

    def __init__(self) -> None:
        self.fail_next: BaseException | None = None
        self.folders = {"INBOX"}
        self.shut_down = False
        self.calls: list[str] = []

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def capabilities(self) -> tuple[bytes, ...]:
        return (b"IMAP4REV1", b"UIDPLUS", b"CONDSTORE")

    def enable(self, *caps: str) -> list[bytes]:
        return [c.encode() for c in caps]

    def select_folder(self, name: str, readonly: bool = False) -> dict[bytes, Any]:
        self._maybe_fail("select")
        if name not in self.folders:
            raise imap_exc.IMAPClientError("select failed: Mailbox doesn't exist")
        return {b"UIDVALIDITY": UIDVALIDITY, b"UIDNEXT": 3, b"EXISTS": 2, b"HIGHESTMODSEQ": 9}

    def folder_exists(self, name: str) -> bool:
        return name in self.folders

    def search(self, criteria: Any) -> list[int]:
        self._maybe_fail("search")
        return [2, 1]

    def fetch(self, uids: list[int], items: list[str], modifiers: Any = None) -> dict[int, dict[bytes, Any]]:
        self._maybe_fail("fetch")
        date = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        return {
            uid: {
                b"FLAGS": (b"\\Seen", b"\\Recent"),
                b"INTERNALDATE": date,
                b"RFC822.SIZE": 5,
                b"BODY[]": b"hello",
                b"MODSEQ": (7,),
            }
            for uid in uids
        }

    def append(self, folder: str, msg: bytes, flags: Any, msg_time: Any) -> bytes:
        self._maybe_fail("append")
        return b"[APPENDUID 42 17] Append completed."

    def logout(self) -> None:
        self._maybe_fail("logout")

    def shutdown(self) -> None:
        self.shut_down = True


@pytest.fixture
def client() -> ScriptedClient:
    return ScriptedClient()


@pytest.fixture
def connection(client: ScriptedClient) -> ImapConnection:
    return ImapConnection(client, host="imap.example.test", port=993)


def test_fetch_new_returns_uid_order_and_drops_recent(connection: ImapConnection) -> None:
    # Given / When
    batch = connection.fetch_new("INBOX", after_uid=0, limit=10)

    # Then
    assert [m.uid for m in batch.messages] == [1, 2]
    assert batch.uidvalidity == UIDVALIDITY
    assert batch.messages[0].flags == ("\\Seen",)
    assert batch.messages[0].modseq == 7
    assert "hello" not in repr(batch.messages[0])


def test_abort_mid_fetch_is_connection_lost_and_closes(
    connection: ImapConnection, client: ScriptedClient
) -> None:
    # Given the socket dies during FETCH
    client.fail_next = imaplib.IMAP4.abort("socket error: EOF")

    # When / Then
    with pytest.raises(ProviderUnreachable) as caught:
        connection.list_uids("INBOX")
    assert caught.value.code == "connection_lost"
    assert client.shut_down

    # And the session refuses further commands without touching the client
    calls = len(client.calls)
    with pytest.raises(ProviderUnreachable):
        connection.fetch_new("INBOX", after_uid=0, limit=1)
    assert len(client.calls) == calls


def test_refused_select_on_a_missing_folder_is_folder_not_found(connection: ImapConnection) -> None:
    with pytest.raises(ProviderError) as caught:
        connection.select("Nope")
    assert caught.value.code == "folder_not_found"


def test_append_returns_appenduid(connection: ImapConnection) -> None:
    assert connection.append("INBOX", b"raw", flags=[Flag.SEEN]) == 17


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.fetch_new("INBOX", after_uid=-1, limit=1), "invalid_cursor"),
        (lambda c: c.fetch_new("INBOX", after_uid=0, limit=0), "invalid_limit"),
        (lambda c: c.set_flags("INBOX", 1, add=[Flag.SEEN], remove=[Flag.SEEN]), "invalid_flags"),
        (lambda c: c.append("INBOX", b""), "invalid_message"),
        (lambda c: c.append("INBOX", b"x", internal_date=dt.datetime(2024, 1, 1)), "invalid_date"),
    ],
)
def test_bad_arguments_are_invalid(connection: ImapConnection, call: Any, code: str) -> None:
    with pytest.raises(Invalid) as caught:
        call(connection)
    assert caught.value.code == code


def test_logout_is_idempotent_and_survives_a_dead_socket(
    connection: ImapConnection, client: ScriptedClient
) -> None:
    client.fail_next = OSError("gone")
    connection.logout()
    connection.logout()
    assert client.shut_down
