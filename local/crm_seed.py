"""`make mailbox PROVIDER=salesforce|hubspot`: seed the CRM double `make run` started with the demo
records (the senders of `make mailbox`'s demo mail, a custom field, a campaign / a company) and
its outbound messages / webhooks to the runner's /webhooks/salesforce|hubspot, through
the double's control API (its URL from `.local/crm-doubles.json`, written by `make run`), and print
how to connect it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from local.crm_wiring import STATE_FILE
from local.hubspot.__main__ import DEMO_CONTACTS as HUBSPOT_CONTACTS
from local.salesforce.__main__ import DEMO_CONTACTS as SALESFORCE_CONTACTS


def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> None:
    answer = client.post(url, json=body)
    if answer.status_code >= 400:
        raise SystemExit(f"the double refused {url}: {answer.status_code} {answer.text[:200]}")


def seed_salesforce(client: httpx.Client, control: str, runner: str) -> None:
    _post(
        client,
        control + "/fields",
        {"object": "Contact", "name": "Tier__c", "type": "picklist", "picklist": ["Gold", "Silver"]},
    )
    _post(
        client,
        control + "/fields",
        {"object": "Contact", "name": "Mailbridge_Id__c", "type": "text", "external_id": True},
    )
    for first, last, email, tier in SALESFORCE_CONTACTS:
        _post(
            client,
            control + "/records/Contact",
            {"FirstName": first, "LastName": last, "Email": email, "Tier__c": tier},
        )
    _post(
        client,
        control + "/records/Lead",
        {
            "FirstName": "Erin",
            "LastName": "Prospect",
            "Company": "Prospects Ltd",
            "Email": "erin@prospect.example",
        },
    )
    _post(client, control + "/records/Campaign", {"Name": "Spring launch", "Type": "Email", "IsActive": True})
    fields = ["FirstName", "LastName", "Email", "Tier__c"]
    _post(
        client,
        control + "/outbound",
        {"object": "Contact", "fields": fields, "endpoint_url": runner + "/webhooks/salesforce"},
    )


def seed_hubspot(client: httpx.Client, control: str, runner: str) -> None:
    _post(
        client,
        control + "/properties/contacts",
        {
            "name": "mailbridge_tier",
            "label": "Tier",
            "type": "enumeration",
            "fieldType": "select",
            "options": ["gold", "silver"],
        },
    )
    for first, last, email, tier in HUBSPOT_CONTACTS:
        _post(
            client,
            control + "/objects/contacts",
            {"properties": {"firstname": first, "lastname": last, "email": email, "mailbridge_tier": tier}},
        )
    _post(
        client,
        control + "/objects/companies",
        {"properties": {"name": "Customer Inc", "domain": "customer.example"}},
    )
    _post(client, control + "/webhooks/target", {"url": runner + "/webhooks/hubspot"})
    for event, name in [("contact.creation", None), ("contact.deletion", None)] + [
        ("contact.propertyChange", n) for n in ("email", "firstname", "lastname")
    ]:
        _post(client, control + "/webhooks/subscriptions", {"eventType": event, "propertyName": name})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.crm_seed", description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("salesforce", "hubspot"), required=True)
    args = parser.parse_args(argv)
    try:
        state = json.loads(STATE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        print("No CRM doubles found: start `make run` first.", file=sys.stderr)
        return 1
    urls = state[args.provider]
    with httpx.Client(timeout=10, trust_env=False) as client:
        try:
            client.get(urls["control"]).raise_for_status()
        except httpx.HTTPError:
            print(
                f"The {args.provider} double at {urls['control']} does not answer: is `make run` running?",
                file=sys.stderr,
            )
            return 1
        (seed_salesforce if args.provider == "salesforce" else seed_hubspot)(
            client, urls["control"], state["runner"]
        )
    api = state["runner"]
    auth = '-H "Authorization: Bearer $TOKEN"'
    print(f"Seeded the {args.provider} double ({urls['control']}).")
    print("Connect it (TOKEN=$(make -s token ROLE=admin)):")
    if args.provider == "salesforce":
        print(f'  curl -s -X POST {auth} -d \'{{"provider":"salesforce"}}\' {api}/crm/integrations/device')
        print(f'  curl -s -X POST -d \'{{"user_code":"<user_code>"}}\' {urls["control"]}/device/approve')
        print(f"  curl -s -X POST {auth} {api}/crm/integrations/<integration_id>/device/poll")
    else:
        print(f'  curl -s -X POST {auth} -d \'{{"provider":"hubspot"}}\' {api}/crm/integrations')
        print("  then open the authorization_url it answers (the double installs at once and redirects back)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
