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
    automations: str = Field(validation_alias="AUTOMATIONS_TABLE", min_length=3)
    notifications: str = Field(validation_alias="NOTIFICATIONS_TABLE", min_length=3)
    audit: str = Field(validation_alias="AUDIT_TABLE", min_length=3)


class GoogleSettings(BaseSettings):
    """Google OAuth client, Gmail API and Pub/Sub push. Every URL defaults to Google's real endpoint
    (tests and `make run` point them at local/google); empty push settings mean no watch is made
    and every push is refused (the 15-minute poll still syncs)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    client_id: str = Field(default="", validation_alias="GOOGLE_CLIENT_ID")
    client_secret_arn: str = Field(
        default="",
        validation_alias="GOOGLE_CLIENT_SECRET_ARN",
        description="Secrets Manager secret holding the OAuth client secret (read on first use)",
    )
    # developers.google.com/identity/protocols/oauth2/web-server (endpoints)
    auth_url: str = Field(
        default="https://accounts.google.com/o/oauth2/v2/auth", validation_alias="GOOGLE_AUTH_URL"
    )
    token_url: str = Field(default="https://oauth2.googleapis.com/token", validation_alias="GOOGLE_TOKEN_URL")
    revoke_url: str = Field(
        default="https://oauth2.googleapis.com/revoke", validation_alias="GOOGLE_REVOKE_URL"
    )
    # gmail.v1 discovery document: rootUrl + servicePath
    gmail_api_url: str = Field(
        default="https://gmail.googleapis.com/gmail/v1", validation_alias="GMAIL_API_URL"
    )
    people_api_url: str = Field(default="https://people.googleapis.com/v1", validation_alias="PEOPLE_API_URL")
    # calendar.v3 discovery document: rootUrl + servicePath
    calendar_api_url: str = Field(
        default="https://www.googleapis.com/calendar/v3", validation_alias="GOOGLE_CALENDAR_API_URL"
    )
    # The X.509 form ({kid: PEM}) Google publishes its token signing keys in
    certs_url: str = Field(
        default="https://www.googleapis.com/oauth2/v1/certs", validation_alias="GOOGLE_CERTS_URL"
    )
    push_topic: str = Field(
        default="",
        validation_alias="GMAIL_PUSH_TOPIC",
        description="projects/{project}/topics/{topic} that users.watch publishes to",
    )
    push_audience: str = Field(
        default="", validation_alias="GMAIL_PUSH_AUDIENCE", description="`aud` of the push OIDC tokens"
    )
    push_service_account: str = Field(
        default="",
        validation_alias="GMAIL_PUSH_SERVICE_ACCOUNT",
        description="`email` of the push OIDC tokens: the push subscription's service account",
    )

    @property
    def push_configured(self) -> bool:
        return bool(self.push_topic and self.push_audience and self.push_service_account)


class MicrosoftSettings(BaseSettings):
    """Microsoft identity platform (msal) and Microsoft Graph. The authority host and Graph URL
    default to Microsoft's real endpoints (tests and `make run` point them at local/microsoft);
    `ca_bundle` is for the local double's CA only (tests, `make run`), never to turn checks off."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    client_id: str = Field(default="", validation_alias="MICROSOFT_CLIENT_ID")
    client_secret_arn: str = Field(
        default="",
        validation_alias="MICROSOFT_CLIENT_SECRET_ARN",
        description="Secrets Manager secret holding the app registration's client secret",
    )
    # learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow: {host}/{tenant}/oauth2/v2.0/...
    authority_host: str = Field(
        default="https://login.microsoftonline.com", validation_alias="MICROSOFT_AUTHORITY_HOST"
    )
    tenant: str = Field(
        default="common",
        validation_alias="MICROSOFT_TENANT",
        pattern=r"^[A-Za-z0-9.-]{1,100}$",
        description="common, organizations, consumers, or one directory's id or domain",
    )
    graph_url: str = Field(default="https://graph.microsoft.com/v1.0", validation_alias="GRAPH_API_URL")
    ca_bundle: str = Field(
        default="",
        validation_alias="MICROSOFT_CA_BUNDLE",
        description="PEM file of extra CAs to trust for Microsoft's hosts (the local double only)",
    )
    webhook_url: str = Field(
        default="",
        validation_alias="GRAPH_WEBHOOK_URL",
        description="Public https URL of POST /webhooks/graph; empty: no subscriptions are made",
    )

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant}"


