"""Identity platform v2.0 on the double: metadata, authorize + PKCE, token errors, rotation,
revocation, and msal against it."""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal  # type: ignore[import-untyped]
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from local.clock import ManualClock
from local.microsoft import MicrosoftDouble
from local.microsoft.identity import App

# msal nudges towards response_mode=form_post; the double serves both, the tests read the query.
pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")

from tests.integration.local_microsoft.conftest import (  # noqa: E402
    REDIRECT,
    USER,
    Pkce,
    authorize,
    connect,
    exchange,
    redirect_params,
    refresh,
)


def _error(response: httpx.Response) -> tuple[int, str, list[int]]:
    body = response.json()
    assert set(body) >= {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
    }
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    return response.status_code, body["error"], body["error_codes"]


def test_openid_configuration_points_every_endpoint_at_the_double(ms, http):
    # Given the double
    # When a client reads the metadata of the common authority and of a tenant
    common = http.get(ms.openid_configuration_url("common")).json()
    consumers = http.get(ms.openid_configuration_url("consumers")).json()

    # Then the endpoints are the double's, over https, and the issuer is Microsoft's template
    assert common["authorization_endpoint"] == ms.authorize_url("common")
    assert common["token_endpoint"] == ms.token_url("common")
    assert common["jwks_uri"] == ms.jwks_url("common")
    assert common["issuer"] == f"{ms.base_url}/{{tenantid}}/v2.0"
    assert consumers["issuer"] == f"{ms.base_url}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
    assert "RS256" in common["id_token_signing_alg_values_supported"]
    assert ms.base_url.startswith("https://")


def test_unknown_tenant_is_refused_with_aadsts90002(ms, http):
    # Given no tenant named nowhere.example
    # When its metadata is asked for
    response = http.get(ms.openid_configuration_url("nowhere.example"))

    # Then Microsoft's error shape names AADSTS90002
    assert _error(response) == (400, "invalid_tenant", [90002])


def test_code_flow_with_pkce_issues_tokens_and_an_id_token_signed_by_the_published_keys(ms, http, app):
    # Given a consenting user
    pkce = Pkce()

    # When the app runs the authorization code flow with PKCE S256
    params = redirect_params(authorize(http, ms, app, pkce, nonce="n-1"))
    response = exchange(http, ms, app, params["code"], pkce.verifier)

    # Then the redirect carries code + state, and the token response has Microsoft's members
    assert params["state"] == "state-123"
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == {
        "Mail.ReadWrite",
        "Mail.Send",
        "Contacts.Read",
        "openid",
        "profile",
        "email",
    }
    assert 3600 <= body["expires_in"] <= 5400
    assert body["refresh_token"]
    # and the id token verifies against the JWKS at jwks_uri (RS256, kid)
    keys = http.get(ms.jwks_url()).json()["keys"]
    header = jwt.get_unverified_header(body["id_token"])
    key = next(k for k in keys if k["kid"] == header["kid"])
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(key))
    assert isinstance(public, RSAPublicKey)
    claims = jwt.decode(
        body["id_token"],
        public,
        algorithms=["RS256"],
        audience=app.client_id,
    )
    user = ms.identity.users[USER]
    assert claims["iss"] == f"{ms.base_url}/{user.tid}/v2.0"
    assert claims["preferred_username"] == USER
    assert claims["nonce"] == "n-1"
    assert claims["oid"] == user.oid


def test_a_wrong_code_verifier_is_refused_and_does_not_consume_the_code(ms, http, app):
    # Given a code issued for a PKCE challenge
    pkce = Pkce()
    code = redirect_params(authorize(http, ms, app, pkce))["code"]

    # When it is redeemed with another verifier, then with the right one
    wrong = exchange(http, ms, app, code, Pkce().verifier)
    right = exchange(http, ms, app, code, pkce.verifier)

    # Then the first is invalid_grant AADSTS501481 and the second still works
    assert _error(wrong) == (400, "invalid_grant", [501481])
    assert right.status_code == 200


def test_a_code_is_single_use_and_expires(ms, http, app):
    # Given two codes
    pkce = Pkce()
    code = redirect_params(authorize(http, ms, app, pkce))["code"]
    late_pkce = Pkce()
    late = redirect_params(authorize(http, ms, app, late_pkce))["code"]
    assert exchange(http, ms, app, code, pkce.verifier).status_code == 200

    # When one is redeemed twice, and the other after eleven minutes
    again = exchange(http, ms, app, code, pkce.verifier)
    ms.advance(11 * 60)
    expired = exchange(http, ms, app, late, late_pkce.verifier)

    # Then AADSTS54005 (already redeemed) and AADSTS70008 (expired)
    assert _error(again) == (400, "invalid_grant", [54005])
    assert _error(expired) == (400, "invalid_grant", [70008])


