"""`python -m local.microsoft --port N`: the Microsoft double as a process, printing its URLs.

Optionally registers an app, one user/mailbox with a little mail, so a running `make run` can
connect to it at once; everything else goes through the control API (`/__double__`).
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from local import interrupt
from local.microsoft.double import MicrosoftDouble

DEMO = [
    ("Carol Customer", "carol@customer.example", "Renewal quote for 2027"),
    ("Dan Supplier", "dan@supplier.example", "Delivery schedule"),
    ("Newsletter", "news@list.example", "This week in CRM"),
]


def seed_demo(double: MicrosoftDouble, address: str) -> int:
    now = double.now()
    for index, (name, sender, subject) in enumerate(DEMO):
        message = EmailMessage()
        message["From"] = f"{name} <{sender}>"
        message["To"] = address
        message["Subject"] = subject
        message["Date"] = format_datetime(now - timedelta(hours=len(DEMO) - index))
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
        message.set_content(f"Hello,\n\nthis is message {index + 1} of the demo mailbox.\n\n-- {name}\n")
        double.deliver(address, bytes(message), received=now - timedelta(hours=len(DEMO) - index))
    return len(DEMO)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.microsoft", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-http", action="store_true", help="no TLS (msal will refuse the authority)")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--redirect-uri", action="append", default=[])
    parser.add_argument("--user", help="create this account and mailbox, with three demo messages")
    parser.add_argument("--personal", action="store_true", help="the user is a personal Microsoft account")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    interrupt.install()
    with MicrosoftDouble(host=args.host, port=args.port, seed=args.seed, tls=not args.plain_http) as double:
        if args.redirect_uri:
            app = double.register_app(args.redirect_uri, args.client_id, args.client_secret)
            print(f"App registration: client id {app.client_id} (secret {app.client_secret})")
        if args.user:
            double.add_user(args.user, personal=args.personal)
            print(f"Account and mailbox: {args.user} ({seed_demo(double, args.user)} messages in Inbox)")
        print("Microsoft double URLs:")
        print(json.dumps(double.urls(), indent=2), flush=True)
        print(
            "msal: ConfidentialClientApplication(client_id, client_secret, authority=<authority>, "
            "instance_discovery=False) in a process with REQUESTS_CA_BUNDLE=<ca_bundle> "
            "(or http_client=a requests.Session with trust_env=False and verify=<ca_file>)",
            flush=True,
        )
        print("Ctrl-C to stop.", flush=True)
        try:
            interrupt.wait_for_interrupt()
        except KeyboardInterrupt:
            print("\nstopping...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
