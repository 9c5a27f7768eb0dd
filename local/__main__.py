"""`python -m local` (what `make run` calls): the whole system on 127.0.0.1:$PORT until Ctrl-C,
its WebSocket API on 127.0.0.1:$WEBSOCKET_PORT (default $PORT + 1: 3001; a free one with PORT=0),
with the Google double (local/google) standing in for Google on 127.0.0.1:$GOOGLE_PORT and the
Microsoft double (local/microsoft, HTTPS with its own CA) for Microsoft on 127.0.0.1:$MICROSOFT_PORT
and the Bedrock Converse double (local/bedrock) for Amazon Bedrock on 127.0.0.1:$BEDROCK_PORT,
and the company enrichment double (local/enrichment, People Data Labs' shape) on
127.0.0.1:$ENRICHMENT_PORT (a tenant points its `PUT /ai/enrichment` setting at it), and the
Salesforce and HubSpot doubles (local/salesforce, local/hubspot) on $SALESFORCE_PORT / $HUBSPOT_PORT
for the CRM integrations (local/crm_wiring.py)."""

from __future__ import annotations

import json
import logging
import os
import sys

from local import interrupt
from local.bedrock import BedrockDouble
from local.crm_wiring import write_state as write_crm_state
from local.enrichment import EnrichmentDouble
from local.google import GoogleDouble
from local.google_wiring import write_state
from local.hubspot import HubSpotDouble
from local.microsoft import MicrosoftDouble
from local.microsoft_wiring import write_state as write_microsoft_state
from local.runner import Runner
from local.salesforce import SalesforceDouble
from local.watch import websocket_port_for

# Local development talks to mail servers on loopback (`make mailbox`), possibly without TLS;
# a deployed stack keeps the template default ("false").
LOCAL_PARAMETERS = {"AllowPrivateMailHosts": "true"}


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = int(os.environ.get("PORT", "3000"))
    google_port = int(os.environ.get("GOOGLE_PORT", "0"))
    microsoft_port = int(os.environ.get("MICROSOFT_PORT", "0"))
    bedrock_port = int(os.environ.get("BEDROCK_PORT", "0"))
    enrichment_port = int(os.environ.get("ENRICHMENT_PORT", "0"))
    salesforce_port = int(os.environ.get("SALESFORCE_PORT", "0"))
    hubspot_port = int(os.environ.get("HUBSPOT_PORT", "0"))
    websocket_port = websocket_port_for(port)
    interrupt.install()
    with (
        GoogleDouble(port=google_port) as google,
        MicrosoftDouble(port=microsoft_port) as microsoft,
        BedrockDouble(port=bedrock_port) as bedrock,
        EnrichmentDouble(port=enrichment_port) as enrichment,
        SalesforceDouble(port=salesforce_port) as salesforce,
        HubSpotDouble(port=hubspot_port) as hubspot,
        Runner(
            port=port,
            warm=True,
            parameters=LOCAL_PARAMETERS,
            google=google,
            microsoft=microsoft,
            # The functions' bedrock-runtime client goes to the double (the setting's default is AWS).
            environment={"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.base_url},
            websocket_port=websocket_port,
            salesforce=salesforce,
            hubspot=hubspot,
        ) as runner,
    ):
        write_state(google, runner.url)
        write_microsoft_state(microsoft, runner.url)
        write_crm_state(salesforce, hubspot, runner.url)
        token = runner.token(tenant="demo", role="owner")
        print(f"\nmailbridge is running on {runner.url} (AWS APIs: moto at {runner.endpoint_url})")
        print(f"\nBearer token (tenant demo, role owner):\n{token}\n")
        print("In another shell (a token for another tenant or role: make -s token TENANT=acme ROLE=admin):")
        print(f"  export API={runner.url} TOKEN=$(make -s token)")
        print('  curl -s "$API/health"')
        print('  curl -s -H "Authorization: Bearer $TOKEN" "$API/me"\n')
        print(f"Real-time updates (WebSocket API) at {runner.websocket_url}:")
        print("  make watch   prints every frame the demo owner receives\n")
        print(f"Google double (OAuth, Gmail, Pub/Sub push to this runner) at {google.base_url}:")
        print("  make mailbox PROVIDER=gmail   seeds a Gmail mailbox and prints how to connect it\n")
        print(
            f"Microsoft double (identity platform, Graph, webhooks to this runner) at {microsoft.base_url}:"
        )
        print("  make mailbox PROVIDER=graph   seeds a Microsoft 365 mailbox and prints how to connect it\n")
        print(f"Bedrock Converse double (PUT /ai/bedrock switches a tenant on) at {bedrock.base_url}\n")
        print(f"Salesforce double (OAuth web and device flows, REST, Bulk API 2.0) at {salesforce.base_url}:")
        print('  POST $API/crm/integrations/device {"provider": "salesforce"}, then approve its user_code')
        print(f"  at {salesforce.base_url}/__double__/device/approve and POST .../device/poll")
        print(f"HubSpot double (OAuth, CRM v3) at {hubspot.base_url}: POST $API/crm/integrations\n")
        setting = json.dumps(
            {"enabled": True, "base_url": enrichment.base_url, "api_key": enrichment.api_key}
        )
        print(f"Company enrichment double (People Data Labs' shape) at {enrichment.base_url}:")
        print(f'  curl -s -X PUT -H "Authorization: Bearer $TOKEN" "$API/ai/enrichment" -d \'{setting}\'\n')
        print("Ctrl-C to stop.", flush=True)
        try:
            interrupt.wait_for_interrupt()
        except KeyboardInterrupt:
            print("\nstopping...")
    # Everything is stopped now (sandboxes killed, servers closed, moto stopped). The interpreter's
    # own teardown would garbage-collect moto's whole in-memory state (every table, object and
    # message of the session), which took 20-30 s on a busy machine: exit without it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
