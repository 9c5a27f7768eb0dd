"""The IMAP adapter: one logged-in session over IMAPClient, with typed results and errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Self

import imapclient  # type: ignore[import-untyped]
from imapclient.response_parser import parse_fetch_response  # type: ignore[import-untyped]

from mailbridge.errors import Invalid, ProviderError, ProviderUnreachable
from mailbridge.providers.imap.errors import Code, Stage, map_exception
from mailbridge.providers.imap.folders import find_sent_folder, find_special_folder
from mailbridge.providers.imap.models import (
    FetchBatch,
    FetchedMessage,
    Flag,
    FlagChange,
    FlagChanges,
    Folder,
    FolderStatus,
    SpecialUse,
)
from mailbridge.providers.imap.protocol import MailFolderSource
from mailbridge.providers.imap.settings import ImapSettings, Security
from mailbridge.providers.netguard import Deadline, open_connection

logger = logging.getLogger(__name__)
# IMAPClient logs every protocol line (message bodies included) and the user name at DEBUG.
logging.getLogger("imapclient").setLevel(logging.INFO)

_MAX_BATCH = 1000
_FETCH_ITEMS = ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "BODY.PEEK[]")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_COPYUID = re.compile(rb"\[?COPYUID (\d+) (\d+) (\d+)\]?")
_UID_SET = re.compile(rb"(\d+)(?::(\d+))?")
# One LIST/SELECT never returns more UIDs than this in a VANISHED range we expand.
_MAX_VANISHED_RANGE = 1_000_000


def build_ssl_context(settings: ImapSettings) -> ssl.SSLContext:
    """Verifying by default (system store or `ca_bundle`); `allow_insecure` turns checks off."""
    context = ssl.create_default_context(
        cafile=str(settings.ca_bundle) if settings.ca_bundle is not None else None
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.allow_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _CheckedIMAP4(imaplib.IMAP4):
    """imaplib over the socket `open_socket` returns (TLS-wrapped when `tls` is given).

    imaplib would resolve the host name again in `_create_socket`; this connects to an address
    `netguard` checked instead, and TLS still verifies the certificate against the host name.
    """

    def __init__(
        self, host: str, port: int, open_socket: Callable[[], socket.socket], tls: ssl.SSLContext | None
    ) -> None:
        self._open_socket = open_socket
        self._tls = tls
        super().__init__(host, port)

    def _create_socket(self, timeout: float | None) -> socket.socket:  # noqa: ARG002 - in the settings
        sock = self._open_socket()
        if self._tls is None:
            return sock
        try:
            return self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _CheckedIMAPClient(imapclient.IMAPClient):  # type: ignore[misc]  # IMAPClient is untyped
    """IMAPClient whose imaplib connection is a `_CheckedIMAP4`."""

    def __init__(self, settings: ImapSettings, context: ssl.SSLContext, deadline: Deadline) -> None:
        self._settings = settings
        self._deadline = deadline
        super().__init__(
            settings.host,
            port=settings.effective_port,
            ssl=settings.security is Security.SSL,
            ssl_context=context,
            timeout=settings.timeout_seconds,
        )

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - IMAPClient's hook name
        settings = self._settings

        def open_socket() -> socket.socket:
            return open_connection(
                settings.host,
                settings.effective_port,
                allow_private=settings.allow_private,
                timeout=settings.timeout_seconds,
                deadline=self._deadline,
            )

        return _CheckedIMAP4(self.host, self.port, open_socket, self.ssl_context if self.ssl else None)


def _deadline_error(host: str, port: int, stage: Stage) -> ProviderUnreachable:
    return ProviderUnreachable(
        f"IMAP server {host}:{port}: no complete answer within the time allowed",
        code=Code.TIMEOUT,
        details={"host": host, "port": port, "stage": stage.value, "cause": "deadline"},
    )


def connect(settings: ImapSettings) -> ImapConnection:
    """Connect, secure the channel as configured, LOGIN, and return the session.

    The host is resolved once and every address checked (`netguard`); the connection goes to a
    checked address. With `settings.deadline`, the session is cut off when it passes.

    Raises ProviderAuthError(auth_failed), ProviderUnreachable(unreachable | tls_failed |
    timeout | connection_lost), HostNotAllowed (host_not_allowed) or ProviderError.
    """
    host, port = settings.host, settings.effective_port
    stage = Stage.CONNECT
    client: Any = None
    deadline = Deadline(settings.deadline)
    try:
        context = build_ssl_context(settings)
        client = _CheckedIMAPClient(settings, context, deadline)
        client.normalise_times = False  # keep INTERNALDATE timezone-aware
        if settings.security is Security.STARTTLS:
            client.starttls(context)
        stage = Stage.LOGIN
        _login(client, settings.username, settings.password.get_secret_value())
    except (OSError, imapclient.exceptions.IMAPClientError) as exc:
        if client is not None:
            _shutdown_quietly(client)
        deadline.close()
        error = (
            _deadline_error(host, port, stage)
            if deadline.fired
            else map_exception(exc, stage=stage, host=host, port=port)
        )
        logger.warning(
            "imap connect failed",
            extra={"host": host, "port": port, "stage": stage.value, "code": error.code},
        )
        raise error from None
    except BaseException:
        deadline.close()
        raise
    logger.debug("imap connected", extra={"host": host, "port": port, "security": settings.security.value})
    try:
        return ImapConnection(client, host=host, port=port, deadline=deadline)
    except BaseException:
        deadline.close()
        raise


def _login(client: Any, username: str, password: str) -> None:
    """LOGIN, or AUTHENTICATE PLAIN when the user name or password is not ASCII.

    LOGIN sends them as quoted strings of 7-bit characters (RFC 3501 section 9, QUOTED-CHAR), and
    imaplib encodes its commands as ASCII; SASL PLAIN carries UTF-8 (RFC 4616 section 2), base64
    encoded in AUTHENTICATE (RFC 3501 section 6.2.2). A server without PLAIN refuses it: auth_failed.
    """
    if username.isascii() and password.isascii():
        client.login(username, password)
    else:
        client.plain_login(username, password)


def _shutdown_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _flags(values: Iterable[Any]) -> tuple[str, ...]:
    # \Recent is per-session state (gone in IMAP4rev2), not a property of the message.
    return tuple(flag for flag in (_text(v) for v in values) if flag.lower() != "\\recent")


def _parse_uid_set(data: bytes) -> list[int]:
    """Expand an IMAP UID set such as `41,43:45` (bounded, for VANISHED responses)."""
    uids: list[int] = []
    for match in _UID_SET.finditer(data):
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        low, high = min(first, last), max(first, last)
        if high - low > _MAX_VANISHED_RANGE:
            raise ProviderError("VANISHED range too large", code=Code.PROTOCOL_ERROR)
        uids.extend(range(low, high + 1))
    return uids


class ImapConnection:
    """A logged-in IMAP session; implements `MailFolderSource`. Use as a context manager.

    Not thread-safe. After a `ProviderUnreachable` the session is closed: connect again.
    """

    def __init__(self, client: Any, *, host: str, port: int, deadline: Deadline | None = None) -> None:
        self._client = client
        self._host = host
        self._port = port
        self._deadline = deadline or Deadline(None)
        self._closed = False
        self._selected: str | None = None
        self._qresync = False
        self._caps = self._guarded_capabilities()
        if "QRESYNC" in self._caps:
            with self._guard():
                enabled = self._client.enable("QRESYNC")
            self._qresync = any(_text(c).upper() == "QRESYNC" for c in enabled)
        elif "CONDSTORE" in self._caps:
            with self._guard():
                self._client.enable("CONDSTORE")

    # -- plumbing ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        if self._closed:
            raise ProviderUnreachable("IMAP session is closed", code=Code.CONNECTION_LOST)
        try:
            yield
        except (OSError, imapclient.exceptions.IMAPClientError) as exc:
            error = (
                _deadline_error(self._host, self._port, Stage.SESSION)
                if self._deadline.fired
                else map_exception(exc, stage=Stage.SESSION, host=self._host, port=self._port)
            )
            if isinstance(error, ProviderUnreachable):
                self._closed = True
                _shutdown_quietly(self._client)
            logger.warning("imap command failed", extra={"host": self._host, "code": error.code})
            raise error from None

    def _guarded_capabilities(self) -> frozenset[str]:
        with self._guard():
            raw = self._client.capabilities()
        return frozenset(_text(c).upper() for c in raw)

    @contextlib.contextmanager
    def _folder_guard(self, name: str) -> Iterator[None]:
        """`_guard` for commands on one folder: a refusal on a missing folder is folder_not_found.

        Servers do not all send [NONEXISTENT] (Dovecot 2.3 does not on SELECT/STATUS), so a
        refused command is followed by a LIST for the folder instead of reading the reply text.
        """
        try:
            with self._guard():
                yield
        except ProviderError as error:
            if error.code != Code.PROTOCOL_ERROR or self._closed:
                raise
            with self._guard():
                exists = bool(self._client.folder_exists(name))
            if exists:
                raise
            missing = ProviderError("IMAP folder does not exist", code=Code.FOLDER_NOT_FOUND)
            missing.retryable = False
            raise missing from None

    def _select(self, name: str, *, readonly: bool = True) -> dict[bytes, Any]:
        self._selected = None
        with self._folder_guard(name):
            response: dict[bytes, Any] = self._client.select_folder(name, readonly=readonly)
        self._selected = name
        return response

    @property
    def has_condstore(self) -> bool:
        return "CONDSTORE" in self._caps or "QRESYNC" in self._caps

    @property
    def has_qresync(self) -> bool:
        return self._qresync

    # -- MailFolderSource --------------------------------------------------------------------------

    def capabilities(self) -> frozenset[str]:
        return self._caps

    def list_folders(self) -> list[Folder]:
        with self._guard():
            rows = self._client.list_folders()
        return [
            Folder(
                name=_text(name),
                delimiter=_text(delimiter) if delimiter else None,
                attributes=frozenset(_text(a) for a in attributes),
            )
            for attributes, delimiter, name in rows
        ]

    def sent_folder(self) -> Folder | None:
        return find_sent_folder(self.list_folders())

    def drafts_folder(self) -> Folder | None:
        """The Drafts folder: SPECIAL-USE `\\Drafts` (RFC 6154), else a well-known name."""
        return find_special_folder(self.list_folders(), SpecialUse.DRAFTS)

    def search_header(self, name: str, header: str, value: str) -> list[int]:
        """UIDs of folder `name` whose `header` contains `value` (`UID SEARCH HEADER`, a
        case-insensitive substring match: RFC 3501 section 6.4.4)."""
        self._select(name)
        with self._folder_guard(name):
            found = self._client.search(["HEADER", header, value])
        return sorted(int(uid) for uid in found)

    def delete_uids(self, name: str, uids: Iterable[int]) -> None:
        """Remove exactly these messages of folder `name`: `UID STORE +FLAGS.SILENT (\\Deleted)`
        then `UID EXPUNGE` of the same UIDs (RFC 4315 section 2.1), so other mail marked \\Deleted
        stays. Needs UIDPLUS; without it ProviderError `expunge_unsupported` (not retryable)."""
        wanted = sorted({int(uid) for uid in uids})
        if not wanted:
            return
        if wanted[0] < 1:
            raise Invalid("uid must be >= 1", code="invalid_uid")
        if "UIDPLUS" not in self._caps:
            refused = ProviderError("the IMAP server has no UIDPLUS", code="expunge_unsupported")
            refused.retryable = False
            raise refused
        self._select(name, readonly=False)
        with self._folder_guard(name):
            self._client.add_flags(wanted, [b"\\Deleted"], silent=True)
            self._client.uid_expunge(wanted)

    def folder_status(self, name: str) -> FolderStatus:
        items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
        if self.has_condstore:
            items.append("HIGHESTMODSEQ")
        with self._folder_guard(name):
            status = self._client.folder_status(name, items)
        return FolderStatus(
            name=name,
            uidvalidity=int(status[b"UIDVALIDITY"]),
            uidnext=int(status[b"UIDNEXT"]),
            messages=int(status[b"MESSAGES"]),
            highestmodseq=int(status[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in status else None,
        )

    def select(self, name: str) -> FolderStatus:
        """SELECT (read-only, so nothing gets \\Seen or \\Recent as a side effect)."""
        response = self._select(name)
        modseq = response.get(b"HIGHESTMODSEQ")
        return FolderStatus(
            name=name,
            uidvalidity=int(response[b"UIDVALIDITY"]),
            uidnext=int(response.get(b"UIDNEXT", 0)),
            messages=int(response.get(b"EXISTS", 0)),
            highestmodseq=int(modseq) if modseq is not None else None,
        )

    def list_uids(self, name: str) -> list[int]:
        self._select(name)
        with self._guard():
            uids = self._client.search("ALL")
        return sorted(int(u) for u in uids)

    def fetch_new(self, name: str, after_uid: int, limit: int, max_bytes: int | None = None) -> FetchBatch:
        """Messages with UID > after_uid, at most `limit`, in UID order; with `max_bytes`, only as
        many as fit in that many bytes by their RFC822.SIZE (always at least one), so a batch of
        large messages is shorter and a huge one comes alone."""
        if after_uid < 0:
            raise Invalid("after_uid must be >= 0", code="invalid_cursor")
        if not 1 <= limit <= _MAX_BATCH:
            raise Invalid(f"limit must be between 1 and {_MAX_BATCH}", code="invalid_limit")
        if max_bytes is not None and max_bytes < 1:
            raise Invalid("max_bytes must be >= 1", code="invalid_limit")
        status = self.select(name)
        with self._guard():
            # "n:*" always matches the last message, even below n: filter again.
            found = self._client.search(["UID", f"{after_uid + 1}:*"])
        uids = sorted(u for u in (int(x) for x in found) if u > after_uid)
        batch = uids[:limit]
        if max_bytes is not None and len(batch) > 1:
            batch = self._within_bytes(batch, max_bytes)
        items = [*_FETCH_ITEMS, "MODSEQ"] if self.has_condstore else list(_FETCH_ITEMS)
        with self._guard():
            response = self._client.fetch(batch, items) if batch else {}
        messages = []
        for uid in batch:
            data = response.get(uid)
            if data is None:  # expunged between SEARCH and FETCH
                continue
            messages.append(self._message(uid, data))
        return FetchBatch(
            folder=name,
            uidvalidity=status.uidvalidity,
            messages=tuple(messages),
            has_more=len(uids) > len(batch),
        )

    def _within_bytes(self, uids: list[int], max_bytes: int) -> list[int]:
        """The longest prefix of `uids` whose RFC822.SIZE values add up to at most `max_bytes`
        (at least the first UID). A UID expunged meanwhile counts as empty."""
        with self._guard():
            sizes = self._client.fetch(uids, ["RFC822.SIZE"])
        total = 0
        for count, uid in enumerate(uids):
            total += int((sizes.get(uid) or {}).get(b"RFC822.SIZE", 0))
            if count and total > max_bytes:
                return uids[:count]
        return uids

    @staticmethod
    def _message(uid: int, data: dict[bytes, Any]) -> FetchedMessage:
        raw = data.get(b"BODY[]")
        internal_date = data.get(b"INTERNALDATE")
        if not isinstance(raw, bytes) or not isinstance(internal_date, dt.datetime):
            raise ProviderError("FETCH response lacks the message or its date", code=Code.PROTOCOL_ERROR)
        modseq = data.get(b"MODSEQ")
        return FetchedMessage(
            uid=uid,
            flags=_flags(data.get(b"FLAGS", ())),
            internal_date=internal_date,
            modseq=int(modseq[0]) if modseq else None,
            size=int(data.get(b"RFC822.SIZE", len(raw))),
            raw=raw,
        )

    def fetch_flag_changes(self, name: str, since_modseq: int) -> FlagChanges | None:
        """Flag changes with MODSEQ > since_modseq (CONDSTORE); None without CONDSTORE.

        With QRESYNC, `vanished` lists the UIDs expunged since then; otherwise it is None and the
        caller diffs `list_uids` against what it has.
        """
        if since_modseq < 0:
            raise Invalid("since_modseq must be >= 0", code="invalid_cursor")
        if not self.has_condstore:
            return None
        status = self.select(name)
        highest = status.highestmodseq or 0
        if self._qresync:
            changed, vanished = self._changes_qresync(since_modseq)
        else:
            changed, vanished = self._changes_condstore(since_modseq), None
        return FlagChanges(
            folder=name,
            uidvalidity=status.uidvalidity,
            highestmodseq=max([highest, *(c.modseq for c in changed)]),
            changed=tuple(sorted(changed, key=lambda c: c.uid)),
            vanished=tuple(sorted(vanished)) if vanished is not None else None,
        )

    def _changes_condstore(self, since_modseq: int) -> list[FlagChange]:
        with self._guard():
            uids = self._client.search(["MODSEQ", str(since_modseq + 1)])
            response = (
                self._client.fetch(uids, ["FLAGS"], modifiers=[f"CHANGEDSINCE {since_modseq}"])
                if uids
                else {}
            )
        return [self._flag_change(int(uid), data) for uid, data in response.items()]

    def _changes_qresync(self, since_modseq: int) -> tuple[list[FlagChange], list[int]]:
        # IMAPClient.fetch() keeps only the UIDs it was given, so "1:*" with the VANISHED modifier
        # goes through imaplib's UID command; the untagged VANISHED (EARLIER) lines are read from
        # imaplib's response store, cleared first so stale ones never leak in.
        imap = self._client._imap
        with self._guard():
            imap.untagged_responses.pop("VANISHED", None)
            typ, data = imap.uid("FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {since_modseq} VANISHED)")
            if typ != "OK":
                raise imapclient.exceptions.IMAPClientError("fetch failed")
            vanished_lines = imap.untagged_responses.pop("VANISHED", [])
            parsed = parse_fetch_response([d for d in data if d is not None], False, True)
        vanished: list[int] = []
        for line in vanished_lines:
            raw = line if isinstance(line, bytes) else str(line).encode()
            vanished.extend(_parse_uid_set(raw.replace(b"(EARLIER)", b"")))
        changed = [self._flag_change(int(uid), d) for uid, d in parsed.items() if b"FLAGS" in d]
        return changed, vanished

    @staticmethod
    def _flag_change(uid: int, data: dict[bytes, Any]) -> FlagChange:
        modseq = data.get(b"MODSEQ")
        return FlagChange(
            uid=uid,
            flags=_flags(data.get(b"FLAGS", ())),
            modseq=int(modseq[0]) if modseq else 0,
        )

    def set_flags(
        self, name: str, uid: int, *, add: Iterable[Flag] = (), remove: Iterable[Flag] = ()
    ) -> None:
        to_add, to_remove = [Flag(f).value for f in add], [Flag(f).value for f in remove]
        if set(to_add) & set(to_remove):
            raise Invalid("a flag cannot be added and removed at once", code="invalid_flags")
        if uid < 1:
            raise Invalid("uid must be >= 1", code="invalid_uid")
        self._select(name, readonly=False)
        with self._guard():
            if to_add:
                self._client.add_flags([uid], to_add, silent=True)
            if to_remove:
                self._client.remove_flags([uid], to_remove, silent=True)

    def move(self, name: str, uid: int, target: str) -> tuple[int, int] | None:
        """Move message `uid` of folder `name` to folder `target`; returns (UIDVALIDITY, UID) of the
        message in `target` from COPYUID (RFC 4315 UIDPLUS), or None when the server sends none.

        With MOVE (RFC 6851) one `UID MOVE`; without it RFC 6851 section 3.3's fallback: `UID COPY`,
        `+FLAGS.SILENT (\\Deleted)`, then `UID EXPUNGE` of that UID alone (RFC 4315), which needs
        UIDPLUS: a plain EXPUNGE would also remove other mail marked \\Deleted, so a server with
        neither is refused (ProviderError `move_unsupported`, not retryable)."""
        if uid < 1:
            raise Invalid("uid must be >= 1", code="invalid_uid")
        if "MOVE" not in self._caps and "UIDPLUS" not in self._caps:
            refused = ProviderError("the IMAP server has neither MOVE nor UIDPLUS", code="move_unsupported")
            refused.retryable = False
            raise refused
        self._select(name, readonly=False)
        imap = self._client._imap  # imaplib keeps untagged [COPYUID] response codes there
        with self._folder_guard(target):
            imap.response("COPYUID")  # forget any earlier one
            if "MOVE" in self._caps:
                tagged = self._client.move([uid], target)
            else:
                tagged = self._client.copy([uid], target)
                self._client.add_flags([uid], [b"\\Deleted"], silent=True)
                self._client.uid_expunge([uid])
            _, untagged = imap.response("COPYUID")
        for data in [tagged, *(untagged or [])]:
            if data is None:
                continue
            text = data if isinstance(data, bytes) else str(data).encode()
            found = _COPYUID.search(text if b"COPYUID" in text else b"COPYUID " + text)
            if found:
                return int(found.group(1)), int(found.group(3))
        return None

    def append(
        self,
        name: str,
        raw: bytes,
        *,
        flags: Iterable[Flag] = (),
        internal_date: dt.datetime | None = None,
    ) -> int | None:
        """APPEND; returns the new UID when the server has UIDPLUS, else None."""
        if not raw:
            raise Invalid("empty message", code="invalid_message")
        if internal_date is not None and internal_date.tzinfo is None:
            raise Invalid("internal_date must be timezone-aware", code="invalid_date")
        values = [Flag(f).value for f in flags]
        with self._guard():
            response = self._client.append(name, raw, values, internal_date)
        match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        return int(match.group(2)) if match else None

    def logout(self) -> None:
        if self._closed:
            self._deadline.close()
            return
        self._closed = True
        try:
            self._client.logout()
        except (OSError, imapclient.exceptions.IMAPClientError):
            _shutdown_quietly(self._client)
        finally:
            self._deadline.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.logout()


def _conforms(connection: ImapConnection) -> MailFolderSource:
    """Never called: makes mypy prove that ImapConnection implements MailFolderSource."""
    return connection
