"""Connecting Salesforce and HubSpot through the api and oauth functions on moto, with the local
doubles as the CRMs: the web server flow with PKCE, the device flow, HubSpot's code flow, tokens
sealed and refreshed (revoked -> reauth_required + event), one org per tenant, tenancy, removal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailbridge.crm.integrations.models import RemoteLink
from mailbridge.crm.integrations.service import provider_for
from mailbridge.crm.integrations.wiring import integration_deps
from mailbridge.errors import ProviderAuthError
from mailbridge.store.oauth_states import state_pk
from tests.emf import emitted
from tests.events import load_event
from tests.fixtures.aws import BusReader
from tests.integration.crm_integrations_harness import HTTP, TENANT, CrmStack, crm_stack, query_of

__all__ = ["crm_stack"]


def refresh_works(crm: CrmStack, refresh_token: str) -> bool:
    answer = HTTP.post(
        crm.salesforce.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": crm.sf_app.client_id,
            "client_secret": crm.sf_app.client_secret,
        },
    )
    return answer.status_code == 200


def start_device(crm: CrmStack, tenant: str = TENANT) -> dict[str, Any]:
    started = crm.api("crm-start-device-flow", role="member", tenant=tenant, body={"provider": "salesforce"})
    assert started["statusCode"] == 201, started
    body: dict[str, Any] = crm.body(started)
    return body


def poll(crm: CrmStack, integration_id: str, tenant: str = TENANT) -> dict[str, Any]:
    response = crm.api("crm-poll-device-flow", integration_id, role="member", tenant=tenant)
    assert response["statusCode"] == 200, response
    body: dict[str, Any] = crm.body(response)
    return body


def connect_by_device(crm: CrmStack, tenant: str = TENANT) -> str:
    started = start_device(crm, tenant)
    crm.salesforce.approve_device(started["user_code"])
    crm.clock.advance(started["interval"])
    answer = poll(crm, started["integration"]["integration_id"], tenant)
    assert answer["status"] == "connected", answer
    return str(started["integration"]["integration_id"])


# ---------------------------------------------------------------------------------- web server flow


def test_salesforce_web_server_flow_connects_the_org_with_sealed_working_tokens(crm_stack: CrmStack) -> None:
    # Given an admin who starts a Salesforce connection
    started = crm_stack.start("salesforce")
    assert started["integration"]["state"] == "pending"
    params = query_of(started["authorization_url"])
    assert (params["code_challenge_method"], params["client_id"]) == ("S256", crm_stack.sf_app.client_id)

    # When the user consents at Salesforce and the browser comes back to the callback
    outcome = crm_stack.callback(crm_stack.consent(started["authorization_url"]))

    # Then the integration is connected to the org named by the identity URL, on its instance
    assert outcome["outcome"] == "connected"
    integration = crm_stack.integration(outcome["integration_id"])
    assert (integration["state"], integration["org_id"], integration["instance_url"]) == (
        "connected",
        crm_stack.salesforce.org_id,
        crm_stack.salesforce.instance_url,
    )
    # And the tokens are a KMS envelope (context tenant + integration) whose refresh token works
    item = crm_stack.token_item(outcome["integration_id"])
    assert item is not None
    assert set(item["credentials"]) == {"v", "encrypted_key", "nonce", "ciphertext"}
    sealed = crm_stack.sealed_tokens(outcome["integration_id"])
    assert refresh_works(crm_stack, sealed["refresh_token"])
    assert sealed["refresh_token"] not in str(integration)
    assert sealed["access_token"] not in str(integration)


def test_the_double_checks_the_pkce_verifier_kept_with_the_state(crm_stack: CrmStack) -> None:
    # Given a consent whose stored verifier no longer matches the challenge sent to Salesforce
    started = crm_stack.start("salesforce")
    params = crm_stack.consent(started["authorization_url"])
    accounts = crm_stack.stack.table("AccountsTable")
    key = {"pk": state_pk(params["state"]), "sk": "STATE"}
    item = accounts.get_item(Key=key)["Item"]
    item["state"]["code_verifier"] = "x" * 64
    accounts.put_item(Item=item)

    # When the callback exchanges the code
    outcome = crm_stack.callback(params)

    # Then Salesforce refuses the exchange and the integration fails with that reason
    assert outcome == {
        "outcome": "error",
        "code": "exchange_failed",
        "integration_id": started["integration"]["integration_id"],
    }
    integration = crm_stack.integration(started["integration"]["integration_id"])
    assert (integration["state"], integration["reason"]) == ("failed", "exchange_failed")


def test_the_callback_is_audited_as_the_admin_who_started_it_without_code_or_tokens(
    crm_stack: CrmStack,
) -> None:
    # Given two Salesforce connections started by the admin: one consented, one whose exchange
    # Salesforce refuses (its stored verifier no longer matches)
    good = crm_stack.start("salesforce")
    good_params = crm_stack.consent(good["authorization_url"])
    assert crm_stack.callback(good_params)["outcome"] == "connected"
    crm_stack.api("crm-delete-integration", good["integration"]["integration_id"], role="admin")
    bad = crm_stack.start("salesforce")
    bad_params = crm_stack.consent(bad["authorization_url"])
    accounts = crm_stack.stack.table("AccountsTable")
    item = accounts.get_item(Key={"pk": state_pk(bad_params["state"]), "sk": "STATE"})["Item"]
    item["state"]["code_verifier"] = "x" * 64
    accounts.put_item(Item=item)
    # When the second comes back
    assert crm_stack.callback(bad_params)["code"] == "exchange_failed"
    # Then each callback is an audited write by the admin's sub (the sample events' user), with the
    # provider, the integration, the outcome and its code
    entries = [
        e
        for e in crm_stack.stack.table("AuditTable").query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"TENANT#{TENANT}"}
        )["Items"]
        if str(e["action"]).startswith("finish_authorization")
    ]
    actor = load_event("api/get-me.json")["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    assert sorted(
        (e["actor"], e["kind"], e["outcome"], e.get("error_code"), e["resource_ids"]["integration_id"])
        for e in entries
    ) == [
        (actor, "write", "failure", "exchange_failed", bad["integration"]["integration_id"]),
        (actor, "write", "success", None, good["integration"]["integration_id"]),
    ]
    assert {e["resource_ids"]["provider"] for e in entries} == {"salesforce"}
    # And no entry holds a code, a state or a token
    text = json.dumps(entries, default=str)
    assert [v for v in (*good_params.values(), *bad_params.values()) if len(v) > 12 and v in text] == []


def test_a_forged_state_is_refused(crm_stack: CrmStack) -> None:
    # Given a consent whose state was replaced by a forger
    started = crm_stack.start("salesforce")
    params = {**crm_stack.consent(started["authorization_url"]), "state": "forged-state-value"}

    # When the callback arrives
    outcome = crm_stack.callback(params)

    # Then it is refused and the integration stays pending
    assert outcome == {"outcome": "error", "code": "invalid_state"}
    assert crm_stack.integration(started["integration"]["integration_id"])["state"] == "pending"


def test_a_state_is_single_use(crm_stack: CrmStack) -> None:
    # Given a consent whose callback already connected the org
    started = crm_stack.start("salesforce")
    params = crm_stack.consent(started["authorization_url"])
    assert crm_stack.callback(params)["outcome"] == "connected"

    # When the same callback is replayed
    replay = crm_stack.callback(params)

    # Then it is refused
    assert replay == {"outcome": "error", "code": "invalid_state"}


def test_an_expired_state_is_refused(crm_stack: CrmStack) -> None:
    # Given a consent that comes back eleven minutes after the start
    from mailbridge.oauth.wiring import oauth_deps

    started = crm_stack.start("salesforce")
    params = crm_stack.consent(started["authorization_url"])
    deps = oauth_deps()
    later = deps.now() + timedelta(minutes=11)
    deps.now = lambda: later

    # When the callback arrives
    outcome = crm_stack.callback(params)

    # Then the state is expired and nothing is connected
    assert outcome == {"outcome": "error", "code": "state_expired"}
    assert crm_stack.integration(started["integration"]["integration_id"])["state"] == "pending"


def test_a_provider_unconfigured_since_the_start_fails_the_integration(
    crm_stack: CrmStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a consent started while Salesforce was set up, whose client secret is gone since
    from mailbridge.config import get_settings
    from mailbridge.crm.integrations.wiring import crm_oauth

    started = crm_stack.start("salesforce")
    params = crm_stack.consent(started["authorization_url"])
    monkeypatch.setenv("SALESFORCE_CLIENT_SECRET_ARN", "")
    get_settings.cache_clear()
    crm_oauth.cache_clear()

    # When the callback arrives
    outcome = crm_stack.callback(params)

    # Then it is refused with that code and the integration fails with it
    assert (outcome["outcome"], outcome["code"]) == ("error", "provider_not_configured")
    integration = crm_stack.integration(started["integration"]["integration_id"])
    assert (integration["state"], integration["reason"]) == ("failed", "provider_not_configured")


def test_a_member_cannot_start_a_connection(crm_stack: CrmStack) -> None:
    # When a member (not an admin) posts a new integration
    response = crm_stack.api("crm-create-integration", role="member", body={"provider": "salesforce"})

    # Then it is forbidden
    assert response["statusCode"] == 403
    assert crm_stack.body(response)["error"]["code"] == "role_required"


# ---------------------------------------------------------------------------------- HubSpot


def test_hubspot_code_flow_connects_the_portal_from_the_token_metadata(crm_stack: CrmStack) -> None:
    # When an admin connects HubSpot through the consent and the callback
    integration_id = crm_stack.connect("hubspot")

    # Then the integration holds the portal (hub_id, hub_domain) from /oauth/v1/access-tokens/{token}
    integration = crm_stack.integration(integration_id)
    assert (integration["state"], integration["org_id"]) == ("connected", str(crm_stack.hubspot.portal_id))
    assert integration["org_name"] == crm_stack.hubspot.oauth.hub_domain
    # And its refresh token is sealed and live at HubSpot
    refresh = crm_stack.sealed_tokens(integration_id)["refresh_token"]
    assert crm_stack.hubspot.oauth.refresh_info(refresh) is not None


# ---------------------------------------------------------------------------------- device flow


def test_device_flow_pending_then_approved_connects_and_lists_the_org(crm_stack: CrmStack) -> None:
    # Given a member who starts the device flow
    started = start_device(crm_stack)
    integration_id = started["integration"]["integration_id"]
    assert (started["verification_uri"], started["interval"]) == (crm_stack.salesforce.verification_url, 5)
    assert started["expires_in"] > 0
    assert started["user_code"]

    # When they poll before the user approved
    crm_stack.clock.advance(5)
    pending = poll(crm_stack, integration_id)

    # Then the answer is authorization_pending
    assert (pending["status"], pending["integration"]["state"]) == ("authorization_pending", "pending")

    # When the user approves at Salesforce and the next poll comes after the interval
    crm_stack.salesforce.approve_device(started["user_code"])
    crm_stack.clock.advance(5)
    connected = poll(crm_stack, integration_id)

    # Then the integration is connected and GET /crm/orgs lists the org
    assert connected["status"] == "connected"
    orgs = crm_stack.body(crm_stack.api("crm-list-orgs", role="member"))["items"]
    assert orgs == [
        {
            "integration_id": integration_id,
            "provider": "salesforce",
            "org_id": crm_stack.salesforce.org_id,
            "instance_url": crm_stack.salesforce.instance_url,
            "name": None,
            "state": "connected",
        }
    ]


def test_device_flow_polling_too_early_is_slowed_down_without_asking_salesforce(crm_stack: CrmStack) -> None:
    # Given a device authorization just polled
    started = start_device(crm_stack)
    integration_id = started["integration"]["integration_id"]
    assert poll(crm_stack, integration_id)["status"] == "authorization_pending"
    polls_before = crm_stack.salesforce.oauth.devices
    last_poll = next(iter(polls_before.values())).last_poll

    # When the client polls again a second later, within the interval
    crm_stack.clock.advance(1)
    again = poll(crm_stack, integration_id)

    # Then it is told to slow down at the same interval and Salesforce was not asked
    assert (again["status"], again["interval"]) == ("slow_down", 5)
    assert next(iter(crm_stack.salesforce.oauth.devices.values())).last_poll == last_poll


def test_device_flow_slow_down_from_salesforce_grows_the_interval(crm_stack: CrmStack) -> None:
    # Given a device authorization polled once, whose poll-after mark is lost (another container)
    started = start_device(crm_stack)
    integration_id = started["integration"]["integration_id"]
    assert poll(crm_stack, integration_id)["status"] == "authorization_pending"
    crm_stack.stack.table("CrmTable").update_item(
        Key={"pk": f"TENANT#{TENANT}", "sk": f"CRMTOKEN#{integration_id}"},
        UpdateExpression="SET poll_after = :zero",
        ExpressionAttributeValues={":zero": 0},
    )

    # When the client polls again at once and Salesforce answers slow_down
    slowed = poll(crm_stack, integration_id)

    # Then the interval grows by 5 seconds (RFC 8628 section 3.5) and is kept
    assert (slowed["status"], slowed["interval"]) == ("slow_down", 10)
    crm_stack.clock.advance(5)
    assert poll(crm_stack, integration_id)["status"] == "slow_down"
    crm_stack.clock.advance(5)
    assert poll(crm_stack, integration_id)["status"] == "authorization_pending"


def test_device_flow_expired_code_fails_the_integration(crm_stack: CrmStack) -> None:
    # Given a device authorization nobody approved for eleven minutes
    started = start_device(crm_stack)
    integration_id = started["integration"]["integration_id"]
    crm_stack.clock.advance(11 * 60)

    # When the client polls
    answer = poll(crm_stack, integration_id)

    # Then the integration failed with expired_token
    assert answer["status"] == "failed"
    assert (answer["integration"]["state"], answer["integration"]["reason"]) == ("failed", "expired_token")


def test_device_flow_expired_at_salesforce_fails_the_integration(crm_stack: CrmStack) -> None:
    # Given a device code Salesforce considers expired while our record does not yet
    started = start_device(crm_stack)
    integration_id = started["integration"]["integration_id"]
    for device in crm_stack.salesforce.oauth.devices.values():
        device.expires = crm_stack.clock.now()

    # When the client polls
    answer = poll(crm_stack, integration_id)

    # Then Salesforce's invalid_grant is the expired_token failure
    assert (answer["status"], answer["integration"]["reason"]) == ("failed", "expired_token")


def test_device_flow_denied_fails_with_access_denied(crm_stack: CrmStack) -> None:
    # Given a user who denies the app on the verification page
    started = start_device(crm_stack)
    crm_stack.salesforce.approve_device(started["user_code"], deny=True)

    # When the client polls
    answer = poll(crm_stack, started["integration"]["integration_id"])

    # Then the integration failed with access_denied
    assert (answer["status"], answer["integration"]["reason"]) == ("failed", "access_denied")


def test_hubspot_has_no_device_flow(crm_stack: CrmStack) -> None:
    response = crm_stack.api("crm-start-device-flow", role="member", body={"provider": "hubspot"})
    assert response["statusCode"] == 400
    assert crm_stack.body(response)["error"]["code"] == "device_flow_unsupported"


# ---------------------------------------------------------------------------------- one org per tenant


def test_the_same_org_twice_in_one_tenant_is_409_already_connected(crm_stack: CrmStack) -> None:
    # Given an org connected by the device flow
    first = connect_by_device(crm_stack)

    # When the same org is connected again by the device flow
    started = start_device(crm_stack)
    crm_stack.salesforce.approve_device(started["user_code"])
    crm_stack.clock.advance(5)
    response = crm_stack.api("crm-poll-device-flow", started["integration"]["integration_id"], role="member")

    # Then it is 409 already_connected, the second integration failed, and its new grant revoked
    assert response["statusCode"] == 409
    assert crm_stack.body(response)["error"]["code"] == "already_connected"
    second = crm_stack.integration(started["integration"]["integration_id"])
    assert (second["state"], second["reason"]) == ("failed", "already_connected")
    # And by the web server flow the callback answers the same code
    web = crm_stack.start("salesforce")
    outcome = crm_stack.callback(crm_stack.consent(web["authorization_url"]))
    assert (outcome["outcome"], outcome["code"]) == ("error", "already_connected")
    # And the lookup for webhooks still names the first integration only
    store = integration_deps().store
    assert store.integrations_for_org("salesforce", crm_stack.salesforce.org_id) == [(TENANT, first)]


def test_another_tenant_may_connect_the_same_org(crm_stack: CrmStack) -> None:
    first = connect_by_device(crm_stack)
    other = connect_by_device(crm_stack, tenant="globex")
    store = integration_deps().store
    assert sorted(store.integrations_for_org("salesforce", crm_stack.salesforce.org_id)) == sorted(
        [(TENANT, first), ("globex", other)]
    )


@pytest.mark.parametrize(
    "route",
    [
        "crm-get-integration",
        "crm-delete-integration",
        "crm-list-sync-logs",
        "crm-get-sync-status",
        "crm-reconnect-integration",
    ],
)
def test_another_tenants_integration_is_404(crm_stack: CrmStack, route: str) -> None:
    # Given an integration of another tenant
    integration_id = connect_by_device(crm_stack, tenant="globex")

    # When this tenant's admin names it
    response = crm_stack.api(route, integration_id, role="admin")

    # Then it is not found, and it is untouched
    assert response["statusCode"] == 404
    assert crm_stack.body(response)["error"]["code"] == "integration_not_found"
    assert crm_stack.integration(integration_id, tenant="globex")["state"] == "connected"


# ---------------------------------------------------------------------------------- tokens


def test_provider_for_reads_a_contact_with_the_stored_token(crm_stack: CrmStack) -> None:
    # Given a connected org with a contact
    integration_id = connect_by_device(crm_stack)
    contact_id = crm_stack.salesforce.create("Contact", LastName="Lovelace", Email="ada@example.com")

    # When the sync asks for the adapter
    adapter = provider_for(integration_deps(), TENANT, integration_id)

    # Then it reads the contact from the org
    contact = adapter.get_contact(contact_id, ["LastName", "Email"])
    assert contact is not None
    assert contact.fields["LastName"] == "Lovelace"


def test_an_expired_session_is_refreshed_and_stored(crm_stack: CrmStack) -> None:
    # Given a connected org whose sessions all timed out
    integration_id = connect_by_device(crm_stack)
    contact_id = crm_stack.salesforce.create("Contact", LastName="Hopper")
    before = crm_stack.sealed_tokens(integration_id)
    crm_stack.salesforce.oauth.expire_sessions()

    # When the adapter reads (401 -> refresh -> retry)
    contact = provider_for(integration_deps(), TENANT, integration_id).get_contact(contact_id, ["LastName"])

    # Then the read succeeds and the new access token is sealed in place of the old one
    assert contact is not None
    after = crm_stack.sealed_tokens(integration_id)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] == before["refresh_token"]
    assert "lease_until" not in (crm_stack.token_item(integration_id) or {})


def test_a_revoked_refresh_token_marks_reauth_required_and_announces_it(
    crm_stack: CrmStack, bus_probe: BusReader, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a connected org whose admin revoked the app (sessions and refresh tokens die)
    integration_id = connect_by_device(crm_stack)
    contact_id = crm_stack.salesforce.create("Contact", LastName="Turing")
    crm_stack.salesforce.oauth.revoke_all()
    adapter = provider_for(integration_deps(), TENANT, integration_id)

    # When the adapter reads (401 -> refresh refused)
    with pytest.raises(ProviderAuthError) as raised:
        adapter.get_contact(contact_id, ["LastName"])

    # Then it is reauth_required, the integration says so, and the event went out once
    assert raised.value.code == "reauth_required"
    assert crm_stack.integration(integration_id)["state"] == "reauth_required"
    events = [e for e in bus_probe() if e["detail-type"] == "crm.integration.reauth_required"]
    assert [e["detail"]["data"]["integration_id"] for e in events] == [integration_id]
    # And the token refresh alarm's TokenRefreshFailed counts it once, as revoked
    failed = emitted(capsys.readouterr().out, "TokenRefreshFailed")
    assert [(r["dimensions"]["provider"], r["dimensions"]["reason"]) for r in failed] == [
        ("salesforce", "revoked")
    ]
    # And the next request for an adapter is refused without asking Salesforce
    with pytest.raises(ProviderAuthError):
        provider_for(integration_deps(), TENANT, integration_id)
    assert [e for e in bus_probe() if e["detail-type"] == "crm.integration.reauth_required"] == []


def test_a_refresh_in_flight_elsewhere_is_waited_for_not_repeated(crm_stack: CrmStack) -> None:
    # Given a connected org whose refresh lease another container holds
    from mailbridge.crm.integrations.service import access_token

    integration_id = connect_by_device(crm_stack)
    deps = integration_deps()
    now = int(crm_stack.clock.now().timestamp())
    assert deps.store.take_lease(TENANT, integration_id, now=now, seconds=30)
    integration = deps.store.get_integration(TENANT, integration_id)
    refreshes_before = len(crm_stack.salesforce.oauth.access_tokens)

    def other_container_stores(_seconds: float) -> None:
        from mailbridge import crypto
        from mailbridge.crm.integrations.service import _seal

        sealed = crypto.Envelope.model_validate(
            _seal({"refresh_token": "r", "access_token": "from-the-other"}, TENANT, integration_id, deps)
        )
        deps.store.store_tokens(TENANT, integration_id, sealed, now + 7200)

    deps.sleep = other_container_stores

    # When this container needs a fresh token too
    token = access_token(integration, deps, force_refresh=True)

    # Then it takes the token the lease holder stored, and Salesforce issued none for it
    assert token == "from-the-other"
    assert len(crm_stack.salesforce.oauth.access_tokens) == refreshes_before


# ---------------------------------------------------------------------------------- listing, removal


def test_integrations_are_listed_in_pages(crm_stack: CrmStack) -> None:
    # Given three integrations
    ids = [crm_stack.start("salesforce")["integration"]["integration_id"] for _ in range(3)]

    # When a member lists them two at a time
    first = crm_stack.body(crm_stack.api("crm-list-integrations", role="member", query={"limit": "2"}))
    second = crm_stack.body(
        crm_stack.api(
            "crm-list-integrations", role="member", query={"limit": "2", "cursor": first["next_cursor"]}
        )
    )

    # Then every one is listed once
    listed = [i["integration_id"] for i in first["items"] + second["items"]]
    assert sorted(listed) == sorted(ids)
    assert second["next_cursor"] is None


def test_delete_revokes_the_grant_and_removes_the_tokens_and_the_org(crm_stack: CrmStack) -> None:
    # Given a connected org
    integration_id = connect_by_device(crm_stack)
    refresh = crm_stack.sealed_tokens(integration_id)["refresh_token"]
    # and a contact linked to one of its records
    linked = RemoteLink(
        integration_id=integration_id, contact_id="ct_1", remote_id="003A", synced_at=datetime.now(UTC)
    )
    integration_deps().remote_ids.put(TENANT, [linked])

    # When an admin deletes the integration
    response = crm_stack.api("crm-delete-integration", integration_id, role="admin")

    # Then the refresh token is revoked at Salesforce and nothing of it is left here
    assert response["statusCode"] == 200, response
    assert not refresh_works(crm_stack, refresh)
    assert crm_stack.token_item(integration_id) is None
    assert crm_stack.api("crm-get-integration", integration_id, role="member")["statusCode"] == 404
    assert crm_stack.body(crm_stack.api("crm-list-orgs", role="member"))["items"] == []
    assert integration_deps().store.integrations_for_org("salesforce", crm_stack.salesforce.org_id) == []
    assert integration_deps().remote_ids.by_contacts(TENANT, integration_id, ["ct_1"]) == {}


# ---------------------------------------------------------------------------------- reconnecting


def revoked(crm: CrmStack, integration_id: str) -> None:
    """The org's admin revoked the app; the next request marks the integration reauth_required."""
    crm.salesforce.oauth.revoke_all()
    with pytest.raises(ProviderAuthError):
        provider_for(integration_deps(), TENANT, integration_id).get_contact(
            "003000000000000AAA", ["LastName"]
        )
    assert crm.integration(integration_id)["state"] == "reauth_required"


