"""Connecting Microsoft 365 through the oauth function on moto, with the Microsoft double as
Microsoft and msal as the client: start -> consent -> callback -> a `graph` account with msal's
token cache sealed; refresh-token rotation under two concurrent refreshes; invalid_grant ->
reauth_required; reconnecting."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from mailbridge import accounts as account_service
from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.errors import ProviderAuthError
from mailbridge.oauth import tokens
from mailbridge.oauth.microsoft import MicrosoftOAuth
from mailbridge.oauth.providers import TokenGrant, get_provider
from mailbridge.store.accounts import AccountStore
from tests.events import load_event
from tests.integration.graph_harness import REDIRECT, TENANT, USER, GraphStack, query_of


def test_the_authorization_url_asks_for_mail_scopes_a_refresh_token_and_consent_with_pkce(
    graph_stack: GraphStack,
) -> None:
    # When a member starts a Microsoft connection
    params = query_of(graph_stack.authorization_url())

    # Then the double's authorize endpoint (from the authority's OpenID metadata) is asked for the
    # mail scopes, offline_access, consent and an S256 challenge, with our redirect URI
    assert params["scope"].split()[:3] == ["Mail.ReadWrite", "Mail.Send", "offline_access"]
    assert (params["prompt"], params["code_challenge_method"], params["response_type"]) == (
        "consent",
        "S256",
        "code",
    )
    assert (params["redirect_uri"], params["client_id"]) == (REDIRECT, graph_stack.app.client_id)


def test_connecting_creates_a_graph_account_with_msals_token_cache_sealed(graph_stack: GraphStack) -> None:
    # Given a member who consents at the double
    params = graph_stack.consent(graph_stack.authorization_url())

    # When the double redirects to the callback
    outcome = graph_stack.outcome(graph_stack.callback(params))

    # Then a graph account exists for the address of the ID token
    assert outcome["outcome"] == "connected", outcome
    account = graph_stack.account(outcome["account_id"])
    assert (account.provider, account.address) == ("graph", USER)
    assert account.oauth is not None
    assert {"Mail.ReadWrite", "Mail.Send"} <= set(account.oauth.scopes)
    # And the credentials are a KMS envelope holding msal's cache with a live refresh token
    item = graph_stack.account_item(outcome["account_id"])
    assert set(item["credentials"]) == {"v", "encrypted_key", "nonce", "ciphertext"}
    cache = json.loads(account_service.load_secrets(graph_stack.accounts, account)["token_cache"] or "{}")
    refresh_tokens = [entry["secret"] for entry in cache["RefreshToken"].values()]
    assert len(refresh_tokens) == 1
    assert refresh_tokens[0] in graph_stack.ms.identity.refresh_tokens
    # And its first sync is queued
    assert [(m["kind"], m["account_id"], m["reason"]) for m in graph_stack.sync_messages()] == [
        ("sync", outcome["account_id"], "connected")
    ]


def test_contact_import_adds_contacts_read(graph_stack: GraphStack) -> None:
    # Given a tenant that switched contact import on
    on = graph_stack.invoke(
        "api", load_event("api/put-features.json", tenant=TENANT, role="admin", body={"contact_import": True})
    )
    assert on["statusCode"] == 200, on

    # When a member starts
    scopes = query_of(graph_stack.authorization_url())["scope"].split()

    # Then Contacts.Read is asked for too
    assert "Contacts.Read" in scopes


def test_the_calendar_flag_adds_calendars_readwrite(graph_stack: GraphStack) -> None:
    # Given a member's consent while the calendar flag is off
    off = query_of(graph_stack.authorization_url())["scope"].split()
    # When an admin switches the calendar flag on and the member starts again
    on = graph_stack.invoke(
        "api", load_event("api/put-features.json", tenant=TENANT, role="admin", body={"calendar": True})
    )
    assert on["statusCode"] == 200, on
    scopes = query_of(graph_stack.authorization_url())["scope"].split()
    # Then only the second asks for Calendars.ReadWrite
    assert "Calendars.ReadWrite" not in off
    assert "Calendars.ReadWrite" in scopes


def _tokens(store: AccountStore) -> tokens.AccessTokens:
    """One Lambda invocation's token cache (each invocation has its own process memory)."""
    settings = get_settings()
    return tokens.AccessTokens(
        store,
        EventPublisher(settings.event_bus_name),
        key_id=settings.data_key_id,
        providers=lambda name: get_provider(name, settings),
    )


def _stored_access_tokens(graph_stack: GraphStack, account_id: str) -> set[str]:
    account = graph_stack.account(account_id)
    cache = json.loads(account_service.load_secrets(graph_stack.accounts, account)["token_cache"] or "{}")
    return {str(entry["secret"]) for entry in cache["AccessToken"].values()}


def _stored_refresh_token(graph_stack: GraphStack, account_id: str) -> str:
    account = graph_stack.account(account_id)
    cache = json.loads(account_service.load_secrets(graph_stack.accounts, account)["token_cache"] or "{}")
    (entry,) = cache["RefreshToken"].values()
    return str(entry["secret"])


