"""The CRM adapters the contract suite runs against, each on its local double.

`PROVIDERS` is a list of factories; adding a CRM is one line (its factory). A factory is a context
manager yielding a `CrmHarness`: the adapter under test plus the few things a test does on the CRM's
side (a user editing records, an admin revoking the app, the clock, the org's request allocation),
in that CRM's own field names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import httpx

from local.clock import ManualClock
from local.hubspot import HubSpotDouble
from local.hubspot.oauth import App
from local.salesforce import SalesforceDouble
from local.salesforce.oauth import ConnectedApp
from mailbridge.crm.remote.hubspot import HubSpotProvider, HubSpotSettings
from mailbridge.crm.remote.protocol import CrmProvider, RemoteRecord
from mailbridge.crm.remote.salesforce import SalesforceProvider, SalesforceSession, SalesforceSettings
from mailbridge.errors import ProviderAuthError
from mailbridge.providers.http import HttpPolicy
from tests.integration.local_hubspot.conftest import REDIRECT, install
from tests.integration.local_salesforce.conftest import CALLBACK, connect


class CrmHarness(Protocol):
    @property
    def provider(self) -> CrmProvider: ...

    page_size: int
    """The adapter's page size for `changed_contacts`."""
    email_field: str
    last_name_field: str
    required_fields: set[str]
    """The contact fields the CRM requires on create (Salesforce: LastName; HubSpot: none)."""
    custom_picklist: tuple[str, list[str]]
    """A custom contact field the harness created, and its picklist values."""
    refreshes: int
    """How often the adapter asked for a new access token."""
    throttled: tuple[str, str]
    """The `ProviderThrottled` dimensions (provider, reason) the CRM's request-limit answer counts."""

    @property
    def requests(self) -> int:
        """API requests the double has counted (for requests-per-operation figures)."""
        ...

    def contact(self, email: str, last_name: str, first_name: str | None = None) -> RemoteRecord: ...

    def refused_contact(self) -> tuple[RemoteRecord, str]:
        """A contact the CRM refuses, and the value that must not appear in the error message."""
        ...

    def user_creates(self, count: int) -> list[str]:
        """`count` contacts made in the CRM at the same instant (no clock move between them)."""
        ...

    def user_updates(self, remote_id: str, last_name: str) -> None: ...

    def user_deletes(self, remote_id: str) -> None: ...

    def value_of(self, remote_id: str, name: str) -> object: ...

    def advance(self, seconds: float) -> None: ...

    def expire_sessions(self) -> None: ...

    def revoke(self) -> None: ...

    def refresh_yields_dead_tokens(self) -> None:
        """From now on a refresh succeeds but hands out a token the CRM refuses."""
        ...

    def spend_request_allowance(self) -> None:
        """The org (portal) has no API requests left for now."""
        ...

    def activities(self, message_id: str) -> int:
        """Email activities the CRM holds for this Message-ID."""
        ...

    def campaign_members(self, remote_campaign_id: str) -> set[str]: ...


@dataclass
class SalesforceHarness:
    throttled = ("salesforce", "request_limit_exceeded")  # 403 REQUEST_LIMIT_EXCEEDED
    double: SalesforceDouble
    app: ConnectedApp
    refresh_token: str
    provider: SalesforceProvider = field(init=False)
    page_size: int = 200
    email_field: str = "Email"
    last_name_field: str = "LastName"
    required_fields: set[str] = field(default_factory=lambda: {"LastName"})
    custom_picklist: tuple[str, list[str]] = ("Region__c", ["EMEA", "APAC"])
    refreshes: int = 0
    dead_tokens: bool = False

    @property
    def requests(self) -> int:
        return self.double.api_usage()[0]

    def refresh(self) -> SalesforceSession:
        self.refreshes += 1
        answer = httpx.post(
            self.double.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": self.refresh_token,
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
            },
            timeout=10,
        )
        if answer.status_code == 400 and answer.json().get("error") == "invalid_grant":
            raise ProviderAuthError("the refresh token was refused")
        answer.raise_for_status()
        token = "00Ddead!token" if self.dead_tokens else answer.json()["access_token"]
        return SalesforceSession(token, answer.json()["instance_url"])

    def contact(self, email: str, last_name: str, first_name: str | None = None) -> RemoteRecord:
        out: RemoteRecord = {"Email": email, "LastName": last_name}
        if first_name is not None:
            out["FirstName"] = first_name
        return out

    def refused_contact(self) -> tuple[RemoteRecord, str]:
        return {"Email": "not-an-address", "LastName": "Refused"}, "not-an-address"

    def user_creates(self, count: int) -> list[str]:
        return [
            self.double.create("Contact", LastName=f"Same{i:04d}", Email=f"same{i}@example.com")
            for i in range(count)
        ]

    def user_updates(self, remote_id: str, last_name: str) -> None:
        self.double.update("Contact", remote_id, LastName=last_name)

    def user_deletes(self, remote_id: str) -> None:
        self.double.delete("Contact", remote_id)

    def value_of(self, remote_id: str, name: str) -> object:
        return self.double.record("Contact", remote_id)[name]

    def advance(self, seconds: float) -> None:
        self.double.advance(seconds)

    def expire_sessions(self) -> None:
        self.double.expire_sessions()

    def revoke(self) -> None:
        self.double.revoke()

    def refresh_yields_dead_tokens(self) -> None:
        self.dead_tokens = True

    def spend_request_allowance(self) -> None:
        used, _daily = self.double.api_usage()
        self.double.set_daily_api_requests(used)

    def activities(self, message_id: str) -> int:
        return sum(1 for t in self.double.records("Task") if t.get("Mailbridge_Message_Id__c") == message_id)

    def campaign_members(self, remote_campaign_id: str) -> set[str]:
        return {
            str(m["ContactId"])
            for m in self.double.records("CampaignMember")
            if m["CampaignId"] == remote_campaign_id
        }


