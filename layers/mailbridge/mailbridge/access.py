"""Mailbox ownership and visibility (issue 19 point 2): the one place that decides what a caller
may see of stored mail, and the projection that cuts an email down to it.

A connected mailbox belongs to the user who connected it (`Account.created_by`, the JWT `sub`).
The rest of the tenant sees its mail at the account's `visibility`, or the tenant's
`default_visibility` (`PrivacySettings`, settings table, `POLICY#privacy`; `metadata` until set):

| level      | what the caller sees of an email                                              |
|------------|-------------------------------------------------------------------------------|
| `private`  | nothing: the email does not exist for them (404 `not_found`, never 403)       |
| `metadata` | participants (From, Sender, Reply-To, To, Cc, Bcc), dates, flags, folders     |
| `subject`  | + the subject and the headers that carry no text of the body (Message-ID,     |
|            |   In-Reply-To, References, RFC 2369 list headers, Auto-Submitted, Precedence) |
| `full`     | everything, bodies and attachments included                                   |

The owner always sees `full`. Tenant owners and admins see other users' mailboxes as the tenant
policy's `admin_view` says: `full`, or `as_shared` (as every other member; the default).

An email held by several mailboxes (one Message-ID seen by two connected accounts, linked, not
duplicated) is seen at the highest level any of them gives the caller. Mail of an account id
with no ownership record at all (stored before ownership existed) is the tenant's, seen in full;
a disconnected mailbox keeps its owner and visibility (`store.accounts`, `OWNER#` item), so mail
kept after a disconnect stays as private as it was.

Everything here works on the stored email item (`emails` table shape), before it is mapped to an
API model: `project` keeps only the attributes the level allows (an allow-list, so an attribute
added later is hidden until it is listed here), and every read path (listings, one email, threads,
timelines, links, AI context) maps the projected item. Reads of a body need `full`; so does every
write on mail (flags, moves, snooze, links, replying from the mailbox). Each read of another
user's message body calls `audit_body_read`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import ConfigDict, Field

from mailbridge.errors import Conflict, NotFound
from mailbridge.models.base import Model
from mailbridge.models.numbers import DynamoInt
from mailbridge.observability import logger
from mailbridge.tenancy import Role, TenantContext

Item = dict[str, Any]


class Visibility(StrEnum):
    """What the rest of the tenant sees of a mailbox's mail (module docstring, table)."""

    PRIVATE = "private"
    METADATA = "metadata"
    SUBJECT = "subject"
    FULL = "full"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Visibility.PRIVATE: 0, Visibility.METADATA: 1, Visibility.SUBJECT: 2, Visibility.FULL: 3}

AdminView = Literal["full", "as_shared"]
"""What tenant owners and admins see of other users' mailboxes: everything, or what is shared."""


class PrivacySettings(Model):
    """`GET /settings/privacy`: the tenant's default visibility and what owners and admins see."""

    default_visibility: Visibility = Field(
        default=Visibility.METADATA,
        description="The visibility of a mailbox whose owner has not set one",
    )
    admin_view: AdminView = Field(
        default="as_shared",
        description="`full`: tenant owners and admins see every mailbox in full; `as_shared`: they "
        "see other users' mailboxes as every member does",
    )
    version: int = Field(default=0, description="Revision; 0 while the tenant has the defaults")
    updated_at: datetime | None = None
    updated_by: str | None = None


