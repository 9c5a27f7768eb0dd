"""The IMAP adapter against a real Dovecot (tests/integration/dovecot.py)."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderUnreachable
from mailbridge.providers.imap import (
    Flag,
    ImapConnection,
    MailFolderSource,
    Security,
    SpecialUse,
    connect,
)
from tests.fixtures.dovecot import ImapSettingsFactory
from tests.integration.dovecot import CuttableProxy, DovecotServer, DovecotUser

pytestmark = pytest.mark.dovecot


def message(n: int, body_size: int = 0) -> bytes:
    body = b"x" * body_size if body_size else f"Body of message {n}.".encode()
    return (
        (
            f"From: Sender <sender{n}@example.test>\r\n"
            f"To: someone@example.test\r\n"
            f"Subject: message {n}\r\n"
            f"Message-ID: <m{n}@example.test>\r\n"
            "\r\n"
        ).encode()
        + body
        + b"\r\n"
    )


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("security", list(Security))
def test_connects_and_logs_in_with_each_security_mode(
    imap_settings: ImapSettingsFactory, security: Security
) -> None:
    # Given settings for a fresh user in this security mode
    settings = imap_settings(security)

    # When connecting
    with connect(settings) as mailbox:
        # Then the session works and advertises CONDSTORE/QRESYNC/UIDPLUS
        caps = mailbox.capabilities()
        assert {"IMAP4REV1", "CONDSTORE", "QRESYNC", "UIDPLUS"} <= caps
        assert mailbox.folder_status("INBOX").messages == 0


def test_adapter_satisfies_the_protocol(imap_settings: ImapSettingsFactory) -> None:
    # Given / When a real connection
    with connect(imap_settings()) as mailbox:
        # Then it is usable wherever a MailFolderSource is expected
        source: MailFolderSource = mailbox
        assert isinstance(source, ImapConnection)


def test_wrong_password_is_auth_failed(imap_settings: ImapSettingsFactory, dovecot_user: DovecotUser) -> None:
    # Given the right user with a wrong password
    settings = imap_settings(password="not-the-password")

    # When connecting
    with pytest.raises(ProviderAuthError) as caught:
        connect(settings)

    # Then it is a non-retryable auth error that reveals neither password nor user name
    assert caught.value.code == "auth_failed"
    assert not caught.value.retryable
    assert "not-the-password" not in str(caught.value)
    assert dovecot_user.name not in str(caught.value)


def test_a_password_beyond_ascii_logs_in(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    # Given a user whose password is not ASCII (LOGIN's quoted strings are 7-bit, RFC 3501 section 9)
    dovecot_server.set_password(dovecot_user, "pässwörd-€")

    # When connecting with it, then the session works (AUTHENTICATE PLAIN carries UTF-8, RFC 4616)
    with connect(imap_settings(Security.NONE, password="pässwörd-€")) as mailbox:
        assert mailbox.folder_status("INBOX").messages == 0

    # And a wrong one is auth_failed, like any wrong password, not an encoding crash
    with pytest.raises(ProviderAuthError) as caught:
        connect(imap_settings(Security.NONE, password="fälsch"))
    assert caught.value.code == "auth_failed"


def test_closed_port_is_unreachable(imap_settings: ImapSettingsFactory) -> None:
    # Given a loopback port nobody listens on
    settings = imap_settings(Security.STARTTLS, port=free_closed_port())

    # When connecting
    with pytest.raises(ProviderUnreachable) as caught:
        connect(settings)

    # Then it is retryable "unreachable"
    assert caught.value.code == "unreachable"
    assert caught.value.retryable


def test_unknown_host_is_unreachable(imap_settings: ImapSettingsFactory) -> None:
    # Given a host name that cannot resolve (.invalid is reserved, RFC 2606)
    settings = imap_settings(host="imap.mailbridge.invalid")

    # When connecting
    with pytest.raises(ProviderUnreachable) as caught:
        connect(settings)

    # Then
    assert caught.value.code == "unreachable"


def test_imaps_to_the_plain_port_is_tls_failed(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer
) -> None:
    # Given implicit TLS aimed at the plain-text IMAP port
    settings = imap_settings(Security.SSL, port=dovecot_server.imap_port)

    # When connecting
    with pytest.raises(ProviderUnreachable) as caught:
        connect(settings)

    # Then the handshake failure is tls_failed
    assert caught.value.code == "tls_failed"


@pytest.mark.parametrize("security", [Security.SSL, Security.STARTTLS])
def test_untrusted_certificate_is_tls_failed(imap_settings: ImapSettingsFactory, security: Security) -> None:
    # Given verification on and no CA bundle: the self-signed certificate is not trusted
    settings = imap_settings(security, ca_bundle=None)

    # When connecting
    with pytest.raises(ProviderUnreachable) as caught:
        connect(settings)

    # Then
    assert caught.value.code == "tls_failed"


def test_allow_insecure_accepts_an_untrusted_certificate(imap_settings: ImapSettingsFactory) -> None:
    # Given verification explicitly switched off
    settings = imap_settings(Security.SSL, ca_bundle=None, allow_insecure=True)

    # When / Then connecting works
    with connect(settings) as mailbox:
        assert "IMAP4REV1" in mailbox.capabilities()


def test_plain_client_on_the_imaps_port_times_out(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer
) -> None:
    # Given a plain-text client on the IMAPS port: each side waits for the other to speak
    settings = imap_settings(Security.NONE, port=dovecot_server.imaps_port, timeout_seconds=0.5)

    # When connecting
    with pytest.raises(ProviderUnreachable) as caught:
        connect(settings)

    # Then the bounded wait ends in "timeout"
    assert caught.value.code == "timeout"


def test_lists_folders_and_finds_sent_by_special_use(imap_settings: ImapSettingsFactory) -> None:
    # Given a fresh mailbox (the server auto-creates the SPECIAL-USE folders)
    with connect(imap_settings()) as mailbox:
        # When listing
        folders = {f.name: f for f in mailbox.list_folders()}

        # Then INBOX and the special folders are there with their attributes
        assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"} <= set(folders)
        assert folders["Junk"].special_use is SpecialUse.JUNK
        sent = mailbox.sent_folder()
        assert sent is not None
        assert sent.name == "Sent"
        assert sent.special_use is SpecialUse.SENT


def test_fetches_new_messages_in_batches(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    # Given 7 messages with distinct flags and internal dates
    base = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    expected: dict[int, tuple[set[str], dt.datetime, bytes]] = {}
    for n in range(7):
        flags: tuple[str, ...] = ("\\Seen",) if n % 2 else ("\\Flagged", "\\Answered")
        date = base + dt.timedelta(hours=n)
        uid = dovecot_server.append(dovecot_user, "INBOX", message(n), flags=flags, internal_date=date)
        expected[uid] = (set(flags), date, message(n))

    with connect(imap_settings()) as mailbox:
        # When fetching in batches of 3 from the start
        batches = []
        cursor = 0
        while True:
            batch = mailbox.fetch_new("INBOX", after_uid=cursor, limit=3)
            batches.append(batch)
            if batch.last_uid is None:
                break
            cursor = batch.last_uid
            if not batch.has_more:
                break

        # Then every message comes exactly once, in UID order, with its flags, date and bytes
        assert [len(b.messages) for b in batches] == [3, 3, 1]
        assert [b.has_more for b in batches] == [True, True, False]
        fetched = [m for b in batches for m in b.messages]
        assert [m.uid for m in fetched] == sorted(expected)
        status = mailbox.folder_status("INBOX")
        for m in fetched:
            want_flags, date, raw = expected[m.uid]
            assert set(m.flags) == want_flags
            assert m.internal_date == date
            assert m.raw == raw
            assert m.size == len(raw)
            assert m.modseq is not None
            assert batches[0].uidvalidity == status.uidvalidity

        # And fetching past the end is empty, and did not mark anything \Seen
        assert mailbox.fetch_new("INBOX", after_uid=cursor, limit=3).messages == ()
        assert "\\Seen" not in mailbox.fetch_new("INBOX", after_uid=0, limit=1).messages[0].flags


def test_batches_are_bounded_by_bytes_and_a_huge_message_comes_alone(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    # Given messages of about 30 KB, 30 KB, 30 KB, 200 KB and 1 KB
    sizes = [30_000, 30_000, 30_000, 200_000, 1_000]
    uids = [dovecot_server.append(dovecot_user, "INBOX", message(n, size)) for n, size in enumerate(sizes)]

    with connect(imap_settings()) as mailbox:
        # When fetching up to 10 messages but at most 70 KB at a time
        batches = []
        cursor = 0
        while True:
            batch = mailbox.fetch_new("INBOX", after_uid=cursor, limit=10, max_bytes=70_000)
            batches.append(batch)
            assert batch.last_uid is not None
            cursor = batch.last_uid
            if not batch.has_more:
                break

    # Then a batch holds what fits in 70 KB, the 200 KB message comes alone, and nothing is lost
    assert [[m.uid for m in b.messages] for b in batches] == [uids[:2], uids[2:3], uids[3:4], uids[4:]]
    assert [b.has_more for b in batches] == [True, True, True, False]
    assert [len(m.raw) for b in batches for m in b.messages] == [
        len(message(n, s)) for n, s in enumerate(sizes)
    ]


def test_append_returns_the_uid_and_keeps_flags_and_date(imap_settings: ImapSettingsFactory) -> None:
    # Given a connected mailbox
    date = dt.datetime(2023, 12, 24, 18, 0, tzinfo=dt.UTC)
    with connect(imap_settings()) as mailbox:
        # When appending to Sent
        uid = mailbox.append("Sent", message(1), flags=[Flag.SEEN], internal_date=date)

        # Then APPENDUID gives the UID the message is found under
        assert uid is not None
        [fetched] = mailbox.fetch_new("Sent", after_uid=uid - 1, limit=10).messages
        assert fetched.uid == uid
        assert fetched.flags == ("\\Seen",)
        assert fetched.internal_date == date
        assert fetched.raw == message(1)


def test_flag_change_is_visible_through_changedsince(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    # Given three messages and the folder's HIGHESTMODSEQ as a cursor
    uids = [dovecot_server.append(dovecot_user, "INBOX", message(n)) for n in range(3)]
    with connect(imap_settings()) as mailbox:
        cursor = mailbox.folder_status("INBOX").highestmodseq
        assert cursor is not None

        # When another client flags the second message
        dovecot_server.set_flags(dovecot_user, "INBOX", uids[1], add=["\\Flagged", "\\Seen"])
        changes = mailbox.fetch_flag_changes("INBOX", cursor)

        # Then only that message is reported, with its new flags and a higher modseq
        assert changes is not None
        assert [c.uid for c in changes.changed] == [uids[1]]
        assert set(changes.changed[0].flags) == {"\\Flagged", "\\Seen"}
        assert changes.highestmodseq > cursor
        assert changes.vanished == ()

        # And nothing is reported since the new cursor
        again = mailbox.fetch_flag_changes("INBOX", changes.highestmodseq)
        assert again is not None
        assert again.changed == ()


def test_own_flag_changes_round_trip(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    # Given a message flagged \Flagged
    uid = dovecot_server.append(dovecot_user, "INBOX", message(1), flags=["\\Flagged"])
    with connect(imap_settings()) as mailbox:
        # When the adapter adds \Seen \Answered and removes \Flagged
        mailbox.set_flags("INBOX", uid, add=[Flag.SEEN, Flag.ANSWERED], remove=[Flag.FLAGGED])

    # Then the server has exactly those flags
    with dovecot_server.session(dovecot_user, "INBOX") as conn:
        typ, data = conn.uid("FETCH", str(uid), "(FLAGS)")
    assert typ == "OK"
    flags = bytes(data[0]) if isinstance(data[0], bytes) else b""
    assert b"\\Seen" in flags
    assert b"\\Answered" in flags
    assert b"\\Flagged" not in flags


def test_expunge_is_visible_as_vanished_and_in_the_uid_list(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    # Given three messages and a modseq cursor
    uids = [dovecot_server.append(dovecot_user, "INBOX", message(n)) for n in range(3)]
    with connect(imap_settings()) as mailbox:
        cursor = mailbox.folder_status("INBOX").highestmodseq
        assert cursor is not None

        # When another client expunges the first one
        dovecot_server.expunge(dovecot_user, "INBOX", uids[0])

        # Then QRESYNC reports it as vanished, and the UID list no longer has it
        changes = mailbox.fetch_flag_changes("INBOX", cursor)
        assert changes is not None
        assert changes.vanished == (uids[0],)
        assert mailbox.list_uids("INBOX") == uids[1:]


def test_uidvalidity_change_is_detected(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer, dovecot_user: DovecotUser
) -> None:
    # Given a synced folder's UIDVALIDITY
    dovecot_server.append(dovecot_user, "Archive", message(1))
    with connect(imap_settings()) as mailbox:
        before = mailbox.fetch_new("Archive", after_uid=0, limit=10)

    # When the folder is deleted and created again
    dovecot_server.recreate_folder(dovecot_user, "Archive")
    dovecot_server.append(dovecot_user, "Archive", message(2))

    # Then a new session sees another UIDVALIDITY and UIDs starting over
    with connect(imap_settings()) as mailbox:
        after = mailbox.fetch_new("Archive", after_uid=0, limit=10)
        assert after.uidvalidity != before.uidvalidity
        assert mailbox.select("Archive").uidvalidity == after.uidvalidity
        assert [m.uid for m in after.messages] == [1]


def test_missing_folder_is_folder_not_found(imap_settings: ImapSettingsFactory) -> None:
    # Given / When selecting a folder that does not exist
    with connect(imap_settings()) as mailbox:
        with pytest.raises(ProviderError) as caught:
            mailbox.select("No Such Folder")

        # Then it is a typed, non-retryable error, and the session still works
        assert caught.value.code == "folder_not_found"
        assert not caught.value.retryable
        assert mailbox.folder_status("INBOX").messages == 0


def test_connection_dropped_mid_fetch_is_connection_lost(
    imap_settings: ImapSettingsFactory,
    dovecot_server: DovecotServer,
    dovecot_user: DovecotUser,
    cuttable_proxy: CuttableProxy,
) -> None:
    # Given large messages, and a session going through a relay we can cut
    for n in range(4):
        dovecot_server.append(dovecot_user, "INBOX", message(n, body_size=200_000))
    settings = imap_settings(Security.NONE, port=cuttable_proxy.port)
    with connect(settings) as mailbox:
        mailbox.select("INBOX")

        # When the connection drops after ~300 kB of the FETCH response
        cuttable_proxy.cut_after(300_000)
        with pytest.raises(ProviderUnreachable) as caught:
            mailbox.fetch_new("INBOX", after_uid=0, limit=10)

        # Then it is the retryable connection_lost, and the session refuses further use
        assert caught.value.code == "connection_lost"
        assert caught.value.retryable
        with pytest.raises(ProviderUnreachable) as again:
            mailbox.list_uids("INBOX")
        assert again.value.code == "connection_lost"

    # And a new connection works
    with connect(settings) as mailbox:
        assert len(mailbox.fetch_new("INBOX", after_uid=0, limit=10).messages) == 4


def test_server_restart_is_connection_lost(
    imap_settings: ImapSettingsFactory, dovecot_server: DovecotServer
) -> None:
    # Given an open session
    with connect(imap_settings(Security.STARTTLS)) as mailbox:
        mailbox.select("INBOX")

        # When the server restarts under it
        dovecot_server.restart()

        # Then the next command reports connection_lost
        with pytest.raises(ProviderUnreachable) as caught:
            mailbox.list_uids("INBOX")
        assert caught.value.code == "connection_lost"


@pytest.mark.parametrize("with_move", [True, False], ids=["MOVE", "COPY+EXPUNGE"])
def test_move_puts_one_message_in_the_target_and_names_its_new_uid(
    imap_settings: ImapSettingsFactory,
    dovecot_server: DovecotServer,
    dovecot_user: DovecotUser,
    with_move: bool,
) -> None:
    # Given two INBOX messages, the other one already marked \Deleted by another client
    uid = dovecot_server.append(dovecot_user, "INBOX", message(1))
    other = dovecot_server.append(dovecot_user, "INBOX", message(2), flags=["\\Deleted"])
    with connect(imap_settings()) as mailbox:
        if not with_move:
            # a server without RFC 6851 MOVE (Dovecot always has it: hide it from the adapter)
            mailbox._caps = mailbox._caps - {"MOVE"}

        # When the first is moved to Archive
        placed = mailbox.move("INBOX", uid, "Archive")

        # Then COPYUID names where it is now, and only it left INBOX
        archive = mailbox.folder_status("Archive")
        assert placed == (archive.uidvalidity, archive.uidnext - 1)
        [moved] = mailbox.fetch_new("Archive", after_uid=0, limit=10).messages
        assert moved.raw == message(1)
        assert "\\Deleted" not in moved.flags
        assert mailbox.list_uids("INBOX") == [other]
