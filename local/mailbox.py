"""`make mailbox`: a real Dovecot on loopback with a demo user and some mail, plus an SMTP sink,
for `make run`.

Prints the body to POST to /accounts, then serves until Ctrl-C; every message sent through the
sink is printed (From, To, Subject, In-Reply-To, References) and saved as .eml in the folder it
names. Uses the same private-config Dovecot and aiosmtpd sink as the tests
(tests/integration/dovecot.py, tests/fixtures/smtp.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from pathlib import Path

from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER, SmtpSink
from tests.integration.dovecot import DovecotServer, find_dovecot, make_server_root

SEED = [
    ("Carol Customer", "carol@customer.example", "Renewal quote for 2027", None),
    ("Carol Customer", "carol@customer.example", "Re: Renewal quote for 2027", 0),
    ("Dan Supplier", "dan@supplier.example", "Delivery schedule", None),
    ("Newsletter", "news@list.example", "This week in CRM", None),
]


def seed_messages(address: str) -> list[bytes]:
    out: list[bytes] = []
    ids: list[str] = []
    start = datetime.now(UTC) - timedelta(days=2)
    for i, (name, sender, subject, reply_to) in enumerate(SEED):
        msg = EmailMessage()
        msg["From"] = f"{name} <{sender}>"
        msg["To"] = address
        msg["Subject"] = subject
        msg["Date"] = format_datetime(start + timedelta(hours=i))
        msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
        if reply_to is not None:
            msg["In-Reply-To"] = ids[reply_to]
            msg["References"] = ids[reply_to]
        if "news@" in sender:
            msg["List-Id"] = "CRM weekly <weekly.list.example>"
            msg["List-Unsubscribe"] = "<https://list.example/unsubscribe>"
        msg.set_content(f"Hello,\n\nthis is message {i + 1} of the demo mailbox.\n\n-- {name}\n")
        ids.append(str(msg["Message-ID"]))
        out.append(bytes(msg))
    return out


def _report_sent(sink: SmtpSink, folder: Path, stop: threading.Event) -> None:
    seen = 0
    while not stop.wait(0.5):
        for received in sink.messages[seen:]:
            seen += 1
            path = folder / f"sent-{seen:04d}.eml"
            path.write_bytes(received.raw)
            headers = BytesParser(policy=policy.default).parsebytes(received.raw, headersonly=True)
            print(f"-- received by the SMTP sink ({path.name}): envelope to {', '.join(received.rcpt_tos)}")
            for name in ("From", "To", "Subject", "In-Reply-To", "References"):
                if headers[name]:
                    print(f"   {name}: {headers[name]}")
            print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo-password")
    parser.add_argument("--no-seed", action="store_true")
    args = parser.parse_args(argv)
    binary = find_dovecot()
    if binary is None:
        print("dovecot is not installed: run scripts/ensure-dovecot", file=sys.stderr)
        return 1
    root = make_server_root("mailbridge-dev-dovecot-")
    server = DovecotServer(root=root, binary=binary)
    stop = threading.Event()
    sink: SmtpSink | None = None
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start()
        (root / "smtp").mkdir(exist_ok=True)
        sink = SmtpSink(root=root / "smtp")
        sink.start()
        user = server.add_user(args.user, args.password)
        address = f"{user.name}@example.com"
        if not args.no_seed:
            for raw in seed_messages(address):
                server.append(user, "INBOX", raw)
        body = {
            "provider": "imap",
            "address": address,
            "imap": {
                "host": server.host,
                "port": server.imap_port,
                "security": "none",
                "username": user.name,
                "password": user.password,
            },
            "smtp": {
                "host": sink.host,
                "port": sink.plain_port,
                "security": "none",
                "username": SINK_USER,
                "password": SINK_PASSWORD,
            },
        }
        print(f"Dovecot on {server.host}:{server.imap_port} (IMAP) / {server.imaps_port} (IMAPS)")
        print("Connect it while `make run` runs:")
        print(
            f"  curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' "
            f"localhost:3000/accounts -d '{json.dumps(body)}'"
        )
        print(f"SMTP sink on {sink.host}:{sink.plain_port}; sent mail is saved under {root / 'smtp'}")
        print("Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            _report_sent(sink, root / "smtp", stop)
    finally:
        if sink is not None:
            sink.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
