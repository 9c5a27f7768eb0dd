"""Lead extraction (issue 14 point 5): who wrote an email, from its From header and signature
(or, on mail our user sent, who it went to, from its To header).

`extract_lead(email)` reads a stored `Email` (its `from`, and the `signature` that
`mailbridge.ai.reply` split off the text body) and returns a `Lead`: name, title, company,
company domain, phone and website, each a `LeadField` with a `confidence` in [0, 1] and the
`source` it came from (`header`, `signature`, `address`, `domain`), or null when nothing was
found. Plain rules, no model: the signature block is short and its lines follow a few layouts
(name; title, "Title | Company" or "Title at Company"; company with a legal form; labelled phone
numbers; a web address).

`apply_lead` creates or updates the CRM contact of the sender's address and the company of the
company domain through `mailbridge.crm.service` (member role and above, events as for the API's
own writes). A free-mail domain (`mailbridge.crm.freemail`) never becomes a company domain. An
existing contact only gains what it lacks (title, phone, company); an existing company is linked,
not renamed.
"""

# ruff: noqa: RUF001 - signatures separate with en dashes and write names with typographic apostrophes

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mailbridge.crm.freemail import is_free_domain
from mailbridge.models.base import Model

if TYPE_CHECKING:
    from mailbridge.ai.bedrock import BedrockDeps
    from mailbridge.bus import EventPublisher
    from mailbridge.models.mail import Email
    from mailbridge.store.blobs import BlobStore
    from mailbridge.store.crm import CrmStore
    from mailbridge.store.emails import EmailStore
    from mailbridge.tenancy import TenantContext

MAX_VALUE_CHARS = 200
"""The CRM's Name/Text limit; longer values are cut."""

Source = Literal["header", "signature", "address", "domain", "model"]

# Job words of a title line (English and the common European forms).
_TITLE = re.compile(
    r"\b(?:ceo|cto|cfo|coo|cmo|cio|ciso|vp|svp|evp|founder|co-founder|cofounder|owner|president|"
    r"director|manager|head|lead|chief|officer|engineer|developer|architect|consultant|partner|"
    r"principal|analyst|specialist|coordinator|executive|associate|representative|assistant|"
    r"administrator|buyer|procurement|purchasing|sales|marketing|account|recruiter|designer|"
    r"geschäftsführer|geschäftsführerin|leiter|leiterin|vertrieb|einkauf|directeur|directrice|"
    r"responsable|gérant|gerente|director[a]?|jefe|responsabile|direttore)\b",
    re.I,
)
# Legal forms that mark a company name (suffixes as written in signatures).
_LEGAL_FORM = re.compile(
    r"\b(?:inc|llc|llp|ltd|limited|plc|corp|corporation|co|gmbh|ag|kg|ug|se|sa|sas|sarl|srl|spa|"
    r"bv|nv|ab|as|oy|aps|pty|kk|group|holding|holdings)\b\.?",
    re.I,
)
_PHONE_LABEL = re.compile(
    r"^\s*(?:tel|tel\.|phone|ph|mobile|mob|cell|direct|office|fon|telefon|tél|téléphone|t|m|p|o)\s*[.:]\s*",
    re.I,
)
_PHONE = re.compile(r"(?<![\w@])\+?\(?\d[\d\s().\-/]{5,28}\d(?:\s*(?:x|ext\.?)\s*\d{1,6})?(?!\w)", re.I)
_WEBSITE = re.compile(
    r"(?<![@\w.-])(?:https?://)?(?P<host>(?:www\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,24})(?P<path>/[^\s<>\"')]*)?(?![\w@-])",
    re.I,
)
_EMAIL = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_SPLIT = re.compile(r"\s+(?:–|—|-|at|@|bei|chez)\s+|\s*[|·•]\s*|\s*,\s+", re.I)
_NAME = re.compile(r"[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){1,3}")
_SIGN_OFF = re.compile(r"^(?:sent from|sent with|get outlook|von meinem|envoyé de|enviado desde)\b", re.I)


class LeadField(Model):
    value: str
    confidence: float = Field(ge=0, le=1)
    source: Source = Field(
        description=(
            "header, signature, address (the sender's), domain, or model (Bedrock, when the "
            "tenant's setting is on)"
        )
    )


class Lead(Model):
    """What the email tells about its sender; each field null when nothing was found."""

    email: str | None = Field(description="The sender's address (the From header)")
    name: LeadField | None = None
    title: LeadField | None = None
    company: LeadField | None = None
    company_domain: LeadField | None = Field(
        default=None, description="Never a free-mail domain (gmail.com, outlook.com ...)"
    )
    phone: LeadField | None = None
    website: LeadField | None = None


class LeadApplied(Model):
    contact_id: str
    contact_created: bool
    company_id: str | None = None
    company_created: bool = False


