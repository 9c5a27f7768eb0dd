"""`POST /webhooks/graph`: Microsoft Graph change and lifecycle notifications, and the handshake.

Sources: Graph "Receive change notifications through webhooks" and "Reduce missing subscriptions
and change notifications" (lifecycle events) [D]; notes.md (Graph section).

* Validation: Graph POSTs `?validationToken=<url-encoded token>` to the notificationUrl and the
  lifecycleNotificationUrl when a subscription is created, and wants 200 `text/plain` with the
  URL-decoded token as the whole body within 10 s ("If the client returns an encoded validation
  token, the validation fails"). API Gateway decodes the query once; the token is echoed at once
  with nothing looked up. A token over `MAX_TOKEN_CHARS`, with a control character, or still
  percent-encoded after decoding (a doubly encoded or forged token: real ones are plain text) is
  refused with 400 `invalid_validation_token`.
* Notifications: `{"value": [...]}`, possibly several subscriptions in one batch. Each item must
  name a `subscriptionId` we created (the GRAPHSUB lookup, store/graph_subscriptions.py) and carry
  its `clientState`, compared as SHA-256 digests with `hmac.compare_digest`. Change items queue
  one `SyncRequest(reason="push")` per account per batch (the deltaLink is the truth, so one sync
  covers every change named); lifecycle items (`lifecycleEvent`):
  `reauthorizationRequired` -> a forced renewal, `subscriptionRemoved` -> recreate the folder's
  subscription and a `SyncRequest(reason="resync")`, `missed` -> `SyncRequest(reason="resync")`.
  Work is queued (SyncQueue), never done here; the answer is 202 at once.
* Refusals (never a 5xx for any body): 400 `invalid_notification` for a body that is not a
  notification batch; 403 `forged_notification` when no item is authentic (unknown subscription,
  wrong or missing clientState): nothing is queued. Authentic items of a batch are queued even
  when others in it are not (Graph never mixes; a forger gains nothing). 503 `queue_send_failed`
  when SQS refuses (Graph retries for up to 4 hours).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailbridge import opsmetrics
from mailbridge.errors import Forbidden, Invalid
from mailbridge.observability import logger
from mailbridge.queues import SyncQueue
from mailbridge.store.graph_subscriptions import GraphSubscriptionStore, SubscriptionRecord
from mailbridge.sync.messages import RenewWatches, SyncMessage, SyncRequest

MAX_TOKEN_CHARS = 512
MAX_BODY_BYTES = 256 * 1024  # notifications without resource data are well under 1 KiB each
MAX_ITEMS = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PERCENT_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
LifecycleEvent = Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    subscription_id: str = Field(
        alias="subscriptionId", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$"
    )
    client_state: str | None = Field(default=None, alias="clientState", max_length=255)
    lifecycle_event: LifecycleEvent | None = Field(default=None, alias="lifecycleEvent")


class _Batch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: list[_Item] = Field(min_length=1, max_length=MAX_ITEMS)


@dataclass
class GraphWebhookDeps:
    subscriptions: GraphSubscriptionStore
    queue: SyncQueue


@dataclass(frozen=True)
class Received:
    accepted: int
    rejected: int
    queued: int


def client_state_digest(client_state: str) -> str:
    """What is stored for a clientState and compared: SHA-256, hex."""
    return hashlib.sha256(client_state.encode()).hexdigest()


def validation_answer(token: str) -> str:
    """The body of the handshake's answer: the token as API Gateway decoded it; Invalid otherwise."""
    if not token or len(token) > MAX_TOKEN_CHARS or _CONTROL.search(token) or _PERCENT_ENCODED.search(token):
        opsmetrics.webhook_rejected("graph", "invalid_validation_token")
        raise Invalid("the validationToken is not one Graph sends", code="invalid_validation_token")
    return token


def parse(body: str | None) -> list[_Item]:
    """The items of a notification batch; Invalid(invalid_notification) for anything else."""
    if not body or len(body) > MAX_BODY_BYTES:
        raise Invalid("the body is not a Graph notification batch", code="invalid_notification")
    try:
        return _Batch.model_validate(json.loads(body)).value
    except (ValueError, ValidationError, RecursionError):
        raise Invalid("the body is not a Graph notification batch", code="invalid_notification") from None


def _authentic(item: _Item, record: SubscriptionRecord | None) -> bool:
    if record is None or item.client_state is None:
        return False
    return hmac.compare_digest(client_state_digest(item.client_state), record.client_state_hash)


def receive(body: str | None, deps: GraphWebhookDeps) -> Received:
    """Check and queue a batch (see the module docstring); raises Invalid / Forbidden."""
    try:
        items = parse(body)
    except Invalid as exc:
        opsmetrics.webhook_rejected("graph", exc.code)
        raise
    known = deps.subscriptions.get_many(item.subscription_id for item in items)
    digest = hashlib.sha256((body or "").encode()).hexdigest()[:40]
    messages: dict[str, SyncMessage] = {}  # dedupe id -> message: one of each per batch
    accepted = rejected = 0
    for item in items:
        record = known.get(item.subscription_id)
        if record is None or not _authentic(item, record):
            rejected += 1
            continue
        accepted += 1
        account = f"{record.tenant_id}-{record.account_id}"
        event = item.lifecycle_event
        if event is None:
            messages.setdefault(
                f"graph-push-{account}-{digest}",
                SyncRequest(tenant_id=record.tenant_id, account_id=record.account_id, reason="push"),
            )
            continue
        if event == "reauthorizationRequired":
            messages.setdefault(
                f"graph-renew-{account}-{digest}",
                RenewWatches(
                    provider="graph", tenant_id=record.tenant_id, account_id=record.account_id, force=True
                ),
            )
            continue
        if event == "subscriptionRemoved":
            messages.setdefault(
                f"graph-recreate-{account}-{digest}",
                RenewWatches(
                    provider="graph",
                    tenant_id=record.tenant_id,
                    account_id=record.account_id,
                    action="recreate",
                ),
            )
        messages.setdefault(
            f"graph-resync-{account}-{digest}",
            SyncRequest(tenant_id=record.tenant_id, account_id=record.account_id, reason="resync"),
        )
    if rejected:
        opsmetrics.webhook_rejected("graph", "forged_notification", rejected)
    if accepted == 0:
        logger.warning("graph notification refused", extra={"rejected": rejected})
        raise Forbidden("no notification in the batch is authentic", code="forged_notification")
    if messages:
        deps.queue.send_many(list(messages.values()), [key[:128] for key in messages])
    logger.info(
        "graph notifications", extra={"accepted": accepted, "rejected": rejected, "queued": len(messages)}
    )
    return Received(accepted=accepted, rejected=rejected, queued=len(messages))
