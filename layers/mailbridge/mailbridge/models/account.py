"""Connected mailboxes: what the API accepts, what it returns, and the sync status it shows."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, EmailStr, Field, SecretStr, field_serializer, model_validator
from pydantic_core import PydanticCustomError

from mailbridge.access import Visibility
from mailbridge.models.base import Model
from mailbridge.models.fields import FolderName, HeaderText, SingleLine
from mailbridge.models.numbers import DynamoInt
from mailbridge.providers.imap.settings import Security

INBOX = "INBOX"
MAX_FOLDERS = 50

Provider = Literal["imap", "gmail", "graph"]
"""How a mailbox is reached: IMAP/SMTP with a password, or Gmail's API with an OAuth grant."""
OAUTH_PROVIDERS: frozenset[str] = frozenset({"gmail", "graph"})
REAUTH_REQUIRED = "reauth_required"
"""`sync.reason` of an OAuth account whose grant was revoked: out of the poll until reconnected."""
CALENDAR_SCOPES: dict[str, str] = {
    "gmail": "https://www.googleapis.com/auth/calendar.events",
    "graph": "Calendars.ReadWrite",
}
"""The scope a provider calendar needs: Google Calendar API v3 `calendar.events`
(developers.google.com/calendar/api/auth); Graph `Calendars.ReadWrite` (Graph permissions
reference). Asked for at connect when the tenant's `calendar` flag is on."""
CalendarAccess = Literal["granted", "reconnect_required", "unsupported"]


def calendar_access(provider: str, scopes: list[str] | None) -> CalendarAccess:
    """Whether the account's grant lets calendar sync run: `unsupported` (IMAP: no provider
    calendar), `granted`, or `reconnect_required` (connected without the calendar scope: connect
    again with the `calendar` flag on). Graph scopes compare case-insensitively, as Entra ID does."""
    needed = CALENDAR_SCOPES.get(provider)
    if needed is None:
        return "unsupported"
    granted = {scope.lower() for scope in scopes or []}
    return "granted" if needed.lower() in granted else "reconnect_required"


def sortable_utc(value: datetime) -> str:
    """`2026-11-21T09:14:03.000000Z`: fixed width, so stored times compare as strings."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_inbox(name: str) -> bool:
    """RFC 3501 section 5.1: the name INBOX is case-insensitive; every other name is not."""
    return name.upper() == INBOX


def _folder_selection(names: list[str]) -> list[str]:
    """INBOX (any case) is always synced: listing it is harmless and it is not kept; any other
    name listed twice is refused (names compare exactly: `Projects` and `projects` are two
    folders on most servers)."""
    kept: list[str] = []
    for name in names:
        if is_inbox(name):
            continue
        if name in kept:
            raise PydanticCustomError("duplicate_folder", "a folder is listed more than once")
        kept.append(name)
    return kept


def _password(value: SecretStr) -> SecretStr:
    # IMAP LOGIN sends the password as a quoted string, which cannot hold NUL, CR or LF
    # (RFC 3501 section 9, QUOTED-CHAR); such a password could only break or inject a command.
    if any(c in value.get_secret_value() for c in "\x00\r\n"):
        raise PydanticCustomError("control_characters", "a password cannot contain NUL, CR or LF")
    return value


Host = Annotated[
    str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._-]+$", examples=["imap.example.com"])
]
Username = Annotated[SingleLine, Field(min_length=1, max_length=320)]
Password = Annotated[SecretStr, Field(min_length=1, max_length=1024), AfterValidator(_password)]
DisplayName = Annotated[HeaderText, Field(max_length=200)]
FolderSelection = Annotated[
    list[FolderName],
    Field(
        max_length=MAX_FOLDERS,
        description=(
            "Folders to sync besides INBOX and the Sent folder (found by SPECIAL-USE, RFC 6154); "
            "INBOX or the Sent folder listed here is synced once, a name listed twice is refused"
        ),
    ),
    AfterValidator(_folder_selection),
]


class ServerSettings(Model):
    """IMAP or SMTP endpoint as the user enters it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    host: Host
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.SSL
    username: Username
    password: Password


class PublicServerSettings(Model):
    """The same without the password, as the API returns it."""

    host: str
    port: int | None
    security: Security
    username: str


