"""Automatic email <-> CRM matching: one planner for new mail and for re-matching.

`plan_links` is the one rule set (pure): given an email's participants and what the CRM knows
about them, it says which contacts, companies and deals to link and why:

- a participant (from, to, cc) whose address (any case) belongs to a contact -> the contact
  (`participant`), and the contact's company (`participant`);
- a participant's domain that belongs to a company -> the company (`domain`), except own domains;
- for every matched contact and company, its most recently updated open deal (`deal_rule`). Only
  the most recent one: an email is usually about the deal in progress, and linking every open
  deal would put the same mail on unrelated deals' timelines. Others can be linked by hand.
- blocklisted addresses and domains take part in nothing.

`match_email` runs it for a stored email (`email.received` / `email.sent`), after writing the
participant index and creating contacts/companies the policy allows (`mailbridge.crm.policy`).
`backfill` runs it over the participant index for a contact's addresses (`contact.created`, new
addresses in `contact.updated`): bounded work per message, the rest queued as a continuation
with the index cursor. `prune` removes a contact's automatic links on `contact.deleted` (and the
links of addresses a contact no longer has); manual links stay: they record a person's decision,
remain visible on the email and can be deleted through the API.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from mailbridge.bus import EventPublisher
from mailbridge.crm import service
from mailbridge.crm.linked import email_linked
from mailbridge.crm.models import CompanyCreate, ContactCreate, ContactPatch, EmailLookup
from mailbridge.crm.policy import (
    Policy,
    domain_of,
    is_automated,
    local_part,
    may_create_company,
    may_create_contact,
)
from mailbridge.crm.settings import load_policy
from mailbridge.errors import Conflict, Invalid, NotFound
from mailbridge.models.features import FeatureFlags
from mailbridge.queues import MatchQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.crm import CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.links import MANUAL, IndexEntry, LinkRecord, LinkStore
from mailbridge.store.policy import PolicyStore
from mailbridge.store.settings import FeatureStore
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.campaigns.suppression import SuppressionDeps

SYSTEM_SUBJECT = "mailbridge:matching"
Role_ = Literal["from", "to", "cc"]
REASON_RANK = {"participant": 0, "domain": 1, "deal_rule": 2}
# Participant index rows read per query, and per message before a backfill continues elsewhere.
INDEX_PAGE = 1000
BACKFILL_BUDGET = 2000
LINK_PAGE = 100
AUTO_CREATED = "auto-created"


# ---------------------------------------------------------------------------------- pure rules


@dataclass(frozen=True)
class Participant:
    address: str
    role: Role_
    name: str | None = None

    @property
    def domain(self) -> str:
        return domain_of(self.address)


@dataclass(frozen=True)
class MailFacts:
    email_id: str
    date: str
    direction: str
    participants: tuple[Participant, ...]
    automated: bool = False


@dataclass(frozen=True)
class Match:
    kind: str
    record_id: str
    reason: str
    via: str


def mail_facts(item: Mapping[str, Any]) -> MailFacts:
    """From a stored email item: participants unique by lower-cased address, first role wins."""
    seen: dict[str, Participant] = {}
    for role in ("from", "to", "cc"):
        for value in item.get(role) or ():
            address = str(value.get("address") or "").strip().lower()
            if "@" in address and address not in seen:
                seen[address] = Participant(address=address, role=role, name=value.get("name") or None)
    return MailFacts(
        email_id=str(item["email_id"]),
        date=str(item["date"]),
        direction=str(item.get("direction") or "inbound"),
        participants=tuple(seen.values()),
        automated=is_automated(item),
    )


def index_entries(mail: MailFacts) -> list[IndexEntry]:
    return [
        IndexEntry(
            address=p.address, email_id=mail.email_id, date=mail.date, direction=mail.direction, role=p.role
        )
        for p in mail.participants
    ]


def linkable(mail: MailFacts, policy: Policy) -> list[Participant]:
    return [p for p in mail.participants if not policy.blocked(p.address)]


def plan_links(
    mail: MailFacts,
    policy: Policy,
    contacts: Mapping[str, EmailLookup],
    companies: Mapping[str, str],
    deals: Mapping[str, str],
) -> list[Match]:
    """What to link. `contacts`: address -> lookup; `companies`: domain -> company id;
    `deals`: contact or company id -> its most recently updated open deal."""
    found: dict[tuple[str, str], Match] = {}

    def add(match: Match) -> None:
        key = (match.kind, match.record_id)
        known = found.get(key)
        if known is None or REASON_RANK[match.reason] < REASON_RANK[known.reason]:
            found[key] = match

    for p in linkable(mail, policy):
        lookup = contacts.get(p.address)
        if lookup is not None:
            add(Match("contact", lookup.contact_id, "participant", p.address))
            if lookup.company_id:
                add(Match("company", lookup.company_id, "participant", p.address))
        company_id = companies.get(p.domain)
        if company_id is not None and not policy.own(p.domain):
            add(Match("company", company_id, "domain", p.domain))
    for match in list(found.values()):
        deal_id = deals.get(match.record_id)
        if deal_id is not None:
            add(Match("deal", deal_id, "deal_rule", match.record_id))
    return sorted(found.values(), key=lambda m: (m.kind, m.record_id))


def creation_candidates(mail: MailFacts, policy: Policy, known: Collection[str]) -> list[Participant]:
    """Participants the policy lets matching create a contact for (none for automated mail)."""
    if policy.auto_create == "none" or mail.automated:
        return []
    if mail.direction == "outbound":
        wanted = [p for p in mail.participants if p.role in {"to", "cc"}]
    elif policy.auto_create == "sent_and_received":
        wanted = [p for p in mail.participants if p.role == "from"]
    else:
        return []
    return [p for p in wanted if p.address not in known and may_create_contact(p.address, policy)]


# ---------------------------------------------------------------------------------- names

# Legal-entity words that end a company name after a comma ("Acme, Inc."): such a display name is
# not a person's "Last, First".
_ENTITY_WORDS = frozenset(
    {"ab", "ag", "as", "bv", "co", "corp", "gmbh", "inc", "kg", "kk", "llc", "llp", "lp", "ltd", "nv", "oy",
     "plc", "pty", "sa", "sarl", "sas", "spa", "srl"}
)  # fmt: skip
_ADDRESS_LIKE = re.compile(r"<?[^\s@<>\"']+@[^\s@<>\"']+>?")
_PERSON_PART = re.compile(r"[^\W\d_][\w.'\u2019-]*(?: [^\W\d_][\w.'\u2019-]*){0,2}")
MAX_NAME = 200
# Emails of an address read to find its display name when the mail at hand carries none.
NAME_LOOKBACK = 10


def person_name(display: str | None) -> str | None:
    """The contact name a display name gives (RFC 5322 section 3.4 `display-name`), or None.

    Quotes and surrounding spaces go, inner whitespace collapses. Not a name: nothing left, any
    control character (`mailbridge.models.fields.has_control`: after RFC 2047 decoding a display
    name can hold CR/LF), or an address (systems that fill the display name with the address,
    `"carol@x.example" <carol@x.example>`). The directory form "Last, First" (Exchange and Outlook
    write names so) becomes "First Last", the order `Contact.name` holds, unless the part after
    the comma is a legal-entity word ("Acme, Inc.").
    """
    from mailbridge.models.fields import has_control

    if display is None or has_control(display):
        return None
    name = " ".join(display.strip().strip("\"'").split())
    if not name or _ADDRESS_LIKE.fullmatch(name):
        return None
    last, comma, first = name.partition(",")
    last, first = last.strip(), first.strip()
    if (
        comma
        and "," not in first
        and _PERSON_PART.fullmatch(last)
        and _PERSON_PART.fullmatch(first)
        and first.lower().rstrip(".") not in _ENTITY_WORDS
    ):
        name = f"{first} {last}"
    return name[:MAX_NAME]


def fallback_name(address: str) -> str:
    """The name of a contact whose mail never carried a usable display name: the local part."""
    return (local_part(address) or address)[:MAX_NAME]


def display_name(p: Participant) -> str:
    return person_name(p.name) or fallback_name(p.address)


# ---------------------------------------------------------------------------------- messages


class MatchWork(BaseModel):
    """A backfill or prune step queued by the previous one (or by a contact event)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["backfill", "prune"]
    tenant_id: str
    contact_id: str
    keep: list[str] = []
    address_index: int = 0
    cursor: str | None = None
    step: int = 0

    @property
    def key(self) -> str:
        return (
            f"{self.kind}:{self.tenant_id}:{self.contact_id}:{self.step}:{self.address_index}:{self.cursor}"
        )


