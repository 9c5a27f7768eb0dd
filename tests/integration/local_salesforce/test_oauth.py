"""OAuth 2.0 on the Salesforce double: web server flow with PKCE, refresh, revoke, the device flow."""

from __future__ import annotations

import base64
import hashlib
import hmac

from local.clock import ManualClock
from local.salesforce import SalesforceDouble
from local.salesforce.oauth import ConnectedApp
from tests.integration.local_salesforce.conftest import (
    CALLBACK,
    HTTP,
    Pkce,
    Rest,
    authorize,
    connect,
    redirect_params,
)


def test_web_server_flow_with_pkce_answers_salesforce_token_fields(
    salesforce: SalesforceDouble, app: ConnectedApp
):
    # Given a connected app
    # When the user approves and the code is exchanged with its verifier
    token = connect(salesforce, app)
    # Then the answer has every Salesforce token field, the identity URL names the org and user,
    # and the signature is base64 HMAC-SHA256(consumer secret, id + issued_at)
    assert set(token) == {
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert token["token_type"] == "Bearer"
    assert token["instance_url"] == salesforce.instance_url
    assert token["id"].endswith(f"/id/{salesforce.org_id}/{salesforce.user_id}")
    assert token["access_token"].startswith(salesforce.org_id[:15] + "!")
    expected = hmac.new(
        app.client_secret.encode(), (token["id"] + token["issued_at"]).encode(), hashlib.sha256
    )
    assert token["signature"] == base64.b64encode(expected.digest()).decode()
    assert Rest(salesforce, token["access_token"]).get("/limits").status_code == 200


def test_wrong_verifier_and_reused_code_are_invalid_grant(salesforce: SalesforceDouble, app: ConnectedApp):
    # Given a code issued for a PKCE challenge
    pkce = Pkce()
    code = redirect_params(authorize(salesforce, app, pkce))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": CALLBACK,
    }
    # When it is exchanged with another verifier, then with the right one twice
    wrong = HTTP.post(salesforce.token_url, data=form | {"code_verifier": Pkce().verifier})
    right = HTTP.post(salesforce.token_url, data=form | {"code_verifier": pkce.verifier})
    again = HTTP.post(salesforce.token_url, data=form | {"code_verifier": pkce.verifier})
    # Then Salesforce's OAuth error shape says why
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "invalid code verifier"},
    )
    assert right.status_code == 200
    assert again.json() == {"error": "invalid_grant", "error_description": "invalid authorization code"}


def test_authorize_errors_page_or_redirect(salesforce: SalesforceDouble, app: ConnectedApp):
    # Given an unknown client, an unregistered callback, and a user who denies
    unknown = HTTP.get(
        salesforce.authorize_url,
        params={"response_type": "code", "client_id": "nope", "redirect_uri": CALLBACK},
    )
    elsewhere = authorize(salesforce, app, None, redirect_uri="https://attacker.example/cb")
    salesforce.deny_consent()
    denied = authorize(salesforce, app, None)
    # Then the first two get an error page (no redirect), the denial comes back to the app
    assert unknown.status_code == 400
    assert "invalid_client_id" in unknown.text
    assert elsewhere.status_code == 400
    assert "redirect_uri_mismatch" in elsewhere.text
    assert redirect_params(denied) == {
        "error": "access_denied",
        "error_description": "end-user denied authorization",
        "state": "st-1",
    }