def test_bad_client_credentials_and_redirect_uris(ms, http, app):
    # Given a code
    pkce = Pkce()
    code = redirect_params(authorize(http, ms, app, pkce))["code"]

    # When the secret is wrong, or the authorize request names an unregistered redirect URI
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": "nope",
    }
    bad_secret = http.post(ms.token_url(), data=form)
    page = authorize(http, ms, app, pkce, redirect_uri="https://attacker.example/cb")

    # Then 401 invalid_client AADSTS7000215, and an error page (no redirect) naming AADSTS50011
    assert _error(bad_secret) == (401, "invalid_client", [7000215])
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "AADSTS50011" in page.text


def test_refresh_rotates_the_refresh_token_and_the_used_one_stays_valid(ms, http, app):
    # Given a connected account
    first = connect(http, ms, app)["refresh_token"]

    # When it refreshes twice with the first refresh token (not even asking for offline_access)
    one = refresh(http, ms, app, first, scope="Mail.ReadWrite").json()
    two = refresh(http, ms, app, first, scope="Mail.ReadWrite").json()

    # Then each answer carries a new refresh token (rotation) and the used one still works,
    # as documented ("doesn't revoke old refresh tokens when used to fetch new access tokens")
    assert one["refresh_token"] not in (first, two["refresh_token"])
    assert refresh(http, ms, app, one["refresh_token"]).status_code == 200
    assert one["access_token"] != two["access_token"]


def test_revoked_sessions_make_every_refresh_token_invalid_grant_50173(ms, http, app):
    # Given a connected account that already rotated once
    first = connect(http, ms, app)["refresh_token"]
    second = refresh(http, ms, app, first).json()["refresh_token"]

    # When the user's sign-in sessions are revoked
    ms.revoke(USER)

    # Then both refresh tokens answer invalid_grant AADSTS50173
    assert _error(refresh(http, ms, app, first)) == (400, "invalid_grant", [50173])
    assert _error(refresh(http, ms, app, second)) == (400, "invalid_grant", [50173])
    # and a new consent gives a working refresh token again
    assert refresh(http, ms, app, connect(http, ms, app)["refresh_token"]).status_code == 200


def test_withdrawn_consent_answers_65001_and_inactivity_answers_700082(ms, http, app):
    # Given two connected accounts' refresh tokens (the same user, consent given twice)
    withdrawn = connect(http, ms, app)["refresh_token"]

    # When the user removes the app
    ms.withdraw_consent(USER)
    consent = refresh(http, ms, app, withdrawn)

    # Then refresh is invalid_grant AADSTS65001 (consent missing)
    assert _error(consent) == (400, "invalid_grant", [65001])

    # Given a new consent, when its refresh token is not used for 91 days
    idle = connect(http, ms, app)["refresh_token"]
    ms.advance(91 * 24 * 3600)

    # Then it has expired for inactivity: AADSTS700082
    assert _error(refresh(http, ms, app, idle)) == (400, "invalid_grant", [700082])


def test_denied_consent_and_prompt_none_come_back_as_redirect_errors(ms, http, app):
    # Given a user who never consented to Contacts.Read and one who clicks Cancel
    # When prompt=none asks for it silently
    silent = redirect_params(authorize(http, ms, app, prompt="none"))
    # and when the user denies the consent screen
    ms.deny_consent(USER)
    denied = redirect_params(authorize(http, ms, app))

    # Then consent_required (AADSTS65001) and access_denied (AADSTS65004) reach the redirect URI
    assert silent["error"] == "consent_required"
    assert silent["error_description"].startswith("AADSTS65001")
    assert (denied["error"], denied["error_subcode"]) == ("access_denied", "cancel")
    assert denied["error_description"].startswith("AADSTS65004")
    assert denied["state"] == "state-123"


def test_refresh_without_offline_access_is_not_possible(ms, http, app):
    # Given a consent without offline_access
    body = connect(http, ms, app, scope="Mail.ReadWrite openid")

    # Then no refresh token is issued
    assert "refresh_token" not in body


# ---------------------------------------------------------------------- msal against the double


def _msal(ms: MicrosoftDouble, app: App) -> msal.ConfidentialClientApplication:
    # requests lets REQUESTS_CA_BUNDLE override a session's `verify`; a session that ignores the
    # environment and trusts the double's CA is what the adapter passes as msal's http_client.
    session = requests.Session()
    session.trust_env = False
    session.verify = ms.ca_file or True
    return msal.ConfidentialClientApplication(
        app.client_id,
        client_credential=app.client_secret,
        authority=ms.authority("common"),
        instance_discovery=False,
        http_client=session,
    )


