"""Graph change-notification subscriptions over webhooks: validation, delivery, lifecycle, forgeries.

Sources [D unless marked]: graph concepts change-notifications-delivery-webhooks,
includes/change-notifications-delivery-notificationurl-validation, change-notifications-lifecycle-
events, includes/change-notifications-subscription-lifetime, and providers/msgraph in the shared
data (notes.md and the stored payloads):
* creating a subscription first POSTs `{notificationUrl}?validationToken=<url-encoded token>`
  (Content-Type text/plain; charset=utf-8, no body) and the same to `lifecycleNotificationUrl`;
  the endpoint must answer within 10 s with 200, Content-Type text/plain and the URL-decoded
  token as the whole body ("If the client returns an encoded validation token, the validation
  fails"); otherwise no subscription is created and the request fails with 400. The token is
  opaque; real ones read "Validation: Testing client application reachability for subscription
  Request-Id: <guid>" [R: microsoft-graph-docs #21160], so they really need decoding; the 400
  texts are the ones clients quote [R: java-spring-webhooks-sample #82];
* any query string of the notificationUrl is kept on every POST;
* notifications are POSTed as `{"value": [...]}`, possibly batching several subscriptions that
  share the URL; a 2xx within 3 s acknowledges; otherwise Graph retries for up to 4 hours, then
  drops them (the retry schedule is not documented: exponential from 10 s to 10 min here [R]);
  dropped notifications are reported by a `missed` lifecycle event;
* lifecycle events `reauthorizationRequired`, `subscriptionRemoved`, `missed` go to the
  lifecycleNotificationUrl in the stored shape; reauthorizationRequired comes when the access token
  the subscription runs on or the subscription itself nears expiry (15 minutes before, here), and
  keeps coming (every 15 minutes, the doc's illustrative cadence) until
  `POST /subscriptions/{id}/reauthorize` or a PATCH; if nobody answers, delivery "eventually
  pauses" (one hour after the token expired, here [R]) and changes made while paused are lost;
* the maximum lifetime of Outlook message/contact subscriptions is 4,230 minutes in the stored doc
  versions (10,080 in newer notes: `max_minutes`); a longer expirationDateTime is clamped (or
  refused with `over_max="reject"`), and the answer carries the value Graph kept;
* an expired subscription is deleted: GET/PATCH answer 404, no more notifications.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from local.microsoft.errors import GraphError, bad_request
from local.microsoft.ids import Ids

log = logging.getLogger(__name__)

MAX_MINUTES = 4230
VALIDATION_TIMEOUT = 10.0
DELIVERY_TIMEOUT = 3.0
RETRY_FOR = timedelta(hours=4)
MIN_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(minutes=10)
REAUTH_LEAD = timedelta(minutes=15)
REAUTH_EVERY = timedelta(minutes=15)
PAUSE_AFTER = timedelta(hours=1)
CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
FORGERIES = ("wrong_client_state", "missing_client_state", "unknown_subscription", "wrong_tenant")
USER_AGENT = "Microsoft-Graph-Change-Notifications"  # [R]
VALIDATION_TEXT = "Validation: Testing client application reachability for subscription Request-Id: "  # [R]


def stamp(when: datetime) -> str:
    """Graph's subscription date-time form: seven fractional digits and a Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_stamp(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise bad_request("expirationDateTime is required.", "InvalidRequest")
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"Invalid expirationDateTime '{value}'.", "InvalidRequest") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Subscription:
    id: str
    app_id: str
    owner: str  # mailbox address, lower case
    creator_oid: str
    tenant_id: str
    resource: str
    kind: str  # "messages" | "contacts"
    folder_id: str | None  # None: every visible folder
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    immutable_ids: bool
    authorized_until: datetime
    created: datetime
    last_reauth_sent: datetime | None = None
    paused: bool = False

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": stamp(self.expiration),
            "creatorId": self.creator_oid,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass
class Pending:
    url: str
    item: dict[str, Any]
    subscription_id: str
    lifecycle: bool
    first: datetime
    due: datetime
    attempt: int = 1


