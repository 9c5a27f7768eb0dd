"""GoogleDouble: the whole double as one object (HTTP server + state + control methods).

    with GoogleDouble(clock=ManualClock()) as google:
        client = google.register_client(["http://127.0.0.1:3000/oauth/gmail/callback"])
        google.add_user("ada@example.com")
        google.deliver("ada@example.com", raw_rfc5322_bytes)
        httpx.get(google.gmail_url + "/users/me/profile", headers={"Authorization": ...})

Every Google host collapses onto `base_url`; the product's settings point at `authorize_url`,
`token_url`, `revoke_url`, `gmail_url`, `people_url`, `certs_url` / `jwks_url`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType

from local.clock import Clock, RealClock
from local.google.api import GoogleApi
from local.google.calendar import Calendars
from local.google.control import ControlApi
from local.google.gmail import Gmail, GmailSettings, HistoryRecord, Mailbox, SentMail
from local.google.ids import Ids
from local.google.keys import KeySet
from local.google.oauth import OAuth, OAuthClient, OAuthSettings
from local.google.people import Contact, People
from local.google.pubsub import PubSub, Topic
from local.google.quota import USER_UNITS_PER_MINUTE, Faults, Quota
from local.google.server import HttpServer

INCOMING = ("INBOX", "UNREAD")


class GoogleDouble:
    """A faithful local Google: OAuth, Gmail v1, Pub/Sub push, People v1, Calendar v3 events, and a
    control surface."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        seed: int = 0,
        quota_units_per_minute: int = USER_UNITS_PER_MINUTE,
        quota_status: int = 403,
        access_token_seconds: int = 3599,
        history_retention: timedelta = timedelta(days=7),
        notification_interval: float = 1.0,
        people_expired_status: int = 400,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.lock = threading.RLock()
        self.ids = Ids(seed)
        self.keys = KeySet(self.now())
        self.oauth = OAuth(self.ids, self.keys, OAuthSettings(access_token_seconds=access_token_seconds))
        self.gmail = Gmail(self.ids, self.now, GmailSettings(history_retention=history_retention))
        self.gmail.listeners.append(self._on_change)
        self.pubsub = PubSub(self.ids, self.keys, self.now)
        self.people = People(self.ids, self.now, expired_status=people_expired_status)
        self.calendars = Calendars(self.ids, self.now)
        self.quota = Quota(units_per_minute=quota_units_per_minute, status=quota_status)
        self.faults = Faults()
        # "Each watched user gets at most 1 notification per second; above that they are dropped" [D].
        self.notification_interval = timedelta(seconds=notification_interval)
        self.notifications_dropped = 0
        self._last_notified: dict[str, datetime] = {}
        self._server = HttpServer(GoogleApi(self).routes() + ControlApi(self).routes(), host, port)

    # ------------------------------------------------------------------ lifecycle and URLs

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def start(self) -> GoogleDouble:
        self._server.start()
        self.pubsub.start()
        return self

    def stop(self) -> None:
        self.pubsub.stop()
        self._server.stop()

    def __enter__(self) -> GoogleDouble:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def authorize_url(self) -> str:
        return self.base_url + "/o/oauth2/v2/auth"

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def revoke_url(self) -> str:
        return self.base_url + "/revoke"

    @property
    def gmail_url(self) -> str:
        return self.base_url + "/gmail/v1"

    @property
    def calendar_url(self) -> str:
        return self.base_url + "/calendar/v3"

    @property
    def people_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def certs_url(self) -> str:
        return self.base_url + "/oauth2/v1/certs"

    @property
    def jwks_url(self) -> str:
        return self.base_url + "/oauth2/v3/certs"

    def urls(self) -> dict[str, str]:
        return {
            "authorize": self.authorize_url,
            "token": self.token_url,
            "revoke": self.revoke_url,
            "gmail": self.gmail_url,
            "people": self.people_url,
            "certs": self.certs_url,
            "jwks": self.jwks_url,
            "control": self.base_url + "/__double__",
        }

    # ------------------------------------------------------------------ setup

    def register_client(
        self,
        redirect_uris: Iterable[str],
        client_id: str | None = None,
        client_secret: str | None = None,
        project_id: str = "mailbridge-local",
    ) -> OAuthClient:
        with self.lock:
            return self.oauth.register_client(list(redirect_uris), client_id, client_secret, project_id)

    def add_user(self, address: str, name: str | None = None) -> Mailbox:
        """A Google account with a Gmail mailbox; the first one added is the signed-in account."""
        with self.lock:
            self.oauth.add_account(address, name or address.partition("@")[0].title())
            return self.gmail.create_mailbox(address)

    def sign_in(self, address: str) -> None:
        """The account the consent step approves as (when the request has no login_hint)."""
        with self.lock:
            self.oauth.signed_in = address.lower()

    def deny_consent(self, address: str, deny: bool = True) -> None:
        """The user clicks Cancel: the redirect carries error=access_denied."""
        with self.lock:
            self.oauth.accounts[address.lower()].denies_consent = deny

    def create_topic(
        self,
        name: str,
        push_endpoint: str | None = None,
        audience: str | None = None,
        service_account: str = "mailbridge-push@mailbridge-local.iam.gserviceaccount.com",
        gmail_can_publish: bool = True,
    ) -> Topic:
        with self.lock:
            return self.pubsub.create_topic(name, push_endpoint, audience, service_account, gmail_can_publish)

    # ------------------------------------------------------------------ the user acts in Gmail

    def deliver(
        self,
        address: str,
        raw: bytes,
        labels: Iterable[str] = INCOMING,
        internal_date: datetime | None = None,
    ) -> str:
        """Mail arrives (or is seeded): stored, threaded as Gmail would, history + push. Returns the id."""
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            return self.gmail.add_message(mailbox, raw, list(labels), internal_date, auto_thread=True).id

    seed = deliver

    def relabel(
        self, address: str, message_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            self.gmail.modify(mailbox, self.gmail.find(mailbox, message_id), list(add), list(remove))

    def trash(self, address: str, message_id: str) -> None:
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            self.gmail.trash(mailbox, self.gmail.find(mailbox, message_id))

    def untrash(self, address: str, message_id: str) -> None:
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            self.gmail.untrash(mailbox, self.gmail.find(mailbox, message_id))

    def delete(self, address: str, message_id: str) -> None:
        """Deleted for good (not trashed): history gets `messagesDeleted`."""
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            self.gmail.delete(mailbox, self.gmail.find(mailbox, message_id))

    def create_label(self, address: str, name: str) -> str:
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            return self.gmail.create_label(mailbox, {"name": name}).id

    def revoke(self, address: str, client_id: str | None = None) -> int:
        """The user removes the app's access: refresh and access tokens die at once."""
        with self.lock:
            return self.oauth.revoke_grant(address, client_id)

    def add_contact(
        self,
        address: str,
        name: str | None = None,
        emails: list[str] | None = None,
        organization: str | None = None,
        title: str | None = None,
        phones: list[str] | None = None,
        resource_name: str | None = None,
    ) -> Contact:
        """Create (or, with `resource_name`, update) a contact of `address`'s Google Contacts."""
        with self.lock:
            return self.people.upsert(address, name, emails, organization, title, phones, resource_name)

    def delete_contact(self, address: str, resource_name: str) -> None:
        with self.lock:
            self.people.delete(address, resource_name)

    # ------------------------------------------------------------------ faults

    def fail_next(self, method: str, count: int = 1, status: int = 500) -> None:
        """The next `count` calls of `method` (e.g. "users.messages.get") answer a 5xx backendError."""
        with self.lock:
            self.faults.fail_next(method, count, status)

    def truncate_history(self, address: str) -> None:
        with self.lock:
            self.gmail.truncate_history(self.gmail.mailbox(address))

    # ------------------------------------------------------------------ inspection

    def labels_of(self, address: str, message_id: str) -> list[str]:
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            return list(self.gmail.find(mailbox, message_id).labels)

    def thread_of(self, address: str, message_id: str) -> str:
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            return self.gmail.find(mailbox, message_id).thread_id

    def sent(self, address: str) -> list[SentMail]:
        with self.lock:
            return list(self.gmail.mailbox(address).sent)

    def add_draft(self, address: str, raw: bytes) -> str:
        """The user saves a draft in Gmail; its draft id."""
        with self.lock:
            draft_id, _message = self.gmail.create_draft(self.gmail.mailbox(address), raw, None)
            return draft_id

    def delete_draft(self, address: str, draft_id: str) -> None:
        """The user discards a draft in Gmail."""
        with self.lock:
            self.gmail.delete_draft(self.gmail.mailbox(address), draft_id)

    def drafts(self, address: str) -> dict[str, bytes]:
        """Each draft id of the mailbox and the bytes of its current message."""
        with self.lock:
            mailbox = self.gmail.mailbox(address)
            return {draft_id: mailbox.messages[m].raw for draft_id, m in mailbox.drafts.items()}

    def history_id(self, address: str) -> int:
        with self.lock:
            return self.gmail.mailbox(address).history_id

    # ------------------------------------------------------------------ push notifications

    def _on_change(self, mailbox: Mailbox, record: HistoryRecord) -> None:
        watch = mailbox.watch
        if watch is not None and watch.matches(record, self.now()):
            self.notify(mailbox)

    def notify(self, mailbox: Mailbox, at_watch: bool = False) -> None:
        """Publish {"emailAddress", "historyId"} to the mailbox's watch topic, at most once a second."""
        watch = mailbox.watch
        if watch is None:
            return
        now = self.now()
        last = self._last_notified.get(mailbox.address.lower())
        if not at_watch and last is not None and now - last < self.notification_interval:
            self.notifications_dropped += 1
            return
        self._last_notified[mailbox.address.lower()] = now
        data = {"emailAddress": mailbox.address, "historyId": str(mailbox.history_id)}
        self.pubsub.publish(watch.topic_name, data)