@dataclass(frozen=True)
class MatchOutcome:
    action: str
    linked: int = 0
    contacts_created: int = 0
    companies_created: int = 0
    removed: int = 0
    continued: bool = False


@dataclass
class MatchDeps:
    emails: EmailStore
    links: LinkStore
    crm: CrmStore
    policies: PolicyStore
    accounts: AccountStore
    features: FeatureStore
    publisher: EventPublisher | None = None
    queue: MatchQueue | None = None
    suppressions: SuppressionDeps | None = None  # bounces and complaints go on the suppression list
    budget: int = BACKFILL_BUDGET
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def crm_enabled(tenant_id: str, features: FeatureStore) -> bool:
    stored = features.get_features(tenant_id)
    return (stored.flags if stored else FeatureFlags()).crm


def _records(mail: MailFacts, matches: Iterable[Match], now: datetime) -> list[LinkRecord]:
    return [
        LinkRecord(
            email_id=mail.email_id,
            kind=m.kind,
            record_id=m.record_id,
            reason=m.reason,
            via=m.via,
            date=mail.date,
            direction=mail.direction,
            created_at=now.isoformat(),
            created_by=SYSTEM_SUBJECT,
        )
        for m in matches
    ]


def _latest_deals(
    tenant_id: str, crm: CrmStore, contact_ids: Iterable[str], company_ids: Iterable[str]
) -> dict[str, str]:
    deals: dict[str, str] = {}
    for contact_id in dict.fromkeys(contact_ids):
        found = crm.open_deals_of_contact(tenant_id, contact_id, limit=1)
        if found:
            deals[contact_id] = found[0].deal_id
    for company_id in dict.fromkeys(company_ids):
        found = crm.open_deals_of_company(tenant_id, company_id, limit=1)
        if found:
            deals[company_id] = found[0].deal_id
    return deals


