"""Two-way contact sync between our CRM and one connected Salesforce org or HubSpot portal.

A run (`run`, on the CrmSyncQueue; started by `POST /crm/sync/contacts` or the schedule):

1. **Pull**: the CRM's contacts changed since the `contacts` watermark (the first run: all, by
   `bulk_changed_contacts`, Salesforce Bulk API 2.0 query / HubSpot search pages; later runs
   `changed_contacts` pages), `PAGE` at a time: their links (`RemoteIdStore.by_remote`, one
   BatchGetItem), our linked contacts (BatchGetItem), and for unlinked ones our contact with the
   same primary email (`find_emails`, BatchGetItem) before a new contact is created.
2. **Push**: our contacts changed since the `contacts_push` watermark, read from the sparse gsi2
   index of contacts by `updated_at` (no scan of the tenant; the first run reads the tenant's
   `CONTACT#` items once), and the tombstones of deleted ones; their links (BatchGetItem); the
   changed ones written to the CRM: above `bulk_threshold` by `bulk_save_contacts` (Bulk API 2.0
   ingest, HubSpot batch of 100), else `save_contact` each.

Change detection uses the pair's `RemoteLink`: the CRM side changed when the pulled record's
mapped values hash (`mapping.fields_hash`) differs from `fields_hash`; our side when the contact's
`updated_at` is after `local_updated_at` and its mapped values hash differs too. Both: a
**conflict**, settled by the integration's policy (`crm_wins`, `mailbridge_wins`, `newest_wins`:
the later of `updated_at` and the CRM's modification time, ties to the CRM) and written to the
run's log as a record in state `conflict` with `winner` (ids only, never values). An unlinked CRM
contact whose email is one of our contacts' is linked to it, and a conflict if the values differ.

Deletions (`deletions` setting): a CRM contact deleted (Salesforce `IsDeleted`, HubSpot archived)
deletes ours with `from_crm`/`both`; our contact deleted (its tombstone) deletes the CRM's with
`to_crm`/`both`; otherwise the pair is only unlinked.

Exactly once: every write is keyed (links by ids, contacts by version, CRM records by the link),
so a redelivered message (same `run_id`) continues the run and finds done work unchanged: a CRM
contact created before a crash is matched by email on the next pull. Watermarks move in
`finish_run` only, after the run's writes; the push watermark stays `PUSH_OVERLAP` behind the
run's start so a contact written with an earlier `updated_at` while the run read is not missed
(re-reading it finds it unchanged).

Errors: a refused record fails that record (its CRM error code or `invalid_value`,
`invalid_remote_value`, `no_email`, `version_conflict`, `address_in_use`); `ProviderAuthError`
fails the run (`reauth_required`); rate limits and unreachable CRMs raise, so the queue retries
the message and the run continues.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import TypeVar

from pydantic import ValidationError

from mailbridge.bus import EventPublisher
from mailbridge.crm import service as crm_service
from mailbridge.crm.integrations.models import Integration, RemoteLink, SyncRecord, SyncRun
from mailbridge.crm.integrations.service import IntegrationDeps, get, provider_for
from mailbridge.crm.models import Contact, ContactCreate, ContactPatch
from mailbridge.crm.remote.protocol import (
    ContactWrite,
    CrmProvider,
    FieldInfo,
    RecordResult,
    RemoteContact,
)
from mailbridge.crm.sync import mapping as fm
from mailbridge.crm.sync.models import (
    ContactSync,
    FieldMapping,
    StartedRun,
    SyncSettings,
    SyncSettingsBody,
    SyncStart,
    SyncStarted,
)
from mailbridge.errors import Conflict, NotFound, ProviderAuthError, ProviderError
from mailbridge.observability import logger
from mailbridge.store.crm import CrmStore, change_key
from mailbridge.store.crm_integrations import IntegrationNotFound
from mailbridge.store.crm_sync import RunNotFound
from mailbridge.tenancy import Role, TenantContext

PAGE = 100
PUSH_OVERLAP = timedelta(seconds=60)
PULL_MARK, PUSH_MARK = "contacts", "contacts_push"
T = TypeVar("T")


@dataclass
class SyncDeps:
    integrations: IntegrationDeps
    crm: CrmStore
    publisher: EventPublisher | None
    send: Callable[[Sequence[ContactSync]], None]
    """Queue messages on the CrmSyncQueue."""
    provider: Callable[[IntegrationDeps, str, str], CrmProvider] = provider_for
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    bulk_threshold: int = 200
    """Above this many writes in a run, the CRM's bulk/batch API (Salesforce Bulk API 2.0 jobs
    cost a few requests and seconds each; below it, one REST call per record is quicker)."""


class NotConnected(Conflict):
    code = "integration_not_connected"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


# ---------------------------------------------------------------------------------- settings


def _stored(tenant_id: str, integration: Integration, deps: SyncDeps) -> SyncSettings:
    saved = deps.integrations.logs.get_settings(tenant_id, integration.integration_id)
    if saved is None:
        return SyncSettings(
            integration_id=integration.integration_id,
            fields=fm.default_mapping(integration.provider),
            default=True,
        )
    return SyncSettings.model_validate({**saved, "integration_id": integration.integration_id})


def get_settings(ctx: TenantContext, integration_id: str, deps: SyncDeps) -> SyncSettings:
    """The integration's mapping, conflict policy and deletions (member); the defaults until an
    admin saves some. NotFound(`integration_not_found`)."""
    integration = get(ctx, integration_id, deps.integrations)
    return _stored(ctx.tenant_id, integration, deps)


def put_settings(
    ctx: TenantContext, integration_id: str, body: SyncSettingsBody, deps: SyncDeps
) -> SyncSettings:
    """Check the mapping against the CRM's contact fields (one describe / properties call) and
    save it (admin). Unprocessable: see `mapping.check`; Conflict(`integration_not_connected`)."""
    ctx.require(Role.ADMIN)
    integration = get(ctx, integration_id, deps.integrations)
    if integration.state != "connected":
        raise NotConnected("connect the integration first")
    provider = deps.provider(deps.integrations, ctx.tenant_id, integration_id)
    fm.check(body.fields, provider.contact_fields())
    version = deps.integrations.logs.put_settings(ctx.tenant_id, integration_id, body.model_dump(mode="json"))
    return SyncSettings.model_validate(
        {**body.model_dump(), "integration_id": integration_id, "version": version}
    )


# ---------------------------------------------------------------------------------- starting runs


def start(ctx: TenantContext, body: SyncStart, deps: SyncDeps) -> SyncStarted:
    """Start a contacts sync of one integration, or of each connected one (member): a run in
    state `running` per integration and a queue message naming it. NotFound
    (`integration_not_found`), Conflict(`integration_not_connected`)."""
    ctx.require(Role.MEMBER)
    if body.integration_id is not None:
        integration = get(ctx, body.integration_id, deps.integrations)
        if integration.state != "connected":
            raise NotConnected("connect the integration first")
        integrations = [integration]
    else:
        integrations = [
            i for i in deps.integrations.store.all_integrations(ctx.tenant_id) if i.state == "connected"
        ]
    return SyncStarted(runs=_queue(ctx.tenant_id, integrations, deps))


def _queue(tenant_id: str, integrations: Sequence[Integration], deps: SyncDeps) -> list[StartedRun]:
    runs = [
        deps.integrations.logs.start_run(tenant_id, i.integration_id, "contacts", "both", now=deps.now())
        for i in integrations
    ]
    deps.send(
        [ContactSync(tenant_id=tenant_id, integration_id=r.integration_id, run_id=r.run_id) for r in runs]
    )
    return [StartedRun(integration_id=r.integration_id, run_id=r.run_id) for r in runs]


# ---------------------------------------------------------------------------------- a run


def run(message: ContactSync, deps: SyncDeps) -> SyncRun | None:  # noqa: PLR0911 - one answer per outcome
    """Run (or continue) one integration's contacts sync; see the module docstring. None when the
    integration is gone. Raises retryable provider errors for the queue to retry."""
    tenant_id, integration_id = message.tenant_id, message.integration_id
    if tenant_id is None or integration_id is None:
        return None
    logs = deps.integrations.logs
    try:
        integration = deps.integrations.store.get_integration(tenant_id, integration_id)
    except IntegrationNotFound:
        logger.info("crm sync: integration gone", extra={"integration_id": integration_id})
        return None
    if message.run_id is not None:
        try:
            current = logs.get_run(tenant_id, integration_id, message.run_id)
        except RunNotFound:
            return None
        if current.state != "running":
            return current  # a redelivery after the run ended
    else:
        current = logs.start_run(tenant_id, integration_id, "contacts", "both", now=deps.now())
    if integration.state != "connected":
        return logs.finish_run(tenant_id, current, error_code="integration_not_connected", now=deps.now())
    try:
        provider = deps.provider(deps.integrations, tenant_id, integration_id)
        settings = _stored(tenant_id, integration, deps)
        session = _Run(tenant_id, integration, current, settings, provider, provider.contact_fields(), deps)
        marks = _both_ways(session, message.remote_ids, logs.status(tenant_id, integration_id).watermarks)
    except ProviderAuthError as exc:
        return logs.finish_run(tenant_id, current, error_code=exc.code, now=deps.now())
    except ProviderError as exc:
        # Retryable: the queue redelivers the message. A run the API started (`run_id`) is
        # continued by the redelivery; one this message started (schedule, webhook) is not (the
        # redelivery starts its own), so it ends here as failed instead of staying `running`.
        if message.run_id is None:
            logs.finish_run(tenant_id, current, error_code=exc.code, now=deps.now())
        raise
    return logs.finish_run(tenant_id, current, watermarks=marks, now=deps.now())


def _both_ways(session: _Run, remote_ids: Sequence[str] | None, watermarks: dict[str, str]) -> dict[str, str]:
    """Pull, then push; the watermarks reached. A targeted run (`remote_ids`) pulls those records
    and pushes only the conflicts our side won: it reads no index and moves no watermark."""
    if remote_ids:
        session.pull_ids(remote_ids)
        session.push(None, index=False)
        return {}
    marks: dict[str, str] = {}
    pulled = session.pull(watermarks.get(PULL_MARK))
    if pulled is not None:
        marks[PULL_MARK] = pulled
    marks[PUSH_MARK] = session.push(watermarks.get(PUSH_MARK))
    return marks


@dataclass
class _Run:
    tenant_id: str
    integration: Integration
    sync_run: SyncRun
    settings: SyncSettings
    provider: CrmProvider
    remote_fields: list[FieldInfo]
    deps: SyncDeps
    mapping: list[tuple[FieldMapping, FieldInfo]] = field(init=False)
    handled: set[str] = field(default_factory=set)
    """Our contact ids the pull settled this run (the push leaves them)."""
    forced: dict[str, Contact] = field(default_factory=dict)
    """Conflicts our side won: pushed whatever the push index says."""
    started: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.mapping = fm.resolved(self.settings.fields, self.remote_fields)
        self.started = self.deps.now()

    @property
    def ctx(self) -> TenantContext:
        return TenantContext(
            tenant_id=self.tenant_id, role=Role.ADMIN, subject=f"crm-sync:{self.integration.integration_id}"
        )

    @property
    def names(self) -> list[str]:
        return [info.name for _, info in self.mapping]

    def _hash_local(self, contact: Contact) -> str | None:
        try:
            return fm.fields_hash(fm.to_remote(contact, self.mapping), self.mapping)
        except fm.ValueNotConvertible:
            return None

    def _link(
        self, contact: Contact, remote_id: str, remote_modified: datetime | None, digest: str | None
    ) -> RemoteLink:
        return RemoteLink(
            integration_id=self.integration.integration_id,
            contact_id=contact.contact_id,
            remote_id=remote_id,
            remote_modified=stamp(remote_modified) if remote_modified else None,
            local_updated_at=stamp(contact.updated_at),
            fields_hash=digest,
            synced_at=self.deps.now(),
        )

    # ------------------------------------------------------------------ pull

    def pull(self, since: str | None) -> str | None:
        """Every CRM change since `since`; the watermark reached."""
        if since is None:
            for batch in _chunks(self.provider.bulk_changed_contacts(None, self.names), PAGE):
                self._pull_batch(batch)
            return self.provider.last_watermark
        page: str | None = None
        watermark: str | None = since
        while True:
            answer = self.provider.changed_contacts(since, self.names, page)
            if answer.contacts:
                self._pull_batch(answer.contacts)
            watermark = answer.watermark or watermark
            page = answer.next_page
            if page is None:
                return watermark

    def pull_ids(self, remote_ids: Sequence[str]) -> None:
        """A targeted pull (a webhook named these records): each read by id; a missing one is deleted."""
        contacts: list[RemoteContact] = []
        for remote_id in dict.fromkeys(remote_ids):
            found = self.provider.get_contact(remote_id, self.names)
            contacts.append(
                found or RemoteContact(remote_id=remote_id, modified_at=self.deps.now(), deleted=True)
            )
        for batch in _chunks(contacts, PAGE):
            self._pull_batch(batch)

    def _pull_batch(self, batch: list[RemoteContact]) -> None:
        tenant, iid = self.tenant_id, self.integration.integration_id
        remote_ids = self.deps.integrations.remote_ids
        links = remote_ids.by_remote(tenant, iid, [c.remote_id for c in batch])
        ours = {
            c.contact_id: c
            for c in self.deps.crm.get_contacts(tenant, [link.contact_id for link in links.values()])
        }
        emails = {c.remote_id: self._email_of(c) for c in batch if c.remote_id not in links and not c.deleted}
        found = self.deps.crm.find_emails(tenant, [e for e in emails.values() if e])
        matched_ids = [found[e].contact_id for e in emails.values() if e and e in found]
        taken = remote_ids.by_contacts(tenant, iid, matched_ids)
        ours.update({c.contact_id: c for c in self.deps.crm.get_contacts(tenant, matched_ids)})
        entries: list[SyncRecord] = []
        new_links: list[RemoteLink] = []
        gone: list[RemoteLink] = []
        for remote in batch:
            link = links.get(remote.remote_id)
            if remote.deleted:
                if link is not None:
                    entries.append(self._pulled_deletion(link, ours.get(link.contact_id)))
                    gone.append(link)
                continue
            if link is not None and link.contact_id not in ours:
                continue  # ours was deleted: its tombstone settles the pair in the push
            entry: SyncRecord | None
            if link is not None:
                entry, made = self._pull_linked(remote, link, ours[link.contact_id])
            else:
                email = emails.get(remote.remote_id)
                match = found.get(email) if email else None
                contact = ours.get(match.contact_id) if match else None
                if contact is not None and contact.contact_id in taken:
                    entries.append(
                        self._record(
                            remote.remote_id, contact.contact_id, "pull", "skipped", "email_linked_elsewhere"
                        )
                    )
                    continue
                entry, made = self._pull_new(remote, contact, email)
            if entry is not None:
                entries.append(entry)
            if made is not None:
                new_links.append(made)
        remote_ids.relink(tenant, gone, new_links)
        self.deps.integrations.logs.record(tenant, self.sync_run, entries)

    def _email_of(self, remote: RemoteContact) -> str | None:
        for entry, info in self.mapping:
            if entry.local == "email":
                value = next((v for k, v in remote.fields.items() if k.lower() == info.name.lower()), None)
                return value.strip().lower() if isinstance(value, str) and value.strip() else None
        return None

    def _record(
        self,
        remote_id: str,
        local_id: str | None,
        direction: str,
        state: str,
        code: str | None = None,
        winner: str | None = None,
    ) -> SyncRecord:
        return SyncRecord.model_validate(
            {"remote_id": remote_id, "local_id": local_id, "direction": direction, "state": state,
             "error_code": code, "winner": winner}
        )  # fmt: skip

    def _pulled_deletion(self, link: RemoteLink, contact: Contact | None) -> SyncRecord:
        if contact is not None and self.settings.deletions in ("from_crm", "both"):
            with suppress(NotFound):
                crm_service.delete_contact(
                    self.ctx, contact.contact_id, self.deps.crm, self.deps.publisher, self.deps.now
                )
            self.handled.add(contact.contact_id)
            return self._record(link.remote_id, link.contact_id, "pull", "succeeded")
        return self._record(link.remote_id, link.contact_id, "pull", "skipped")

    def _pull_linked(
        self, remote: RemoteContact, link: RemoteLink, contact: Contact
    ) -> tuple[SyncRecord | None, RemoteLink | None]:
        remote_hash = fm.fields_hash(remote.fields, self.mapping)
        if remote_hash == link.fields_hash:  # our own write coming back, or nothing mapped changed
            return None, link.model_copy(update={"remote_modified": stamp(remote.modified_at)})
        local_hash = self._hash_local(contact)
        ours_changed = (
            link.local_updated_at is None or stamp(contact.updated_at) > link.local_updated_at
        ) and local_hash != link.fields_hash
        if ours_changed and local_hash != remote_hash:
            return self._conflict(remote, contact, remote_hash)
        return self._apply(remote, contact, remote_hash)

    def _pull_new(
        self, remote: RemoteContact, contact: Contact | None, email: str | None
    ) -> tuple[SyncRecord, RemoteLink | None]:
        if contact is None:
            if not email:
                return self._record(remote.remote_id, None, "pull", "failed", "no_email"), None
            return self._apply(remote, None, fm.fields_hash(remote.fields, self.mapping))
        remote_hash = fm.fields_hash(remote.fields, self.mapping)
        local_hash = self._hash_local(contact)
        if local_hash == remote_hash:
            self.handled.add(contact.contact_id)
            return (
                self._record(remote.remote_id, contact.contact_id, "pull", "succeeded"),
                self._link(contact, remote.remote_id, remote.modified_at, remote_hash),
            )
        return self._conflict(remote, contact, remote_hash)

    def _conflict(
        self, remote: RemoteContact, contact: Contact, remote_hash: str
    ) -> tuple[SyncRecord, RemoteLink | None]:
        policy = self.settings.conflict_policy
        crm_wins = policy == "crm_wins" or (
            policy == "newest_wins" and remote.modified_at >= contact.updated_at
        )
        if crm_wins:
            entry, made = self._apply(remote, contact, remote_hash)
            if entry.state == "failed":
                return entry, made
        else:
            self.forced[contact.contact_id] = contact
            self.handled.add(contact.contact_id)
            made = self._link(contact, remote.remote_id, remote.modified_at, None)
        return (
            self._record(remote.remote_id, contact.contact_id, "pull", "conflict",
                         winner="crm" if crm_wins else "mailbridge"),
            made,
        )  # fmt: skip

    def _apply(
        self, remote: RemoteContact, contact: Contact | None, remote_hash: str
    ) -> tuple[SyncRecord, RemoteLink | None]:
        """The CRM's values into ours (a new contact when `contact` is None)."""
        fields = fm.from_remote(remote.fields, self.mapping, contact)
        try:
            if contact is None:
                fields["owner"] = self.integration.created_by
                saved = crm_service.create_contact(
                    self.ctx,
                    ContactCreate.model_validate(fields),
                    self.deps.crm,
                    self.deps.publisher,
                    self.deps.now,
                )
            else:
                patch = ContactPatch.model_validate(
                    {k: fields[k] for k in ("name", "emails", "phones", "title", "custom")}
                    | {"version": contact.version}
                )
                saved = crm_service.update_contact(
                    self.ctx, contact.contact_id, patch, self.deps.crm, self.deps.publisher, self.deps.now
                )
        except ValidationError:
            return self._record(
                remote.remote_id,
                contact.contact_id if contact else None,
                "pull",
                "failed",
                "invalid_remote_value",
            ), None
        except Conflict as exc:
            code = exc.code if exc.code in ("version_conflict", "address_in_use") else "conflict"
            return self._record(
                remote.remote_id, contact.contact_id if contact else None, "pull", "failed", code
            ), None
        self.handled.add(saved.contact_id)
        digest = self._hash_local(saved) or remote_hash
        return (
            self._record(remote.remote_id, saved.contact_id, "pull", "succeeded"),
            self._link(saved, remote.remote_id, remote.modified_at, digest),
        )

    # ------------------------------------------------------------------ push

    def push(self, since: str | None, *, index: bool = True) -> str:
        """Our changes since the change key `since` (None: every contact) to the CRM, and the
        conflicts our side won; the new push watermark. `index=False` (a targeted run): the
        conflicts only, no read of our contacts."""
        ceiling = change_key(self.started - PUSH_OVERLAP, "")
        source: Iterable[tuple[str | None, Contact | str]]
        if not index:
            source = ()
        elif since is None:
            source = ((None, c) for c in self.deps.crm.all_contacts(self.tenant_id))
        else:
            source = self.deps.crm.changed_contacts(self.tenant_id, since)
        reached = since
        writes: list[tuple[ContactWrite, Contact, str | None]] = []
        entries: list[SyncRecord] = []
        deletions: list[tuple[RemoteLink, bool]] = []
        for batch in _chunks(source, PAGE):
            for key, _ in batch:
                if key is not None and (reached is None or key > reached):
                    reached = key
            self._collect(batch, writes, entries, deletions)
        if self.forced:
            self._collect([(None, c) for c in self.forced.values()], writes, entries, deletions, forced=True)
        self._write(writes, entries)
        self._delete(deletions)
        if since is None:
            return ceiling
        return min(reached, ceiling) if reached is not None and reached > since else since

    def _collect(
        self,
        batch: Sequence[tuple[str | None, Contact | str]],
        writes: list[tuple[ContactWrite, Contact, str | None]],
        entries: list[SyncRecord],
        deletions: list[tuple[RemoteLink, bool]],
        *,
        forced: bool = False,
    ) -> None:
        ids = [item if isinstance(item, str) else item.contact_id for _, item in batch]
        links = self.deps.integrations.remote_ids.by_contacts(
            self.tenant_id, self.integration.integration_id, ids
        )
        for _, item in batch:
            if isinstance(item, str):
                link = links.get(item)
                if link is not None:
                    deletions.append((link, self.settings.deletions in ("to_crm", "both")))
                continue
            if item.contact_id in self.handled and not forced:
                continue
            self.handled.add(item.contact_id)
            link = links.get(item.contact_id)
            try:
                record = fm.to_remote(item, self.mapping)
            except fm.ValueNotConvertible:
                entries.append(
                    self._record(
                        link.remote_id if link else item.contact_id,
                        item.contact_id,
                        "push",
                        "failed",
                        "invalid_value",
                    )
                )
                continue
            digest = fm.fields_hash(record, self.mapping)
            if link is not None and link.fields_hash == digest:
                continue
            write = ContactWrite(
                key=item.contact_id, remote_id=link.remote_id if link else None, fields=record
            )
            writes.append((write, item, link.remote_modified if link else None))

    def _write(
        self, writes: list[tuple[ContactWrite, Contact, str | None]], entries: list[SyncRecord]
    ) -> None:
        by_key = {w.key: (w, c, m) for w, c, m in writes}
        results: Iterable[RecordResult]
        if len(writes) > self.deps.bulk_threshold:
            results = self.provider.bulk_save_contacts(w for w, _, _ in writes)
        else:
            results = (self.provider.save_contact(w) for w, _, _ in writes)
        links: list[RemoteLink] = []
        for result in results:
            write, contact, remote_modified = by_key[result.key]
            if result.state == "succeeded" and result.remote_id:
                digest = fm.fields_hash(write.fields, self.mapping)
                links.append(
                    self._link(contact, result.remote_id, None, digest).model_copy(
                        update={"remote_modified": remote_modified}
                    )
                )
                entries.append(self._record(result.remote_id, contact.contact_id, "push", "succeeded"))
            else:
                code = _code(result.error_code or result.state)
                entries.append(
                    self._record(
                        write.remote_id or contact.contact_id, contact.contact_id, "push", "failed", code
                    )
                )
            if len(links) >= PAGE:
                self._flush(links, entries)
        self._flush(links, entries)

    def _flush(self, links: list[RemoteLink], entries: list[SyncRecord]) -> None:
        self.deps.integrations.remote_ids.put(self.tenant_id, links)
        self.deps.integrations.logs.record(self.tenant_id, self.sync_run, entries)
        links.clear()
        entries.clear()

    def _delete(self, deletions: list[tuple[RemoteLink, bool]]) -> None:
        entries = []
        for link, propagate in deletions:
            if propagate:
                self.provider.delete_contact(link.remote_id)
                entries.append(self._record(link.remote_id, link.contact_id, "push", "succeeded"))
            else:
                entries.append(self._record(link.remote_id, link.contact_id, "push", "skipped"))
        self.deps.integrations.remote_ids.forget(self.tenant_id, [link for link, _ in deletions])
        self.deps.integrations.logs.record(self.tenant_id, self.sync_run, entries)


def _code(value: str) -> str:
    """A CRM error code as a log code: `FIELD_CUSTOM_VALIDATION_EXCEPTION` -> lower-case, 64 max."""
    code = "".join(ch if ch.isalnum() else "_" for ch in value.lower()).strip("_")[:64]
    return code if code and code[0].isalpha() else "crm_error"


# ---------------------------------------------------------------------------------- schedule


def fan_out(deps: SyncDeps, tenant_ids: Iterable[str]) -> int:
    """The schedule's run: a sync of every connected integration of each tenant."""
    queued = 0
    for tenant_id in tenant_ids:
        integrations = [
            i for i in deps.integrations.store.all_integrations(tenant_id) if i.state == "connected"
        ]
        if integrations:
            queued += len(_queue(tenant_id, integrations, deps))
    return queued