class AccountCreate(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "provider": "imap",
                    "address": "alice@example.com",
                    "imap": {
                        "host": "imap.example.com",
                        "port": 993,
                        "security": "ssl",
                        "username": "alice@example.com",
                        "password": "app-password",
                    },
                    "smtp": {
                        "host": "smtp.example.com",
                        "port": 465,
                        "security": "ssl",
                        "username": "alice@example.com",
                        "password": "app-password",
                    },
                    "folders": ["Projects"],
                }
            ]
        },
    )

    provider: Literal["imap"]
    address: EmailStr
    display_name: DisplayName | None = None
    imap: ServerSettings
    smtp: ServerSettings | None = None
    folders: FolderSelection = Field(default_factory=list)


class ImapChange(Model):
    """A new IMAP password (the server and the login name are what identify the account)."""

    model_config = ConfigDict(extra="forbid")

    password: Password


class SmtpChange(Model):
    """SMTP settings to change; fields left out keep their current value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    host: Host | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security | None = None
    username: Username | None = None
    password: Password | None = None


class AccountPatch(Model):
    """`PATCH /accounts/{id}`: fields left out stay as they are.

    `display_name: null` clears the name and `smtp: null` removes the SMTP settings (the account
    can no longer send). A new password or changed SMTP settings are tried with a login before
    anything is saved. `version` (from `GET /accounts/{id}`) makes the change conditional.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"version": 3, "imap": {"password": "new-app-password"}},
                {"display_name": "Alice Example", "folders": ["Projects", "Invoices"]},
                {"smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls"}},
            ]
        },
    )

    version: DynamoInt | None = Field(
        default=None, ge=1, description="The version last read; 409 `version_conflict` if it changed since"
    )
    display_name: DisplayName | None = None
    folders: FolderSelection | None = None
    imap: ImapChange | None = None
    smtp: SmtpChange | None = None
    visibility: Visibility | None = Field(
        default=None,
        description="What the rest of the tenant sees of this mailbox's mail: `private`, `metadata` "
        "(participants and dates), `subject` (+ subject and body-free headers) or `full`; null: the "
        "tenant default (`GET /settings/privacy`). Only the mailbox's owner or a tenant admin or "
        "owner may set it (403 `not_mailbox_owner`)",
    )

    @model_validator(mode="after")
    def _null_only_where_it_means_something(self) -> AccountPatch:
        for name in ("folders", "imap", "version"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise PydanticCustomError("null_not_allowed", "this field cannot be null")
        return self


class SyncStage(StrEnum):
    PENDING = "pending"
    SYNCING = "syncing"
    IDLE = "idle"
    FAILED = "failed"


class SyncState(Model):
    stage: SyncStage = SyncStage.PENDING
    reason: str | None = Field(
        default=None,
        description=(
            "Machine-readable reason when failed, e.g. `auth_failed` (IMAP login refused) or "
            "`reauth_required` (the OAuth grant was revoked: reconnect through /oauth/{provider}/start)"
        ),
    )
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    queued_at: datetime | None = Field(
        default=None,
        description="When a sync was queued (connect, manual sync, poll) that has not started yet",
    )
    last_push_at: datetime | None = Field(
        default=None, description="When the provider's last push (webhook) for this mailbox was received"
    )
    reconcile_queued_at: datetime | None = Field(
        default=None,
        description=(
            "When a reconcile (`POST /accounts/{id}/reconcile` or the nightly schedule) was queued "
            "that has not finished yet"
        ),
    )

    @field_serializer("queued_at", "reconcile_queued_at", "last_push_at", when_used="json-unless-none")
    def _sortable(self, value: datetime) -> str:
        return sortable_utc(value)


class OAuthGrant(Model):
    """What an OAuth account was granted (the tokens themselves are sealed with the credentials)."""

    scopes: list[str] = Field(default_factory=list, description="Scopes the user granted")
    subject: str | None = Field(default=None, description="The provider's stable id of the user (`sub`)")
    connected_at: datetime | None = Field(default=None, description="Last connect or reconnect")


class Account(Model):
    """A connected mailbox as stored (credentials are held separately, encrypted).

    IMAP accounts have `imap` (and `smtp` to send); OAuth accounts (`gmail`) have `oauth` instead.
    """

    account_id: str
    tenant_id: str
    provider: Provider
    address: str
    display_name: str | None = None
    imap: PublicServerSettings | None = None
    smtp: PublicServerSettings | None = None
    oauth: OAuthGrant | None = None
    folders: list[str] = Field(default_factory=list)
    created_at: datetime
    created_by: str
    visibility: Visibility | None = None  # None: the tenant default (mailbridge.access)
    sync: SyncState = Field(default_factory=SyncState)
    version: int = 0


class AccountOut(Model):
    """What `GET /accounts/{id}` returns."""

    account_id: str
    provider: Provider
    address: str
    display_name: str | None
    imap: PublicServerSettings | None = Field(description="IMAP accounts only")
    smtp: PublicServerSettings | None
    oauth: OAuthGrant | None = Field(default=None, description="OAuth accounts only (`gmail`)")
    calendar: CalendarAccess = Field(
        default="unsupported",
        description=(
            "Provider calendar sync: `granted`, `reconnect_required` (connected without the "
            "calendar scope; reconnect with the `calendar` feature on), `unsupported` (IMAP)"
        ),
    )
    folders: list[str]
    created_at: datetime
    owner: str = Field(description="The `sub` of the user who connected the mailbox (its owner)")
    visibility: Visibility | None = Field(
        default=None, description="What the rest of the tenant sees of its mail; null: the tenant default"
    )
    sync: SyncState
    version: int = Field(description="Pass it back in `PATCH` to change only what you read")


class FolderPresence(StrEnum):
    ACTIVE = "active"  # synced
    MISSING = "missing"  # selected, but the server has no such folder (or it cannot be selected)


class ReconcileFindings(Model):
    """What the last reconcile of a folder found (`mailbridge.sync.reconcile`): the server's and
    our counts before repairing, the ids the server has that we did not store (`missing`), the
    ones we stored that the server no longer has (`extra`), and how many of those it repaired
    (backfilled through the ingest, or marked deleted). `error` is the code of the error that
    stopped it (then the counts are what it got to)."""

    at: datetime = Field(description="When the reconcile of this folder finished")
    server_count: int = Field(ge=0, description="Messages the server listed in the folder")
    stored_count: int = Field(ge=0, description="Messages stored for the folder, before repairing")
    missing: int = Field(default=0, ge=0, description="On the server, not stored")
    extra: int = Field(default=0, ge=0, description="Stored, no longer on the server")
    repaired: int = Field(default=0, ge=0, description="Of missing + extra, how many were repaired")
    error: str | None = Field(default=None, description="Code of the error that stopped it, if any")


class FolderState(Model):
    """Per-folder sync cursor and counts."""

    name: str
    state: FolderPresence = FolderPresence.ACTIVE
    reason: str | None = Field(
        default=None,
        description="Why a folder is missing: `folder_not_found` or `folder_not_selectable` (\\Noselect)",
    )
    uidvalidity: int | None = None
    last_uid: int = Field(default=0, description="Highest UID stored; the cursor only moves forward")
    highestmodseq: int | None = None
    messages_on_server: int | None = None
    messages_stored: int = 0
    last_synced_at: datetime | None = None
    delta_link: str | None = Field(
        default=None,
        exclude=True,  # internal: stored (store/accounts.py), never in an API answer
        description="Graph: the saved @odata.nextLink or @odata.deltaLink the folder resumes from",
    )
    history_id: int | None = Field(
        default=None, description="Gmail: the historyId the stored mail is complete up to (the cursor)"
    )
    pending_history_id: int | None = Field(
        default=None,
        description="Gmail: the historyId taken before a full sync's listing; the cursor once it completes",
    )
    reconcile: ReconcileFindings | None = Field(
        default=None, description="The last reconcile of the folder, if any"
    )


Verdict = Literal["healthy", "lagging", "gap_found", "reauth_required", "failed"]


class FolderStatus(FolderState):
    """A folder in `GET /accounts/{id}/status`: its state and the figures derived from it
    (`mailbridge.accounts.folder_verdict` gives the rule of each verdict)."""

    server_count: int | None = Field(description="Messages on the server (last sync or reconcile)")
    stored_count: int = Field(description="Messages stored for the folder")
    last_reconcile_at: datetime | None = Field(description="When the folder was last reconciled")
    cursor_age_seconds: float | None = Field(
        description="Seconds since the folder's cursor last moved (its last sync); null: never synced"
    )
    since_last_push_seconds: float | None = Field(
        description="Seconds since the mailbox's last push; null: no push received (IMAP has none)"
    )
    verdict: Verdict


class AccountStatus(Model):
    account_id: str
    stage: SyncStage
    reason: str | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    queued_at: datetime | None = Field(description="A sync is queued and has not started yet")
    reconcile_queued_at: datetime | None = Field(
        default=None, description="A reconcile is queued or running and has not finished yet"
    )
    folders: list[FolderStatus]
