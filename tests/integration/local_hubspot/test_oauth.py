"""OAuth on the HubSpot double: install, token exchange and refresh, token metadata, revoke, expiry."""

from __future__ import annotations

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from tests.integration.local_hubspot.conftest import HTTP, REDIRECT, Api, install


def test_install_exchange_refresh_and_metadata(hubspot: HubSpotDouble, app: App):
    # Given an installed app
    token = install(hubspot, app)
    # Then the token answer is HubSpot's
    assert set(token) == {"token_type", "refresh_token", "access_token", "expires_in"}
    assert (token["token_type"], token["expires_in"]) == ("bearer", 1800)
    # When the client refreshes and reads the metadata of both tokens
    refreshed = HTTP.post(
        hubspot.token_url,
        data={"grant_type": "refresh_token", "client_id": app.client_id, "client_secret": app.client_secret,
              "refresh_token": token["refresh_token"]},
    ).json()  # fmt: skip
    access = HTTP.get(f"{hubspot.base_url}/oauth/v1/access-tokens/{refreshed['access_token']}").json()
    refresh = HTTP.get(f"{hubspot.base_url}/oauth/v1/refresh-tokens/{token['refresh_token']}").json()
    # Then the refresh keeps the refresh token, and the metadata names the portal, app and scopes
    assert refreshed["refresh_token"] == token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]
    assert access["hub_id"] == hubspot.portal_id
    assert access["app_id"] == app.app_id
    assert "crm.objects.contacts.read" in access["scopes"]
    assert access["token_type"] == "access"
    assert refresh["client_id"] == app.client_id
    assert refresh["token_type"] == "refresh"


def test_token_errors_have_hubspot_status_codes(hubspot: HubSpotDouble, app: App):
    # Given an installed app whose refresh token is then deleted
    token = install(hubspot, app)
    assert (
        HTTP.delete(f"{hubspot.base_url}/oauth/v1/refresh-tokens/{token['refresh_token']}").status_code == 204
    )
    base = {"client_id": app.client_id, "client_secret": app.client_secret, "redirect_uri": REDIRECT}
    # When the client exchanges a bad code, refreshes the deleted token, or sends a wrong secret
    bad_code = HTTP.post(hubspot.token_url, data=base | {"grant_type": "authorization_code", "code": "nope"})
    dead = HTTP.post(
        hubspot.token_url,
        data=base | {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    secret = HTTP.post(
        hubspot.token_url,
        data=base | {"grant_type": "refresh_token", "client_secret": "x", "refresh_token": "r"},
    )
    # Then each names its HubSpot status; the deleted token's access token died with it
    assert (bad_code.status_code, bad_code.json()["status"]) == (400, "BAD_AUTH_CODE")
    assert dead.json()["status"] == "BAD_REFRESH_TOKEN"
    assert dead.json()["message"] == "missing or invalid refresh token"
    assert secret.json()["status"] == "BAD_CLIENT_SECRET"
    assert Api(hubspot, token["access_token"]).get("/crm/v3/objects/contacts").status_code == 401
    page = HTTP.get(
        hubspot.authorize_url,
        params={"client_id": app.client_id, "redirect_uri": "https://evil.example", "scope": "oauth"},
    )
    assert page.status_code == 400


def test_expired_missing_and_under_scoped_tokens(hubspot: HubSpotDouble, app: App, clock: ManualClock):
    # Given a token without the lists scopes and one that will expire
    narrow = Api(hubspot, install(hubspot, app, scope="oauth crm.objects.contacts.read")["access_token"])
    full = Api(hubspot, install(hubspot, app)["access_token"])
    # When calls go out without a token, without the scope, and after 30 minutes
    anonymous = HTTP.get(hubspot.api_url + "/crm/v3/objects/contacts")
    scoped = narrow.post("/crm/v3/lists", {"name": "x", "objectTypeId": "0-1", "processingType": "MANUAL"})
    clock.advance(1800 + 120)
    late = full.get("/crm/v3/objects/contacts")
    # Then each is refused with its category
    assert (anonymous.status_code, anonymous.json()["category"]) == (401, "INVALID_AUTHENTICATION")
    assert (scoped.status_code, scoped.json()["category"]) == (403, "MISSING_SCOPES")
    assert (late.status_code, late.json()["category"]) == (401, "EXPIRED_AUTHENTICATION")
    assert late.json()["message"] == "The OAuth token used to make this call expired 2 minute(s) ago."
    assert {"status", "message", "correlationId", "category"} <= set(late.json())
