"""The Gmail sender: an outbound email of a Gmail account goes out through `users.messages.send`.

- The raw RFC 5322 message is the one composed at request time (our Message-ID and Date), sent
  byte for byte as base64url `raw` (users.messages.send [D: gmail.v1 discovery]).
- A reply carries the `threadId` of the replied-to message in this mailbox (read with
  `messages.get?format=minimal` from its Gmail location): Gmail files the message in that thread
  when References/In-Reply-To name a message of it and the Subject matches (Message.threadId [D]).
- Exactly once: an earlier attempt may have reached Gmail and then failed (a timeout, a crash
  before the status moved to `sent`). Before sending, SENT is searched for our Message-ID
  (`rfc822msgid:`, 5 units against the send's 100); a copy found is taken as the send.
- A sent draft whose copy is a Gmail draft goes out by `users.drafts.send` with the final bytes
  (the draft's content replaced and sent in one call; Gmail removes the draft), else as above.
- The returned Gmail message id becomes the email's location (`providers.gmail.locations`), so
  the sync, when it meets the copy in SENT, finds the location and the email already stored.

Errors are the client's typed ones: ProviderRateLimited and 5xx are retried by the outbox's
retry rules (functions/outbox), ProviderAuthError(`reauth_required`) fails the send with that code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailbridge.errors import ProviderAuthError
from mailbridge.models.account import REAUTH_REQUIRED, Account
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.gmail.errors import DraftNotFound, MessageNotFound
from mailbridge.providers.gmail.locations import gmail_message_id
from mailbridge.providers.gmail.models import Sent
from mailbridge.store.emails import EmailStore

GmailClientFactory = Callable[[Account], GmailClient]


def default_client(account: Account) -> GmailClient:
    from mailbridge.config import get_settings
    from mailbridge.providers.gmail.connect import client_for

    return client_for(account, get_settings().google)


def reply_thread_id(
    account: Account, reply_to_email_id: str | None, emails: EmailStore, client: GmailClient
) -> str | None:
    """The Gmail threadId of the replied-to email in `account`'s mailbox, if it is there."""
    if not reply_to_email_id:
        return None
    original = emails.get_email(account.tenant_id, reply_to_email_id)
    if original is None:
        return None
    for loc in emails.batch_get_sks(account.tenant_id, sorted(original.get("loc_keys") or [])):
        gmail_id = gmail_message_id(loc) if loc.get("account_id") == account.account_id else None
        if gmail_id is None:
            continue
        try:
            return client.get_message(gmail_id).thread_id
        except MessageNotFound:
            continue
    return None


def send(
    account: Account,
    item: dict[str, Any],
    raw: bytes,
    emails: EmailStore,
    client_for: GmailClientFactory = default_client,
) -> Sent:
    """Send the stored outbound email `item` (its `raw` bytes) from the Gmail `account`.

    Raises ProviderAuthError(`reauth_required`) when the account waits for a reconnect (no call
    is made) or the grant turns out revoked; ProviderError / ProviderRateLimited as the client."""
    from mailbridge.drafts.provider import gmail_draft_id

    if account.sync.reason == REAUTH_REQUIRED:
        raise ProviderAuthError("the mailbox must be reconnected before it can send", code=REAUTH_REQUIRED)
    client = client_for(account)
    message_id = str(item.get("message_id") or "")
    if message_id:
        found = client.list_messages(label_ids=("SENT",), query=f"rfc822msgid:{message_id}")
        if found.messages:
            ref = found.messages[0]
            return Sent.model_validate({"id": ref.id, "threadId": ref.thread_id, "labelIds": ["SENT"]})
    draft_id = gmail_draft_id(item.get("draft"))
    if draft_id is not None:
        try:
            return client.send_draft(draft_id, raw)
        except DraftNotFound:
            pass  # deleted in Gmail since: sent as a new message
    thread_id = reply_thread_id(account, item.get("reply_to_email_id"), emails, client)
    return client.send(raw, thread_id)