def test_access_token_serves_graph_accounts_and_a_forced_refresh_stores_the_rotated_refresh_token(
    graph_stack: GraphStack,
) -> None:
    # Given a connected account
    account_id = graph_stack.connect()
    account = graph_stack.account(account_id)
    first = _stored_refresh_token(graph_stack, account_id)

    # When an adapter asks for a token, then for a fresh one (Graph answered 401)
    source = _tokens(graph_stack.accounts)
    token = source.get(account)
    forced = source.get(account, force_refresh=True)

    # Then both work at Graph, and the rotated refresh token replaced the first in the sealed cache
    assert graph_stack.graph_me(token) == 200
    assert graph_stack.graph_me(forced) == 200
    assert forced != token
    rotated = _stored_refresh_token(graph_stack, account_id)
    assert rotated != first
    assert rotated in graph_stack.ms.identity.refresh_tokens
    assert int(graph_stack.account_item(account_id)["credentials_version"]) == 1


class _BothRefreshFirst:
    """The real provider, except that each refresh waits until the other has refreshed too: two
    invocations that read the same cache version and both got a rotated refresh token."""

    def __init__(self, real: MicrosoftOAuth, barrier: threading.Barrier) -> None:
        self.real = real
        self.barrier = barrier
        self.issued: list[str] = []

    def acquire(self, token_cache: str, *, force_refresh: bool) -> tuple[TokenGrant, str | None]:
        grant, changed = self.real.acquire(token_cache, force_refresh=force_refresh)
        if force_refresh:
            self.issued.append(grant.access_token)
            self.barrier.wait(timeout=120)
        return grant, changed

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def _one_dynamodb_request_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies a conditional write atomically; moto in-process does not (two threads can
    both pass `attribute_not_exists` before either writes), so its requests are serialized here,
    as the local runner serializes them (local/runner.py)."""
    from botocore.client import BaseClient

    lock = threading.Lock()
    original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - not in the stubs

    def serialized(client: Any, operation: str, params: Any) -> Any:
        if client.meta.service_model.service_name != "dynamodb":
            return original(client, operation, params)
        with lock:
            return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", serialized)


def test_two_concurrent_refreshes_keep_one_newer_cache_and_the_loser_uses_it(
    graph_stack: GraphStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _one_dynamodb_request_at_a_time(monkeypatch)
    # Given a connected account and two invocations that both read its cache before either writes
    account_id = graph_stack.connect()
    account = graph_stack.account(account_id)
    settings = get_settings()
    real = get_provider("graph", settings)
    assert isinstance(real, MicrosoftOAuth)
    racing = _BothRefreshFirst(real, threading.Barrier(2))
    invocations = []
    for _ in range(2):
        source = _tokens(graph_stack.accounts)
        source._providers = lambda _name: racing  # type: ignore[assignment,return-value]
        invocations.append(source)
    answers: list[str] = []

    def refresh(source: tokens.AccessTokens) -> None:
        answers.append(source.get(account, force_refresh=True))

    # When both force a refresh at the same moment (the double rotates the refresh token each time)
    threads = [threading.Thread(target=refresh, args=(source,)) for source in invocations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    # Then the cache was written once (one conditional write won), and the loser re-read it and
    # answered a token from that newer cache, not the one it got itself: both answers are in the
    # stored cache (msal keeps the connect's token too, for its other scope set), one of them is
    # the winner's, and the loser's own token is not kept
    assert len(racing.issued) == 2
    assert int(graph_stack.account_item(account_id)["credentials_version"]) == 1
    assert len(answers) == 2
    kept = _stored_access_tokens(graph_stack, account_id)
    assert set(answers) <= kept
    assert len(set(racing.issued) & kept) == 1
    # And the stored refresh token is the winner's rotated one, still good at the double
    stored = _stored_refresh_token(graph_stack, account_id)
    assert stored in graph_stack.ms.identity.refresh_tokens
    assert all(graph_stack.graph_me(answer) == 200 for answer in answers)


def test_a_withdrawn_consent_makes_the_account_reauth_required_and_reconnecting_resumes(
    graph_stack: GraphStack,
) -> None:
    # Given a connected account whose user then removes the app (AADSTS65001 on refresh)
    account_id = graph_stack.connect()
    graph_stack.sync_messages()
    graph_stack.ms.withdraw_consent(USER)
    account = graph_stack.account(account_id)

    # When a token is needed
    source = _tokens(graph_stack.accounts)
    try:
        source.get(account, force_refresh=True)
        raised = None
    except ProviderAuthError as exc:
        raised = exc.code

    # Then it is reauth_required and the account is failed with that reason
    assert raised == "reauth_required"
    assert graph_stack.account(account_id).sync.reason == "reauth_required"

    # When the member reconnects the account
    again = graph_stack.connect(account_id=account_id)

    # Then the same account is back, its failure cleared, a sync queued and tokens flow again
    assert again == account_id
    resumed = graph_stack.account(account_id)
    assert resumed.sync.reason is None
    assert [m["reason"] for m in graph_stack.sync_messages()] == ["connected"]
    assert graph_stack.graph_me(_tokens(graph_stack.accounts).get(resumed, force_refresh=True)) == 200


def test_a_revoked_session_is_reauth_required(graph_stack: GraphStack) -> None:
    # Given a connected account whose sessions an admin revoked (AADSTS50173)
    account_id = graph_stack.connect()
    graph_stack.ms.revoke(USER)

    # When a token is refreshed
    try:
        _tokens(graph_stack.accounts).get(graph_stack.account(account_id), force_refresh=True)
        raised = None
    except ProviderAuthError as exc:
        raised = exc.code

    # Then the account needs reconnecting
    assert raised == "reauth_required"
    assert graph_stack.account(account_id).sync.reason == "reauth_required"