# ---------------------------------------------------------------------------------- new mail


def match_email(tenant_id: str, email_id: str, deps: MatchDeps) -> MatchOutcome:
    item = deps.emails.get_email(tenant_id, email_id)
    if item is None:
        return MatchOutcome("email_missing")
    if deps.suppressions is not None:  # a DSN's hard bounces, an ARF report's complaint
        from mailbridge.campaigns.suppression import record_reports

        record_reports(deps.suppressions, tenant_id, email_id, item)
    mail = mail_facts(item)
    deps.links.index_participants(tenant_id, index_entries(mail))
    policy = load_policy(tenant_id, deps.policies, deps.accounts)
    people = linkable(mail, policy)
    contacts = deps.crm.find_emails(tenant_id, [p.address for p in people]) if people else {}
    domains = sorted({p.domain for p in people if not policy.own(p.domain)})
    companies = deps.crm.find_domains(tenant_id, domains) if domains else {}
    _adopt_names(tenant_id, people, contacts, deps)
    contacts_created = companies_created = 0
    for candidate in creation_candidates(mail, policy, contacts):
        company_id = companies.get(candidate.domain)
        if company_id is None and may_create_company(candidate.domain, policy):
            company_id = _create_company(tenant_id, candidate.domain, deps)
            if company_id is not None:
                companies[candidate.domain] = company_id
                companies_created += 1
        lookup = _create_contact(tenant_id, candidate, company_id, deps)
        if lookup is not None:
            contacts[candidate.address] = lookup
            contacts_created += 1
    deals = _latest_deals(
        tenant_id,
        deps.crm,
        [c.contact_id for c in contacts.values()],
        [*companies.values(), *(c.company_id for c in contacts.values() if c.company_id)],
    )
    matches = plan_links(mail, policy, contacts, companies, deals)
    linked = deps.links.put_auto_links(tenant_id, _records(mail, matches, deps.now()))
    # Every match, not only the pairs written now: a retry after a failed publish announces again
    # (the activity logger dedupes on the Message-ID). See mailbridge.crm.linked.
    announced = email_linked(tenant_id, email_id, (m.record_id for m in matches if m.kind == "contact"))
    if announced is not None and deps.publisher is not None:
        deps.publisher.publish([announced])
    return MatchOutcome("matched", linked, contacts_created, companies_created)


