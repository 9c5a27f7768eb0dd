"""MicrosoftDouble: the whole double as one object (HTTP server + state + control methods).

    with MicrosoftDouble(clock=ManualClock()) as ms:
        app = ms.register_app(["http://127.0.0.1:3000/oauth/graph/callback"])
        ms.add_user("ada@contoso.example")
        ms.deliver("ada@contoso.example", raw_rfc5322_bytes)
        msal.ConfidentialClientApplication(app.client_id, app.client_secret,
            authority=ms.authority, instance_discovery=False, verify=ms.ca_file)

login.microsoftonline.com and graph.microsoft.com collapse onto one port (`base_url`, HTTPS with
the CA in `ca_file`; the same port answers plain HTTP at `http_base_url`). The product's settings
point at `authority_host` (identity) and `graph_url` (Graph v1.0).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from local.clock import Clock, RealClock
from local.microsoft.calendar import Calendars
from local.microsoft.contacts import Contact, Contacts
from local.microsoft.control import ControlApi
from local.microsoft.delta import GENERATIONS_KEPT, DeltaState
from local.microsoft.errors import GraphError
from local.microsoft.graph import GraphApi
from local.microsoft.identity import App, Identity, IdentitySettings
from local.microsoft.ids import Ids
from local.microsoft.keys import KeySet, TlsIdentity
from local.microsoft.login import LoginApi
from local.microsoft.mail import Change, Mail, Mailbox, Message, SentMail
from local.microsoft.server import Call, HttpServer, RequestContext, Response, Router
from local.microsoft.subscriptions import (
    MAX_MINUTES,
    PAUSE_AFTER,
    Delivery,
    ForgedRequest,
    Subscription,
    Subscriptions,
    SubscriptionSettings,
)
from local.microsoft.throttle import (
    CONCURRENT_REQUESTS,
    REQUEST_WINDOW,
    REQUESTS_PER_WINDOW,
    Faults,
    Hold,
    Throttle,
)


class MicrosoftDouble:
    """A faithful local Microsoft: identity platform v2.0, Graph v1.0 mail/contacts/subscriptions, control."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        seed: int = 0,
        tls: bool = True,
        access_token_seconds: int | None = None,
        requests_per_window: int = REQUESTS_PER_WINDOW,
        request_window: timedelta = REQUEST_WINDOW,
        concurrent_requests: int = CONCURRENT_REQUESTS,
        subscription_max_minutes: int = MAX_MINUTES,
        subscription_over_max: str = "clamp",
        notification_delay: float = 0.0,
        pause_unanswered_after: timedelta | None = PAUSE_AFTER,
        delta_generations_kept: int = GENERATIONS_KEPT,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.lock = threading.RLock()
        self.ids = Ids(seed)
        self.keys = KeySet(self.now())
        # TLS is checked against the wall clock, not the double's: the certificate uses real time.
        self.tls = TlsIdentity() if tls else None
        self.identity = Identity(
            self.ids, self.keys, IdentitySettings(access_token_seconds=access_token_seconds)
        )
        self.mail = Mail(self.ids, self.now)
        self.mail.listeners.append(self._on_mail_change)
        self.contacts = Contacts(self.ids, self.now, lambda: self.mail.seq, self.mail.next_seq)
        self.contacts.listeners.append(self._on_contact_change)
        self.calendars = Calendars(self.ids, self.now, lambda: self.mail.seq, self.mail.next_seq)
        self.delta = DeltaState(self.ids, generations_kept=delta_generations_kept)
        self.subscriptions = Subscriptions(
            self.ids,
            self.now,
            SubscriptionSettings(
                max_minutes=subscription_max_minutes,
                over_max=subscription_over_max,
                notification_delay=timedelta(seconds=notification_delay),
                pause_after=pause_unanswered_after,
            ),
        )
        self.throttle = Throttle(
            requests_per_window=requests_per_window, window=request_window, concurrent=concurrent_requests
        )
        self.faults = Faults()
        self.ctx = RequestContext(now=self.now, new_id=self.ids.guid)
        router = Router(
            LoginApi(self).routes() + GraphApi(self).routes() + ControlApi(self).routes(),
            self.ctx,
            self._not_found,
        )
        self._server = HttpServer(router, host, port, self.tls.context if self.tls else None)

    # ------------------------------------------------------------------ lifecycle and URLs

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the clock on; subscriptions expire and lifecycle events fall due at once."""
        self.clock.advance(seconds)
        self.tick()

    def tick(self) -> None:
        with self.lock:
            self.subscriptions.tick()

    def start(self) -> MicrosoftDouble:
        self._server.start()
        self.subscriptions.start(self.tick)
        return self

    def stop(self) -> None:
        self.subscriptions.stop()
        self._server.stop()
        if self.tls is not None:
            self.tls.close()

    def __enter__(self) -> MicrosoftDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def ca_file(self) -> str | None:
        """PEM of the CA that issued the double's TLS certificate (pass as `verify=`)."""
        return self.tls.ca_file if self.tls else None

    @property
    def ca_bundle(self) -> str | None:
        """The public roots plus the double's CA (for REQUESTS_CA_BUNDLE / SSL_CERT_FILE)."""
        return self.tls.ca_bundle if self.tls else None

    @property
    def http_base_url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self._server.host}:{self._server.port}"

    @property
    def authority_host(self) -> str:
        """Stands for https://login.microsoftonline.com."""
        return self.base_url

    def authority(self, tenant: str = "common") -> str:
        return f"{self.base_url}/{tenant}"

    def openid_configuration_url(self, tenant: str = "common") -> str:
        return f"{self.base_url}/{tenant}/v2.0/.well-known/openid-configuration"

    def authorize_url(self, tenant: str = "common") -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/authorize"

    def token_url(self, tenant: str = "common") -> str:
        return f"{self.base_url}/{tenant}/oauth2/v2.0/token"

    def jwks_url(self, tenant: str = "common") -> str:
        return f"{self.base_url}/{tenant}/discovery/v2.0/keys"

    @property
    def graph_url(self) -> str:
        """Stands for https://graph.microsoft.com/v1.0."""
        return f"{self.base_url}/v1.0"

    def urls(self) -> dict[str, str | None]:
        return {
            "authority_host": self.authority_host,
            "authority": self.authority(),
            "openid_configuration": self.openid_configuration_url(),
            "authorize": self.authorize_url(),
            "token": self.token_url(),
            "jwks": self.jwks_url(),
            "graph": self.graph_url,
            "graph_plain_http": f"{self.http_base_url}/v1.0",
            "ca_file": self.ca_file,
            "ca_bundle": self.ca_bundle,
            "control": f"{self.http_base_url}/__double__",
        }

    def _not_found(self, call: Call) -> Response:
        return GraphError(
            400, "BadRequest", f"Resource not found for the segment '{call.path.strip('/').split('/')[0]}'."
        ).response(self.ctx)

    # ------------------------------------------------------------------ setup

    def register_app(
        self,
        redirect_uris: Iterable[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        audience: str = "AzureADandPersonalMicrosoftAccount",
        permissions: list[str] | None = None,
    ) -> App:
        with self.lock:
            return self.identity.register_app(
                list(redirect_uris), client_id, client_secret, audience=audience, permissions=permissions
            )

    def add_user(
        self, address: str, name: str | None = None, personal: bool = False, tenant: str | None = None
    ) -> Mailbox:
        """An account with an Exchange Online mailbox; the first one added is the signed-in user."""
        with self.lock:
            display = name or address.partition("@")[0].replace(".", " ").title()
            user = self.identity.add_user(address, display, personal, tenant, self.now())
            return self.mail.create_mailbox(address, display, user.oid)

    def sign_in(self, address: str) -> None:
        with self.lock:
            self.identity.signed_in = address.lower()

    def deny_consent(self, address: str, deny: bool = True) -> None:
        """The user clicks Cancel on the consent screen: error=access_denied (AADSTS65004)."""
        with self.lock:
            self.identity.users[address.lower()].denies_consent = deny

    # ------------------------------------------------------------------ the user acts in Outlook

    def deliver(
        self,
        address: str,
        raw: bytes,
        folder: str = "inbox",
        received: datetime | None = None,
        is_read: bool = False,
        flagged: bool = False,
    ) -> Message:
        """Mail arrives (or is seeded) in `folder` (a well-known name or an id): delta change +
        notification."""
        with self.lock:
            mailbox = self.mail.mailbox(address)
            return self.mail.add(
                mailbox, raw, self.mail.folder(mailbox, folder), received, is_read=is_read, flagged=flagged
            )

    seed = deliver

    def mark_read(self, address: str, message_id: str, read: bool = True) -> Message:
        return self._update(address, message_id, {"isRead": read})

    def flag(self, address: str, message_id: str, status: str = "flagged") -> Message:
        return self._update(address, message_id, {"flag": {"flagStatus": status}})

    def _update(self, address: str, message_id: str, changes: dict[str, Any]) -> Message:
        with self.lock:
            mailbox = self.mail.mailbox(address)
            return self.mail.update(mailbox, self.mail.find(mailbox, message_id), changes)

    def move(self, address: str, message_id: str, folder: str) -> Message:
        """The user moves a message: its REST id changes, its immutable id does not."""
        with self.lock:
            mailbox = self.mail.mailbox(address)
            return self.mail.move(
                mailbox, self.mail.find(mailbox, message_id), self.mail.folder(mailbox, folder)
            )

    def delete(self, address: str, message_id: str) -> Message:
        """The user deletes in Outlook: the message goes to Deleted Items."""
        return self.move(address, message_id, "deleteditems")

    def purge(self, address: str, message_id: str) -> None:
        """Deleted for good (shift-delete / emptied Deleted Items)."""
        with self.lock:
            mailbox = self.mail.mailbox(address)
            self.mail.purge(mailbox, self.mail.find(mailbox, message_id))

    def create_folder(self, address: str, name: str, parent: str | None = None) -> str:
        with self.lock:
            mailbox = self.mail.mailbox(address)
            parent_id = (
                self.mail.folder(mailbox, parent).id if parent else mailbox.well_known("msgfolderroot").id
            )
            return self.mail.create_folder(mailbox, name, parent_id).id

    def add_contact(
        self,
        address: str,
        name: str | None = None,
        emails: list[str] | None = None,
        company: str | None = None,
        title: str | None = None,
        phones: list[str] | None = None,
        contact_id: str | None = None,
    ) -> Contact:
        with self.lock:
            return self.contacts.upsert(address, name, emails, company, title, phones, contact_id)

    def delete_contact(self, address: str, contact_id: str) -> None:
        with self.lock:
            self.contacts.delete(address, contact_id)

    # ------------------------------------------------------------------ calendar

    def put_event(self, address: str, fields: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
        """Create a single-instance event (or change `event_id`) as the user would in Outlook;
        `fields` as Graph writes them (start/end dateTimeTimeZone, subject, attendees ...)."""
        with self.lock:
            calendars = self.calendars
            return calendars.render(calendars.put(address, fields, event_id))

    def put_series(
        self, address: str, fields: dict[str, Any], count: int, every: timedelta = timedelta(days=7)
    ) -> tuple[str, list[dict[str, Any]]]:
        """A recurring series: its master's id and its `count` occurrences as Graph renders them."""
        with self.lock:
            master, occurrences = self.calendars.put_series(address, fields, count, every)
            return master, [self.calendars.render(o) for o in occurrences]

    def delete_event(self, address: str, event_id: str) -> None:
        with self.lock:
            self.calendars.delete(address, event_id)

    def event(self, address: str, event_id: str) -> dict[str, Any]:
        with self.lock:
            return self.calendars.render(self.calendars.find(address, event_id))

    def expire_calendar_delta(self, address: str) -> int:
        """Evict the calendar views' sync state: their links answer 410 SyncStateNotFound."""
        with self.lock:
            names = {
                lineage.collection
                for lineage in self.delta.lineages.values()
                if lineage.owner == address.lower() and lineage.collection.startswith("calendarView|")
            }
            return sum(self.delta.expire(address.lower(), name) for name in names)

    # ------------------------------------------------------------------ identity events

    def revoke(self, address: str) -> None:
        """revokeSignInSessions / an admin revocation: every refresh token answers AADSTS50173.

        Access tokens already issued keep working until they expire, as Graph's do for clients
        that are not CAE-capable [R]; `expire_access_tokens` ends them too.
        """
        with self.lock:
            self.identity.revoke_sessions(address, self.now())

    def withdraw_consent(self, address: str, client_id: str | None = None) -> int:
        """The user removes the app (its permission grant goes): refresh answers AADSTS65001."""
        with self.lock:
            return self.identity.withdraw_consent(address, client_id)

    def expire_access_tokens(self, address: str) -> int:
        with self.lock:
            return self.identity.expire_access_tokens(address, self.now())

    # ------------------------------------------------------------------ delta

    def expire_delta_tokens(self, address: str, folder: str | None = None) -> int:
        """Evict the sync state (the delta token cache overflowed): 410 SyncStateNotFound."""
        with self.lock:
            return self.delta.expire(address.lower(), self._collection(address, folder))

    def reset_delta(self, address: str, folder: str | None = None) -> int:
        """A synchronization reset: 410 Gone with a Location holding an empty $deltatoken."""
        with self.lock:
            return self.delta.reset(address.lower(), self._collection(address, folder))

    def inject_replays(self, address: str, pages: int = 1) -> None:
        with self.lock:
            self.delta.inject_replays(address.lower(), pages)

    def _collection(self, address: str, folder: str | None) -> str | None:
        if folder is None:
            return None
        if folder == "contacts":
            return "contacts"
        mailbox = self.mail.mailbox(address)
        return self.mail.folder(mailbox, folder).id

    # ------------------------------------------------------------------ throttling and faults

    def fail_next(self, count: int = 1, status: int = 503, match: str | None = None) -> None:
        """The next `count` Graph requests (whose path contains `match`) answer `status`."""
        self.faults.fail_next(count, status, match)

    def hold(self, address: str) -> Hold:
        """Requests to `address`'s mailbox wait (each holding a concurrency slot) until `release()`."""
        return self.throttle.hold(address)

    # ------------------------------------------------------------------ subscriptions and notifications

    def subscriptions_of(self, address: str) -> list[Subscription]:
        with self.lock:
            return [s for s in self.subscriptions.subscriptions.values() if s.owner == address.lower()]

    def subscription(self, subscription_id: str) -> Subscription:
        with self.lock:
            return self.subscriptions.subscriptions[subscription_id]

    def send_lifecycle(self, subscription_id: str, event: str) -> None:
        """Send a lifecycle event now; `subscriptionRemoved` also removes the subscription."""
        with self.lock:
            subscription = self.subscriptions.subscriptions[subscription_id]
            if event == "subscriptionRemoved":
                self.subscriptions.remove(subscription)
            else:
                self.subscriptions.lifecycle(subscription, event)

    def drop_notifications(self, count: int = 1) -> None:
        """The next `count` change notifications never arrive."""
        self.subscriptions.drop_next(count)

    def flush(self, timeout: float = 10.0) -> list[Delivery]:
        """Deliver every notification due now and wait for the receivers' answers."""
        self.tick()
        return self.subscriptions.flush(timeout)

    def deliveries(self) -> list[Delivery]:
        return list(self.subscriptions.deliveries)

    def forge_notification(
        self,
        subscription_id: str | None,
        forgery: str,
        url: str | None = None,
        lifecycle_event: str | None = None,
    ) -> ForgedRequest:
        """A notification shaped like Graph's that a webhook must refuse (see subscriptions.FORGERIES)."""
        with self.lock:
            subscription = self.subscriptions.subscriptions.get(subscription_id) if subscription_id else None
            return self.subscriptions.forge(subscription, forgery, url, lifecycle_event)

    def validation_request(self, url: str, token: str | None = None) -> tuple[ForgedRequest, str]:
        return self.subscriptions.validation_request(url, token)

    # ------------------------------------------------------------------ inspection

    def mailbox(self, address: str) -> Mailbox:
        return self.mail.mailbox(address)

    def folder_id(self, address: str, folder: str) -> str:
        with self.lock:
            return self.mail.folder(self.mail.mailbox(address), folder).id

    def folder_contents(self, address: str, folder: str) -> list[Message]:
        with self.lock:
            mailbox = self.mail.mailbox(address)
            return sorted(mailbox.in_folder(self.mail.folder(mailbox, folder).id), key=lambda m: m.seq)

    def message(self, address: str, message_id: str) -> Message:
        with self.lock:
            mailbox = self.mail.mailbox(address)
            return self.mail.find(mailbox, message_id)

    def sent(self, address: str) -> list[SentMail]:
        with self.lock:
            return list(self.mail.mailbox(address).sent)

    # ------------------------------------------------------------------ change fan-out

    def _on_mail_change(self, mailbox: Mailbox, change: Change) -> None:
        folder = mailbox.folders[change.folder_id]
        self.subscriptions.change(
            mailbox.address,
            change.kind,
            change.folder_id,
            folder.hidden,
            change.message_id,
            change.immutable_id,
            change.change_key,
            "messages",
            mailbox.oid,
        )

    def _on_contact_change(self, address: str, kind: str, contact: Contact) -> None:
        mailbox = self.mail.mailboxes.get(address.lower())
        if mailbox is None:
            return
        self.subscriptions.change(
            address, kind, None, False, contact.id, contact.id, contact.change_key, "contacts", mailbox.oid
        )