def test_a_reauth_required_integration_is_reconnected_in_place(crm_stack: CrmStack) -> None:
    # Given a connected org with a contact linked to one of its records, whose admin revoked the app
    integration_id = crm_stack.connect("salesforce")
    contact_id = crm_stack.salesforce.create("Contact", LastName="Hopper")
    linked = RemoteLink(
        integration_id=integration_id, contact_id="ct_1", remote_id=contact_id, synced_at=datetime.now(UTC)
    )
    integration_deps().remote_ids.put(TENANT, [linked])
    revoked(crm_stack, integration_id)

    # When an admin reconnects it and consents again
    response = crm_stack.api("crm-reconnect-integration", integration_id, role="admin")
    assert response["statusCode"] == 200, response
    started = crm_stack.body(response)
    assert started["integration"]["state"] == "pending"
    assert crm_stack.integration(integration_id)["state"] == "pending"
    outcome = crm_stack.callback(crm_stack.consent(started["authorization_url"]))

    # Then the same integration is connected again: no second one, its link kept, its tokens working
    assert (outcome["outcome"], outcome["integration_id"]) == ("connected", integration_id)
    listed = crm_stack.body(crm_stack.api("crm-list-integrations", role="member"))["items"]
    assert [(i["integration_id"], i["state"]) for i in listed] == [(integration_id, "connected")]
    assert integration_deps().remote_ids.by_contacts(TENANT, integration_id, ["ct_1"]) == {"ct_1": linked}
    adapter = provider_for(integration_deps(), TENANT, integration_id)
    assert adapter.get_contact(contact_id, ["LastName"]) is not None
    assert integration_deps().store.integrations_for_org("salesforce", crm_stack.salesforce.org_id) == [
        (TENANT, integration_id)
    ]


