"""Connected mailboxes: what the API accepts, what it returns, and the sync status it shows."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, EmailStr, Field, SecretStr

from mailbridge.models.base import Model
from mailbridge.providers.imap.settings import Security

FOLDER_NAME = r"^[^\x00-\x1f]{1,200}$"


class ServerSettings(Model):
    """IMAP or SMTP endpoint as the user enters it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    host: str = Field(
        min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._-]+$", examples=["imap.example.com"]
    )
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = Security.SSL
    username: str = Field(min_length=1, max_length=320)
    password: SecretStr = Field(min_length=1, max_length=1024)


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
    display_name: str | None = Field(default=None, max_length=200)
    imap: ServerSettings
    smtp: ServerSettings | None = None
    folders: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Folders to sync besides INBOX and the Sent folder (found by SPECIAL-USE)",
    )


class SyncStage(StrEnum):
    PENDING = "pending"
    SYNCING = "syncing"
    IDLE = "idle"
    FAILED = "failed"


class SyncState(Model):
    stage: SyncStage = SyncStage.PENDING
    reason: str | None = Field(default=None, description="Machine-readable reason when failed")
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None


class Account(Model):
    """A connected mailbox as stored (credentials are held separately, encrypted)."""

    account_id: str
    tenant_id: str
    provider: Literal["imap"]
    address: str
    display_name: str | None = None
    imap: PublicServerSettings
    smtp: PublicServerSettings | None = None
    folders: list[str] = Field(default_factory=list)
    created_at: datetime
    created_by: str
    sync: SyncState = Field(default_factory=SyncState)
    version: int = 0


class AccountOut(Model):
    """What `GET /accounts/{id}` returns."""

    account_id: str
    provider: Literal["imap"]
    address: str
    display_name: str | None
    imap: PublicServerSettings
    smtp: PublicServerSettings | None
    folders: list[str]
    created_at: datetime
    sync: SyncState


class FolderState(Model):
    """Per-folder sync cursor and counts."""

    name: str
    uidvalidity: int | None = None
    last_uid: int = Field(default=0, description="Highest UID stored; the cursor only moves forward")
    highestmodseq: int | None = None
    messages_on_server: int | None = None
    messages_stored: int = 0
    last_synced_at: datetime | None = None


class AccountStatus(Model):
    account_id: str
    stage: SyncStage
    reason: str | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    folders: list[FolderState]