def _system(tenant_id: str) -> TenantContext:
    return TenantContext(tenant_id=tenant_id, role=Role.MEMBER, subject=SYSTEM_SUBJECT)


def _create_company(tenant_id: str, domain: str, deps: MatchDeps) -> str | None:
    try:
        body = CompanyCreate(name=domain, domains=[domain])
    except ValidationError:
        return None  # not a public hostname (an internal or test host): no company
    try:
        return service.create_company(_system(tenant_id), body, deps.crm, deps.publisher).company_id
    except Conflict:
        return deps.crm.find_domain(tenant_id, domain)  # created concurrently: use that one


def known_name(tenant_id: str, address: str, deps: MatchDeps) -> str | None:
    """A usable display name the address carried in its newest `NAME_LOOKBACK` emails (newest
    first): one participant-index query and one batch read."""
    entries = deps.links.address_emails(tenant_id, address, limit=NAME_LOOKBACK)
    items = deps.emails.batch_get_emails(tenant_id, [e.email_id for e in entries]) if entries else {}
    for entry in entries:
        item = items.get(entry.email_id) or {}
        for role in ("from", "to", "cc"):
            for value in item.get(role) or ():
                if str(value.get("address") or "").strip().lower() == address:
                    name = person_name(value.get("name"))
                    if name:
                        return name
    return None


def _adopt_names(
    tenant_id: str, people: list[Participant], contacts: Mapping[str, EmailLookup], deps: MatchDeps
) -> None:
    """Give auto-created contacts still named after their address's local part the display name
    this mail carries for them. A name a person set (or changed since) is never replaced."""
    named = {p.address: name for p in people if p.address in contacts and (name := person_name(p.name))}
    if not named:
        return
    ids = list(dict.fromkeys(contacts[a].contact_id for a in named))
    for contact in deps.crm.get_contacts(tenant_id, ids):
        if AUTO_CREATED not in contact.tags:
            continue
        address = next((a for a in contact.addresses if a in named), None)
        if address is None or contact.name not in {fallback_name(a) for a in contact.addresses}:
            continue
        patch = ContactPatch(name=named[address], version=contact.version)
        try:
            service.update_contact(_system(tenant_id), contact.contact_id, patch, deps.crm, deps.publisher)
        except (Conflict, NotFound):
            continue  # changed or deleted meanwhile: that change wins


def _create_contact(
    tenant_id: str, person: Participant, company_id: str | None, deps: MatchDeps
) -> EmailLookup | None:
    """Through the CRM service, so `contact.created` goes out and address uniqueness holds. The
    name: this mail's display name, else one the address carried in earlier mail, else the
    local part."""
    name = person_name(person.name) or known_name(tenant_id, person.address, deps)
    try:
        body = ContactCreate.model_validate(
            {
                "name": name or fallback_name(person.address),
                "emails": [{"address": person.address}],
                "company_id": company_id,
                "tags": [AUTO_CREATED],
            }
        )
    except ValidationError:
        return None
    try:
        contact = service.create_contact(_system(tenant_id), body, deps.crm, deps.publisher)
    except Conflict:
        return deps.crm.find_email(tenant_id, person.address)
    except Invalid:
        return None  # the company vanished between lookup and create
    return EmailLookup(address=person.address, contact_id=contact.contact_id, company_id=company_id)


# ---------------------------------------------------------------------------------- re-matching


def on_contact_event(
    detail_type: str, tenant_id: str, data: Mapping[str, Any], deps: MatchDeps
) -> MatchOutcome:
    contact = data.get("contact") or {}
    contact_id = str(contact.get("contact_id") or data.get("contact_id") or "")
    if not contact_id:
        return MatchOutcome("ignored")
    if detail_type == "contact.deleted":
        return prune(MatchWork(kind="prune", tenant_id=tenant_id, contact_id=contact_id), deps)
    if detail_type == "contact.updated":
        if "emails" not in (data.get("changed") or []):
            return MatchOutcome("unchanged")
        keep = sorted(str(e["address"]).lower() for e in contact.get("emails") or ())
        pruned = prune(MatchWork(kind="prune", tenant_id=tenant_id, contact_id=contact_id, keep=keep), deps)
        filled = backfill(MatchWork(kind="backfill", tenant_id=tenant_id, contact_id=contact_id), deps)
        return MatchOutcome(
            "rematched", filled.linked, removed=pruned.removed, continued=pruned.continued or filled.continued
        )
    return backfill(MatchWork(kind="backfill", tenant_id=tenant_id, contact_id=contact_id), deps)


