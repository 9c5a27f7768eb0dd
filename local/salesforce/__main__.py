"""`python -m local.salesforce --port N`: the Salesforce double as a process, printing its URLs.

Optionally registers a connected app, seeds demo records (the senders of `make mailbox`'s demo
mail, a custom field, a campaign) and an outbound message to a running `make run`; everything else
goes through the control API under /__double__/.
"""

from __future__ import annotations

import argparse
import json
import logging

from local import interrupt
from local.salesforce.double import SalesforceDouble

DEMO_CONTACTS = [
    ("Carol", "Customer", "carol@customer.example", "Gold"),
    ("Dan", "Supplier", "dan@supplier.example", "Silver"),
]


def seed_demo(salesforce: SalesforceDouble) -> None:
    salesforce.add_custom_field("Contact", "Tier__c", "picklist", picklist=["Gold", "Silver"])
    salesforce.add_custom_field("Contact", "Mailbridge_Id__c", "text", external_id=True)
    for first, last, email, tier in DEMO_CONTACTS:
        salesforce.create("Contact", FirstName=first, LastName=last, Email=email, Tier__c=tier)
    salesforce.create(
        "Lead", FirstName="Erin", LastName="Prospect", Company="Prospects Ltd", Email="erin@prospect.example"
    )
    salesforce.create("Campaign", Name="Spring launch", Type="Email", IsActive=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.salesforce", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--callback-url", action="append", default=[], help="register a connected app")
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument(
        "--seed-demo", action="store_true", help="demo contacts, a lead, a campaign, custom fields"
    )
    parser.add_argument("--outbound-url", help="send Contact changes as outbound messages to this URL")
    parser.add_argument("--daily-api-requests", type=int, default=100_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    interrupt.install()
    with SalesforceDouble(
        host=args.host, port=args.port, seed=args.seed, daily_api_requests=args.daily_api_requests
    ) as salesforce:
        if args.callback_url:
            app = salesforce.register_app(args.callback_url, args.client_id, args.client_secret)
            print(f"Connected app: consumer key {app.client_id} (secret {app.client_secret})")
        if args.seed_demo:
            seed_demo(salesforce)
            print(f"Seeded {len(DEMO_CONTACTS)} contacts, a lead, a campaign and two custom fields")
        if args.outbound_url:
            action = salesforce.watch(
                "Contact",
                ["FirstName", "LastName", "Email", "Tier__c" if args.seed_demo else "Title"],
                args.outbound_url,
            )
            print(f"Outbound message {action.id}: Contact changes -> {args.outbound_url}")
        print(f"Org {salesforce.org_id}, user {salesforce.user_id}")
        print("Salesforce double URLs:")
        print(json.dumps(salesforce.urls(), indent=2), flush=True)
        print("Ctrl-C to stop.", flush=True)
        try:
            interrupt.wait_for_interrupt()
        except KeyboardInterrupt:
            print("\nstopping...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