@dataclass
class Delivery:
    """One POST the double made (validation requests are recorded too)."""

    url: str
    kind: str  # "validation" | "notification" | "lifecycle"
    count: int
    status: int | None
    error: str | None
    at: datetime
    attempt: int = 1
    body: dict[str, Any] | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class ForgedRequest:
    """A request shaped like one Graph sends, for webhook tests (the double never sends it)."""

    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class SubscriptionSettings:
    max_minutes: int = MAX_MINUTES
    over_max: str = "clamp"  # "clamp" | "reject"
    notification_delay: timedelta = timedelta(0)
    reauth_lead: timedelta = REAUTH_LEAD
    pause_after: timedelta | None = PAUSE_AFTER
    allow_http_loopback: bool = True  # Graph wants https; plain http is let through for 127.0.0.1 only


class Subscriptions:
    """Every subscription, the validation handshake, and the delivery queue with its retries."""

    def __init__(
        self, ids: Ids, now: Callable[[], datetime], settings: SubscriptionSettings | None = None
    ) -> None:
        self.ids = ids
        self.now = now
        self.settings = settings or SubscriptionSettings()
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self.dropped = 0  # notifications lost to a pause or after four hours of failed retries
        self._pending: list[Pending] = []
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drop_next = 0
        self._ticker: Callable[[], None] | None = None

    # ------------------------------------------------------------------ create / renew / delete

    def check_request(self, body: Any, known_folder: Callable[[str], str | None]) -> dict[str, Any]:
        """Validate a create request; returns the normalised parts (raises Graph's 400s)."""
        if not isinstance(body, dict):
            raise bad_request("Invalid request body.", "InvalidRequest")
        change_types = tuple(c.strip() for c in str(body.get("changeType") or "").split(",") if c.strip())
        if not change_types or any(c not in CHANGE_TYPES for c in change_types):
            raise bad_request(
                f"Invalid changeType '{body.get('changeType')}'. Supported values are created, "
                "updated, deleted.",
                "InvalidRequest",
            )
        url = body.get("notificationUrl")
        lifecycle = body.get("lifecycleNotificationUrl")
        for name, value in (("notificationUrl", url), ("lifecycleNotificationUrl", lifecycle)):
            if value is None and name == "lifecycleNotificationUrl":
                continue
            self._check_url(name, value)
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
            raise bad_request("clientState must be a string of at most 128 characters.", "InvalidRequest")
        resource = body.get("resource")
        if not isinstance(resource, str) or not resource.strip():
            raise bad_request("resource is required.", "InvalidRequest")
        kind, folder_ref, owner_ref = parse_resource(resource)
        folder_id = known_folder(folder_ref) if folder_ref is not None else None
        if folder_ref is not None and folder_id is None:
            raise GraphError(404, "ResourceNotFound", f"The resource '{resource}' was not found.")
        expiration = parse_stamp(body.get("expirationDateTime"))
        return {
            "change_types": change_types,
            "notification_url": url,
            "lifecycle_url": lifecycle,
            "client_state": client_state,
            "resource": resource,
            "kind": kind,
            "folder_id": folder_id,
            "owner_ref": owner_ref,
            "expiration": self._expiration(expiration),
        }

    def _check_url(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or not value:
            raise bad_request(f"{name} is required.", "InvalidRequest")
        parts = urlsplit(value)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request(f"Invalid {name} '{value}'.", "InvalidRequest")
        if parts.scheme != "https" and not (loopback and self.settings.allow_http_loopback):
            raise bad_request(f"The {name} must be an https URL.", "InvalidRequest")

    def _expiration(self, requested: datetime) -> datetime:
        now = self.now()
        if requested <= now:
            raise bad_request("Subscription expiration must be in the future.", "InvalidRequest")
        limit = now + timedelta(minutes=self.settings.max_minutes)
        if requested > limit:
            if self.settings.over_max == "reject":
                raise bad_request(
                    f"Subscription expiration can only be {self.settings.max_minutes} minutes in the future.",
                    "InvalidRequest",
                )
            return limit
        return requested

    def validate(self, url: str) -> None:
        """The handshake: POST ?validationToken=..., expect 200 text/plain echoing the decoded token."""
        token = VALIDATION_TEXT + self.ids.guid()
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token, safe='')}"
        request = urllib.request.Request(  # noqa: S310 - the receiver's own URL
            target,
            data=b"",
            headers={"Content-Type": "text/plain; charset=utf-8", "User-Agent": USER_AGENT},
            method="POST",
        )
        status: int | None = None
        error: str | None = None
        body = b""
        content_type = ""
        try:
            with urllib.request.urlopen(request, timeout=VALIDATION_TIMEOUT) as response:  # noqa: S310
                status, body, content_type = (
                    response.status,
                    response.read(),
                    response.headers.get("Content-Type", ""),
                )
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (OSError, TimeoutError) as exc:
            error = type(exc).__name__
        with self._cond:
            self.deliveries.append(Delivery(url, "validation", 0, status, error, self.now()))
        if status is None:
            raise bad_request("Subscription validation request timed out.", "ValidationError")
        if status != 200:
            raise bad_request(
                "Subscription validation request failed. Notification endpoint must respond with "
                "200 OK to validation request.",
                "ValidationError",
            )
        if not content_type.lower().startswith("text/plain") or body.decode("utf-8", "replace") != token:
            raise bad_request(
                "Subscription validation request failed. Response must exactly match "
                "validationToken query parameter.",
                "ValidationError",
            )

    def add(
        self,
        parts: dict[str, Any],
        app_id: str,
        owner: str,
        creator_oid: str,
        tenant_id: str,
        immutable: bool,
        token_expires: datetime,
    ) -> Subscription:
        subscription = Subscription(
            id=self.ids.guid(),
            app_id=app_id,
            owner=owner.lower(),
            creator_oid=creator_oid,
            tenant_id=tenant_id,
            resource=parts["resource"],
            kind=parts["kind"],
            folder_id=parts["folder_id"],
            change_types=parts["change_types"],
            notification_url=parts["notification_url"],
            lifecycle_url=parts["lifecycle_url"],
            client_state=parts["client_state"],
            expiration=parts["expiration"],
            immutable_ids=immutable,
            authorized_until=token_expires,
            created=self.now(),
        )
        self.subscriptions[subscription.id] = subscription
        return subscription

    def owned(self, subscription_id: str, app_id: str) -> Subscription:
        found = self.subscriptions.get(subscription_id)
        if found is None or found.app_id != app_id or self.now() >= found.expiration:
            raise GraphError(
                404, "ResourceNotFound", f"The object was not found. Subscription '{subscription_id}'."
            )
        return found

    def renew(self, subscription: Subscription, body: Any, token_expires: datetime) -> Subscription:
        if not isinstance(body, dict) or "expirationDateTime" not in body:
            raise bad_request("expirationDateTime is required.", "InvalidRequest")
        subscription.expiration = self._expiration(parse_stamp(body["expirationDateTime"]))
        self.reauthorize(subscription, token_expires)
        return subscription

    def reauthorize(self, subscription: Subscription, token_expires: datetime) -> None:
        subscription.authorized_until = max(subscription.authorized_until, token_expires)
        subscription.last_reauth_sent = None
        subscription.paused = False

    def delete(self, subscription: Subscription) -> None:
        self.subscriptions.pop(subscription.id, None)

    # ------------------------------------------------------------------ notifications

    def change(
        self,
        owner: str,
        kind: str,
        folder_id: str | None,
        folder_hidden: bool,
        rest_id: str,
        immutable_id: str,
        change_key: str,
        resource_kind: str,
        oid: str,
    ) -> None:
        """A change in a mailbox: queue a notification for every subscription that covers it."""
        now = self.now()
        for subscription in list(self.subscriptions.values()):
            if (
                subscription.owner != owner.lower()
                or subscription.kind != resource_kind
                or now >= subscription.expiration
            ):
                continue
            if kind not in subscription.change_types:
                continue
            if subscription.folder_id is not None and subscription.folder_id != folder_id:
                continue
            if subscription.folder_id is None and folder_hidden:
                continue
            if subscription.paused:
                self.dropped += 1
                continue
            item_id = immutable_id if subscription.immutable_ids else rest_id
            segment = "Messages" if resource_kind == "messages" else "Contacts"
            odata_type = (
                "#Microsoft.Graph.Message" if resource_kind == "messages" else "#Microsoft.Graph.Contact"
            )
            path = f"Users/{oid}/{segment}/{item_id}"
            item = {
                "id": self.ids.token(13),
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": stamp(subscription.expiration),
                "changeType": kind,
                "resource": path,
                "resourceData": {
                    "@odata.type": odata_type,
                    "@odata.id": path,
                    "@odata.etag": f'W/"{change_key}"',
                    "id": item_id,
                },
                "clientState": subscription.client_state,
                "tenantId": subscription.tenant_id,
            }
            self._queue(subscription.notification_url, item, subscription.id, lifecycle=False, now=now)

    def lifecycle(self, subscription: Subscription, event: str) -> bool:
        """Queue a lifecycle notification (only subscriptions with a lifecycleNotificationUrl get them)."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"lifecycle events are {LIFECYCLE_EVENTS}")
        if subscription.lifecycle_url is None:
            return False
        item = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": stamp(subscription.expiration),
            "tenantId": subscription.tenant_id,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        self._queue(subscription.lifecycle_url, item, subscription.id, lifecycle=True, now=self.now())
        return True

    def remove(self, subscription: Subscription) -> None:
        """The service removes a subscription: `subscriptionRemoved`, then it is gone."""
        self.lifecycle(subscription, "subscriptionRemoved")
        self.delete(subscription)

    def _queue(
        self, url: str, item: dict[str, Any], subscription_id: str, lifecycle: bool, now: datetime
    ) -> None:
        with self._cond:
            if not lifecycle and self._drop_next:
                self._drop_next -= 1
                self.dropped += 1
                return
            due = now + (timedelta(0) if lifecycle else self.settings.notification_delay)
            self._pending.append(Pending(url, item, subscription_id, lifecycle, now, due))
            self._cond.notify_all()

    def drop_next(self, count: int = 1) -> None:
        """The next `count` change notifications are lost (a push that never comes)."""
        with self._cond:
            self._drop_next += count

    # ------------------------------------------------------------------ time passes

    def tick(self) -> None:
        """Expire subscriptions, send due reauthorizationRequired events, pause unanswered ones."""
        now = self.now()
        for subscription in list(self.subscriptions.values()):
            if now >= subscription.expiration:
                self.delete(subscription)
                continue
            nearest = min(subscription.expiration, subscription.authorized_until)
            due = subscription.last_reauth_sent is None or now - subscription.last_reauth_sent >= REAUTH_EVERY
            if (
                nearest - now <= self.settings.reauth_lead
                and due
                and self.lifecycle(subscription, "reauthorizationRequired")
            ):
                subscription.last_reauth_sent = now
            pause_after = self.settings.pause_after
            if pause_after is not None and now >= subscription.authorized_until + pause_after:
                subscription.paused = True

    # ------------------------------------------------------------------ delivery

    def start(self, ticker: Callable[[], None] | None = None) -> None:
        """Deliver in the background; `ticker` runs between deliveries (expiry, lifecycle events)."""
        self._ticker = ticker
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="microsoft-double-notifications", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._ticker is not None:
                try:
                    self._ticker()
                except Exception:  # the ticker must not kill delivery
                    log.exception("microsoft double: subscription tick failed")
            batch = self._take_due()
            if batch is None:
                with self._cond:
                    self._cond.wait(timeout=0.05)
                continue
            self._deliver(batch)

    def _take_due(self) -> list[Pending] | None:
        """Every due notification for the first due URL, as one batch."""
        with self._cond:
            now = self.now()
            due = [p for p in self._pending if p.due <= now]
            if not due:
                return None
            url, lifecycle = due[0].url, due[0].lifecycle
            batch = [p for p in due if p.url == url and p.lifecycle == lifecycle][:100]
            for item in batch:
                self._pending.remove(item)
            self._in_flight += 1
            return batch

    def _deliver(self, batch: list[Pending]) -> None:
        url = batch[0].url
        body = {"value": [p.item for p in batch]}
        request = urllib.request.Request(  # noqa: S310 - the subscriber's own URL
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
            method="POST",
        )
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, TimeoutError) as exc:
            error = type(exc).__name__
        with self._cond:
            now = self.now()
            kind = "lifecycle" if batch[0].lifecycle else "notification"
            self.deliveries.append(
                Delivery(url, kind, len(batch), status, error, now, batch[0].attempt, body)
            )
            if status is None or not 200 <= status < 300:
                missed: set[str] = set()
                for item in batch:
                    if now - item.first >= RETRY_FOR:
                        self.dropped += 1
                        if not item.lifecycle:
                            missed.add(item.subscription_id)
                        continue
                    backoff = min(MIN_BACKOFF * 2 ** (item.attempt - 1), MAX_BACKOFF)
                    item.attempt += 1
                    item.due = now + backoff
                    self._pending.append(item)
                for subscription_id in missed:
                    subscription = self.subscriptions.get(subscription_id)
                    if subscription is not None and subscription.lifecycle_url is not None:
                        event = {
                            "subscriptionId": subscription.id,
                            "subscriptionExpirationDateTime": stamp(subscription.expiration),
                            "tenantId": subscription.tenant_id,
                            "clientState": subscription.client_state,
                            "lifecycleEvent": "missed",
                        }
                        self._pending.append(
                            Pending(subscription.lifecycle_url, event, subscription.id, True, now, now)
                        )
            self._in_flight -= 1
            self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> list[Delivery]:
        """Deliver every notification that is due now and wait for it; returns all deliveries so far."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                batch = self._take_due()
                if batch is not None:
                    self._deliver(batch)
                    continue
                with self._cond:
                    if self._in_flight == 0 and not any(p.due <= self.now() for p in self._pending):
                        return list(self.deliveries)
                    self._cond.wait(timeout=0.05)
            raise TimeoutError("notifications still in flight")
        finally:
            timer.cancel()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # ------------------------------------------------------------------ forgeries

    def forge(
        self,
        subscription: Subscription | None,
        forgery: str,
        url: str | None = None,
        lifecycle_event: str | None = None,
    ) -> ForgedRequest:
        """A notification that must be refused: `forgery` is one of FORGERIES.

        With `lifecycle_event` it is a lifecycle notification instead of a `created` change.
        """
        if forgery not in FORGERIES:
            raise ValueError(f"unknown forgery {forgery!r}; one of {FORGERIES}")
        if subscription is None and forgery != "unknown_subscription":
            raise ValueError("this forgery needs a real subscription to imitate")
        target = url or (subscription.notification_url if subscription else "")
        expiration = subscription.expiration if subscription else self.now() + timedelta(days=2)
        item: dict[str, Any] = {
            "subscriptionId": subscription.id if subscription else self.ids.guid(),
            "subscriptionExpirationDateTime": stamp(expiration),
            "tenantId": subscription.tenant_id if subscription else self.ids.guid(),
            "clientState": subscription.client_state if subscription else "guessed-client-state",
        }
        if forgery == "wrong_client_state":
            real = subscription.client_state if subscription and subscription.client_state else "secret"
            item["clientState"] = "not-" + real
        elif forgery == "missing_client_state":
            item.pop("clientState")
        elif forgery == "wrong_tenant":
            item["tenantId"] = self.ids.guid()
        if lifecycle_event is not None:
            item["lifecycleEvent"] = lifecycle_event
        else:
            item_id = self.ids.rest_id()
            path = f"Users/{subscription.creator_oid if subscription else self.ids.guid()}/Messages/{item_id}"
            item |= {
                "id": self.ids.token(13),
                "changeType": "created",
                "resource": path,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": path,
                    "@odata.etag": f'W/"{self.ids.change_key()}"',
                    "id": item_id,
                },
            }
        return ForgedRequest(
            target,
            {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
            json.dumps({"value": [item]}).encode(),
        )

    def validation_request(self, url: str, token: str | None = None) -> tuple[ForgedRequest, str]:
        """The validation POST Graph would send to `url`, and the decoded token the receiver must echo."""
        value = token or VALIDATION_TEXT + self.ids.guid()
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(value, safe='')}"
        return ForgedRequest(
            target, {"Content-Type": "text/plain; charset=utf-8", "User-Agent": USER_AGENT}, b""
        ), value


def parse_resource(resource: str) -> tuple[str, str | None, str]:
    """`/me/mailfolders('inbox')/messages` -> ("messages", "inbox", "me"); raises 400 otherwise."""
    path = re.sub(r"\('([^']*)'\)", r"/\1", resource.strip().split("?", 1)[0]).strip("/")
    parts = path.split("/")
    if parts and parts[0].lower() == "me":
        owner, rest = "me", parts[1:]
    elif len(parts) >= 2 and parts[0].lower() == "users":
        owner, rest = parts[1], parts[2:]
    else:
        raise bad_request(f"Invalid resource '{resource}'.", "InvalidRequest")
    lowered = [p.lower() for p in rest]
    if lowered == ["messages"]:
        return "messages", None, owner
    if len(rest) == 3 and lowered[0] == "mailfolders" and lowered[2] == "messages":
        return "messages", rest[1], owner
    if lowered == ["contacts"]:
        return "contacts", None, owner
    raise bad_request(
        f"Invalid resource '{resource}'. The double serves Outlook messages and contacts.", "InvalidRequest"
    )
