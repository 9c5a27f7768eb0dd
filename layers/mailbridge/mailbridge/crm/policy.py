"""Per-tenant matching policy and the rules that decide what matching may link or create.

Stored in the settings table (sk `POLICY#crm`); `GET/PUT /crm/settings`. Rules, all pure:

- `auto_create`: `none` creates nothing; `sent` (default) creates contacts for the recipients
  (to, cc) of mail the tenant sent; `sent_and_received` also for the sender of received mail.
- Never create a contact for an own domain (`own_domains`; default: the domains of the tenant's
  connected mailboxes), a blocklisted address or domain, a role / no-reply address
  (`ROLE_LOCAL_PARTS`, `NOREPLY`), or from bulk / automated mail (`is_automated`).
- Never create a company for a free-mail domain (`mailbridge.crm.freemail`) or an own domain.
- Blocklisted addresses and domains are never linked either (`Policy.blocked`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from mailbridge.crm.freemail import is_free_domain
from mailbridge.crm.models import Domain, normalize_address
from mailbridge.mime.automated import automation_markers_of
from mailbridge.models.numbers import DynamoInt

AutoCreate = Literal["none", "sent", "sent_and_received"]

MAX_LIST = 500

# Local parts of shared mailboxes and machines: mail from or to them is about a function, not a
# person, so no contact is created for them (existing contacts still match). Compared lower-cased
# after dropping a `+tag`.
ROLE_LOCAL_PARTS = frozenset(
    {
        "abuse",
        "accounts",
        "accounting",
        "admin",
        "administrator",
        "alerts",
        "billing",
        "careers",
        "contact",
        "customerservice",
        "daemon",
        "devnull",
        "feedback",
        "hello",
        "help",
        "helpdesk",
        "hostmaster",
        "hr",
        "info",
        "invoice",
        "invoices",
        "jobs",
        "legal",
        "mail",
        "mailer",
        "mailer-daemon",
        "marketing",
        "media",
        "news",
        "newsletter",
        "newsletters",
        "notification",
        "notifications",
        "nobody",
        "office",
        "orders",
        "postmaster",
        "press",
        "privacy",
        "root",
        "sales",
        "security",
        "service",
        "support",
        "system",
        "team",
        "updates",
        "webmaster",
    }
)
# no-reply in its spellings, bounce handlers (bounce, bounces, bounce-123...), and
# notification senders with a suffix (notifications-xyz).
NOREPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|noreply[-_.].*|.*[-_.]noreply"
    r"|bounces?(?:[-_.+].*)?|mailer[-_.]?daemon|notifications?[-_.].*)$"
)


def _addresses(values: list[str]) -> list[str]:
    return sorted({normalize_address(v) for v in values})


def _domains(values: list[str]) -> list[str]:
    return sorted(set(values))


Addresses = Annotated[list[EmailStr], Field(max_length=MAX_LIST), AfterValidator(_addresses)]
Domains = Annotated[list[Domain], Field(max_length=MAX_LIST), AfterValidator(_domains)]


class Blocklist(BaseModel):
    model_config = ConfigDict(extra="forbid")

    addresses: Addresses = Field(default_factory=list, description="Never linked, never created")
    domains: Domains = Field(default_factory=list, description="No address at these domains is linked")


class CrmPolicyUpdate(BaseModel):
    """`PUT /crm/settings`: the whole policy (fields left out take their default)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "auto_create": "sent",
                    "own_domains": ["example.com"],
                    "blocklist": {"addresses": ["ceo@partner.example"], "domains": ["spam.example"]},
                }
            ]
        },
    )

    auto_create: AutoCreate = Field(
        default="sent",
        description="`none`; `sent`: recipients of sent mail; `sent_and_received`: also senders "
        "of received mail",
    )
    own_domains: Domains | None = Field(
        default=None,
        description="The tenant's own domains (never contacts or companies); null: the domains "
        "of the connected mailboxes",
    )
    blocklist: Blocklist = Field(default_factory=Blocklist)
    version: DynamoInt | None = Field(default=None, ge=0, description="Optional: the version you read")


class CrmSettings(BaseModel):
    """The stored policy with its revision, and the own domains in force."""

    auto_create: AutoCreate = "sent"
    own_domains: list[str] | None = None
    blocklist: Blocklist = Field(default_factory=Blocklist)
    effective_own_domains: list[str] = Field(
        default_factory=list, description="`own_domains`, or the connected mailboxes' domains"
    )
    version: int = Field(default=0, description="Revision; 0 while the tenant has the defaults")
    updated_at: datetime | None = None
    updated_by: str | None = None


class Policy(BaseModel):
    """What matching works with: the settings with the own domains resolved."""

    model_config = ConfigDict(frozen=True)

    auto_create: AutoCreate = "sent"
    own_domains: frozenset[str] = frozenset()
    blocked_addresses: frozenset[str] = frozenset()
    blocked_domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: CrmSettings) -> Policy:
        return cls(
            auto_create=settings.auto_create,
            own_domains=frozenset(settings.effective_own_domains),
            blocked_addresses=frozenset(settings.blocklist.addresses),
            blocked_domains=frozenset(settings.blocklist.domains),
        )

    def blocked(self, address: str) -> bool:
        address = address.lower()
        return address in self.blocked_addresses or domain_of(address) in self.blocked_domains

    def own(self, domain: str) -> bool:
        return domain.lower() in self.own_domains


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def local_part(address: str) -> str:
    return address.rpartition("@")[0].lower().split("+", 1)[0]


def is_role_address(address: str) -> bool:
    """Shared, machine or no-reply mailboxes (see ROLE_LOCAL_PARTS and NOREPLY)."""
    local = local_part(address)
    return local in ROLE_LOCAL_PARTS or bool(NOREPLY.fullmatch(local))


def is_automated(item: Mapping[str, Any]) -> bool:
    """Bulk or machine mail (a stored email item): a mailing list (List-Id, List-Unsubscribe),
    an automated-mail header marker (`mailbridge.mime.automated`: Auto-Submitted, Precedence,
    X-Autoreply/X-Autorespond/X-Autoresponder ...), a bounce (DSN), or a sender that is a mailer
    daemon."""
    listinfo = item.get("list") or {}
    if listinfo.get("list_id") or listinfo.get("list_unsubscribe"):
        return True
    if automation_markers_of(item):
        return True
    if item.get("bounce"):
        return True
    senders = [str(a.get("address") or "") for a in item.get("from") or ()]
    return any(local_part(s) in {"mailer-daemon", "postmaster"} for s in senders)


def may_create_contact(address: str, policy: Policy) -> bool:
    if "@" not in address or policy.blocked(address) or policy.own(domain_of(address)):
        return False
    return not is_role_address(address)


def may_create_company(domain: str, policy: Policy) -> bool:
    domain = domain.lower()
    if policy.own(domain) or domain in policy.blocked_domains:
        return False
    return not is_free_domain(domain)


def account_domains(addresses: Iterable[str]) -> list[str]:
    return sorted({domain_of(a) for a in addresses if "@" in a})
