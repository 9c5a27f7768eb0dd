"""The privacy jobs' settings and dependencies, built once per cold start (api and tasks functions)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailbridge.config import get_settings
from mailbridge.privacy.service import PrivacyDeps


class PrivacySettings(BaseSettings):
    """What only privacy jobs need (set on ApiFunction and TasksFunction in template.yaml)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    tasks_queue_url: str = Field(validation_alias="TASKS_QUEUE_URL", min_length=1)
    calendar_table: str = Field(validation_alias="CALENDAR_TABLE", min_length=3)
    tracking_table: str = Field(validation_alias="TRACKING_TABLE", min_length=3)


class CrmContacts:
    """The CRM lookups a privacy request needs (store/crm.py)."""

    def __init__(self, table_name: str) -> None:
        from mailbridge.store.crm import CrmStore

        self.store = CrmStore(table_name)

    def contact_of(self, tenant_id: str, address: str) -> str | None:
        lookup = self.store.find_email(tenant_id, address)
        return None if lookup is None else lookup.contact_id

    def addresses_of(self, tenant_id: str, contact_id: str) -> list[str] | None:
        contact = self.store.get_contact(tenant_id, contact_id)
        return None if contact is None else contact.addresses


@lru_cache(maxsize=1)
def privacy_deps() -> PrivacyDeps:
    from mailbridge.queues import StandardQueue
    from mailbridge.store.privacy import ObjectArea, PrivacyJobStore, TenantTables

    settings, own = get_settings(), PrivacySettings()
    tables = settings.tables

    def forget_suppressed(tenant: str, address: str) -> None:
        from mailbridge.campaigns.suppression import forget_address
        from mailbridge.campaigns.wiring import suppression_deps

        forget_address(suppression_deps(""), tenant, address)

    return PrivacyDeps(
        jobs=PrivacyJobStore(tables.settings),
        tables=TenantTables(),
        objects=ObjectArea(settings.mail_bucket),
        queue=StandardQueue(own.tasks_queue_url),
        contacts=CrmContacts(tables.crm),
        table_names={
            "links": tables.links,
            "tracking": own.tracking_table,
            "flags": tables.flags,
            "snoozes": tables.snoozes,
            "notifications": tables.notifications,
            "automations": tables.automations,
            "calendar": own.calendar_table,
            "crm": tables.crm,
            "accounts": tables.accounts,
            "settings": tables.settings,
            "emails": tables.emails,
        },
        accounts_table=tables.accounts,
        kms_key_id=settings.data_key_id,
        forget_suppressed=forget_suppressed,
    )
