"""The calendar's settings and dependencies, built once per cold start (api and calendar functions)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailbridge.config import get_settings

if TYPE_CHECKING:
    from mailbridge.calendar.itip import ItipDeps
    from mailbridge.calendar.models import Event
    from mailbridge.calendar.service import CalendarDeps
    from mailbridge.calendar.tokens import Signer
    from mailbridge.store.calendar import CalendarStore


class CalendarSettings(BaseSettings):
    """What only the calendar needs (set on ApiFunction and CalendarFunction in template.yaml)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    calendar_table: str = Field(validation_alias="CALENDAR_TABLE", min_length=3)
    calendar_secret_arn: str = Field(
        validation_alias="CALENDAR_SECRET_ARN",
        min_length=1,
        description="Secrets Manager secret whose value signs RSVP links and feed URLs (calendar/tokens.py)",
    )
    public_api_url: str = Field(
        default="",
        validation_alias="PUBLIC_API_URL",
        description="Base URL of links in mail and feeds; empty: the URL the request came in on",
    )


@lru_cache(maxsize=1)
def calendar_settings() -> CalendarSettings:
    return CalendarSettings()


@lru_cache(maxsize=1)
def calendar_store() -> CalendarStore:
    from mailbridge.store.calendar import CalendarStore

    return CalendarStore(calendar_settings().calendar_table, get_settings().tables.links)


@lru_cache(maxsize=1)
def token_key() -> bytes:
    """The link-signing key: one Secrets Manager read per container, on first use."""
    from mailbridge import aws

    secret = aws.secretsmanager().get_secret_value(SecretId=calendar_settings().calendar_secret_arn)
    return str(secret["SecretString"]).encode()


def signer() -> Signer:
    from mailbridge.calendar.tokens import Signer

    return Signer(token_key)


@lru_cache(maxsize=1)
def calendar_deps() -> CalendarDeps:
    from datetime import UTC, datetime

    from mailbridge.bus import EventPublisher
    from mailbridge.calendar.limits import RateLimits
    from mailbridge.calendar.service import CalendarDeps
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.ratelimit import RateLimiter

    settings = get_settings()
    store = calendar_store()
    return CalendarDeps(
        store=store,
        crm=CrmStore(settings.tables.crm),
        publisher=EventPublisher(settings.event_bus_name),
        limits=RateLimits(RateLimiter(store.table_name), lambda: datetime.now(UTC)),
        signer=signer(),
        on_change=push_change,
        account_provider=account_provider,
    )


def account_provider(tenant_id: str, account_id: str) -> str | None:
    """The provider of a connected account (None: the account is gone)."""
    from mailbridge.errors import NotFound
    from mailbridge.store.accounts import AccountStore

    try:
        return AccountStore(get_settings().tables.accounts).get_account(tenant_id, account_id).provider
    except NotFound:
        return None


def push_change(tenant_id: str, event: Event, deleted: bool, previous: Event | None = None) -> None:
    """Queue the push of an API change to the provider event it came from; an event no provider
    holds yet goes to its organizer's calendar account (`calendar_account`), if any, to be
    created there (provider_id None); otherwise it stays local. A change (`previous` given)
    names what to push: the series when anything but the overrides changed, and the occurrences
    whose override is new or changed; nothing is queued when neither did (a change of CRM links
    only)."""
    from datetime import UTC, datetime

    from mailbridge.calendar.service import changed_occurrences, series_changed
    from mailbridge.queues import SyncQueue
    from mailbridge.sync.messages import PushCalendar

    ref = calendar_store().provider_of(tenant_id, event.uid)
    provider_id: str | None
    if ref is not None:
        account_id, provider_id = ref
    else:
        found = None if deleted else calendar_account(tenant_id, event)
        if found is None:
            return
        account_id, provider_id = found, None
    series, occurrences = True, []
    if previous is not None and provider_id is not None and not deleted:
        series = series_changed(previous.fields(), event.fields())
        occurrences = changed_occurrences(previous.overrides, event.overrides)
        if not series and not occurrences:
            return
    message = PushCalendar(
        tenant_id=tenant_id,
        account_id=account_id,
        provider_id=provider_id,
        event_id=event.event_id,
        deleted=deleted,
        series=series,
        occurrences=occurrences,
        at=datetime.now(UTC),
    )
    SyncQueue(get_settings().sync_queue_url).send(message)


def calendar_account(tenant_id: str, event: Event) -> str | None:
    """The account an event created here is created in at the provider: the connected Gmail or
    Microsoft account whose address is the event's organizer (case-insensitive), connected by
    the user who created the event, whose grant holds the calendar scope (Google
    `calendar.events`, Graph `Calendars.ReadWrite`), while the tenant's `calendar` flag is on.
    None (the event stays local): no organizer, or no such account."""
    from mailbridge.models.account import calendar_access
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.settings import DynamoFeatureStore

    if event.organizer is None:
        return None
    settings = get_settings()
    features = DynamoFeatureStore(settings.tables.settings).get_features(tenant_id)
    if features is None or not features.flags.calendar:
        return None
    address = event.organizer.address.lower()
    store = AccountStore(settings.tables.accounts)
    cursor: str | None = None
    while True:
        accounts, cursor = store.list_accounts(tenant_id, cursor=cursor, limit=100)
        for account in accounts:
            if (
                account.provider in ("gmail", "graph")
                and account.address.lower() == address
                and account.created_by == event.created_by
                and calendar_access(account.provider, account.oauth.scopes if account.oauth else None)
                == "granted"
            ):
                return account.account_id
        if cursor is None:
            return None


@lru_cache(maxsize=1)
def itip_deps() -> ItipDeps:
    """For the calendar function (iTIP in incoming mail): reads mail, writes events."""
    from mailbridge.calendar.itip import ItipDeps
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.emails import EmailStore

    settings = get_settings()
    return ItipDeps(
        calendar=calendar_deps(),
        emails=EmailStore(settings.tables.emails),
        blobs=BlobStore(settings.mail_bucket),
        accounts=AccountStore(settings.tables.accounts),
    )


def reset() -> None:
    """Forget everything cached (tests switch moto instances and environments)."""
    for cached in (calendar_settings, calendar_store, token_key, calendar_deps, itip_deps):
        cached.cache_clear()
