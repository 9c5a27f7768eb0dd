"""`make mailbox`: a real Dovecot on loopback with a demo user and some mail, plus an SMTP sink,
for `make run`. `make mailbox PROVIDER=gmail`: a Gmail mailbox with some mail in the Google double
that `make run` started, and the two steps that connect it through OAuth.

Writes the body to POST to /accounts to ACCOUNT_FILE and prints the command that connects it to
the running `make run` (its URL comes from the runner's issuer file, so the port is the one it
really uses; `PORT` when no runner has started yet). Then serves until Ctrl-C; every message sent
through the sink is printed (From, To, Subject, In-Reply-To, References) and saved as .eml in the
folder it names. Uses the same private-config Dovecot and aiosmtpd sink as the tests
(tests/integration/dovecot.py, tests/fixtures/smtp.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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

from local.auth import ISSUER_FILE, ISSUER_PATH, Issuer, NoIssuerError
from local.functions import ROOT
from tests.fixtures.smtp import SINK_PASSWORD, SINK_USER, SmtpSink
from tests.integration.dovecot import DovecotServer, find_dovecot, make_server_root

SEED = [
    ("Carol Customer", "carol@customer.example", "Renewal quote for 2027", None),
    ("Carol Customer", "carol@customer.example", "Re: Renewal quote for 2027", 0),
    ("Dan Supplier", "dan@supplier.example", "Delivery schedule", None),
    ("Newsletter", "news@list.example", "This week in CRM", None),
]


# The Gmail demo mailbox has its own address: the README connects both in one tenant, where an
# address is connected once.
IMAP_USER = "demo"
GMAIL_USER = "ada"


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


ACCOUNT_FILE = ROOT / ".local" / "mailbox-account.json"


def runner_url(issuer_file: Path = ISSUER_FILE) -> str:
    """Base URL of the last `make run` started from this checkout, else 127.0.0.1:$PORT."""
    try:
        issuer = Issuer.load(issuer_file).issuer
    except NoIssuerError:
        return f"http://127.0.0.1:{os.environ.get('PORT', '3000')}"
    return issuer.removesuffix(ISSUER_PATH)


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


def _control(base: str, method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, object]:
    """A call to the Google double's control API (loopback, JSON)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the double on loopback
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def gmail_mailbox(user: str, seed: bool, state_file: Path | None = None) -> int:
    """Seed a Gmail mailbox in the running double (found through the state file `make run`
    wrote) and print how to connect it. Running it again seeds nothing twice."""
    import base64

    from local.google_wiring import STATE_FILE, read_state

    state = read_state(state_file or STATE_FILE)
    if state is None:
        print("no Google double found: start `make run` first (it starts one)", file=sys.stderr)
        return 1
    control = str(state["urls"]["control"])
    address = f"{user}@example.com"
    try:
        _, listed = _control(control, "GET", "")
    except OSError:
        print(f"the Google double at {control} does not answer: is `make run` running?", file=sys.stderr)
        return 1
    users = listed.get("users", []) if isinstance(listed, dict) else []
    if address.lower() not in users:
        _control(control, "POST", "/users", {"address": address, "name": user.title()})
        if seed:
            for raw in seed_messages(address):
                raw_base64 = base64.b64encode(raw).decode()
                _control(control, "POST", f"/users/{address}/messages", {"raw_base64": raw_base64})
    api = str(state.get("runner") or runner_url())
    print(f"Gmail mailbox {address} in the Google double ({control.removesuffix('/__double__')}).")
    print("Connect it while `make run` runs:")
    print(f"  export API={api} TOKEN=$(make -s token)")
    print("1. Ask for the consent URL:")
    print(
        '  URL=$(curl -s -H "Authorization: Bearer $TOKEN" '
        f'"$API/oauth/gmail/start?login_hint={address}" | jq -r .authorization_url)'
    )
    print("2. Open it (in a browser, or with curl): the double consents at once and Google's redirect")
    print("   lands on the runner's callback, which connects the mailbox:")
    print('  curl -sL "$URL"')
    print('Then: curl -s -H "Authorization: Bearer $TOKEN" "$API/accounts"')
    print("New mail (pushed to the runner through Pub/Sub):")
    new_mail = json.dumps({"raw": "From: carol@customer.example\r\nSubject: hello\r\n\r\nhello again\r\n"})
    print(
        f"  curl -s -X POST -H 'content-type: application/json' \\\n    {control}/users/{address}/messages \\"
    )
    print(f"    -d '{new_mail}'")
    print("What Gmail holds (labels per message: a write-back shows here, e.g. UNREAD gone):")
    print(f"  curl -s {control}/users/{address}/messages | jq -c '.[] | {{subject, labelIds}}'")
    return 0