@contextmanager
def salesforce() -> Iterator[CrmHarness]:
    """`SalesforceProvider` against `SalesforceDouble` on a loopback port and a manual clock: the
    adapter's sleeps (bulk polls, retries) move the clock, so jobs progress without waiting."""
    clock = ManualClock(datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
    with SalesforceDouble(clock=clock, seed=11) as double:
        double.add_custom_field("Task", "Mailbridge_Message_Id__c", "text", 255)
        double.add_custom_field("Contact", "Region__c", "picklist", picklist=("EMEA", "APAC"))
        app = double.register_app([CALLBACK])
        token = connect(double, app)
        harness = SalesforceHarness(double, app, token["refresh_token"])
        harness.provider = SalesforceProvider(
            SalesforceSession(token["access_token"], token["instance_url"]),
            harness.refresh,
            settings=SalesforceSettings(page_size=harness.page_size),
            policy=HttpPolicy(local_mode=True, max_attempts=3),
            sleep=double.advance,
            jitter=lambda: 0.0,
        )
        yield harness


@dataclass
class HubSpotHarness:
    throttled = ("hubspot", "http_429")
    double: HubSpotDouble
    app: App
    refresh_token: str
    provider: HubSpotProvider = field(init=False)
    page_size: int = 100
    email_field: str = "email"
    last_name_field: str = "lastname"
    required_fields: set[str] = field(default_factory=set)
    custom_picklist: tuple[str, list[str]] = ("region", ["EMEA", "APAC"])
    refreshes: int = 0
    dead_tokens: bool = False
    made: int = 0
    """Contacts made by `user_creates` so far (HubSpot refuses a second contact with one email)."""

    @property
    def requests(self) -> int:
        # The double keeps only a rolling window per rate limit, no total: the adapter counts
        # every request it sends (retries included).
        return self.provider.requests

    def refresh(self) -> str:
        self.refreshes += 1
        answer = httpx.post(
            self.double.token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": self.app.client_id,
                "client_secret": self.app.client_secret,
                "refresh_token": self.refresh_token,
            },
            timeout=10,
        )
        if answer.status_code != 200:
            raise ProviderAuthError("the refresh token was refused", code="refresh_refused")
        return "dead-access-token" if self.dead_tokens else str(answer.json()["access_token"])

    def contact(self, email: str, last_name: str, first_name: str | None = None) -> RemoteRecord:
        out: RemoteRecord = {"email": email, "lastname": last_name}
        if first_name is not None:
            out["firstname"] = first_name
        return out

    def refused_contact(self) -> tuple[RemoteRecord, str]:
        return {"email": "not-an-address", "lastname": "Refused"}, "not-an-address"

    def user_creates(self, count: int) -> list[str]:
        start, self.made = self.made, self.made + count
        return [
            self.double.create("contacts", lastname=f"Same{i:04d}", email=f"same{i}@example.com")
            for i in range(start, start + count)
        ]

    def user_updates(self, remote_id: str, last_name: str) -> None:
        self.double.update("contacts", remote_id, lastname=last_name)

    def user_deletes(self, remote_id: str) -> None:
        self.double.delete("contacts", remote_id)

    def value_of(self, remote_id: str, name: str) -> object:
        return self.double.object("contacts", remote_id).properties[name]

    def advance(self, seconds: float) -> None:
        self.double.advance(seconds)

    def expire_sessions(self) -> None:
        self.double.expire_access_tokens()

    def revoke(self) -> None:
        self.double.uninstall()

    def refresh_yields_dead_tokens(self) -> None:
        self.dead_tokens = True

    def spend_request_allowance(self) -> None:
        # A daily allowance of exactly what the portal has used today (HubSpot's private-app limit).
        limits = self.double.limits
        day, used = limits._day
        limits.daily = used if day == self.double.now().date() else 0

    def activities(self, message_id: str) -> int:
        emails = self.double.crm.objects["emails"].values()
        return sum(1 for e in emails if e.properties.get("mailbridge_message_id") == message_id)

    def campaign_members(self, remote_campaign_id: str) -> set[str]:
        return set(self.double.list_members(remote_campaign_id))


@contextmanager
def hubspot() -> Iterator[CrmHarness]:
    """`HubSpotProvider` against `HubSpotDouble` (an installed public app, a custom picklist
    property) on a manual clock that the adapter's rate-limit waits move."""
    clock = ManualClock(datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
    with HubSpotDouble(clock=clock, seed=7) as double:
        double.add_property(
            "contacts", "region", type_="enumeration", field_type="select", options=("EMEA", "APAC")
        )
        app = double.register_app([REDIRECT])
        token = install(double, app, scope=" ".join(app.scopes))
        harness = HubSpotHarness(double, app, token["refresh_token"])
        harness.provider = HubSpotProvider(
            token["access_token"],
            harness.refresh,
            HubSpotSettings(api_url=double.api_url, page_size=harness.page_size),
            policy=HttpPolicy(local_mode=True),
            sleep=double.advance,
            now=clock.now,
        )
        yield harness


ProviderFactory = Callable[[], AbstractContextManager[CrmHarness]]
PROVIDERS: list[ProviderFactory] = [salesforce, hubspot]
