"""Settings read once per cold start from the function's environment (see template.yaml Globals).

A missing or malformed variable fails the cold start with a clear pydantic error instead of a
KeyError deep inside a request. Services never read os.environ: they receive what they need.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TableNames(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    accounts: str = Field(validation_alias="ACCOUNTS_TABLE", min_length=3)
    emails: str = Field(validation_alias="EMAILS_TABLE", min_length=3)
    links: str = Field(validation_alias="LINKS_TABLE", min_length=3)
    flags: str = Field(validation_alias="FLAGS_TABLE", min_length=3)
    snoozes: str = Field(validation_alias="SNOOZES_TABLE", min_length=3)
    crm: str = Field(validation_alias="CRM_TABLE", min_length=3)
    settings: str = Field(validation_alias="SETTINGS_TABLE", min_length=3)
    idempotency: str = Field(validation_alias="IDEMPOTENCY_TABLE", min_length=3)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    stage: Literal["dev", "prod"] = Field(default="dev", validation_alias="STAGE")
    docs_enabled: bool = Field(default=True, validation_alias="DOCS_ENABLED")
    mail_bucket: str = Field(validation_alias="MAIL_BUCKET", min_length=3)
    event_bus_name: str = Field(validation_alias="EVENT_BUS_NAME", min_length=1)
    data_key_id: str = Field(validation_alias="DATA_KEY_ID", min_length=1)
    sync_queue_url: str = Field(validation_alias="SYNC_QUEUE_URL", min_length=1)
    outbox_queue_url: str = Field(validation_alias="OUTBOX_QUEUE_URL", min_length=1)
    outbox_queue_arn: str = Field(validation_alias="OUTBOX_QUEUE_ARN", min_length=1)
    scheduler_role_arn: str = Field(validation_alias="SCHEDULER_ROLE_ARN", min_length=1)
    allow_private_mail_hosts: bool = Field(default=False, validation_alias="ALLOW_PRIVATE_MAIL_HOSTS")
    cursor_secret_arn: str = Field(
        validation_alias="CURSOR_SECRET_ARN",
        min_length=1,
        description="Secrets Manager secret whose value signs pagination cursors (store/pagination.py)",
    )
    tables: TableNames = Field(default_factory=TableNames)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
