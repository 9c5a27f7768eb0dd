"""A Gmail account's adapter, and its push watch: started on connect, renewed daily, stopped on
removal.

Gmail push (developers.google.com/workspace/gmail/api/guides/push, notes.md [D]): `users.watch`
names the Pub/Sub topic (`GMAIL_PUSH_TOPIC`) and lasts 7 days; Google recommends calling it
again once a day, which the `GmailWatchRenewSchedule` does (a `renew_watches` message fanned out
to one message per account). No label filter: label changes are what keep flags in sync. With no
push settings, nothing is watched and the 15-minute poll keeps Gmail accounts in sync.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from mailbridge.config import GoogleSettings
from mailbridge.errors import MailbridgeError, NotFound, ProviderAuthError
from mailbridge.models.account import Account
from mailbridge.observability import logger
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.gmail.models import Watch
from mailbridge.providers.gmail.quota import budget_for
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.sync.messages import RenewWatches

PROVIDER: Final = "gmail"


def client_for(account: Account, settings: GoogleSettings) -> GmailClient:
    """The account's adapter: its tokens (mailbridge.oauth.tokens) and its quota budget."""
    from mailbridge.oauth.tokens import token_source

    return GmailClient(
        settings.gmail_api_url,
        token_source(account),
        budget=budget_for(f"{account.tenant_id}:{account.account_id}"),
    )


def start_watch(
    account: Account, settings: GoogleSettings, client: GmailClient | None = None
) -> Watch | None:
    """users.watch on the configured topic; None when push is not configured."""
    if not settings.push_configured:
        return None
    watch = (client or client_for(account, settings)).watch(settings.push_topic)
    logger.info("gmail watch started", extra={"expires_at": watch.expires_at.isoformat()})
    return watch


def renew_watches(
    message: RenewWatches, accounts: AccountStore, queue: SyncQueue, settings: GoogleSettings
) -> int:
    """Without an account: queue one `renew_watches` per active Gmail account (one dedupe id per
    account and day); with one: call `users.watch` for it. Returns how many were queued/renewed.

    A failure is logged and left to the next day: a watch lasts 7 days. A revoked grant has
    already put the account in `reauth_required` (mailbridge.oauth.tokens) and out of the poll.
    """
    if not settings.push_configured:
        return 0
    if message.tenant_id is None or message.account_id is None:
        day = datetime.now(UTC).strftime("%Y%m%d")
        requests: list[RenewWatches] = []
        ids: list[str] = []
        for tenant_id, account_id in accounts.pollable(PROVIDER):
            requests.append(RenewWatches(provider=PROVIDER, tenant_id=tenant_id, account_id=account_id))
            ids.append(f"watch-{tenant_id}-{account_id}-{day}"[:128])
        if requests:
            queue.send_many(requests, ids)
        return len(requests)
    try:
        account = accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return 0
    try:
        start_watch(account, settings)
    except ProviderAuthError as exc:
        logger.warning("gmail watch not renewed: the grant is gone", extra={"code": exc.code})
        return 0
    except MailbridgeError as exc:
        logger.warning("gmail watch not renewed", extra={"code": exc.code})
        return 0
    return 1
