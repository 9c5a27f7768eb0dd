"""`python -m local.hubspot --port N`: the HubSpot double as a process, printing its URLs.

Optionally registers the public app, seeds demo records (the senders of `make mailbox`'s demo
mail, a custom property, a company) and points the app's webhooks at a running `make run`;
everything else goes through the control API under /__double__/.
"""

from __future__ import annotations

import argparse
import json
import logging

from local import interrupt
from local.hubspot.double import HubSpotDouble

DEMO_CONTACTS = [
    ("Carol", "Customer", "carol@customer.example", "gold"),
    ("Dan", "Supplier", "dan@supplier.example", "silver"),
]


def seed_demo(hubspot: HubSpotDouble) -> None:
    hubspot.add_property("contacts", "mailbridge_tier", "Tier", "enumeration", "select", ["gold", "silver"])
    for first, last, email, tier in DEMO_CONTACTS:
        hubspot.create("contacts", firstname=first, lastname=last, email=email, mailbridge_tier=tier)
    hubspot.create("companies", name="Customer Inc", domain="customer.example")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.hubspot", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--redirect-uri", action="append", default=[], help="register the public app")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--app-type", choices=("public", "private"), default="public")
    parser.add_argument(
        "--seed-demo", action="store_true", help="demo contacts, a company, a custom property"
    )
    parser.add_argument("--webhook-url", help="the app's webhook target; subscribes to contact changes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    interrupt.install()
    with HubSpotDouble(host=args.host, port=args.port, seed=args.seed, app_type=args.app_type) as hubspot:
        if args.redirect_uri:
            app = hubspot.register_app(args.redirect_uri, args.client_id, args.client_secret)
            print(f"App {app.app_id}: client id {app.client_id} (secret {app.client_secret})")
        if args.seed_demo:
            seed_demo(hubspot)
            print(f"Seeded {len(DEMO_CONTACTS)} contacts, a company and a custom property")
        if args.webhook_url:
            hubspot.set_webhook_target(args.webhook_url)
            hubspot.subscribe("contact.creation")
            hubspot.subscribe("contact.deletion")
            for name in ("email", "firstname", "lastname"):
                hubspot.subscribe("contact.propertyChange", name)
            print(f"Webhooks: contact changes -> {args.webhook_url}")
        print(f"Portal {hubspot.portal_id}")
        print("HubSpot double URLs:")
        print(json.dumps(hubspot.urls(), indent=2), flush=True)
        print("Ctrl-C to stop.", flush=True)
        try:
            interrupt.wait_for_interrupt()
        except KeyboardInterrupt:
            print("\nstopping...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
