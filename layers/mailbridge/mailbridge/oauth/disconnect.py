"""Saying goodbye to an OAuth provider when a mailbox is removed (`DELETE /accounts/{id}`).

Microsoft (`graph`): the account's Graph subscriptions are deleted (webhooks/graph_subscriptions.py);
there is no grant to revoke from the client side.

Best effort, in this order: stop the push watch (it needs a live access token, so it comes
before the revocation), then revoke the refresh token, which revokes the whole grant and every
access token issued under it (Google: "Revoking a token", web-server guide; RFC 7009). A failure
is logged by its code and never keeps the account connected: the account and its sealed
credentials are deleted right after, and a push for the mailbox then finds no account.
"""

from __future__ import annotations

from mailbridge import accounts as account_service
from mailbridge.config import Settings, get_settings
from mailbridge.errors import MailbridgeError
from mailbridge.models.account import Account
from mailbridge.oauth.providers import provider_for_account
from mailbridge.observability import logger
from mailbridge.store.accounts import AccountStore


def disconnect(
    account: Account, *, store: AccountStore | None = None, settings: Settings | None = None
) -> None:
    settings = settings or get_settings()
    store = store or AccountStore(settings.tables.accounts)
    if account.provider == "graph":
        # Graph subscriptions are deleted with a live token; Microsoft has no client revocation.
        from mailbridge.webhooks.graph_subscriptions import unsubscribe

        try:
            unsubscribe(account)
        except MailbridgeError as exc:
            logger.warning("disconnect: graph subscriptions not deleted", extra={"code": exc.code})
    try:
        provider = provider_for_account(account.provider, settings)
        refresh_token = account_service.load_secrets(store, account).get("refresh_token")
    except MailbridgeError as exc:
        logger.warning("disconnect: no grant to revoke", extra={"code": exc.code})
        return
    if not refresh_token:
        return
    if account.provider == "gmail" and settings.google.push_configured:
        try:
            from mailbridge.providers.gmail.client import GmailClient

            access = provider.refresh(refresh_token).access_token
            GmailClient(settings.google.gmail_api_url, lambda _force: access).stop()
        except MailbridgeError as exc:
            logger.warning("disconnect: watch not stopped", extra={"code": exc.code})
    try:
        provider.revoke(refresh_token)
    except MailbridgeError as exc:
        logger.warning("disconnect: grant not revoked", extra={"code": exc.code})
    from mailbridge.oauth.tokens import default_tokens

    default_tokens().forget(account)
