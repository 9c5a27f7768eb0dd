"""Company enrichment (issue 14 point 6, `POST /ai/assist/enrich`): the facts about a contact's or a
company's company, from what the tenant holds and from an external provider, each with its source.

Sources, in the order they win a tie (`SOURCES`):
- `crm`: the company record (name, domains) and the domain of the contact's own address;
- `signature`: the signature blocks of the newest mail the contact sent (`mailbridge.ai.lead`
  reads them: phone, website, company name); for a company, of its contacts' mail;
- `domain_contacts`: for a contact, the signatures of other contacts of the same company
  (company-wide facts only: website, company name; confidence x `DOMAIN_CONTACT_WEIGHT`);
- `provider`: the tenant's enrichment provider (`mailbridge.providers.enrichment`, the People
  Data Labs Company Enrichment shape), off until an admin configures it (`PUT /ai/enrichment`).

Merge (`merge_facts`): one fact per field. A `crm` value is the user's and always wins;
otherwise the highest confidence; on a tie, the earlier source of `SOURCES`.

Provider answers are cached per tenant and domain (`store.enrichment.EnrichmentCacheStore`, the
accounts table's TTL): a match for `CACHE_SECONDS` (30 days), no match for `MISS_CACHE_SECONDS`
(1 day). A failed call (timeout, 429 or 5xx after the retries, a refused key, a base URL that
resolves to a private address) is not cached and never fails the request: the answer's
`provider` says `failed:<code>` and the local facts stand.

`apply: true` (member and above) writes what is missing, never a user's value: a company for the
domain when there is none (created with the merged name and the domain, or the existing company of
the domain linked), the domain on a company without domains, the company on a contact without
one, the signature's phone on a contact without phones. Facts without a CRM field (website,
address, industry, size, social links) are returned, not stored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import ConfigDict, Field, model_validator

from mailbridge.crm.models import COMPANY_ID, CONTACT_ID
from mailbridge.errors import Invalid
from mailbridge.models.base import Model
from mailbridge.models.fields import SingleLine, has_control

if TYPE_CHECKING:
    from mailbridge.bus import EventPublisher
    from mailbridge.crm.models import Company, Contact
    from mailbridge.providers.enrichment import CompanyEnrichment, CompanyProfile
    from mailbridge.store.base import Item
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.store.enrichment import EnrichmentCacheStore, EnrichmentSettingStore
    from mailbridge.store.links import LinkStore
    from mailbridge.tenancy import TenantContext

FactField = Literal[
    "name",
    "domain",
    "website",
    "phone",
    "address",
    "industry",
    "size",
    "founded",
    "linkedin",
    "facebook",
    "twitter",
]
Source = Literal["crm", "signature", "domain_contacts", "provider"]
SOURCES: tuple[Source, ...] = get_args(Source)
"""In order of precedence on a tie (the Literal's order)."""
FIELDS: tuple[FactField, ...] = get_args(FactField)
CACHE_SECONDS = 30 * 24 * 3600
"""How long a provider's match for a domain is reused (company facts change slowly)."""
MISS_CACHE_SECONDS = 24 * 3600
"""How long a provider's "no company matched" (404) is reused."""
SIGNATURE_EMAILS = 3
"""Newest emails from one address whose signatures are read."""
DOMAIN_CONTACTS = 5
"""Other contacts of the company whose newest email's signature is read."""
DOMAIN_CONTACT_WEIGHT = 0.8
PROVIDER_FIELDS: tuple[FactField, ...] = (
    "name",
    "website",
    "address",
    "industry",
    "size",
    "founded",
    "linkedin",
    "facebook",
    "twitter",
)
MAX_FACT_CHARS = 200
"""A provider's value longer than this is cut (a CRM name or title holds 200 characters)."""
_ENVELOPE_PURPOSE = "enrichment-api-key"


# ---------------------------------------------------------------------------------- models


class Fact(Model):
    model_config = ConfigDict(frozen=True)

    field: FactField
    value: str
    source: Source = Field(description="crm, signature, domain_contacts or provider")
    confidence: float = Field(ge=0, le=1)


class EnrichRequest(Model):
    """`POST /ai/assist/enrich`: exactly one of `contact_id` and `company_id`."""

    model_config = ConfigDict(extra="forbid")

    contact_id: str | None = Field(default=None, pattern=CONTACT_ID.pattern)
    company_id: str | None = Field(default=None, pattern=COMPANY_ID.pattern)
    apply: bool = Field(default=False, description="Write missing fields to the company and contact")

    @model_validator(mode="after")
    def _one_target(self) -> EnrichRequest:
        if (self.contact_id is None) == (self.company_id is None):
            raise ValueError("give exactly one of contact_id and company_id")
        return self


class EnrichApplied(Model):
    company_id: str | None = None
    company_created: bool = False
    written: list[str] = Field(
        default_factory=list,
        description="What was written, as record.field: company.domains, contact.company_id, contact.phones",
    )


class Enrichment(Model):
    """The answer: the merged facts and where the provider stood."""

    contact_id: str | None
    company_id: str | None
    domain: str | None = Field(description="The business domain enriched (never a free-mail domain)")
    facts: list[Fact]
    provider: str = Field(
        description=(
            "off (no provider configured or switched off), no_domain, used, cached, not_found, "
            "or failed:<code> (upstream_timeout, upstream_rate_limited, upstream_error, "
            "enrichment_rejected, host_not_allowed ...): the other facts stand"
        )
    )
    applied: EnrichApplied | None = Field(default=None, description="Null unless `apply` was true")


class EnrichmentSetting(Model):
    """`GET /ai/enrichment`: the key is never returned, only whether one is set."""

    enabled: bool = False
    base_url: str | None = None
    api_key_set: bool = False
    version: int = Field(default=0, description="Revisions saved so far (0: never saved)")


class EnrichmentSettingUpdate(Model):
    """`PUT /ai/enrichment` (admin, owner): fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    base_url: Annotated[SingleLine, Field(min_length=8, max_length=500)] | None = Field(
        default=None, description="The provider's API root, https (e.g. https://api.peopledatalabs.com)"
    )
    api_key: Annotated[SingleLine, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="Sent as X-Api-Key; stored KMS-sealed, never returned"
    )


@dataclass
class EnrichDeps:
    settings: EnrichmentSettingStore
    cache: EnrichmentCacheStore
    crm: CrmStore
    emails: EmailStore
    blobs: BlobStore
    links: LinkStore
    key_id: str
    """The KMS key that seals the provider's API key."""
    provider: Callable[[str, str], CompanyEnrichment]
    """(base_url, api_key) -> the adapter."""
    local_mode: bool = False
    publisher: EventPublisher | None = None
    now: Callable[[], float] = field(default=time.time)


# ---------------------------------------------------------------------------------- merge


def merge_facts(candidates: list[Fact]) -> list[Fact]:
    """One fact per field (see the module doc), in `FIELDS` order."""
    best: dict[str, Fact] = {}
    for fact in candidates:
        current = best.get(fact.field)
        if current is None or _rank(fact) > _rank(current):
            best[fact.field] = fact
    return [best[name] for name in FIELDS if name in best]


def _rank(fact: Fact) -> tuple[bool, float, int]:
    return (fact.source == "crm", fact.confidence, -SOURCES.index(fact.source))


# ---------------------------------------------------------------------------------- setting


def _envelope_context(tenant_id: str) -> dict[str, str]:
    return {"tenant_id": tenant_id, "purpose": _ENVELOPE_PURPOSE}


def _setting(item: Item | None) -> EnrichmentSetting:
    if item is None:
        return EnrichmentSetting()
    return EnrichmentSetting(
        enabled=bool(item.get("enabled")),
        base_url=item.get("base_url"),
        api_key_set=bool(item.get("api_key")),
        version=int(item.get("version") or 0),
    )


def get_setting(ctx: TenantContext, deps: EnrichDeps) -> EnrichmentSetting:
    """`GET /ai/enrichment` (admin, owner)."""
    from mailbridge.tenancy import Role

    ctx.require(Role.ADMIN)
    return _setting(deps.settings.get_setting(ctx.tenant_id))


def check_base_url(url: str, *, local_mode: bool) -> str:
    """The base URL without a trailing slash, when the SSRF guard would call it: https (http to
    loopback in local mode), no user info, and a literal address only when public (a host name
    is resolved and checked on every call). 400 `invalid_url`, `insecure_url`, `host_not_allowed`."""
    import ipaddress

    from mailbridge.providers.http import HttpPolicy, InsecureUrl, check_url
    from mailbridge.providers.netguard import HostNotAllowed, _is_public

    parsed = check_url(url, HttpPolicy(local_mode=local_mode))
    if parsed.query or parsed.fragment:
        raise Invalid("the base URL takes no query or fragment", code="invalid_url")
    host = parsed.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if loopback and not local_mode:
        raise HostNotAllowed("the base URL is a loopback address")
    if parsed.scheme == "http" and not loopback:
        raise InsecureUrl("only https URLs are allowed (http only to loopback, in local mode)")
    if address is not None and not address.is_loopback and not _is_public(address):
        raise HostNotAllowed("the base URL is a private or reserved address")
    return url.rstrip("/")


def put_setting(ctx: TenantContext, update: EnrichmentSettingUpdate, deps: EnrichDeps) -> EnrichmentSetting:
    """`PUT /ai/enrichment` (admin, owner: 403 `role_required` below). 400 `invalid_url`,
    `insecure_url`, `host_not_allowed` for a base URL the guard would refuse; 400
    `enrichment_not_configured` when switched on without a base URL and a key; 409
    `version_conflict` when another admin saved in between. A new base URL or key drops the
    tenant's cached answers."""
    from mailbridge import crypto
    from mailbridge.tenancy import Role

    ctx.require(Role.ADMIN)
    item = deps.settings.get_setting(ctx.tenant_id)
    current = dict(item or {})
    values: dict[str, object] = {
        "enabled": bool(current.get("enabled")),
        "base_url": current.get("base_url"),
        "api_key": current.get("api_key"),
    }
    changed_source = False
    if update.base_url is not None:
        values["base_url"] = check_base_url(update.base_url, local_mode=deps.local_mode)
        changed_source = values["base_url"] != current.get("base_url")
    if update.api_key is not None:
        sealed = crypto.encrypt(update.api_key.encode(), _envelope_context(ctx.tenant_id), key_id=deps.key_id)
        values["api_key"] = sealed.model_dump_json()
        changed_source = True
    if update.enabled is not None:
        values["enabled"] = update.enabled
    if values["enabled"] and not (values["base_url"] and values["api_key"]):
        raise Invalid("the provider needs a base URL and an API key", code="enrichment_not_configured")
    saved = deps.settings.save_setting(
        ctx.tenant_id,
        {
            **{k: v for k, v in values.items() if v is not None},
            "updated_by": ctx.subject,
            "updated_at": datetime.now(UTC).isoformat(),
        },
        expected_version=int(current["version"]) if item else None,
    )
    if changed_source:
        deps.cache.forget_all(ctx.tenant_id)
    return _setting(saved)


# ---------------------------------------------------------------------------------- gathering


def _business_domain(addresses: list[str]) -> str | None:
    from mailbridge.crm.freemail import is_free_domain

    for address in addresses:
        domain = address.rpartition("@")[2].strip().lower()
        if domain and not is_free_domain(domain):
            return domain
    return None


def _signature_facts(
    ctx: TenantContext, address: str, deps: EnrichDeps, *, limit: int, source: Source, company_wide: bool
) -> list[Fact]:
    """Facts from the signatures of the newest `limit` emails `address` sent (ones the caller may
    not read are skipped)."""
    from mailbridge.ai.lead import LeadField, extract_lead
    from mailbridge.emails import read_email
    from mailbridge.errors import NotFound

    weight = DOMAIN_CONTACT_WEIGHT if source == "domain_contacts" else 1.0
    entries = [e for e in deps.links.address_emails(ctx.tenant_id, address, limit=20) if e.role == "from"]
    facts: list[Fact] = []
    for entry in entries[:limit]:
        try:
            email = read_email(ctx, entry.email_id, deps.emails, deps.blobs)
        except NotFound:
            continue
        lead = extract_lead(email)
        found: list[tuple[FactField, LeadField | None]] = [("website", lead.website), ("name", lead.company)]
        if not company_wide:
            found.append(("phone", lead.phone))
        for name, value in found:
            if value is None or value.source != "signature":
                continue
            facts.append(
                Fact(
                    field=name,
                    value=value.value,
                    source=source,
                    confidence=round(value.confidence * weight, 4),
                )
            )
    return facts


def _profile_facts(profile: CompanyProfile) -> list[Fact]:
    confidence = round(profile.likelihood / 10, 2)
    location = profile.location
    address = None
    if location is not None:
        address = location.name or ", ".join(
            p for p in (location.street_address, location.locality, location.region, location.country) if p
        )
    values: dict[FactField, object] = {
        "name": profile.display_name or profile.name,
        "website": profile.website,
        "address": address,
        "industry": profile.industry,
        "size": profile.size,
        "founded": profile.founded,
        "linkedin": profile.linkedin_url,
        "facebook": profile.facebook_url,
        "twitter": profile.twitter_url,
    }
    return [
        Fact(field=name, value=str(value).strip()[:MAX_FACT_CHARS], source="provider", confidence=confidence)
        for name, value in values.items()
        if value is not None and str(value).strip() and not has_control(str(value))
    ]


def _provider_facts(ctx: TenantContext, domain: str | None, deps: EnrichDeps) -> tuple[list[Fact], str]:
    """The provider's facts for `domain` (cached) and the `provider` status of the answer."""
    from mailbridge import crypto
    from mailbridge.errors import MailbridgeError
    from mailbridge.providers.enrichment import CompanyProfile

    item = deps.settings.get_setting(ctx.tenant_id)
    if item is None or not item.get("enabled") or not item.get("base_url") or not item.get("api_key"):
        return [], "off"
    if domain is None:
        return [], "no_domain"
    now = int(deps.now())
    cached = deps.cache.get_answer(ctx.tenant_id, domain, now)
    if cached is not None:
        raw = cached.get("profile")
        return ([] if raw is None else _profile_facts(CompanyProfile.model_validate_json(str(raw)))), "cached"
    try:
        envelope = crypto.Envelope.model_validate_json(str(item["api_key"]))
        key = crypto.decrypt(envelope, _envelope_context(ctx.tenant_id)).decode()
        call = deps.provider(str(item["base_url"]), key).find(domain)
    except MailbridgeError as exc:
        return [], f"failed:{exc.code}"
    fetched_at = datetime.fromtimestamp(now, UTC).isoformat()
    if call.profile is None:
        deps.cache.put_answer(ctx.tenant_id, domain, None, fetched_at, now + MISS_CACHE_SECONDS)
        return [], "not_found"
    deps.cache.put_answer(
        ctx.tenant_id, domain, call.profile.model_dump_json(), fetched_at, now + CACHE_SECONDS
    )
    return _profile_facts(call.profile), "used"


# ---------------------------------------------------------------------------------- enrich


def enrich(ctx: TenantContext, request: EnrichRequest, deps: EnrichDeps) -> Enrichment:
    """`POST /ai/assist/enrich`: the merged facts (see the module doc). 404 `contact_not_found` /
    `company_not_found` for a record the tenant does not hold; 403 `role_required` below member."""
    from mailbridge.crm import service
    from mailbridge.store.crm import ContactFilter
    from mailbridge.tenancy import Role

    ctx.require(Role.MEMBER)
    contact: Contact | None = None
    company: Company | None = None
    candidates: list[Fact] = []
    if request.contact_id is not None:
        contact = service.get_contact(ctx, request.contact_id, deps.crm)
        if contact.company_id:
            company = deps.crm.get_company(ctx.tenant_id, contact.company_id)
    else:
        assert request.company_id is not None
        company = service.get_company(ctx, request.company_id, deps.crm)
    domain = company.domains[0] if company and company.domains else None
    if contact is not None:
        own = _business_domain(contact.addresses)
        if domain is None and own is not None:
            domain = own
            candidates.append(Fact(field="domain", value=own, source="crm", confidence=0.9))
        if company is None and own is not None and (found := deps.crm.find_domain(ctx.tenant_id, own)):
            company = deps.crm.get_company(ctx.tenant_id, found)
        for address in contact.addresses[:2]:
            candidates += _signature_facts(
                ctx, address, deps, limit=SIGNATURE_EMAILS, source="signature", company_wide=False
            )
    if company is not None:
        candidates.append(Fact(field="name", value=company.name, source="crm", confidence=1.0))
        if company.domains:
            candidates.append(Fact(field="domain", value=company.domains[0], source="crm", confidence=1.0))
        others = [
            c
            for c in deps.crm.list_contacts(
                ctx.tenant_id,
                ContactFilter(company_id=company.company_id),
                cursor=None,
                limit=DOMAIN_CONTACTS + 1,
            )[0]
            if contact is None or c.contact_id != contact.contact_id
        ][:DOMAIN_CONTACTS]
        for other in others:
            candidates += _signature_facts(
                ctx,
                other.addresses[0],
                deps,
                limit=1,
                source="signature" if contact is None else "domain_contacts",
                company_wide=True,
            )
    provided, status = _provider_facts(ctx, domain, deps)
    facts = merge_facts(candidates + provided)
    applied = _apply(ctx, contact, company, domain, facts, deps) if request.apply else None
    return Enrichment(
        contact_id=contact.contact_id if contact else None,
        company_id=(applied.company_id if applied else None) or (company.company_id if company else None),
        domain=domain,
        facts=facts,
        provider=status,
        applied=applied,
    )


_COMPANY_NAME = re.compile(r"\S")


def _apply(
    ctx: TenantContext,
    contact: Contact | None,
    company: Company | None,
    domain: str | None,
    facts: list[Fact],
    deps: EnrichDeps,
) -> EnrichApplied:
    """Write what is missing (see the module doc); never a value a user set."""
    from mailbridge.crm import service
    from mailbridge.crm.models import CompanyCreate, CompanyPatch, ContactPatch

    by_field = {fact.field: fact for fact in facts}
    written: list[str] = []
    created = False
    if company is None and domain is not None:
        existing = deps.crm.find_domain(ctx.tenant_id, domain)
        if existing is not None:
            company = service.get_company(ctx, existing, deps.crm)
        else:
            name_fact = by_field.get("name")
            name = name_fact.value if name_fact and _COMPANY_NAME.search(name_fact.value) else domain
            body = service.validated(CompanyCreate, {"name": name[:200], "domains": [domain]})
            company = service.create_company(ctx, body, deps.crm, deps.publisher)
            created = True
            written.append("company.created")
    elif (
        company is not None
        and not company.domains
        and domain is not None
        and deps.crm.find_domain(ctx.tenant_id, domain) is None
    ):
        service.update_company(
            ctx, company.company_id, service.validated(CompanyPatch, {"domains": [domain]}), deps.crm
        )
        written.append("company.domains")
    if contact is not None:
        changes: dict[str, object] = {}
        if company is not None and not contact.company_id:
            changes["company_id"] = company.company_id
        phone = by_field.get("phone")
        if phone is not None and phone.source == "signature" and not contact.phones:
            changes["phones"] = [phone.value]
        if changes:
            service.update_contact(
                ctx, contact.contact_id, service.validated(ContactPatch, changes), deps.crm, deps.publisher
            )
            written += [f"contact.{name}" for name in sorted(changes)]
    return EnrichApplied(
        company_id=company.company_id if company else None, company_created=created, written=written
    )
