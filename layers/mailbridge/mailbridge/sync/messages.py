"""Messages on the SyncQueue (FIFO, message group = account, so one account syncs in order)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import Field

from mailbridge.models.base import Model


def _now() -> datetime:
    return datetime.now(UTC)


class SyncRequest(Model):
    """Sync an account: new mail, flag changes, expunges. `reason` is for status and logs only."""

    kind: Literal["sync"] = "sync"
    tenant_id: str
    account_id: str
    reason: Literal["connected", "manual", "poll", "continuation", "retry", "push", "resync"] = "manual"
    requested_at: datetime = Field(default_factory=_now)


class PollAll(Model):
    """From the poll schedule: queue a sync for every active account of a provider."""

    kind: Literal["poll"] = "poll"
    provider: Literal["imap", "gmail"] = "imap"


class PushFlags(Model):
    """Write flag changes made through the API back to every mailbox location of an email."""

    kind: Literal["push_flags"] = "push_flags"
    tenant_id: str
    account_id: str
    email_id: str
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    archived: bool | None = None  # True: out of the inbox; False: back in it (PATCH /emails/{id})
    trashed: bool | None = None  # True: to the trash; False: restored from it
    requested_at: datetime = Field(default_factory=_now)


class PurgeAccount(Model):
    """Delete the synced mail of a removed account (DELETE /accounts/{id}?purge=true)."""

    kind: Literal["purge"] = "purge"
    tenant_id: str
    account_id: str


class RenewWatches(Model):
    """From the watch schedule: renew the push watch of every active account of a provider
    (fanned out to one message per account, which names it). Graph (webhooks/graph_subscriptions.py):
    `action="recreate"` after a `subscriptionRemoved` lifecycle event, `renew` otherwise (only
    subscriptions near their expiry unless `force`, as after `reauthorizationRequired`)."""

    kind: Literal["renew_watches"] = "renew_watches"
    provider: Literal["gmail", "graph"] = "gmail"
    tenant_id: str | None = None
    account_id: str | None = None
    action: Literal["renew", "recreate"] = "renew"
    force: bool = False


class ImportContacts(Model):
    """Import an account's Google contacts into the CRM (`mailbridge.crm.contact_import`): queued
    after connecting, and from the daily schedule without an account (fanned out to one message
    per active Gmail account, which names it)."""

    kind: Literal["import_contacts"] = "import_contacts"
    provider: Literal["gmail"] = "gmail"
    tenant_id: str | None = None
    account_id: str | None = None


class Reconcile(Model):
    """Reconcile an account's folders with the server (`mailbridge.sync.reconcile`): queued by
    `POST /accounts/{id}/reconcile`, or from the nightly schedule without an account (fanned out
    to one message per active account, which names it). On the SyncQueue, in the account's
    message group, so it never runs beside a sync of the same account."""

    kind: Literal["reconcile"] = "reconcile"
    tenant_id: str | None = None
    account_id: str | None = None
    reason: Literal["manual", "nightly", "continuation"] = "nightly"
    requested_at: datetime = Field(default_factory=_now)


class SyncCalendar(Model):
    """Pull an account's provider calendar (`mailbridge.calendar.provider_sync`): queued after
    connecting with the calendar scope, and from the 15-minute schedule without an account
    (fanned out to one message per active account of `provider`, or of every calendar provider
    when it is None; each names its account and that account's provider)."""

    kind: Literal["sync_calendar"] = "sync_calendar"
    provider: Literal["gmail", "graph"] | None = None
    tenant_id: str | None = None
    account_id: str | None = None


class PushCalendar(Model):
    """Push a change made through `/calendar/events` to the provider event it came from
    (`mailbridge.calendar.provider_sync.handle_push`): queued by the API after the change is
    stored. `at`: when it was made (the conflict rule compares it with the provider's `updated`).
    `provider_id` None: an event created here, to be created in the account's calendar.
    `series`: the series (or single event) itself changed; `occurrences`: the occurrences whose
    override is new or changed (`times.order_key` of their RECURRENCE-ID), pushed one by one
    (Google instance ids)."""

    kind: Literal["push_calendar"] = "push_calendar"
    provider: Literal["gmail", "graph"] = "gmail"  # informational: the account's provider decides
    tenant_id: str
    account_id: str
    provider_id: str | None = None
    event_id: str
    deleted: bool = False
    series: bool = True
    occurrences: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=500)
    at: datetime


SyncMessage = Annotated[
    SyncRequest
    | PollAll
    | PushFlags
    | PurgeAccount
    | RenewWatches
    | ImportContacts
    | SyncCalendar
    | PushCalendar
    | Reconcile,
    Field(discriminator="kind"),
]