def _run_auth_code_flow(cca: msal.ConfidentialClientApplication, http: httpx.Client) -> dict[str, Any]:
    flow = cca.initiate_auth_code_flow(
        ["Mail.ReadWrite", "Mail.Send"], redirect_uri=REDIRECT, prompt="consent"
    )
    response = http.get(flow["auth_uri"])
    assert response.status_code == 302
    auth_response = {k: v[-1] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    result: dict[str, Any] = cca.acquire_token_by_auth_code_flow(flow, auth_response)
    return result


def test_msal_completes_the_code_flow_with_pkce_and_refreshes_with_rotation(ms, http, app):
    # Given msal with only the authority pointed at the double
    cca = _msal(ms, app)

    # When it runs the auth code flow (msal adds PKCE S256 itself) and then forces a refresh
    result = _run_auth_code_flow(cca, http)
    first_rt = next(iter(cca.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)))["secret"]
    account = cca.get_accounts()[0]
    refreshed = cca.acquire_token_silent(["Mail.ReadWrite"], account=account, force_refresh=True)
    second_rt = next(iter(cca.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)))["secret"]

    # Then msal has tokens, an account for the user, and the cached refresh token was rotated
    assert "access_token" in result, result
    assert result["id_token_claims"]["preferred_username"] == USER
    user = ms.identity.users[USER]
    assert account["home_account_id"] == f"{user.oid}.{user.tid}"
    assert refreshed is not None
    assert "access_token" in refreshed, refreshed
    assert first_rt != second_rt
    assert second_rt in ms.identity.refresh_tokens
    # and the PKCE challenge msal sent was checked against its verifier
    code = next(c for c in ms.identity.codes.values() if c.used)
    assert code.challenge_method == "S256"


def test_msal_sees_invalid_grant_after_revocation(ms, http, app):
    # Given msal with a connected account
    cca = _msal(ms, app)
    assert "access_token" in _run_auth_code_flow(cca, http)
    account = cca.get_accounts()[0]

    # When the user's sessions are revoked and msal refreshes
    ms.revoke(USER)
    result = cca.acquire_token_silent_with_error(["Mail.ReadWrite"], account=account, force_refresh=True)

    # Then msal reports invalid_grant with AADSTS50173
    assert result is not None
    assert result["error"] == "invalid_grant"
    assert 50173 in result["error_codes"]


def test_msal_accepts_the_authority_with_only_verify_when_the_ca_bundle_is_the_environment_default(
    ms, http, app, monkeypatch: pytest.MonkeyPatch
):
    # Given a process whose CA bundle variable includes the double's CA (public roots + the double)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ms.ca_bundle or "")

    # When msal is built with only authority= and instance_discovery=False
    cca = msal.ConfidentialClientApplication(
        app.client_id,
        client_credential=app.client_secret,
        authority=ms.authority("organizations"),
        instance_discovery=False,
    )

    # Then it discovered the double's endpoints and completes the flow
    assert cca.authority.token_endpoint == ms.token_url("organizations")
    assert "access_token" in _run_auth_code_flow(cca, http)


def test_msal_refuses_a_plain_http_authority():
    # Given msal and an http:// authority (what a plain-HTTP double would offer)
    # When the application is built
    # Then msal refuses it: the double must serve HTTPS
    with pytest.raises(ValueError, match="https"):
        msal.ConfidentialClientApplication(
            "id", client_credential="secret", authority="http://127.0.0.1:9/common"
        )


def test_client_info_is_base64url_uid_and_utid(ms, http, app):
    # Given msal asks for client_info=1 in token requests
    pkce = Pkce()
    code = redirect_params(authorize(http, ms, app, pkce))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce.verifier,
        "client_info": "1",
    }

    # When the code is redeemed
    body = http.post(ms.token_url(), data=form).json()

    # Then client_info decodes to the user's object id and tenant id
    info = json.loads(base64.urlsafe_b64decode(body["client_info"] + "=="))
    user = ms.identity.users[USER]
    assert info == {"uid": user.oid, "utid": user.tid}


def test_tls_is_valid_by_the_wall_clock_whatever_time_the_double_keeps():
    # Given a double whose clock starts in 2030
    with MicrosoftDouble(clock=ManualClock()) as far_future:
        assert far_future.now().year == 2030

        # When a client checks its certificate against the real time
        context = ssl.create_default_context(cafile=far_future.ca_file)
        response = httpx.get(far_future.openid_configuration_url(), verify=context)

    # Then the handshake succeeds: the certificate is dated by the wall clock
    assert response.status_code == 200


def test_scopes_are_additive_a_token_carries_every_consented_graph_scope(ms, http, app):
    # Given a user who consented to the mail scopes and Calendars.ReadWrite
    pkce = Pkce()
    wide = "openid profile offline_access Mail.ReadWrite Mail.Send Calendars.ReadWrite"
    code = redirect_params(authorize(http, ms, app, pkce, scope=wide))["code"]

    # When the code is redeemed, and the refresh token used, asking for the mail scopes only
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce.verifier,
        "scope": "openid profile offline_access Mail.ReadWrite Mail.Send",
    }
    redeemed = http.post(ms.token_url(), data=form).json()
    refreshed = refresh(
        http, ms, app, redeemed["refresh_token"], "offline_access Mail.ReadWrite Mail.Send"
    ).json()

    # Then both tokens carry the calendar scope too (Entra ID's additive scopes)
    for body in (redeemed, refreshed):
        assert {"Mail.ReadWrite", "Mail.Send", "Calendars.ReadWrite"} <= set(body["scope"].split())