class LeadExtraction(Model):
    """`POST /ai/extract-lead`: the lead, and what `apply: true` created or updated."""

    email_id: str
    lead: Lead
    applied: LeadApplied | None = Field(default=None, description="Null unless `apply` was true")
    bedrock: str | None = Field(
        default=None,
        description=(
            "Null: Bedrock was not asked (nothing missing, or the tenant's setting is off); `used`; "
            "`cached` (the same question's answer reused); "
            "`skipped:budget_exhausted`, `skipped:paused`; or `fallback:<reason>` (throttled, "
            "timeout, access_denied, invalid_request, unavailable, invalid_answer): the rules' "
            "answer stands"
        ),
    )


def _clean(value: str) -> str:
    """One line of printable text, at most `MAX_VALUE_CHARS`."""
    kept = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(kept.split())[:MAX_VALUE_CHARS].strip()


clean_value = _clean
"""One line of printable text, at most `MAX_VALUE_CHARS` (for values from elsewhere: Bedrock)."""


def website_of(text: str) -> str | None:
    """The first web address in `text` as `https://host/path`, or None."""
    found = _website([_clean(text)], None)
    return found.value if found else None


def _field(value: str | None, confidence: float, source: Source) -> LeadField | None:
    cleaned = _clean(value or "")
    return LeadField(value=cleaned, confidence=confidence, source=source) if cleaned else None


def _domain_of(address: str) -> str | None:
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    return domain or None


def _host_domain(host: str) -> str:
    host = host.lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _name_from_address(address: str) -> str | None:
    local = address.partition("@")[0]
    parts = [p for p in re.split(r"[._-]+", local) if p.isalpha() and len(p) > 1]
    return " ".join(p.capitalize() for p in parts) if len(parts) >= 2 else None


def _company_from_domain(domain: str) -> str:
    label = domain.split(".")[-2] if domain.count(".") >= 1 else domain
    return " ".join(p.capitalize() for p in re.split(r"[-_]+", label) if p)


def _signature_lines(signature: str | None) -> list[str]:
    lines = [_clean(line) for line in (signature or "").splitlines()]
    return [line for line in lines if line and not _SIGN_OFF.match(line)]


def _phone(lines: list[str]) -> LeadField | None:
    best: tuple[float, str] | None = None
    for line in lines:
        labelled = _PHONE_LABEL.match(line)
        for match in _PHONE.finditer(line):
            number = re.sub(r"\s+", " ", match.group(0)).strip()
            if sum(c.isdigit() for c in number) < 7:
                continue
            confidence = 0.85 if labelled else 0.6
            if best is None or confidence > best[0]:
                best = (confidence, number)
    if best is None:
        return None
    number = re.sub(r"[^0-9+()./ x-]", "", best[1].replace("ext", "x"))[:40]
    return _field(number, best[0], "signature")


def _website(lines: list[str], sender_domain: str | None) -> LeadField | None:
    for line in lines:
        for match in _WEBSITE.finditer(_EMAIL.sub(" ", line)):
            host = _host_domain(match.group("host"))
            if "." not in host or host[-1].isdigit():
                continue
            url = f"https://{match.group('host').lower()}{match.group('path') or ''}"
            confidence = 0.9 if sender_domain and host == sender_domain else 0.7
            return _field(url, confidence, "signature")
    return None


def _title_and_company(lines: list[str]) -> tuple[LeadField | None, LeadField | None]:
    title: LeadField | None = None
    company: LeadField | None = None
    for line in lines:
        if _PHONE_LABEL.match(line) or _EMAIL.search(line) or _WEBSITE.fullmatch(line):
            continue
        parts = [p.strip() for p in _SPLIT.split(line) if p.strip()]
        for part in parts:
            if title is None and _TITLE.search(part) and not _LEGAL_FORM.search(part):
                title = _field(part, 0.8, "signature")
            elif company is None and _LEGAL_FORM.search(part) and not _TITLE.search(part):
                company = _field(part, 0.85, "signature")
        if title is not None and company is None and len(parts) == 2 and _TITLE.search(parts[0]):
            company = _field(parts[1], 0.7, "signature")
    return title, company


def _name(header_name: str | None, lines: list[str], address: str | None) -> LeadField | None:
    header = _clean(header_name or "")
    if header and "@" not in header:
        in_signature = any(header.lower() == line.lower() for line in lines[:3])
        return _field(header, 0.95 if in_signature else 0.8, "header")
    for line in lines[:3]:
        if _NAME.fullmatch(line) and not _TITLE.search(line) and not _LEGAL_FORM.search(line):
            return _field(line, 0.6, "signature")
    named = _name_from_address(address) if address else None
    return _field(named, 0.4, "address")