class OAuthSettings(BaseSettings):
    """Where the OAuth callback sends the browser back, and the callback's own public base URL."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    return_url: str = Field(
        default="",
        validation_alias="OAUTH_RETURN_URL",
        description="Front-end URL the callback redirects to with ?outcome=...; empty: answer JSON",
    )
    callback_base_url: str = Field(
        default="",
        validation_alias="OAUTH_CALLBACK_BASE_URL",
        description="Public base URL of the API (custom domain); empty: https://{the request's domain}",
    )


class CrmOAuthSettings(BaseSettings):
    """OAuth clients of the CRM integrations (mailbridge.crm.integrations). Every URL defaults to
    the real endpoint (tests and `make run` point them at local/salesforce and local/hubspot); an
    empty client id means the provider is not set up on this deployment (404
    `provider_not_configured`)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    salesforce_client_id: str = Field(default="", validation_alias="SALESFORCE_CLIENT_ID")
    salesforce_client_secret_arn: str = Field(default="", validation_alias="SALESFORCE_CLIENT_SECRET_ARN")
    # Salesforce Help "OAuth Endpoints": /services/oauth2/authorize, /token, /revoke on the login host.
    salesforce_login_url: str = Field(
        default="https://login.salesforce.com", validation_alias="SALESFORCE_LOGIN_URL"
    )
    salesforce_scopes: str = Field(default="api refresh_token id", validation_alias="SALESFORCE_SCOPES")
    hubspot_client_id: str = Field(default="", validation_alias="HUBSPOT_CLIENT_ID")
    hubspot_client_secret_arn: str = Field(default="", validation_alias="HUBSPOT_CLIENT_SECRET_ARN")
    # HubSpot "OAuth quickstart": the install URL on app.hubspot.com, tokens on api.hubapi.com.
    hubspot_auth_url: str = Field(
        default="https://app.hubspot.com/oauth/authorize", validation_alias="HUBSPOT_AUTH_URL"
    )
    hubspot_api_url: str = Field(default="https://api.hubapi.com", validation_alias="HUBSPOT_API_URL")
    hubspot_webhook_url: str = Field(
        default="",
        validation_alias="HUBSPOT_WEBHOOK_URL",
        description="The target URL set in the HubSpot app (what its v3 signature covers); empty: "
        "https:// + the request's host and path",
    )
    hubspot_scopes: str = Field(
        # crm.schemas.contacts.read: the properties API (field mapping); crm.lists.*: our campaigns
        # go to HubSpot as static lists (POST /crm/sync/campaigns)
        default=(
            "oauth crm.objects.contacts.read crm.objects.contacts.write crm.schemas.contacts.read "
            "crm.lists.read crm.lists.write"
        ),
        validation_alias="HUBSPOT_SCOPES",
    )


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
    automations_queue_url: str = Field(validation_alias="AUTOMATIONS_QUEUE_URL", min_length=1)
    automations_queue_arn: str = Field(validation_alias="AUTOMATIONS_QUEUE_ARN", min_length=1)
    scheduler_role_arn: str = Field(validation_alias="SCHEDULER_ROLE_ARN", min_length=1)
    reminders_queue_arn: str = Field(
        validation_alias="REMINDERS_QUEUE_ARN",
        min_length=1,
        description="Where snooze wake-ups and follow-up reminders are scheduled to (mailbridge.snooze)",
    )
    reminders_queue_url: str = Field(
        validation_alias="REMINDERS_QUEUE_URL",
        min_length=1,
        description="Where the daily nudge run puts one scan per tenant (mailbridge.nudges.service.fan_out)",
    )
    crm_sync_queue_url: str = Field(
        default="",
        validation_alias="CRM_SYNC_QUEUE_URL",
        description="The CrmSyncQueue (FIFO): CRM contact syncs (mailbridge.crm.sync)",
    )
    allow_private_mail_hosts: bool = Field(default=False, validation_alias="ALLOW_PRIVATE_MAIL_HOSTS")
    cursor_secret_arn: str = Field(
        validation_alias="CURSOR_SECRET_ARN",
        min_length=1,
        description="Secrets Manager secret whose value signs pagination cursors (store/pagination.py)",
    )
    tables: TableNames = Field(default_factory=TableNames)
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    microsoft: MicrosoftSettings = Field(default_factory=MicrosoftSettings)
    crm_oauth: CrmOAuthSettings = Field(default_factory=CrmOAuthSettings)


class RealtimeSettings(BaseSettings):
    """The realtime and notifier functions' own variables (template.yaml RealtimeFunction,
    NotifierFunction); the other functions do not have them."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    connections_table: str = Field(validation_alias="CONNECTIONS_TABLE", min_length=3)
    jwt_issuer: str = Field(default="", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(
        default="", validation_alias="JWT_AUDIENCE", description="comma-separated accepted audiences"
    )
    endpoint_url: str = Field(
        default="",
        validation_alias="REALTIME_ENDPOINT_URL",
        description="the WebSocket API stage's @connections endpoint, https://{api}.execute-api.{region}.amazonaws.com/{stage}",
    )

    @property
    def audiences(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.jwt_audience.split(",") if a.strip())


class AuditArchiveSettings(BaseSettings):
    """The audit archive function's own variables (template.yaml AuditArchiveFunction)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    bucket: str = Field(validation_alias="AUDIT_BUCKET", min_length=3)
    retention_days: int = Field(validation_alias="AUDIT_RETENTION_DAYS", ge=1, le=36500)


@lru_cache(maxsize=1)
def get_audit_archive_settings() -> AuditArchiveSettings:
    return AuditArchiveSettings()


@lru_cache(maxsize=1)
def get_realtime_settings() -> RealtimeSettings:
    return RealtimeSettings()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
