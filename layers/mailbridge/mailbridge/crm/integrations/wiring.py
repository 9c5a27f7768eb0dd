"""The integrations' dependencies, built once per cold start from the settings."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailbridge.bus import EventPublisher
from mailbridge.config import get_settings
from mailbridge.crm.integrations.oauth import CrmOAuth, HubSpotOAuth, SalesforceOAuth
from mailbridge.crm.integrations.service import IntegrationDeps
from mailbridge.errors import NotFound
from mailbridge.store.crm_activity import LoggedEmailStore
from mailbridge.store.crm_campaigns import RemoteCampaignStore
from mailbridge.store.crm_integrations import IntegrationStore
from mailbridge.store.crm_remote_ids import RemoteIdStore
from mailbridge.store.crm_sync import SyncLogStore
from mailbridge.store.oauth_states import OAuthStateStore

if TYPE_CHECKING:
    from mailbridge.crm.integrations.activity import ActivityDeps
    from mailbridge.crm.integrations.campaigns import CampaignSyncDeps
    from mailbridge.queues import CrmActivityQueue

CRM_PROVIDERS = ("salesforce", "hubspot")


@lru_cache(maxsize=2)
def crm_oauth(name: str) -> CrmOAuth:
    """The OAuth client of `salesforce` or `hubspot`; NotFound(provider_not_found) for any other name."""
    from mailbridge.oauth.providers import ClientSecret

    settings = get_settings().crm_oauth
    if name == "salesforce":
        return SalesforceOAuth(settings, ClientSecret(settings.salesforce_client_secret_arn))
    if name == "hubspot":
        return HubSpotOAuth(settings, ClientSecret(settings.hubspot_client_secret_arn))
    raise NotFound("no such CRM provider", code="provider_not_found")


@lru_cache(maxsize=1)
def integration_deps() -> IntegrationDeps:
    settings = get_settings()
    return IntegrationDeps(
        settings=settings,
        store=IntegrationStore(settings.tables.crm),
        logs=SyncLogStore(settings.tables.crm),
        remote_ids=RemoteIdStore(settings.tables.crm),
        logged=LoggedEmailStore(settings.tables.crm),
        remote_campaigns=RemoteCampaignStore(settings.tables.crm),
        states=OAuthStateStore(settings.tables.accounts),
        publisher=EventPublisher(settings.event_bus_name),
        oauth=crm_oauth,
    )


class ActivitySettings(BaseSettings):
    """What only the CRM activity function needs (set on CrmActivityFunction in template.yaml)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    crm_activity_queue_url: str = Field(validation_alias="CRM_ACTIVITY_QUEUE_URL", min_length=1)


@lru_cache(maxsize=1)
def activity_queue() -> CrmActivityQueue:
    from mailbridge.queues import CrmActivityQueue

    return CrmActivityQueue(ActivitySettings().crm_activity_queue_url)


@lru_cache(maxsize=1)
def activity_deps() -> ActivityDeps:
    from mailbridge.crm.integrations.activity import ActivityDeps
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.visibility import DynamoPrivacyStore

    settings = get_settings()
    return ActivityDeps(
        integrations=integration_deps(),
        emails=EmailStore(settings.tables.emails),
        logged=LoggedEmailStore(settings.tables.crm),
        mailboxes=AccountStore(settings.tables.accounts),
        privacy=DynamoPrivacyStore(settings.tables.settings),
    )


@lru_cache(maxsize=1)
def campaign_sync_deps() -> CampaignSyncDeps:
    from mailbridge.crm.integrations.campaigns import CampaignSyncDeps
    from mailbridge.store.campaigns import CampaignRunStore
    from mailbridge.store.crm import CrmStore

    settings = get_settings()
    return CampaignSyncDeps(
        integrations=integration_deps(),
        crm=CrmStore(settings.tables.crm),
        runs=CampaignRunStore(settings.tables.crm),
        remote=RemoteCampaignStore(settings.tables.crm),
    )