def extract_lead(email: Email) -> Lead:
    """The other party of `email` as a lead (see the module doc). Never raises.

    Inbound mail: the first From address and the signature. Outbound mail (`direction` outbound,
    sent by the mailbox's own user): the first To recipient, from the header alone, since the
    signature is our user's own."""
    inbound = email.direction != "outbound"
    people = email.from_ if inbound else email.to
    sender = people[0] if people else None
    address = sender.address.lower() if sender and sender.address else None
    lines = _signature_lines(email.signature) if inbound else []
    sender_domain = _domain_of(address) if address else None
    business_domain = sender_domain if sender_domain and not is_free_domain(sender_domain) else None
    website = _website(lines, business_domain)
    title, company = _title_and_company(lines)
    company_domain = _field(business_domain, 0.9, "address")
    if company_domain is None and website is not None:
        host = _host_domain(re.sub(r"^https?://", "", website.value).split("/")[0])
        if not is_free_domain(host):
            company_domain = _field(host, 0.6, "signature")
    if company is None and company_domain is not None:
        company = _field(_company_from_domain(company_domain.value), 0.4, "domain")
    return Lead(
        email=address,
        name=_name(sender.name if sender else None, lines, address),
        title=title,
        company=company,
        company_domain=company_domain,
        phone=_phone(lines),
        website=website,
    )


def apply_lead(
    ctx: TenantContext, lead: Lead, store: CrmStore, publisher: EventPublisher | None
) -> LeadApplied:
    """Create or update the CRM contact of `lead.email` and the company of its domain.

    403 `role_required` below member; 400 `no_sender` when the email has no usable From address;
    400 `invalid_record` when an extracted value does not pass the CRM's field rules."""
    from mailbridge.crm import service
    from mailbridge.crm.models import MAX_PHONES, CompanyCreate, ContactCreate, ContactPatch
    from mailbridge.errors import Invalid
    from mailbridge.tenancy import Role

    ctx.require(Role.MEMBER)
    if not lead.email or "@" not in lead.email:
        raise Invalid("the email has no sender address to make a contact of", code="no_sender")
    company_id, company_created = None, False
    if lead.company_domain is not None:
        domain = lead.company_domain.value
        company_id = store.find_domain(ctx.tenant_id, domain)
        if company_id is None:
            name = lead.company.value if lead.company else _company_from_domain(domain)
            body = service.validated(CompanyCreate, {"name": name, "domains": [domain]})
            company_id = service.create_company(ctx, body, store, publisher).company_id
            company_created = True
    phones = [lead.phone.value] if lead.phone else []
    title = lead.title.value if lead.title else None
    found = store.find_email(ctx.tenant_id, lead.email)
    if found is None:
        name = lead.name.value if lead.name else lead.email.partition("@")[0]
        contact = service.validated(
            ContactCreate,
            {
                "name": name,
                "emails": [{"address": lead.email, "primary": True}],
                "phones": phones,
                "title": title,
                "company_id": company_id,
            },
        )
        created = service.create_contact(ctx, contact, store, publisher)
        return LeadApplied(
            contact_id=created.contact_id,
            contact_created=True,
            company_id=company_id,
            company_created=company_created,
        )
    current = service.get_contact(ctx, found.contact_id, store)
    changes: dict[str, object] = {}
    if title and not current.title:
        changes["title"] = title
    if phones and phones[0] not in current.phones and len(current.phones) < MAX_PHONES:
        changes["phones"] = [*current.phones, *phones]
    if company_id and not current.company_id:
        changes["company_id"] = company_id
    if changes:
        service.update_contact(
            ctx, current.contact_id, service.validated(ContactPatch, changes), store, publisher
        )
    return LeadApplied(
        contact_id=current.contact_id,
        contact_created=False,
        company_id=current.company_id or company_id,
        company_created=company_created,
    )


def extract_lead_of_email(
    ctx: TenantContext,
    email_id: str,
    *,
    apply: bool,
    emails: EmailStore,
    blobs: BlobStore,
    crm: CrmStore,
    publisher: EventPublisher | None,
    bedrock: BedrockDeps | None = None,
) -> LeadExtraction:
    """`POST /ai/extract-lead`: 404 `not_found` for an email the tenant does not hold; fields the
    rules did not find filled by Bedrock when the tenant's setting is on
    (`mailbridge.ai.bedrock.fill_lead`); with `apply`, what `apply_lead` does."""
    from mailbridge.ai.bedrock import fill_lead
    from mailbridge.emails import read_email

    email = read_email(ctx, email_id, emails, blobs)
    lead, used = fill_lead(ctx.tenant_id, email, extract_lead(email), bedrock)
    applied = apply_lead(ctx, lead, crm, publisher) if apply else None
    return LeadExtraction(email_id=email_id, lead=lead, applied=applied, bedrock=used)
