"""`POST /webhooks/gmail`: a Gmail change notification pushed by Pub/Sub.

Body (Gmail push guide [D], notes.md): `{"message": {"data": base64(JSON {"emailAddress",
"historyId"}), "messageId", "publishTime", ...}, "subscription"}`. After the OIDC token verified
(`verify.py`), the notification is deduped on the Pub/Sub `messageId` (a receipt written on
condition that it does not exist, store/push_receipts.py, kept `DEDUPE_SECONDS`: as long as
Pub/Sub retains and may redeliver a message) and a `SyncRequest(reason="push")` is queued for
every account connected for `emailAddress` (the push lookup of the accounts table,
store/accounts.py): one per tenant that connected the mailbox, none for an address nobody
connected. The answer is 204 at once (Pub/Sub counts 102, 200, 201, 202, 204 as an
acknowledgement); refusals are 4xx with a code, so Pub/Sub retries only what could succeed later
(502 `certs_unavailable`, 503 `queue_send_failed`: the receipt is removed first, so the retry is
handled).

Three AWS requests per push, in order: the receipt (PutItem), the lookup (Query), the queueing
(SendMessageBatch). A forged push is refused before the first, so it queues nothing and does not
spends the genuine message id. A delivery of a message id already being handled by another is
acknowledged with nothing queued (the other one queues the sync, or fails and is retried); a
function stopped between the receipt and the queueing (a timeout) leaves the receipt, and the
account's next push or the 15-minute Gmail poll catches the change: the push is a hint, the
saved historyId the truth.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field, ValidationError

from mailbridge import opsmetrics
from mailbridge.errors import Forbidden, Invalid, MailbridgeError, Unauthorized
from mailbridge.models.base import Model
from mailbridge.observability import logger
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.push_receipts import PushReceiptStore
from mailbridge.sync.messages import SyncRequest
from mailbridge.webhooks.verify import PushVerifier

PROVIDER = "gmail"
MAX_BODY_BYTES = 64 * 1024  # a Gmail notification is well under 1 KiB
DEDUPE_SECONDS = 7 * 24 * 3600  # Pub/Sub keeps an unacknowledged message 7 days by default [D]


class _PubsubMessage(Model):
    data: str = Field(min_length=1, max_length=8192)
    message_id: str = Field(alias="messageId", min_length=1, max_length=128)


class _Envelope(Model):
    message: _PubsubMessage


class _Notification(Model):
    email_address: str = Field(
        alias="emailAddress", min_length=3, max_length=320, pattern=r"^[^\s@]+@[^\s@]+$"
    )
    history_id: int | str = Field(alias="historyId")


class PushNotice(Model):
    """What a verified push says (deduped on `message_id`)."""

    message_id: str
    email_address: str
    history_id: str


class PushResult(Model):
    queued: int = 0


@dataclass
class WebhookDeps:
    verifier: PushVerifier | None  # None: push is not configured on this deployment
    receipts: PushReceiptStore
    accounts: AccountStore
    queue: SyncQueue
    now: Callable[[], datetime]


def _invalid() -> Invalid:
    return Invalid("the body is not a Pub/Sub push of a Gmail notification", code="invalid_push")


def parse(body: str | None) -> PushNotice:
    """The notice in a push body; Invalid(invalid_push) for anything else (never a 5xx)."""
    if not body or len(body) > MAX_BODY_BYTES:
        raise _invalid()
    try:
        envelope = _Envelope.model_validate(json.loads(body))
        data = base64.b64decode(
            envelope.message.data + "=" * (-len(envelope.message.data) % 4), altchars=b"-_"
        )
        notification = _Notification.model_validate(json.loads(data))
    except (ValueError, ValidationError, RecursionError, binascii.Error):
        raise _invalid() from None
    history = str(notification.history_id)
    if not history.isascii() or not history.isdigit():
        raise _invalid()
    return PushNotice(
        message_id=envelope.message.message_id, email_address=notification.email_address, history_id=history
    )


def _reject_reason(exc: MailbridgeError) -> str:
    """The token check that failed (`wrong_audience`, `expired`, ...) or else the error code."""
    details = exc.details if isinstance(exc.details, dict) else {}
    reason = details.get("reason")
    return reason if isinstance(reason, str) else exc.code


def receive(authorization: str | None, body: str | None, deps: WebhookDeps) -> PushResult:
    """Verify, parse, dedupe and queue; see the module docstring for the answers."""
    try:
        if deps.verifier is None:
            raise Forbidden("Gmail push is not configured on this deployment", code="push_not_configured")
        deps.verifier.verify(authorization)
        notice = parse(body)
    except (Unauthorized, Forbidden, Invalid) as exc:
        opsmetrics.webhook_rejected(PROVIDER, _reject_reason(exc))
        raise
    expires_at = int(deps.now().timestamp()) + DEDUPE_SECONDS
    if not deps.receipts.claim(PROVIDER, notice.message_id, expires_at):
        logger.info("gmail push seen before")
        return PushResult()
    try:
        return queue_syncs(notice, deps.accounts, deps.queue)
    except BaseException:
        deps.receipts.release(PROVIDER, notice.message_id)
        raise


def queue_syncs(notice: PushNotice, accounts: AccountStore, queue: SyncQueue) -> PushResult:
    """Queue a sync of every account connected for the notice's mailbox (see the module docstring).

    SQS FIFO deduplication (5 minutes, per message and account) backs up the receipt. Two
    requests and no more (the lookup and one SendMessageBatch): the lookup item goes with its
    account in one transaction, and a sync of an account removed meanwhile is dropped by the sync.
    """
    requests: list[SyncRequest] = []
    ids: list[str] = []
    for tenant_id, account_id in accounts.accounts_for_address(PROVIDER, notice.email_address):
        requests.append(SyncRequest(tenant_id=tenant_id, account_id=account_id, reason="push"))
        ids.append(f"push-{notice.message_id}-{account_id}"[:128])
    if requests:
        queue.send_many(requests, ids)
    logger.info("gmail push", extra={"queued": len(requests)})
    return PushResult(queued=len(requests))