def test_a_reconnect_consented_in_another_org_fails_with_org_mismatch(crm_stack: CrmStack) -> None:
    # Given a reauth_required integration
    integration_id = crm_stack.connect("salesforce")
    revoked(crm_stack, integration_id)
    started = crm_stack.body(crm_stack.api("crm-reconnect-integration", integration_id, role="admin"))

    # When the user consents signed in to another org
    crm_stack.salesforce.oauth.org_id = "00D5g000009OTHRAAA"
    outcome = crm_stack.callback(crm_stack.consent(started["authorization_url"]))

    # Then the integration failed with org_mismatch, and the other org's grant was revoked
    assert (outcome["outcome"], outcome["code"]) == ("error", "org_mismatch")
    stored = crm_stack.integration(integration_id)
    assert (stored["state"], stored["reason"]) == ("failed", "org_mismatch")
    assert [t for t in crm_stack.salesforce.oauth.refresh_tokens.values() if not t.revoked] == []


def test_only_a_reauth_required_or_failed_integration_is_reconnected_and_only_by_an_admin(
    crm_stack: CrmStack,
) -> None:
    integration_id = crm_stack.connect("salesforce")
    # A member may not
    member = crm_stack.api("crm-reconnect-integration", integration_id, role="member")
    assert member["statusCode"] == 403, member
    # A connected one is 409 not_reconnectable, and stays connected
    connected = crm_stack.api("crm-reconnect-integration", integration_id, role="admin")
    assert connected["statusCode"] == 409, connected
    assert crm_stack.body(connected)["error"]["code"] == "not_reconnectable"
    assert crm_stack.integration(integration_id)["state"] == "connected"
    # A pending one (a reconnect under way) too
    revoked(crm_stack, integration_id)
    assert crm_stack.api("crm-reconnect-integration", integration_id, role="admin")["statusCode"] == 200
    again = crm_stack.api("crm-reconnect-integration", integration_id, role="admin")
    assert (again["statusCode"], crm_stack.body(again)["error"]["code"]) == (409, "not_reconnectable")