class PrivacyUpdate(Model):
    """`PUT /settings/privacy`: the whole policy (fields left out take their default)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"default_visibility": "private", "admin_view": "as_shared"}]},
    )

    default_visibility: Visibility = Visibility.METADATA
    admin_view: AdminView = "as_shared"
    version: DynamoInt | None = Field(
        default=None, ge=0, description="The version last read; 409 `version_conflict` if it changed since"
    )


@dataclass(frozen=True)
class Mailbox:
    """Who owns an account and what they share of it (None: the tenant default)."""

    owner: str
    visibility: Visibility | None = None


class PrivacyStore(Protocol):
    def get_privacy(self, tenant_id: str) -> PrivacySettings | None: ...

    def save_privacy(
        self, tenant_id: str, settings: PrivacySettings, *, expected_version: int | None
    ) -> PrivacySettings: ...


class MailboxDirectory(Protocol):
    def mailboxes(self, tenant_id: str) -> dict[str, Mailbox]: ...


# The attributes of an email item each level keeps (store.emails' shape). Keys and index keys are
# kept at every level: they place the item, they say nothing of the message.
_KEYS = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", *(f"gsi{n}pk" for n in range(4, 8))})
_METADATA = _KEYS | frozenset(
    {
        "email_id",
        "thread_id",
        "account_id",
        "accounts",
        "outbox_account_id",
        "folders",
        "loc_keys",
        "from",
        "sender",
        "reply_to",
        "to",
        "cc",
        "bcc",
        "date",
        "date_source",
        "read",
        "flagged",
        "answered",
        "deleted",
        "direction",
        "send_status",
        "send_at",
        "snoozed_until",
    }
)
_SUBJECT = _METADATA | frozenset(
    {"subject", "message_id", "in_reply_to", "references", "list", "auto_submitted", "precedence"}
)
_KEPT: dict[Visibility, frozenset[str] | None] = {
    Visibility.PRIVATE: frozenset(),
    Visibility.METADATA: _METADATA,
    Visibility.SUBJECT: _SUBJECT,
    Visibility.FULL: None,  # everything
}


def project(item: Mapping[str, Any], level: Visibility) -> Item:
    """The email item cut down to `level` (module docstring): `metadata` drops the subject, the
    snippet, the bodies, attachments, the AI's findings and every header but the participants;
    `subject` keeps the subject and the body-free headers; `full` is the item as it is."""
    kept = _KEPT[level]
    return dict(item) if kept is None else {k: v for k, v in item.items() if k in kept}


ACCESS_ATTRIBUTES = ("accounts", "outbox_account_id")
"""What an email item needs for `Access.level`."""


def accounts_of(item: Mapping[str, Any]) -> list[str]:
    """The mailboxes an email item belongs to: the accounts holding it (an outbound email is held
    by the account it is sent from from the start: `build_email_item`), and `outbox_account_id`
    where the item carries it."""
    found = [str(a) for a in item.get("accounts") or ()]
    outbox = item.get("outbox_account_id")
    if outbox and str(outbox) not in found:
        found.append(str(outbox))
    return sorted(found)


@dataclass(frozen=True)
class Access:
    """What one caller may see: built once per request by `load_access`."""

    ctx: TenantContext
    policy: PrivacySettings = field(default_factory=PrivacySettings)
    mailboxes: Mapping[str, Mailbox] = field(default_factory=dict)

    @property
    def sees_all(self) -> bool:
        """A tenant owner or admin under `admin_view: full`."""
        return self.ctx.role.at_least(Role.ADMIN) and self.policy.admin_view == "full"

    def owns(self, account_id: str) -> bool:
        mailbox = self.mailboxes.get(account_id)
        return mailbox is not None and mailbox.owner == self.ctx.subject

    def visibility_of(self, account_id: str) -> Visibility:
        """The account's own setting, or the tenant default."""
        mailbox = self.mailboxes.get(account_id)
        if mailbox is None:
            return Visibility.FULL
        return mailbox.visibility or self.policy.default_visibility

    def account_level(self, account_id: str) -> Visibility:
        """What the caller sees of the account's mail."""
        mailbox = self.mailboxes.get(account_id)
        if mailbox is None or mailbox.owner == self.ctx.subject or self.sees_all:
            return Visibility.FULL  # no ownership record: the tenant's (module docstring)
        return mailbox.visibility or self.policy.default_visibility

    def level(self, item: Mapping[str, Any]) -> Visibility:
        """What the caller sees of an email item: the highest level of its mailboxes."""
        accounts = accounts_of(item)
        if not accounts:
            return Visibility.FULL
        return max((self.account_level(a) for a in accounts), key=lambda v: v.rank)

    def of_another_user(self, item: Mapping[str, Any]) -> bool:
        """True when no mailbox of the email is the caller's (or ownerless): reading its body is
        reading another user's mail (`audit_body_read`)."""
        accounts = accounts_of(item)
        return bool(accounts) and all(
            a in self.mailboxes and self.mailboxes[a].owner != self.ctx.subject for a in accounts
        )

    def visible(self, item: Mapping[str, Any]) -> Item | None:
        """The item projected to the caller's level, or None when it is private to them."""
        level = self.level(item)
        return None if level is Visibility.PRIVATE else project(item, level)

    def require(self, item: Mapping[str, Any] | None, minimum: Visibility, error: NotFound) -> Item:
        """The item projected to the caller's level; `error` (a 404: the ids of mail the caller may
        not see do not leak) when there is none or the caller's level is below `minimum`."""
        if item is None:
            raise error
        level = self.level(item)
        if level is Visibility.PRIVATE or level.rank < minimum.rank:
            raise error
        return project(item, level)

    def read_body(self, item: Mapping[str, Any] | None, error: NotFound) -> Item:
        """The item for a read of its body (bodies, raw message, attachments, AI context): needs
        `full`; another user's body read is audited."""
        full = self.require(item, Visibility.FULL, error)
        if self.of_another_user(full):
            audit_body_read(self.ctx, _first_account(full, self), str(full.get("email_id") or ""))
        return full

    def require_write(self, item: Mapping[str, Any] | None, error: NotFound) -> Item:
        """The item for a write (flags, moves, snooze, links, a reply from its mailbox): `full`."""
        return self.require(item, Visibility.FULL, error)

    def visible_id(self, item: Mapping[str, Any] | None) -> bool:
        """The email exists for the caller: it is stored and not private to them."""
        return item is not None and self.level(item) is not Visibility.PRIVATE

    def visible_accounts(self, account_ids: Iterable[str]) -> list[str]:
        return [a for a in account_ids if self.account_level(a) is not Visibility.PRIVATE]


