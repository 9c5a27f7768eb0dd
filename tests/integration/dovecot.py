"""A real Dovecot IMAP server run as a plain process for the integration tests.

`DovecotServer` writes a private configuration under a temporary directory (base_dir, state,
passwd-file, maildirs, a self-signed certificate), starts `dovecot -F -c CONFIG` listening on free
127.0.0.1 ports (IMAP with STARTTLS, and IMAPS), and offers helpers that act on a user's mailbox
through the standard library's imaplib, independently of the adapter under test.

Nothing here touches the machine's own Dovecot configuration or service.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import imaplib
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
SPECIAL_USE_FOLDERS: dict[str, str] = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}
# Dovecot 2.3's post-login CAPABILITY without CONDSTORE (RFC 7162) and QRESYNC: what a server
# without them offers, so clients fall back to UID lists (`imap_capability` replaces the list).
CAPABILITIES_WITHOUT_CONDSTORE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE "
    "SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
)
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 3.0


class DovecotUnavailable(RuntimeError):
    """No dovecot binary on this machine."""


def find_dovecot() -> str | None:
    """Path of the dovecot binary, also looking in the sbin directories a non-root PATH lacks."""
    found = shutil.which("dovecot")
    if found:
        return found
    for candidate in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def dovecot_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, timeout=10)
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float, *, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until 127.0.0.1:port accepts a connection (the server is up), or raise."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"dovecot exited with status {process.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def write_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailbridge test dovecot")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass(frozen=True)
class DovecotUser:
    name: str
    password: str


@dataclass(frozen=True)
class MailboxStatus:
    messages: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _flag_list(flags: Iterable[str]) -> str:
    return "(" + " ".join(flags) + ")"


def _check(typ: str, data: Sequence[object], what: str) -> None:
    if typ != "OK":
        raise RuntimeError(f"{what} failed: {data!r}")


@dataclass
class DovecotServer:
    """One Dovecot instance with a private configuration under `root`."""

    root: Path
    binary: str
    imap_port: int = field(default_factory=free_port)
    imaps_port: int = field(default_factory=free_port)
    host: str = HOST
    condstore: bool = True  # False: CONDSTORE/QRESYNC are not offered (CAPABILITIES_WITHOUT_CONDSTORE)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _users: dict[str, DovecotUser] = field(default_factory=dict, init=False, repr=False)
    _users_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Dovecot's unprivileged login/internal processes must be able to reach base_dir.
        self.root.chmod(0o755)
        self.cert_path, self.key_path = write_self_signed_cert(self.root)
        self.passwd_dir = self.root / "passwd"
        self.passwd_dir.mkdir(exist_ok=True)
        self.mail_root = self.root / "mail"
        self.mail_root.mkdir(exist_ok=True)
        self.mail_uid, self.mail_gid = mail_owner()
        if (self.mail_uid, self.mail_gid) != (os.getuid(), os.getgid()):
            os.chown(self.mail_root, self.mail_uid, self.mail_gid)
        self.log_path = self.root / "dovecot.log"
        self.config_path = self.root / "dovecot.conf"
        self.config_path.write_text(self.render_config())

    # -- configuration -------------------------------------------------------------------------

    def _service_users(self) -> tuple[str, str, str]:
        """(internal user, internal group, login user): Dovecot's own when root, else ourselves."""
        me = pwd.getpwuid(os.getuid())
        if os.getuid() != 0:
            return me.pw_name, _group_name(me.pw_gid), me.pw_name
        internal = _existing_user("dovecot") or me.pw_name
        login = _existing_user("dovenull") or internal
        return internal, _group_name(pwd.getpwnam(internal).pw_gid), login

    def render_config(self) -> str:
        internal_user, internal_group, login_user = self._service_users()
        mailboxes = "\n".join(
            f"    mailbox {name} {{\n      special_use = {use}\n      auto = subscribe\n    }}"
            for name, use in SPECIAL_USE_FOLDERS.items()
        )
        return f"""# Generated by tests/integration/dovecot.py: a throwaway test server.
instance_name = mailbridge-test-{self.imap_port}
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = imap
listen = {self.host}
shutdown_clients = yes
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = 0
first_valid_gid = 0
ssl = yes
ssl_cert = <{self.cert_path}
ssl_key = <{self.key_path}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 0
auth_failure_delay = 0
mail_location = maildir:{self.mail_root}/%u
mail_fsync = never
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd_dir}/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}
{self._capability_config()}service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
# No anvil auth-penalty socket = no growing delay after the wrong-password tests.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
"""

    def _capability_config(self) -> str:
        if self.condstore:
            return ""
        return f"protocol imap {{\n  imap_capability = {CAPABILITIES_WITHOUT_CONDSTORE}\n}}\n"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        (self.root / "run").mkdir(exist_ok=True)
        (self.root / "state").mkdir(exist_ok=True)
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(self.imap_port, _START_TIMEOUT_S, process=self._process)
            wait_for_port(self.imaps_port, _START_TIMEOUT_S, process=self._process)
        except (OSError, RuntimeError) as exc:
            self.stop()
            raise RuntimeError(f"dovecot did not start: {exc}\n--- log ---\n{self.log_tail()}") from exc

    def stop(self) -> None:
        """SIGTERM the master, then SIGKILL whatever of its process group is left (imap workers)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_STOP_TIMEOUT_S)
        # The master leads its own process group (start_new_session): no other process is in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- users -----------------------------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> DovecotUser:
        """A new user with an empty mailbox."""
        user = DovecotUser(
            name=name or f"user{secrets.token_hex(4)}",
            password=password or secrets.token_urlsafe(12),
        )
        if not re.fullmatch(r"[A-Za-z0-9._@+-]+", user.name) or ":" in user.password:
            raise ValueError("user names and passwords must be passwd-file safe")
        with self._users_lock:
            if user.name in self._users:
                raise ValueError(f"user {user.name} exists")
            self._users[user.name] = user
        # One passwd-file per user (the path has %u): a new user is a new file, so there is no
        # reload to wait for (Dovecot re-stats a changed passwd-file at most once a second).
        self._write_passwd(user)
        return user

    def _write_passwd(self, user: DovecotUser) -> None:
        line = (
            f"{user.name}:{{PLAIN}}{user.password}:{self.mail_uid}:{self.mail_gid}::"
            f"{self.mail_root / user.name}::\n"
        )
        tmp = self.passwd_dir / f".{user.name}.tmp"
        tmp.write_text(line)
        tmp.chmod(0o644)
        tmp.replace(self.passwd_dir / user.name)

    def set_password(self, user: DovecotUser, password: str) -> DovecotUser:
        """Change a user's password on the server (the mailbox stays)."""
        if ":" in password:
            raise ValueError("passwords must be passwd-file safe")
        changed = DovecotUser(name=user.name, password=password)
        with self._users_lock:
            self._users[user.name] = changed
        path = self.passwd_dir / user.name
        before = path.stat().st_mtime
        self._write_passwd(changed)
        # Dovecot reloads a passwd-file when its mtime (whole seconds) or size changed, and looks
        # at most once a second: a file rewritten within the second it was written, with a
        # password as long as the old one, looked unchanged and the old password kept working.
        if int(path.stat().st_mtime) <= int(before):
            os.utime(path, (int(before) + 1, int(before) + 1))
        time.sleep(1.1)
        return changed

    # -- mailbox helpers (stdlib imaplib on the plain port, independent of the adapter) -----------

    @contextlib.contextmanager
    def session(self, user: DovecotUser, folder: str | None = None) -> Iterator[imaplib.IMAP4]:
        conn = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        try:
            _check(*conn.login(user.name, user.password), "LOGIN")
            if folder is not None:
                _check(*conn.select(_quote(folder)), "SELECT")
            yield conn
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                conn.logout()

    def append(
        self,
        user: DovecotUser,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        internal_date: dt.datetime | None = None,
    ) -> int:
        """APPEND one message; returns its UID (from APPENDUID)."""
        date = imaplib.Time2Internaldate(internal_date) if internal_date is not None else None
        with self.session(user) as conn:
            typ, data = conn.append(_quote(folder), _flag_list(flags), date, raw)
            _check(typ, data, "APPEND")
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", _first_bytes(data))
        if match is None:
            raise RuntimeError("APPEND gave no APPENDUID")
        return int(match.group(1))

    def set_flags(
        self, user: DovecotUser, folder: str, uid: int, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        with self.session(user, folder) as conn:
            if add := tuple(add):
                _check(*conn.uid("STORE", str(uid), "+FLAGS.SILENT", _flag_list(add)), "STORE")
            if remove := tuple(remove):
                _check(*conn.uid("STORE", str(uid), "-FLAGS.SILENT", _flag_list(remove)), "STORE")

    def expunge(self, user: DovecotUser, folder: str, uid: int) -> None:
        with self.session(user, folder) as conn:
            _check(*conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
            _check(*conn.uid("EXPUNGE", str(uid)), "UID EXPUNGE")

    def mailbox_status(self, user: DovecotUser, folder: str) -> MailboxStatus:
        with self.session(user) as conn:
            typ, data = conn.status(_quote(folder), "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)")
            _check(typ, data, "STATUS")
        items = dict(re.findall(rb"([A-Z]+) (\d+)", _first_bytes(data).rsplit(b"(", 1)[-1]))
        return MailboxStatus(
            messages=int(items[b"MESSAGES"]),
            uidnext=int(items[b"UIDNEXT"]),
            uidvalidity=int(items[b"UIDVALIDITY"]),
            highestmodseq=int(items[b"HIGHESTMODSEQ"]),
        )

    def create_folder(self, user: DovecotUser, folder: str) -> None:
        with self.session(user) as conn:
            _check(*conn.create(_quote(folder)), "CREATE")

    def recreate_folder(self, user: DovecotUser, folder: str) -> MailboxStatus:
        """Delete and create `folder` again, so it gets a new UIDVALIDITY; returns the new status."""
        before = self.mailbox_status(user, folder)
        with self.session(user) as conn:
            _check(*conn.delete(_quote(folder)), "DELETE")
            _check(*conn.create(_quote(folder)), "CREATE")
        after = self.mailbox_status(user, folder)
        if after.uidvalidity == before.uidvalidity:
            raise RuntimeError("recreating the folder kept its UIDVALIDITY")
        return after

    def client_ssl_context(self) -> ssl.SSLContext:
        """A context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def mail_owner() -> tuple[int, int]:
    """uid/gid that owns the test mail: the current user, or an unprivileged one when root.

    Dovecot refuses mail access as UID 0, so as root the mail belongs to `mail` (or `nobody`).
    """
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    for name in ("mail", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise DovecotUnavailable("running as root needs an unprivileged 'mail' or 'nobody' user")


def make_server_root(prefix: str = "mailbridge-dovecot-") -> Path:
    """A fresh directory every Dovecot process can traverse (pytest's tmp dirs are 0700 as root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def _first_bytes(data: Sequence[object]) -> bytes:
    first = data[0] if data else b""
    return first if isinstance(first, bytes) else str(first).encode()


def _existing_user(name: str) -> str | None:
    try:
        return pwd.getpwnam(name).pw_name
    except KeyError:
        return None


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


class CuttableProxy:
    """A loopback TCP relay in front of a server port that a test can cut mid-stream.

    `cut_after(n)` closes every relayed connection once `n` more server-to-client bytes have
    passed, which drops a client in the middle of a large FETCH without touching the server.
    """

    def __init__(self, target_port: int, host: str = HOST) -> None:
        self.host = host
        self.target_port = target_port
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._budget: int | None = None
        self._closed = False
        self.connections = 0  # clients accepted so far: each login attempt of the code under test
        self._thread = threading.Thread(target=self._accept_loop, name="cuttable-proxy", daemon=True)
        self._thread.start()

    def cut_after(self, server_bytes: int) -> None:
        with self._lock:
            self._budget = server_bytes

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while chunk := source.recv(16384):
                if from_server:
                    with self._lock:
                        if self._budget is not None:
                            if len(chunk) >= self._budget:
                                chunk = chunk[: self._budget]
                                self._budget = 0
                            else:
                                self._budget -= len(chunk)
                    sink.sendall(chunk)
                    if self._budget == 0:
                        self._budget = None
                        self.cut()
                        return
                else:
                    sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