def graph_mailbox(user: str, seed: bool, state_file: Path | None = None) -> int:
    """Seed a Microsoft 365 mailbox in the running Microsoft double (found through the state file
    `make run` wrote), signed in at its consent page, and print how to connect it."""
    import base64

    from local.microsoft_wiring import STATE_FILE, read_state

    state = read_state(state_file or STATE_FILE)
    if state is None:
        print("no Microsoft double found: start `make run` first (it starts one)", file=sys.stderr)
        return 1
    control = str(state["urls"]["control"])
    address = f"{user}@contoso.example"
    try:
        _, listed = _control(control, "GET", "")
    except OSError:
        print(f"the Microsoft double at {control} does not answer: is `make run` running?", file=sys.stderr)
        return 1
    users = listed.get("users", []) if isinstance(listed, dict) else []
    if address.lower() not in users:
        _control(control, "POST", "/users", {"address": address, "name": user.title()})
        if seed:
            for raw in seed_messages(address):
                raw_base64 = base64.b64encode(raw).decode()
                _control(control, "POST", f"/users/{address}/messages", {"raw_base64": raw_base64})
    _control(control, "POST", f"/users/{address}/sign-in")
    api = str(state.get("runner") or runner_url())
    ca_file = state["urls"].get("ca_file")
    print(f"Microsoft 365 mailbox {address} in the Microsoft double ({state['urls']['authority_host']}).")
    print("Connect it while `make run` runs:")
    print(f"  export API={api} TOKEN=$(make -s token)")
    print("1. Ask for the consent URL:")
    print(
        '  URL=$(curl -s -H "Authorization: Bearer $TOKEN" '
        f'"$API/oauth/graph/start?login_hint={address}" | jq -r .authorization_url)'
    )
    print("2. Open it: the double (HTTPS with its own CA) consents at once and redirects to the")
    print("   runner's callback, which connects the mailbox and subscribes to Inbox and Sent Items:")
    print(f'  curl -sL --cacert {ca_file} "$URL"')
    print('Then: curl -s -H "Authorization: Bearer $TOKEN" "$API/accounts"')
    print("New mail (the double notifies the runner's /webhooks/graph):")
    new_mail = json.dumps({"raw": "From: carol@customer.example\r\nSubject: hello\r\n\r\nhello again\r\n"})
    print(
        f"  curl -s -X POST -H 'content-type: application/json' \\\n    {control}/users/{address}/messages \\"
    )
    print(f"    -d '{new_mail}'")
    print("Each folder's health (server and stored counts, the reconciler's verdict):")
    print('  curl -s -H "Authorization: Bearer $TOKEN" "$API/accounts/$ACCOUNT/status" | jq \'.folders\'')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--provider", choices=("imap", "gmail", "graph"), default="imap")
    parser.add_argument(
        "--user", default=None, help=f"default: {IMAP_USER} (imap), {GMAIL_USER} (gmail: another address)"
    )
    parser.add_argument("--password", default="demo-password")
    parser.add_argument("--no-seed", action="store_true")
    args = parser.parse_args(argv)
    if args.provider == "gmail":
        return gmail_mailbox(args.user or GMAIL_USER, seed=not args.no_seed)
    if args.provider == "graph":
        return graph_mailbox(args.user or GMAIL_USER, seed=not args.no_seed)
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
        user = server.add_user(args.user or IMAP_USER, args.password)
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
        ACCOUNT_FILE.parent.mkdir(parents=True, exist_ok=True)
        ACCOUNT_FILE.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        relative = ACCOUNT_FILE.relative_to(ROOT)
        print(f"Dovecot on {server.host}:{server.imap_port} (IMAP) / {server.imaps_port} (IMAPS)")
        print(f"Connect it while `make run` runs (the POST /accounts body is in {relative}):")
        print(f"  export API={runner_url()} TOKEN=$(make -s token)")
        print(
            '  ACCOUNT_ID=$(curl -s -X POST -H "Authorization: Bearer $TOKEN" '
            f"-H 'content-type: application/json' \"$API/accounts\" -d @{relative} | jq -r .account_id)"
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