def run_work(work: MatchWork, deps: MatchDeps) -> MatchOutcome:
    return backfill(work, deps) if work.kind == "backfill" else prune(work, deps)


def _continue(work: MatchWork, deps: MatchDeps, address_index: int, cursor: str | None) -> None:
    if deps.queue is None:
        raise RuntimeError("a continuation needs the MatchQueue")
    deps.queue.send(
        work.model_copy(update={"address_index": address_index, "cursor": cursor, "step": work.step + 1})
    )


def backfill(work: MatchWork, deps: MatchDeps) -> MatchOutcome:
    """Link the stored mail of the contact's addresses, `deps.budget` index rows per message."""
    tenant = work.tenant_id
    contact = deps.crm.get_contact(tenant, work.contact_id)
    if contact is None:
        return MatchOutcome("contact_missing")
    policy = load_policy(tenant, deps.policies, deps.accounts)
    addresses = [a for a in contact.addresses if not policy.blocked(a)]
    lookups = {
        a: EmailLookup(address=a, contact_id=contact.contact_id, company_id=contact.company_id)
        for a in addresses
    }
    deals = _latest_deals(
        tenant, deps.crm, [contact.contact_id], [contact.company_id] if contact.company_id else []
    )
    index, cursor = work.address_index, work.cursor
    processed = linked = 0
    now = deps.now()
    while index < len(addresses):
        entries, cursor = deps.links.address_page(
            tenant, addresses[index], cursor=cursor, limit=min(INDEX_PAGE, max(1, deps.budget - processed))
        )
        records: list[LinkRecord] = []
        for entry in entries:
            mail = MailFacts(
                email_id=entry.email_id,
                date=entry.date,
                direction=entry.direction,
                participants=(Participant(address=entry.address, role=_role(entry.role)),),
            )
            records += _records(mail, plan_links(mail, policy, lookups, {}, deals), now)
        linked += deps.links.put_auto_links(tenant, records)
        processed += len(entries)
        if cursor is None:
            index += 1
        if processed >= deps.budget and index < len(addresses):
            _continue(work, deps, index, cursor)
            return MatchOutcome("backfilled", linked, continued=True)
    return MatchOutcome("backfilled", linked)


def _role(value: str) -> Role_:
    return "from" if value == "from" else "cc" if value == "cc" else "to"


def prune(work: MatchWork, deps: MatchDeps) -> MatchOutcome:
    """Remove the contact's automatic links whose address is not in `work.keep`."""
    keep = set(work.keep)
    cursor, removed, seen = work.cursor, 0, 0
    while True:
        page, cursor = deps.links.timeline_page(
            work.tenant_id,
            "contact",
            work.contact_id,
            cursor=cursor,
            limit=min(LINK_PAGE, max(1, deps.budget - seen)),
        )
        gone = [link for link in page if link.reason != MANUAL and (link.via or "") not in keep]
        deps.links.delete_links(work.tenant_id, gone)
        removed += len(gone)
        seen += len(page)
        if cursor is None:
            return MatchOutcome("pruned", removed=removed)
        if seen >= deps.budget:
            _continue(work, deps, 0, cursor)
            return MatchOutcome("pruned", removed=removed, continued=True)


def handle_event(detail_type: str, tenant_id: str, data: Mapping[str, Any], deps: MatchDeps) -> MatchOutcome:
    """A bus event from the MatchQueue; with the tenant's `crm` flag off nothing runs."""
    if not crm_enabled(tenant_id, deps.features):
        return MatchOutcome("crm_disabled")
    if detail_type in {"email.received", "email.sent"}:
        return match_email(tenant_id, str(data["email_id"]), deps)
    if detail_type.startswith("contact."):
        return on_contact_event(detail_type, tenant_id, data, deps)
    return MatchOutcome("ignored")


def handle_work(work: MatchWork, deps: MatchDeps) -> MatchOutcome:
    if not crm_enabled(work.tenant_id, deps.features):
        return MatchOutcome("crm_disabled")
    return run_work(work, deps)