def test_refresh_then_revoke_kills_the_refresh_token_and_its_sessions(
    salesforce: SalesforceDouble, app: ConnectedApp
):
    # Given a connected user
    token = connect(salesforce, app)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    # When the access token is refreshed
    refreshed = HTTP.post(salesforce.token_url, data=form)
    # Then a new session comes back without a new refresh token
    assert refreshed.status_code == 200
    assert "refresh_token" not in refreshed.json()
    session = Rest(salesforce, refreshed.json()["access_token"])
    assert session.get("/limits").status_code == 200
    # When the refresh token is revoked
    assert HTTP.post(salesforce.revoke_url, data={"token": token["refresh_token"]}).status_code == 200
    # Then its sessions answer INVALID_SESSION_ID and refreshing fails
    dead = session.get("/limits")
    assert (dead.status_code, dead.json()) == (
        401,
        [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
    )
    assert HTTP.post(salesforce.token_url, data=form).json()["error"] == "invalid_grant"
    unknown = HTTP.post(salesforce.revoke_url, data={"token": "not-a-token"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unsupported_token_type"


def test_session_dies_after_the_timeout_without_use(
    salesforce: SalesforceDouble, app: ConnectedApp, clock: ManualClock
):
    # Given a session used now
    rest = Rest(salesforce, connect(salesforce, app)["access_token"])
    assert rest.get("/limits").status_code == 200
    # When it is used again within two hours, then left alone for more than two hours
    clock.advance(7000)
    assert rest.get("/limits").status_code == 200
    clock.advance(7201)
    # Then it has expired
    assert rest.get("/limits").status_code == 401


def test_device_flow_states(salesforce: SalesforceDouble, app: ConnectedApp, clock: ManualClock):
    # Given a device that starts the flow
    started = HTTP.post(
        salesforce.token_url,
        data={"response_type": "device_code", "client_id": app.client_id, "scope": "api refresh_token"},
    )
    assert started.status_code == 200
    device = started.json()
    assert set(device) == {"device_code", "user_code", "verification_uri", "interval"}
    assert device["verification_uri"] == salesforce.verification_url
    assert device["interval"] == 5
    poll = {"grant_type": "device", "client_id": app.client_id, "code": device["device_code"]}
    # When it polls before the user acted, then again too soon
    pending = HTTP.post(salesforce.token_url, data=poll)
    clock.advance(1)
    hurried = HTTP.post(salesforce.token_url, data=poll)
    # Then it is told to wait, then to slow down
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    assert hurried.json()["error"] == "slow_down"
    # When the user enters the code at the verification page and the device polls at its interval
    page = HTTP.post(salesforce.verification_url, data={"user_code": device["user_code"].lower()})
    assert page.status_code == 200
    clock.advance(5)
    granted = HTTP.post(salesforce.token_url, data=poll)
    # Then tokens come back once, and the device code is spent
    assert granted.status_code == 200
    assert {"access_token", "refresh_token", "instance_url"} <= set(granted.json())
    assert Rest(salesforce, granted.json()["access_token"]).get("/limits").status_code == 200
    clock.advance(5)
    assert HTTP.post(salesforce.token_url, data=poll).json()["error"] == "invalid_grant"


def test_device_code_expires_and_a_denial_is_access_denied(
    salesforce: SalesforceDouble, app: ConnectedApp, clock: ManualClock
):
    # Given two device authorizations
    first = HTTP.post(
        salesforce.token_url, data={"response_type": "device_code", "client_id": app.client_id}
    ).json()
    second = HTTP.post(
        salesforce.token_url, data={"response_type": "device_code", "client_id": app.client_id}
    ).json()
    # When the user denies the second (control API) and the first is left for ten minutes
    denied = HTTP.post(
        salesforce.base_url + "/__double__/device/approve",
        json={"user_code": second["user_code"], "deny": True},
    )
    assert denied.status_code == 200
    answer = HTTP.post(
        salesforce.token_url,
        data={"grant_type": "device", "client_id": app.client_id, "code": second["device_code"]},
    )
    clock.advance(601)
    late = HTTP.post(
        salesforce.token_url,
        data={"grant_type": "device", "client_id": app.client_id, "code": first["device_code"]},
    )
    # Then the denial and the expiry are told apart
    assert answer.json()["error"] == "access_denied"
    assert late.json() == {"error": "invalid_grant", "error_description": "expired authorization code"}
