"""Contact import: a Gmail account's Google Contacts into the built-in CRM (issue 11 point 5).

Runs only for an account that granted `contacts.readonly` (asked for at connect when the tenant
switched on the `contact_import` feature flag). Reads `people.connections.list`
(`mailbridge.providers.gmail.people`): everything the first time, then the changes since the
saved sync token; an expired token (`SyncTokenExpired`) lists everything again. The new token is
saved only after every contact of the run is stored, so a failed run is repeated, not skipped.

Per Google contact, through the CRM service (so `contact.created` goes out and address
uniqueness holds):
- addresses the contact policy refuses are dropped (`crm.policy.may_create_contact`: blocklisted
  addresses and domains, own domains, role and no-reply mailboxes); a contact left with none is
  skipped;
- a contact any of whose addresses the CRM already knows is left as it is (the CRM's data wins);
- otherwise a contact is created with the Google name (else the local part), addresses, title and
  phones, tagged `google-contacts`.
Contacts deleted in Google are not deleted from the CRM (the CRM owns them once imported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from pydantic import ValidationError

from mailbridge.bus import EventPublisher
from mailbridge.crm import service
from mailbridge.crm.matching import fallback_name
from mailbridge.crm.models import ContactCreate, normalize_address
from mailbridge.crm.policy import may_create_contact
from mailbridge.crm.settings import load_policy
from mailbridge.errors import Conflict, NotFound, ProviderAuthError
from mailbridge.models.account import Account
from mailbridge.oauth.providers import CONTACTS_READONLY
from mailbridge.observability import logger
from mailbridge.providers.gmail.people import Connections, PeopleClient, Person, SyncTokenExpired
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.crm import CrmStore
from mailbridge.store.policy import PolicyStore
from mailbridge.sync.messages import ImportContacts
from mailbridge.tenancy import Role, TenantContext

IMPORT_TAG = "google-contacts"
SYSTEM_SUBJECT = "mailbridge:contact-import"


def default_people(account: Account) -> PeopleClient:
    from mailbridge.config import get_settings
    from mailbridge.oauth.tokens import token_source

    return PeopleClient(get_settings().google.people_api_url, token_source(account))


@dataclass
class ImportDeps:
    crm: CrmStore
    policies: PolicyStore
    accounts: AccountStore
    publisher: EventPublisher | None = None
    people_for: Callable[[Account], PeopleClient] = default_people


@dataclass
class ImportReport:
    created: int = 0
    existing: int = 0
    skipped: int = 0
    full: bool = False


@lru_cache(maxsize=1)
def import_deps() -> ImportDeps:
    """The sync function's import dependencies, once per cold start."""
    from mailbridge.config import get_settings

    settings = get_settings()
    return ImportDeps(
        crm=CrmStore(settings.tables.crm),
        policies=PolicyStore(settings.tables.settings),
        accounts=AccountStore(settings.tables.accounts),
        publisher=EventPublisher(settings.event_bus_name),
    )


def handle_import(
    message: ImportContacts, accounts: AccountStore, queue: SyncQueue, deps: ImportDeps | None = None
) -> int:
    """The schedule's message (no account): queue one per active Gmail account (one dedupe id
    per account and day); an account's: import its contacts. Returns how many were queued or
    created."""
    if message.tenant_id is None or message.account_id is None:
        day = datetime.now(UTC).strftime("%Y%m%d")
        requests: list[ImportContacts] = []
        ids: list[str] = []
        for tenant_id, account_id in accounts.pollable(message.provider):
            requests.append(ImportContacts(tenant_id=tenant_id, account_id=account_id))
            ids.append(f"contacts-{tenant_id}-{account_id}-{day}"[:128])
        if requests:
            queue.send_many(requests, ids)
        return len(requests)
    try:
        return import_contacts(message.tenant_id, message.account_id, deps or import_deps()).created
    except ProviderAuthError as exc:  # reauth_required, insufficient_scope: a retry cannot help
        logger.warning("contact import stopped", extra={"code": exc.code})
        return 0


def wants_import(account: Account) -> bool:
    """A Gmail account whose grant includes contacts.readonly."""
    return (
        account.provider == "gmail"
        and account.oauth is not None
        and CONTACTS_READONLY in account.oauth.scopes
    )


def _body(person: Person, addresses: list[str]) -> ContactCreate | None:
    fields = {
        "name": (person.name or "").strip()[:200] or fallback_name(addresses[0]),
        "emails": [{"address": a} for a in addresses],
        "title": person.title,
        "tags": [IMPORT_TAG],
    }
    try:
        return ContactCreate.model_validate({**fields, "phones": person.phones[:10]})
    except ValidationError:
        pass
    try:  # a phone number or title the CRM's rules refuse: the contact without them
        return ContactCreate.model_validate({**fields, "title": None})
    except ValidationError:
        return None


def import_contacts(tenant_id: str, account_id: str, deps: ImportDeps) -> ImportReport:
    """Import the account's Google contacts (see the module docstring); what happened, counted.

    Raises ProviderError (retryable: the queue redelivers; ProviderAuthError `reauth_required` /
    `insufficient_scope`: nothing to retry)."""
    report = ImportReport()
    try:
        account = deps.accounts.get_account(tenant_id, account_id)
    except NotFound:
        return report
    if not wants_import(account):
        return report
    policy = load_policy(tenant_id, deps.policies, deps.accounts)
    client = deps.people_for(account)
    token = deps.accounts.contacts_sync_token(tenant_id, account_id)
    try:
        connections: Connections = client.list_connections(token)
    except SyncTokenExpired:
        token = None
        connections = client.list_connections(None)
    report.full = token is None
    ctx = TenantContext(tenant_id=tenant_id, role=Role.MEMBER, subject=SYSTEM_SUBJECT)
    for person in connections.people:
        if person.deleted:
            continue
        addresses = list(dict.fromkeys(normalize_address(a) for a in person.emails))
        allowed = [a for a in addresses if may_create_contact(a, policy)]
        if not allowed:
            report.skipped += 1
            continue
        if deps.crm.find_emails(tenant_id, allowed):
            report.existing += 1
            continue
        body = _body(person, allowed)
        if body is None:
            report.skipped += 1
            continue
        try:
            service.create_contact(ctx, body, deps.crm, deps.publisher)
        except Conflict:  # an address was taken meanwhile (matching, another import)
            report.existing += 1
            continue
        report.created += 1
    deps.accounts.save_contacts_sync_token(tenant_id, account_id, connections.next_sync_token)
    logger.info(
        "contacts imported",
        extra={
            "contacts_created": report.created,
            "contacts_existing": report.existing,
            "contacts_skipped": report.skipped,
            "full_list": report.full,
        },
    )
    return report
