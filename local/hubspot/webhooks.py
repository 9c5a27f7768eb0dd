"""Webhook subscriptions of the app, signed event batches, retries, and forgeries.

Sources: providers/hubspot in the shared data [D: notes.md, the v1/v2/v3 signature test vectors
from HubSpot's Python SDK, the captured request headers, the reconstructed contact payload];
HubSpot "Webhooks API" and "Validating requests" [D as quoted in notes.md]:
* the body is a JSON array of up to 100 events, each with eventId, subscriptionId, portalId,
  appId, occurredAt (epoch ms), subscriptionType, attemptNumber (0 on the first try), objectId,
  changeSource, and propertyName / propertyValue for property changes;
* `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(client secret, method + URI + body + timestamp))
  with `X-HubSpot-Request-Timestamp` in epoch ms; before hashing, %3A %2F %3F %40 %21 %24 %27 %28
  %29 %2A %2C %3B in the URI are decoded [R]; receivers reject timestamps older than 5 minutes;
  the v1 headers (`X-HubSpot-Signature` = hex sha256(secret + body), `X-HubSpot-Signature-Version:
  v1`) still come along;
* a 2xx answer acknowledges; connection failures, timeouts, 5xx and 429 are retried (429 after
  its Retry-After) up to 10 times over about 24 hours with exponential backoff; 400, 401, 403,
  404 and 405 are not retried [R]; the receiver's timeout is in `X-HubSpot-Timeout-Millis`
  (10000 in the captured example).
The backoff starts at 84 seconds and doubles, so ten tries span about 24 hours [R: the schedule
itself is not documented]. Changes made through the API by an OAuth app carry changeSource
"INTEGRATION"; changes a user makes (the control API) "CRM_UI" [R].
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from local.double_server import Attempt, Outbox, Outgoing, RetryPolicy

MAX_EVENTS = 100
MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=84)
TIMEOUT_MILLIS = 10_000
NOT_RETRIED = frozenset({400, 401, 403, 404, 405})
USER_AGENT = (
    "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio-http-client) - "
    "WebhooksExecutorDaemon-executor"
)
EVENT_TYPES = (
    "contact.creation",
    "contact.deletion",
    "contact.propertyChange",
    "contact.privacyDeletion",
    "company.creation",
    "company.deletion",
    "company.propertyChange",
)
FORGERIES = ("bad_signature", "stale_timestamp", "replay", "tampered_body", "wrong_uri", "missing_signature")
_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def signing_uri(uri: str) -> str:
    for encoded, plain in _DECODE.items():
        uri = uri.replace(encoded, plain).replace(encoded.lower(), plain)
    return uri


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + signing_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signature_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def signature_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


@dataclass
class Subscription:
    id: int
    event_type: str
    property_name: str | None
    active: bool = True


@dataclass
class Batch:
    key: str
    events: list[dict[str, Any]] = field(default_factory=list)
    sent: bool = False
    requests: list[Outgoing] = field(default_factory=list)


def accepted(attempt: Attempt) -> bool:
    return attempt.status is not None and 200 <= attempt.status < 300


def retryable(attempt: Attempt) -> bool:
    return attempt.status is None or attempt.status >= 500 or attempt.status == 429


def backoff(failures: int, attempt: Attempt) -> timedelta:
    if attempt.status == 429 and (after := attempt.headers.get("retry-after", "")).isdigit():
        return timedelta(seconds=int(after))
    wait: timedelta = FIRST_RETRY * 2 ** (failures - 1)
    return wait


class Webhooks:
    def __init__(
        self,
        now: Callable[[], datetime],
        app_id: Callable[[], int],
        secret: Callable[[], str],
        portal_id: int,
        lock: threading.RLock,
        next_id: Callable[[], int],
    ) -> None:
        self.now = now
        self.app_id = app_id
        self.secret = secret
        self.portal_id = portal_id
        self.lock = lock
        self.next_id = next_id
        self.target_url: str | None = None
        self.subscriptions: dict[int, Subscription] = {}
        self.batches: list[Batch] = []
        self._open: Batch | None = None
        self._duplicate_next = 0
        self.outbox = Outbox(
            now,
            RetryPolicy(
                accepted, retryable, backoff, max_attempts=MAX_ATTEMPTS, timeout=TIMEOUT_MILLIS / 1000
            ),
            name="hubspot-webhooks",
        )

    def subscribe(self, event_type: str, property_name: str | None = None) -> Subscription:
        if event_type not in EVENT_TYPES:
            raise ValueError(f"event type must be one of {EVENT_TYPES}")
        if event_type.endswith("propertyChange") and not property_name:
            raise ValueError("a propertyChange subscription names its property")
        subscription = Subscription(self.next_id(), event_type, property_name)
        self.subscriptions[subscription.id] = subscription
        return subscription

    def change(
        self, object_type: str, object_id: int, kind: str, changed: dict[str, str | None], source: str
    ) -> None:
        """Queue events for a creation, deletion or property changes of one object."""
        if self.target_url is None:
            return
        occurred = int(self.now().timestamp() * 1000)
        for subscription in self.subscriptions.values():
            prefix, _, event = subscription.event_type.partition(".")
            if not subscription.active or prefix != object_type:
                continue
            base = {
                "objectId": object_id,
                "changeSource": source,
                "eventId": self.next_id(),
                "subscriptionId": subscription.id,
                "portalId": self.portal_id,
                "appId": self.app_id(),
                "occurredAt": occurred,
                "subscriptionType": subscription.event_type,
                "attemptNumber": 0,
            }
            if event == kind and kind in ("creation", "deletion"):
                self._add(base)
            elif event == "propertyChange" and kind in ("creation", "propertyChange"):
                name = subscription.property_name or ""
                if name in changed:
                    self._add(
                        {
                            "objectId": object_id,
                            "propertyName": name,
                            "propertyValue": changed[name],
                            **{k: v for k, v in base.items() if k != "objectId"},
                        }
                    )

    def _add(self, event: dict[str, Any]) -> None:
        batch = self._open
        if batch is None or batch.sent or len(batch.events) >= MAX_EVENTS:
            batch = Batch(key=str(event["eventId"]))
            self._open = batch
            self.batches.append(batch)
            copies = 2 if self._duplicate_next else 1
            self._duplicate_next = max(0, self._duplicate_next - 1)
            for _ in range(copies):
                self.outbox.enqueue(batch.key, self._builder(batch), payload=batch)
        batch.events.append(event)

    def duplicate_next(self, count: int = 1) -> None:
        self._duplicate_next += count

    def _builder(self, batch: Batch) -> Callable[[int], Outgoing]:
        def build(attempt: int) -> Outgoing:
            with self.lock:
                batch.sent = True
                events = [{**e, "attemptNumber": attempt - 1} for e in batch.events]
                request = self.request(self.target_url or "", json.dumps(events).encode())
                batch.requests.append(request)
                return request

        return build

    def request(
        self, url: str, body: bytes, timestamp: str | None = None, secret: str | None = None
    ) -> Outgoing:
        stamp = timestamp or str(int(self.now().timestamp() * 1000))
        key = secret if secret is not None else self.secret()
        return Outgoing(
            url,
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-HubSpot-Request-Timestamp": stamp,
                "X-HubSpot-Signature": signature_v1(key, body),
                "X-HubSpot-Signature-Version": "v1",
                "X-HubSpot-Signature-v3": signature_v3(key, "POST", url, body, stamp),
                "X-HubSpot-Timeout-Millis": str(TIMEOUT_MILLIS),
            },
            body,
        )

    def forge(
        self, forgery: str, url: str | None = None, events: list[dict[str, Any]] | None = None
    ) -> Outgoing:
        """A request shaped like HubSpot's that a receiver must refuse (never sent by the double)."""
        target = url or self.target_url or ""
        if forgery == "replay":
            sent = [r for b in self.batches for r in b.requests]
            if not sent:
                raise ValueError("no webhook request was sent yet")
            last = sent[-1]
            return Outgoing(last.url if url is None else url, dict(last.headers), last.body)
        payload = events or [
            {
                "objectId": 1,
                "changeSource": "CRM_UI",
                "eventId": self.next_id(),
                "subscriptionId": next(iter(self.subscriptions), 1),
                "portalId": self.portal_id,
                "appId": self.app_id(),
                "occurredAt": int(self.now().timestamp() * 1000),
                "subscriptionType": "contact.creation",
                "attemptNumber": 0,
            }
        ]
        body = json.dumps(payload).encode()
        if forgery == "bad_signature":
            return self.request(target, body, secret="not-" + self.secret())
        if forgery == "stale_timestamp":
            stale = str(int((self.now() - timedelta(minutes=6)).timestamp() * 1000))
            return self.request(target, body, timestamp=stale)
        if forgery == "tampered_body":
            signed = self.request(target, body)
            changed = json.dumps([{**payload[0], "objectId": 999_999}, *payload[1:]]).encode()
            return Outgoing(target, signed.headers, changed)
        if forgery == "wrong_uri":
            signed = self.request(target + "?other=1", body)
            return Outgoing(target, signed.headers, body)
        if forgery == "missing_signature":
            signed = self.request(target, body)
            headers = {k: v for k, v in signed.headers.items() if not k.startswith("X-HubSpot-Signature")}
            return Outgoing(target, headers, body)
        raise ValueError(f"unknown forgery {forgery!r}; one of {FORGERIES}")
