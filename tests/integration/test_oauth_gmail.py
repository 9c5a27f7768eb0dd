"""Connecting Gmail through the oauth function on moto, with the Google double as Google:
start -> the double's consent -> callback -> a Gmail account with a sealed refresh token; the
state's single use, expiry and provider binding; refusals as redirect outcomes; reauth_required
on a revoked grant and reconnecting; removal revoking the grant."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from mailbridge import accounts as account_service
from mailbridge.errors import ProviderAuthError
from mailbridge.oauth import tokens
from mailbridge.oauth.providers import CALENDAR_EVENTS, CONTACTS_READONLY, GMAIL_MODIFY, GMAIL_SEND
from mailbridge.oauth.wiring import oauth_deps
from mailbridge.providers.gmail.connect import client_for
from mailbridge.store.oauth_states import state_pk
from tests.events import load_event
from tests.fixtures.aws import BusReader
from tests.integration.gmail_harness import HTTP, REDIRECT, TENANT, USER, GmailStack, query_of


def authorization_url(gmail_stack: GmailStack, **query: str) -> str:
    started = gmail_stack.start(**query)
    assert started["statusCode"] == 200, started
    return str(json.loads(started["body"])["authorization_url"])


def refresh_works(gmail_stack: GmailStack, refresh_token: str | None) -> bool:
    answer = HTTP.post(
        gmail_stack.google.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token or "",
            "client_id": gmail_stack.client.client_id,
            "client_secret": gmail_stack.client.client_secret,
        },
    )
    return answer.status_code == 200


def test_connecting_creates_a_gmail_account_with_a_sealed_working_refresh_token(
    gmail_stack: GmailStack,
) -> None:
    # Given a member who opens the authorization URL and consents at the double
    url = authorization_url(gmail_stack)
    params = gmail_stack.consent(url)

    # When the provider redirects to the callback
    response = gmail_stack.callback(params)

    # Then the browser goes back to the front end with the new account
    outcome = gmail_stack.outcome(response)
    assert outcome["outcome"] == "connected"
    assert response["headers"]["Cache-Control"] == "no-store"
    account = gmail_stack.account(outcome["account_id"])
    assert (account.provider, account.address, account.imap, account.created_by) == (
        "gmail",
        USER,
        None,
        "user-1",
    )
    assert account.oauth is not None
    assert {GMAIL_MODIFY, GMAIL_SEND} <= set(account.oauth.scopes)
    # And the stored credentials are a KMS envelope whose refresh token works at Google
    item = gmail_stack.account_item(outcome["account_id"])
    assert set(item["credentials"]) == {"v", "encrypted_key", "nonce", "ciphertext"}
    assert "refresh_token" not in json.dumps(item["account"], default=str)
    secrets = account_service.load_secrets(gmail_stack.accounts, account)
    assert refresh_works(gmail_stack, secrets["refresh_token"])
    # And the first sync is queued, the push lookup is written and the mailbox is watched
    assert [(m["kind"], m["account_id"], m["reason"]) for m in gmail_stack.sync_messages()] == [
        ("sync", outcome["account_id"], "connected")
    ]
    assert gmail_stack.accounts.accounts_for_address("gmail", USER.upper()) == [
        (TENANT, outcome["account_id"])
    ]
    assert gmail_stack.google.gmail.mailbox(USER).watch is not None


def test_the_authorization_url_asks_for_offline_access_with_pkce_and_keeps_the_verifier(
    gmail_stack: GmailStack,
) -> None:
    # When a member starts
    params = query_of(authorization_url(gmail_stack))

    # Then the consent asks for the Gmail scopes, a refresh token and an S256 challenge
    assert params["scope"].split() == [GMAIL_MODIFY, GMAIL_SEND, "openid", "email"]
    assert (params["access_type"], params["prompt"], params["code_challenge_method"]) == (
        "offline",
        "consent",
        "S256",
    )
    assert params["redirect_uri"] == REDIRECT
    assert params["client_id"] == gmail_stack.client.client_id
    # And the state is stored under its digest, bound to the tenant, user and provider, with the
    # verifier kept server-side and a 10-minute TTL
    item = gmail_stack.stack.table("AccountsTable").get_item(
        Key={"pk": state_pk(params["state"]), "sk": "STATE"}
    )["Item"]
    stored = item["state"]
    assert (stored["tenant_id"], stored["subject"], stored["provider"]) == (TENANT, "user-1", "gmail")
    assert stored["code_verifier"] not in json.dumps(params)
    assert 590 <= int(item["ttl"]) - gmail_stack.clock.now().timestamp() <= 610


def test_contact_import_adds_the_contacts_scope(gmail_stack: GmailStack) -> None:
    # Given a tenant that switched contact import on
    on = gmail_stack.api("put-features", role="admin", body={"contact_import": True})
    assert on["statusCode"] == 200, on

    # When a member starts
    scopes = query_of(authorization_url(gmail_stack))["scope"].split()

    # Then contacts.readonly is asked for too
    assert CONTACTS_READONLY in scopes


def test_the_calendar_flag_adds_the_calendar_events_scope_only_when_on(gmail_stack: GmailStack) -> None:
    # Given a tenant with the calendar flag off, a member starts
    off = query_of(authorization_url(gmail_stack))["scope"].split()
    # When an admin switches it on and the member starts again
    on = gmail_stack.api("put-features", role="admin", body={"calendar": True})
    assert on["statusCode"] == 200, on
    scopes = query_of(authorization_url(gmail_stack))["scope"].split()
    # Then only the second consent asks for calendar.events
    assert CALENDAR_EVENTS not in off
    assert CALENDAR_EVENTS in scopes


def test_an_account_connected_without_calendar_reports_a_reconnect_then_granted_after_one(
    gmail_stack: GmailStack,
) -> None:
    # Given a Gmail account connected while the calendar flag was off
    account_id = gmail_stack.connect()
    # When the flag goes on and the account is read
    gmail_stack.api("put-features", role="admin", body={"calendar": True})
    before = gmail_stack.api("get-account", account_id)
    # Then it says calendar sync needs a reconnect (a 200, not an error)
    assert before["statusCode"] == 200, before
    assert json.loads(before["body"])["calendar"] == "reconnect_required"
    # And after reconnecting with the calendar scope asked for, it is granted
    url = authorization_url(gmail_stack, account_id=account_id)
    assert gmail_stack.outcome(gmail_stack.callback(gmail_stack.consent(url)))["outcome"] == "reconnected"
    after = gmail_stack.api("get-account", account_id)
    assert json.loads(after["body"])["calendar"] == "granted"


def test_a_state_is_single_use(gmail_stack: GmailStack) -> None:
    # Given a completed connection
    params = gmail_stack.consent(authorization_url(gmail_stack))
    assert gmail_stack.outcome(gmail_stack.callback(params))["outcome"] == "connected"

    # When the same redirect is replayed
    replay = gmail_stack.outcome(gmail_stack.callback(params))

    # Then it is refused and nothing more is created
    assert replay == {"outcome": "error", "code": "invalid_state"}
    assert len(gmail_stack.accounts.list_accounts(TENANT, cursor=None, limit=10)[0]) == 1


def test_an_expired_state_is_refused(gmail_stack: GmailStack) -> None:
    # Given a consent that comes back eleven minutes after the start
    params = gmail_stack.consent(authorization_url(gmail_stack))
    deps = oauth_deps()
    later = deps.now() + timedelta(minutes=11)
    deps.now = lambda: later

    # When the callback arrives
    outcome = gmail_stack.outcome(gmail_stack.callback(params))

    # Then the state is expired and no account is made
    assert outcome == {"outcome": "error", "code": "state_expired"}
    assert gmail_stack.accounts.list_accounts(TENANT, cursor=None, limit=10)[0] == []


@pytest.mark.parametrize(
    ("params", "provider"),
    [
        ({"code": "4/abc"}, "gmail"),  # no state
        ({"state": "forged-state", "code": "4/abc"}, "gmail"),  # unknown state
        (None, "outlook"),  # a real state at another (registered) provider's callback
    ],
)
def test_unknown_missing_or_mismatched_states_are_refused(
    gmail_stack: GmailStack, params: dict[str, str] | None, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a second provider in the registry (Google's settings: only the name differs)
    from mailbridge.oauth import providers

    monkeypatch.setitem(providers._FACTORIES, "outlook", providers._FACTORIES["gmail"])
    real = gmail_stack.consent(authorization_url(gmail_stack))
    # When the callback gets a state that is not ours for this provider
    outcome = gmail_stack.outcome(gmail_stack.callback(params or real, provider=provider))
    # Then: an error outcome, never a 4xx/5xx page, and no account
    assert outcome == {"outcome": "error", "code": "invalid_state"}
    assert gmail_stack.accounts.list_accounts(TENANT, cursor=None, limit=10)[0] == []


def test_a_declined_consent_comes_back_as_access_denied(gmail_stack: GmailStack) -> None:
    # Given a user who clicks Cancel at Google
    gmail_stack.google.deny_consent(USER)
    answer = HTTP.get(authorization_url(gmail_stack))
    params = query_of(answer.headers["location"])
    assert params["error"] == "access_denied"

    # When the callback gets the error redirect
    outcome = gmail_stack.outcome(gmail_stack.callback(params))

    # Then the front end hears why
    assert outcome == {"outcome": "error", "code": "access_denied"}


def _callback_entries(gmail_stack: GmailStack) -> list[dict[str, Any]]:
    """The audit entries of the tenant's OAuth callbacks (the table's items, as stored)."""
    items = gmail_stack.stack.table("AuditTable").query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"TENANT#{TENANT}"}
    )["Items"]
    return [i for i in items if str(i["action"]).startswith("finish_authorization")]


def test_each_callback_with_a_state_is_audited_as_its_user_with_the_outcome_and_no_secret(
    gmail_stack: GmailStack,
) -> None:
    # Given a consent given and one declined (the same user), and a forged state
    granted = gmail_stack.consent(authorization_url(gmail_stack))
    gmail_stack.google.deny_consent(USER)
    declined = query_of(HTTP.get(authorization_url(gmail_stack)).headers["location"])
    # When each comes back to the callback
    connected = gmail_stack.outcome(gmail_stack.callback(granted))
    assert gmail_stack.outcome(gmail_stack.callback(declined))["code"] == "access_denied"
    gmail_stack.callback({"state": "forged-state", "code": "4/abc"})
    # Then the two with a state are audited as writes by the user who started them, with the
    # provider, the account, the outcome and its code (the redirect is a 302 either way)
    entries = sorted(_callback_entries(gmail_stack), key=lambda e: str(e["outcome"]))
    assert [
        (e["actor"], e["kind"], e["outcome"], e.get("error_code"), e["status"], e["resource_ids"])
        for e in entries
    ] == [
        ("user-1", "write", "failure", "access_denied", 302, {"provider": "gmail"}),
        (
            "user-1",
            "write",
            "success",
            None,
            302,
            {"provider": "gmail", "account_id": connected["account_id"]},
        ),
    ]
    # And no entry holds the code, the state or a token
    secrets = account_service.load_secrets(gmail_stack.accounts, gmail_stack.account(connected["account_id"]))
    text = json.dumps(entries, default=str)
    refresh = secrets["refresh_token"]
    assert refresh
    for secret in (granted["code"], granted["state"], declined["state"], refresh, "4/abc"):
        assert secret not in text


def test_a_required_scope_left_out_is_refused_and_the_grant_revoked(gmail_stack: GmailStack) -> None:
    # Given a consent that granted gmail.modify but not gmail.send
    url = authorization_url(gmail_stack).replace("gmail.send", "gmail.readonly")
    params = gmail_stack.consent(url)

    # When the callback exchanges the code
    outcome = gmail_stack.outcome(gmail_stack.callback(params))

    # Then no account is made and the partial grant is revoked at Google
    assert outcome == {"outcome": "error", "code": "scope_missing"}
    assert gmail_stack.accounts.list_accounts(TENANT, cursor=None, limit=10)[0] == []
    grant = gmail_stack.google.oauth.grants[(gmail_stack.client.client_id, USER)]
    assert grant.revoked


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"state": "", "code": ""},
        {"state": "x" * 5000, "code": "\x00\r\n"},
        {"error": "server_error", "state": "s"},
        {"state": "a,b", "code": "c,d"},
    ],
)
def test_the_callback_answers_a_redirect_whatever_the_query(
    gmail_stack: GmailStack, query: dict[str, str]
) -> None:
    outcome = gmail_stack.outcome(gmail_stack.callback(query))
    assert outcome["outcome"] == "error"
    assert outcome["code"] == "invalid_state"


def test_start_is_for_members_and_known_providers(gmail_stack: GmailStack) -> None:
    # A viewer may not connect mailboxes
    viewer = gmail_stack.start(role="viewer")
    assert viewer["statusCode"] == 403
    assert json.loads(viewer["body"])["error"]["code"] == "role_required"
    # An unknown provider is 404
    event = load_event("api/oauth-start.json", tenant=TENANT, role="member")
    event["pathParameters"] = {"provider": "yahoo"}
    event["rawPath"] = "/oauth/yahoo/start"
    unknown = gmail_stack.invoke("oauth", event)
    assert (unknown["statusCode"], json.loads(unknown["body"])["error"]["code"]) == (
        404,
        "provider_not_found",
    )
    # Reconnecting an account of another tenant is 404; a malformed id too; a bad hint is 400
    account_id = gmail_stack.connect()
    other = gmail_stack.start(tenant="globex", account_id=account_id)
    assert (other["statusCode"], json.loads(other["body"])["error"]["code"]) == (404, "account_not_found")
    bad = gmail_stack.start(account_id="acc_../../x")
    assert bad["statusCode"] == 404
    hint = gmail_stack.start(login_hint="not an address")
    assert (hint["statusCode"], json.loads(hint["body"])["error"]["code"]) == (400, "invalid_login_hint")


def test_without_a_client_id_gmail_is_not_configured(
    gmail_stack: GmailStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment without a Google client id
    monkeypatch.setenv("GOOGLE_CLIENT_ID", "")
    from tests.fixtures.aws import reset_caches
    from tests.integration.gmail_harness import reset_google_caches

    reset_caches()
    reset_google_caches()
    gmail_stack.modules.clear()

    # When a member starts
    response = gmail_stack.start()

    # Then the route behaves as absent
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (
        404,
        "provider_not_configured",
    )


def test_connecting_a_connected_mailbox_again_names_the_existing_account(gmail_stack: GmailStack) -> None:
    # Given the mailbox is connected
    first = gmail_stack.connect()

    # When it is connected again without account_id
    params = gmail_stack.consent(authorization_url(gmail_stack))
    outcome = gmail_stack.outcome(gmail_stack.callback(params))

    # Then the front end is told which account to reconnect instead
    assert outcome == {"outcome": "error", "code": "account_exists", "account_id": first}


def revoke_and_call_gmail(gmail_stack: GmailStack, account_id: str) -> ProviderAuthError:
    gmail_stack.google.revoke(USER)  # the user removes the app at myaccount.google.com
    account = gmail_stack.account(account_id)
    with pytest.raises(ProviderAuthError) as raised:
        client_for(account, get_google()).get_profile()
    return raised.value


def get_google() -> Any:
    from mailbridge.config import get_settings

    return get_settings().google


def test_a_revoked_grant_puts_the_account_in_reauth_required_with_one_event(
    gmail_stack: GmailStack, bus_probe: BusReader
) -> None:
    # Given a connected account whose grant the user revoked
    account_id = gmail_stack.connect()
    bus_probe()

    # When the adapter calls Gmail twice (401, then the refresh is refused: invalid_grant)
    first = revoke_and_call_gmail(gmail_stack, account_id)
    with pytest.raises(ProviderAuthError):
        client_for(gmail_stack.account(account_id), get_google()).get_profile()

    # Then the error says reauth_required, the account shows it and is out of the poll
    assert first.code == "reauth_required"
    account = gmail_stack.account(account_id)
    assert (account.sync.stage, account.sync.reason) == ("failed", "reauth_required")
    assert "gsi1pk" not in gmail_stack.account_item(account_id)
    # And account.reauth_required went on the bus once
    events = [e for e in bus_probe() if e["detail-type"] == "account.reauth_required"]
    assert len(events) == 1
    assert events[0]["detail"]["data"] == {
        "account_id": account_id,
        "provider": "gmail",
        "reason": "reauth_required",
    }
    # And a manual sync is refused until the user reconnects
    sync = gmail_stack.api("sync-account", account_id, role="member")
    assert (sync["statusCode"], json.loads(sync["body"])["error"]["code"]) == (409, "reauth_required")


def test_reconnecting_keeps_the_account_id_and_its_cursor(gmail_stack: GmailStack) -> None:
    # Given an account in reauth_required with a saved cursor
    account_id = gmail_stack.connect()
    cursor = {
        "pk": f"TENANT#{TENANT}",
        "sk": f"FOLDER#{account_id}#INBOX",
        "name": "INBOX",
        "state": {"last_uid": 41},
    }
    gmail_stack.stack.table("AccountsTable").put_item(Item=cursor)
    revoke_and_call_gmail(gmail_stack, account_id)
    gmail_stack.sync_messages()

    # When the user reconnects through start with the account id
    again = gmail_stack.connect(account_id=account_id)

    # Then the same account is back: cleared, pollable, a sync queued, the cursor untouched
    assert again == account_id
    assert len(gmail_stack.accounts.list_accounts(TENANT, cursor=None, limit=10)[0]) == 1
    account = gmail_stack.account(account_id)
    assert (account.sync.stage, account.sync.reason) == ("pending", None)
    assert gmail_stack.account_item(account_id)["gsi1pk"] == "POLL#gmail"
    stored = gmail_stack.stack.table("AccountsTable").get_item(Key={"pk": cursor["pk"], "sk": cursor["sk"]})[
        "Item"
    ]
    assert stored["state"] == {"last_uid": 41}
    assert [(m["account_id"], m["reason"]) for m in gmail_stack.sync_messages()] == [
        (account_id, "connected")
    ]
    # And Gmail works again with the new grant
    assert client_for(gmail_stack.account(account_id), get_google()).get_profile().email_address == USER


def test_reconnecting_as_another_mailbox_is_refused(gmail_stack: GmailStack) -> None:
    # Given a connected account, and a second Google account signed in at the consent
    account_id = gmail_stack.connect()
    gmail_stack.google.add_user("bob@example.com")
    url = authorization_url(gmail_stack, account_id=account_id).replace("login_hint=ada%40example.com", "")
    gmail_stack.google.sign_in("bob@example.com")

    # When the callback comes back for bob
    outcome = gmail_stack.outcome(gmail_stack.callback(gmail_stack.consent(url)))

    # Then ada's account is not taken over
    assert outcome == {"outcome": "error", "code": "account_mismatch", "account_id": account_id}
    assert gmail_stack.account(account_id).address == USER


def test_access_tokens_are_cached_and_refreshed_before_they_expire(gmail_stack: GmailStack) -> None:
    # Given a connected account and a token cache on a controlled clock
    account = gmail_stack.account(gmail_stack.connect())
    now = [1000.0]
    cache = tokens.AccessTokens(
        gmail_stack.accounts,
        tokens.default_tokens().publisher,
        key_id="unused",
        providers=tokens.default_tokens()._providers,
        clock=lambda: now[0],
    )

    # When a token is asked for twice, then again 5 min 1 s and 4 min 59 s before its end (the
    # double's tokens live 3599 s)
    first = cache.get(account)
    second = cache.get(account)
    now[0] += 3599 - 301
    third = cache.get(account)
    now[0] += 2
    fourth = cache.get(account)

    # Then the first three are one token, and the fourth was refreshed before the old one expired
    assert first == second == third != fourth
    assert cache.refreshes == 2


def test_removing_a_gmail_account_stops_its_watch_and_revokes_its_grant(gmail_stack: GmailStack) -> None:
    # Given a connected, watched account
    account_id = gmail_stack.connect()
    refresh_token = account_service.load_secrets(gmail_stack.accounts, gmail_stack.account(account_id))[
        "refresh_token"
    ]
    assert gmail_stack.google.gmail.mailbox(USER).watch is not None

    # When it is deleted through the API
    response = gmail_stack.api("delete-account", account_id, role="member")

    # Then it is gone, Google stopped pushing and the refresh token no longer works
    assert response["statusCode"] == 200, response
    assert gmail_stack.google.gmail.mailbox(USER).watch is None
    assert not refresh_works(gmail_stack, refresh_token)
    assert gmail_stack.accounts.accounts_for_address("gmail", USER) == []


def test_an_oauth_account_has_no_imap_password_to_change(gmail_stack: GmailStack) -> None:
    account_id = gmail_stack.connect()
    response = gmail_stack.api("patch-account", account_id, role="member", body={"imap": {"password": "x"}})
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (400, "oauth_account")


def test_without_a_usable_id_token_the_address_comes_from_gmail(gmail_stack: GmailStack) -> None:
    from mailbridge.oauth.providers import GoogleOAuth, TokenGrant

    # Given an access token, and either no ID token or one issued to another client
    token = HTTP.post(
        gmail_stack.google.token_url,
        data={
            "grant_type": "authorization_code",
            "code": gmail_stack.consent_code(),
            "code_verifier": "v" * 43,
            "redirect_uri": REDIRECT,
            "client_id": gmail_stack.client.client_id,
            "client_secret": gmail_stack.client.client_secret,
        },
    ).json()
    now = int(gmail_stack.clock.now().timestamp())
    foreign = gmail_stack.google.keys.sign(
        {
            "iss": "https://accounts.google.com",
            "aud": "someone-else.apps.googleusercontent.com",
            "sub": "1",
            "email": "mallory@example.com",
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
    )
    provider = GoogleOAuth(get_google(), lambda: gmail_stack.client.client_secret)

    # When the provider learns who connected
    for id_token in (None, foreign):
        grant = TokenGrant(access_token=token["access_token"], expires_in=3600, scopes=(), id_token=id_token)
        # Then it asks Gmail's getProfile
        assert provider.identify(grant).address == USER
