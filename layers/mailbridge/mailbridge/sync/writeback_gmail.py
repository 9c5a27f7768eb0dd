"""Gmail write-back: flag changes made through the API (`PATCH /emails/{id}`) become
`users.messages.modify` on the email's Gmail message (the `PushFlags` queue path IMAP uses).

IMAP flag -> Gmail system label (Gmail API "Manage labels" guide: `UNREAD`, `STARRED`):

    \\Seen added    -> remove UNREAD        \\Seen removed    -> add UNREAD
    \\Flagged added -> add STARRED          \\Flagged removed -> remove STARRED

Archive and trash (`PATCH /emails/{id}` `archived` / `trashed`; Gmail Help "Archive or mute
Gmail messages": archiving removes the INBOX label; API reference `users.messages.trash`):

    archived true  -> remove INBOX          archived false -> add INBOX
    trashed true   -> messages.trash        trashed false  -> messages.untrash

The labels go in the same `messages.modify` as the flags; trash/untrash follow it. Gmail's
history then reports the label changes, so the sync moves the email between folders itself.

The Gmail message id is read from the email's location in the account
(`mailbridge.providers.gmail.locations`). Errors (`mailbridge.providers.gmail.errors`):

- ProviderRateLimited (429, 403 `userRateLimitExceeded`, our own quota budget) and 5xx/timeouts:
  waited out here up to `ATTEMPTS` times (the advised `retry_after`, else 2, 4 s; never more than
  `MAX_WAIT_SECONDS` at once), then raised, so the SyncQueue redelivers the record after its
  visibility timeout (and parks it in the DLQ after `maxReceiveCount`): never a tight loop.
- 401: the client refreshes the access token once; a second 401 or a revoked grant is
  ProviderAuthError(`reauth_required`), and `oauth.tokens` has already failed the account:
  the push is dropped (logged), nothing is retried until the user reconnects.
- 404 (MessageNotFound): the message is gone from Gmail; that location is skipped (the sync
  marks the email deleted when it reads the history). Other refusals (4xx) are logged and skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.models.account import Account
from mailbridge.observability import logger
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.gmail.locations import gmail_message_id
from mailbridge.store.emails import EmailStore
from mailbridge.sync.messages import PushFlags

SEEN, FLAGGED = "\\Seen", "\\Flagged"
UNREAD, STARRED, INBOX = "UNREAD", "STARRED", "INBOX"
ATTEMPTS = 3
MAX_WAIT_SECONDS = 30.0


def labels_for(add: Iterable[str], remove: Iterable[str]) -> tuple[list[str], list[str]]:
    """(addLabelIds, removeLabelIds) for IMAP flags added and removed; other flags are ignored."""
    add_labels: list[str] = []
    remove_labels: list[str] = []
    for flag in add:
        if flag == SEEN:
            remove_labels.append(UNREAD)
        elif flag == FLAGGED:
            add_labels.append(STARRED)
    for flag in remove:
        if flag == SEEN:
            add_labels.append(UNREAD)
        elif flag == FLAGGED:
            remove_labels.append(STARRED)
    return add_labels, remove_labels


def with_retries(call: Callable[[], object], sleep: Callable[[float], None]) -> None:
    """Run `call`, waiting out transient Gmail errors (see the module docstring)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            call()
            return
        except ProviderError as exc:
            if not exc.retryable or attempt == ATTEMPTS:
                raise
            advised = exc.retry_after if isinstance(exc, ProviderRateLimited) else None
            wait = advised if advised is not None else 2.0**attempt
            if wait > MAX_WAIT_SECONDS:
                raise  # too long to hold the Lambda: the queue redelivers later
            logger.info("gmail write-back retried", extra={"code": exc.code, "attempt": attempt})
            sleep(wait)


def _default_client(account: Account) -> GmailClient:
    from mailbridge.config import get_settings
    from mailbridge.providers.gmail.connect import client_for

    return client_for(account, get_settings().google)


def push_labels(
    message: PushFlags,
    account: Account,
    emails: EmailStore,
    *,
    client_for: Callable[[Account], GmailClient] = _default_client,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write `message`'s flag change to the email's Gmail message; returns the messages changed.

    Raises ProviderError (retryable) when Gmail stays unavailable or rate limited: the queue
    redelivers. The stored location's flags follow each change Gmail accepted."""
    item = emails.get_email(message.tenant_id, message.email_id)
    if item is None:
        return 0
    add_labels, remove_labels = labels_for(message.add, message.remove)
    if message.archived is not None:
        (remove_labels if message.archived else add_labels).append(INBOX)
    if not add_labels and not remove_labels and message.trashed is None:
        return 0
    locations = [
        loc
        for loc in emails.batch_get_sks(message.tenant_id, sorted(item.get("loc_keys") or []))
        if loc.get("account_id") == message.account_id and gmail_message_id(loc) is not None
    ]
    if not locations:
        return 0
    client = client_for(account)
    changed = 0
    written: set[str] = set()  # one Gmail message has a location per label-folder: one call each
    for loc in locations:
        gmail_id = str(gmail_message_id(loc))
        calls: list[Callable[[], object]] = []
        if gmail_id not in written and (add_labels or remove_labels):
            calls.append(partial(client.modify, gmail_id, add=add_labels, remove=remove_labels))
        if gmail_id not in written and message.trashed is not None:
            calls.append(partial(client.trash if message.trashed else client.untrash, gmail_id))
        try:
            for call in calls:
                with_retries(call, sleep)
        except ProviderError as exc:
            if exc.retryable:
                raise  # still failing after ATTEMPTS: the queue redelivers
            # 404 message_not_found, reauth_required, other refusals: nothing a retry would fix
            logger.warning("gmail write-back skipped", extra={"code": exc.code})
            if isinstance(exc, ProviderAuthError):
                return changed  # every other message of the account would be refused too
            continue
        written.add(gmail_id)
        flags = (set(loc.get("flags") or []) | set(message.add)) - set(message.remove)
        emails.set_location_flags(message.tenant_id, str(loc["sk"]), sorted(flags), None)
        changed += 1
    return changed
