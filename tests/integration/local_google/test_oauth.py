"""OAuth 2.0 on the Google double: consent, PKCE, code exchange, refresh, revoke, error shapes."""

from __future__ import annotations

import httpx
import jwt

from local.clock import ManualClock
from local.google import GoogleDouble
from local.google.oauth import OAuthClient
from tests.integration.local_google.conftest import (
    HTTP,
    MODIFY,
    REDIRECT,
    USER,
    Gmail,
    Pkce,
    authorize,
    connect,
    exchange,
    redirect_params,
)


def refresh(google: GoogleDouble, client: OAuthClient, token: str) -> httpx.Response:
    return HTTP.post(
        google.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    )


def test_consent_redirects_with_code_state_and_scope(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a registered client and a signed-in user
    # When the browser opens the authorization URL
    params = redirect_params(authorize(google, client, Pkce()))

    # Then Google redirects at once to redirect_uri with a code, the state and the granted scopes
    assert params["state"] == "state-123"
    assert params["code"].startswith("4/0")
    assert MODIFY in params["scope"].split()


def test_pkce_exchange_returns_google_token_response(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a consent made with an S256 challenge
    pkce = Pkce()
    code = redirect_params(authorize(google, client, pkce))["code"]

    # When the code is exchanged with the matching verifier
    response = exchange(google, client, code, pkce.verifier)

    # Then the body has Google's fields, an offline refresh token and an ID token naming the user
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "refresh_token", "scope", "token_type", "id_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//")
    jwks = jwt.PyJWKClient(google.jwks_url)
    claims = jwt.decode(
        body["id_token"],
        jwks.get_signing_key_from_jwt(body["id_token"]).key,
        algorithms=["RS256"],
        audience=client.client_id,
        issuer="https://accounts.google.com",
    )
    assert claims["email"] == USER
    assert claims["email_verified"] is True


def test_wrong_pkce_verifier_is_invalid_grant(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a consent made with an S256 challenge
    code = redirect_params(authorize(google, client, Pkce()))["code"]

    # When the code is exchanged with another verifier
    response = exchange(google, client, code, Pkce().verifier)

    # Then Google answers 400 invalid_grant in its JSON error shape
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}


def test_missing_pkce_verifier_is_invalid_grant(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a consent made with an S256 challenge
    code = redirect_params(authorize(google, client, Pkce()))["code"]

    # When the code is exchanged without a verifier
    response = exchange(google, client, code, None)

    # Then it is refused
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Missing code verifier."}


def test_a_code_works_once(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a code already exchanged
    pkce = Pkce()
    code = redirect_params(authorize(google, client, pkce))["code"]
    assert exchange(google, client, code, pkce.verifier).status_code == 200

    # When it is exchanged again
    again = exchange(google, client, code, pkce.verifier)

    # Then it is invalid_grant
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_a_code_expires(google: GoogleDouble, client: OAuthClient, clock: ManualClock) -> None:
    # Given a code issued eleven minutes ago
    pkce = Pkce()
    code = redirect_params(authorize(google, client, pkce))["code"]
    clock.advance(11 * 60)

    # When it is exchanged
    response = exchange(google, client, code, pkce.verifier)

    # Then it is invalid_grant
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_bad_client_credentials_are_invalid_client(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a valid code
    pkce = Pkce()
    code = redirect_params(authorize(google, client, pkce))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": pkce.verifier,
    }

    # When the secret is wrong, or the client unknown
    wrong_secret = HTTP.post(
        google.token_url, data=form | {"client_id": client.client_id, "client_secret": "nope"}
    )
    unknown = HTTP.post(google.token_url, data=form | {"client_id": "123-abc.apps.googleusercontent.com"})

    # Then both are 401 invalid_client
    assert wrong_secret.status_code == 401
    assert wrong_secret.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_client"


def test_refresh_grant_gives_a_new_access_token(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a connected account
    tokens = connect(google, client)

    # When the refresh token is used
    response = refresh(google, client, tokens["refresh_token"])

    # Then a new access token comes back, without a new refresh token
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"] != tokens["access_token"]
    assert "refresh_token" not in body
    assert Gmail(google, body["access_token"]).get("/profile").status_code == 200


def test_refresh_token_only_on_first_consent_or_prompt_consent(
    google: GoogleDouble, client: OAuthClient
) -> None:
    # Given a first offline consent that returned a refresh token
    assert "refresh_token" in connect(google, client)

    # When the user consents again without prompt=consent, then with it
    pkce = Pkce()
    code = redirect_params(authorize(google, client, pkce, prompt=""))["code"]
    quiet = exchange(google, client, code, pkce.verifier).json()
    pkce = Pkce()
    code = redirect_params(authorize(google, client, pkce, prompt="consent"))["code"]
    prompted = exchange(google, client, code, pkce.verifier).json()

    # Then only the prompted one carries a refresh token
    assert "refresh_token" not in quiet
    assert "refresh_token" in prompted


def test_revoke_then_refresh_is_invalid_grant(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a connected account
    tokens = connect(google, client)

    # When the token is revoked at /revoke
    revoked = HTTP.post(google.revoke_url, data={"token": tokens["refresh_token"]})

    # Then refreshing is invalid_grant, the access token stops working, and revoking again fails
    assert revoked.status_code == 200
    response = refresh(google, client, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    assert Gmail(google, tokens["access_token"]).get("/profile").status_code == 401
    assert (
        HTTP.post(google.revoke_url, data={"token": tokens["refresh_token"]}).json()["error"]
        == "invalid_token"
    )


def test_user_removing_access_revokes_the_grant(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a connected account
    tokens = connect(google, client)

    # When the user removes the app's access in their Google account
    google.revoke(USER)

    # Then the refresh token is invalid_grant
    response = refresh(google, client, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_unknown_client_and_unregistered_redirect_get_error_pages(
    google: GoogleDouble, client: OAuthClient
) -> None:
    # When the client is unknown, or the redirect URI is not registered
    unknown = authorize(google, client, client_id="999-x.apps.googleusercontent.com")
    mismatch = authorize(google, client, redirect_uri="https://evil.example/cb")

    # Then Google shows its own error page instead of redirecting
    assert unknown.status_code == 401
    assert "Error 401: invalid_client" in unknown.text
    assert mismatch.status_code == 400
    assert "Error 400: redirect_uri_mismatch" in mismatch.text
    assert "location" not in mismatch.headers


def test_malformed_consent_requests_get_error_pages(google: GoogleDouble, client: OAuthClient) -> None:
    # When the scope is unknown, the response type missing, or the PKCE method unsupported
    bad_scope = authorize(google, client, scope="https://www.googleapis.com/auth/nothing")
    no_type = authorize(google, client, response_type="")
    bad_method = authorize(google, client, code_challenge="a" * 43, code_challenge_method="S512")

    # Then each is a 400 page naming the error
    assert (bad_scope.status_code, "invalid_scope" in bad_scope.text) == (400, True)
    assert (no_type.status_code, "invalid_request" in no_type.text) == (400, True)
    assert (bad_method.status_code, "invalid_request" in bad_method.text) == (400, True)


def test_denied_consent_redirects_with_access_denied(google: GoogleDouble, client: OAuthClient) -> None:
    # Given a user who clicks Cancel
    google.deny_consent(USER)

    # When the consent URL is opened
    params = redirect_params(authorize(google, client, Pkce()))

    # Then the redirect carries error=access_denied and the state, and no code
    assert params == {"error": "access_denied", "state": "state-123"}