EmailReader = Callable[[list[str]], Mapping[str, Item]]
"""Email items (at least `accounts` and `outbox_account_id`) by id; missing ones left out."""


def about_visible_mail(
    access: Access, read: EmailReader
) -> Callable[[list[Item]], Sequence[Item | None]] | None:
    """A `keep` check for listings of records about emails (`email_id`: follow-ups, nudges): a
    record whose email is private to the caller is left out (so its id does not leak). None when
    nothing can be private to the caller (no mailbox is private to them)."""
    if all(access.account_level(a) is not Visibility.PRIVATE for a in access.mailboxes):
        return None

    def keep(records: list[Item]) -> list[Item | None]:
        emails = read([str(r["email_id"]) for r in records]) if records else {}
        return [
            None
            if (email := emails.get(str(r["email_id"]))) is not None
            and access.level(email) is Visibility.PRIVATE
            else r
            for r in records
        ]

    return keep


def _first_account(item: Mapping[str, Any], access: Access) -> str:
    accounts = accounts_of(item)
    readable = [a for a in accounts if access.account_level(a) is Visibility.FULL]
    return (readable or accounts or [""])[0]


def load_access(
    ctx: TenantContext, directory: MailboxDirectory, privacy: PrivacyStore | None = None
) -> Access:
    """The caller's view of the tenant's mailboxes: the tenant policy and every account's owner
    and visibility (one GetItem and one or two Queries of small items)."""
    policy = (privacy.get_privacy(ctx.tenant_id) if privacy is not None else None) or PrivacySettings()
    return Access(ctx=ctx, policy=policy, mailboxes=directory.mailboxes(ctx.tenant_id))


def get_privacy(ctx: TenantContext, store: PrivacyStore) -> PrivacySettings:
    """The tenant's policy (the defaults, version 0, until one is saved)."""
    return store.get_privacy(ctx.tenant_id) or PrivacySettings()


def update_privacy(
    ctx: TenantContext, update: PrivacyUpdate, store: PrivacyStore, now: datetime
) -> PrivacySettings:
    """Replace the policy (admin or owner). With `version`, only if it is still the stored one:
    Conflict(version_conflict) otherwise; without, over whatever is stored."""
    ctx.require(Role.ADMIN)
    current = store.get_privacy(ctx.tenant_id)
    stored_version = current.version if current is not None else 0
    if update.version is not None and update.version != stored_version:
        raise Conflict("the privacy policy was changed by someone else", code="version_conflict")
    settings = PrivacySettings(
        default_visibility=update.default_visibility,
        admin_view=update.admin_view,
        updated_at=now,
        updated_by=ctx.subject,
    )
    return store.save_privacy(
        ctx.tenant_id, settings, expected_version=stored_version if current is not None else None
    )


def access_of(ctx: TenantContext) -> Access:
    """The caller's access, as the API attached it to the request's context (`load_access`, read
    once); a system context (no caller: the sync, a rule run, a digest) sees every mailbox."""
    found = ctx.cached_access()
    return found if isinstance(found, Access) else Access(ctx=ctx)


BODY_READ_ACTION = "email.body_read_other_user"
"""The audit log's action of a read of another user's message body (`audit_body_read`)."""


def audit_body_read(ctx: TenantContext, account_id: str, email_id: str) -> None:
    """Called on every read of another user's message body (an email's bodies, its raw message or
    an attachment, an AI answer made from it). Logs ids only (no address, subject or text) and
    appends a `read` entry to the audit log (issue 19 point 4, `mailbridge.audit`): actor and
    role, `email.body_read_other_user`, the account and email ids; its request id is the
    request's correlation id with `:body-read:{email_id}` (the route's own entry keeps the plain
    one, `audit.service`). The audit write never raises."""
    logger.info(
        "body_read_other_user",
        extra={
            "tenant_id": ctx.tenant_id,
            "subject_id": ctx.subject,
            "role": ctx.role.value,
            "account_id": account_id,
            "email_id": email_id,
        },
    )
    from datetime import UTC

    from mailbridge.audit.models import AuditEntry
    from mailbridge.audit.service import record
    from mailbridge.audit.wiring import audit_deps

    request = logger.get_correlation_id() or "-"
    entry = AuditEntry(
        tenant_id=ctx.tenant_id,
        actor=ctx.subject,
        role=ctx.role.value,
        action=BODY_READ_ACTION,
        kind="read",
        resource_ids={"account_id": account_id, "email_id": email_id},
        at=datetime.now(UTC),
        status=200,
        request_id=f"{request}:body-read:{email_id}",
    )
    record(audit_deps(), entry)
