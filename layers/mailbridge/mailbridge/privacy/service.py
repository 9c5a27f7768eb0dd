"""GDPR erase and export jobs: started by the API, run in chunks on the tasks queue.

A job is a fixed list of phases run one page at a time; each page is one queue message (`step`),
and the job record (store/privacy.py) saves the phase, the cursor inside it and the counts after
every page, on the condition that the step is still the one it read. So:

- a crash in the middle of a page leaves the job at that page: the message comes back (SQS
  redelivery) and the page is done again; deleting what is already gone and scrubbing what no
  longer names the subject are no-ops, so a repeated page changes nothing twice;
- a crash after the save but before the next message was sent is seen on the redelivery
  (the job is one step ahead of the message and its `sent_step` is behind): the next message
  is sent then;
- a duplicate message finds the job past its step and does nothing; in particular a redelivery
  of a step that ran and whose next message went out (`sent_step` = the job's step, recorded
  after each send) sends nothing: re-sending there put a second copy of the next step on the
  queue per redelivery, and each copy, one step behind when it arrived, sent another, down to
  the end of the job.

Phases (in order):
  collect        the emails table: the emails and drafts that name an address of the subject as a
                 participant (From, Sender, Reply-To, To, Cc, Bcc) become the job's targets
  objects:{area} the bucket's raw MIME, attachments, bodies and draft bodies of the tenant
                 (raw/ att/ body/ drafts/ + {tenant}/): every version of an object whose key names
                 a target is deleted (erase) or put in the archive (export)
  table:{kind}   every table, one page at a time (privacy.matching.judge): delete, scrub or keep
                 (erase), or add to the archive (export); the emails table comes last. Each table
                 is read by Query on the partitions that can hold the subject (`_partitions`):
                 the tenant's own partition, the partitions keyed by a target or by a participant
                 address of one, and the contact's GSI partitions; never the other tenants' items
  package        export only: the zip (one JSON file per kind, the raw .eml files, the objects)
                 KMS-encrypted in the bucket under exports/{tenant}/{job_id}/
  finish         the job forgets the subject (its addresses, contact ids and targets); an erase
                 also deletes earlier exports of the same subject

Retention (`PUT /settings/retention`) runs the same machinery: the daily RetentionSchedule starts
one `retention` job per tenant with a setting, whose targets are the emails dated before the
cutoff (not outbound mail still waiting to be sent) and whose needles are only their ids, so it
deletes them, their objects and every record keyed by or derived from them, and takes their ids
out of the records that stay (threads). A sweep was picked over DynamoDB TTL: a TTL would have to
be written on the email and on every derived record by each of their writers, rewritten on every
item when the setting changes, and would reach neither the bucket nor the lists that name an
email; a TTL delete would then still need a stream consumer for those. The sweep's cost is one
paged read of the tenant's partitions a day (and the notifications table's Scan, below).

What is not done (documented in the README): mail in the user's own mailbox at the provider is not
deleted (we erase our copy); the Powertools idempotency records (hashed keys, expiring within
hours) are not searched; quarantined input (unparseable mail, raw bytes kept by name) is not
parsed for addresses; synced external CRMs are reported `not_synced`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from mailbridge.crm.models import new_id
from mailbridge.errors import Conflict, NotFound
from mailbridge.privacy.matching import PARTICIPANT_FIELDS, Needles, is_target, judge, target_id
from mailbridge.privacy.models import (
    EXTERNAL_CRMS,
    JobKind,
    PrivacyJob,
    PrivacyStep,
    PrivacySubject,
    Retention,
    RetentionSetting,
)
from mailbridge.store.base import Item
from mailbridge.store.keys import digest, tenant_pk
from mailbridge.store.links import address_pk, email_links_pk, timeline_index_pk, timeline_pk
from mailbridge.store.privacy import JOB_PREFIX, ObjectArea, Page, Partition, PrivacyJobStore, TenantTables
from mailbridge.store.suppression import PREFIX as SUPPRESS_PREFIX
from mailbridge.tenancy import TenantContext

# The bucket areas that hold a tenant's mail by email or draft id (store/blobs.py,
# drafts/service.py); uploads/ expire within a day, exports/ are the archives themselves.
OBJECT_AREAS = ("raw", "att", "body", "drafts")
# The tables swept, by kind; the emails table last, so a crash leaves the targets findable.
TABLE_KINDS = (
    "links",
    "tracking",
    "flags",
    "snoozes",
    "notifications",
    "automations",
    "calendar",
    "crm",
    "accounts",
    "settings",
    "emails",
)
PAGE_SIZE = 200
DOWNLOAD_SECONDS = 900


class Queue(Protocol):
    def send(self, message: PrivacyStep) -> None: ...


class ContactLookup(Protocol):
    def contact_of(self, tenant_id: str, address: str) -> str | None: ...

    def addresses_of(self, tenant_id: str, contact_id: str) -> list[str] | None: ...


@dataclass
class PrivacyDeps:
    jobs: PrivacyJobStore
    tables: TenantTables
    objects: ObjectArea
    queue: Queue
    contacts: ContactLookup
    table_names: Mapping[str, str]  # kind -> table name, every kind of TABLE_KINDS
    accounts_table: str
    kms_key_id: str
    # Keeps an erased address's objection (campaigns.suppression.forget_address): (tenant, address).
    forget_suppressed: Callable[[str, str], None] | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    page_size: int = PAGE_SIZE


# Outbound mail not sent yet is never retention's to delete (outbox/models.py send states).
UNSENT = frozenset({"queued", "scheduled", "sending"})


def _phases(kind: JobKind) -> list[str]:
    phases = ["collect", *(f"objects:{a}" for a in OBJECT_AREAS), *(f"table:{k}" for k in TABLE_KINDS)]
    return [*phases, *(["package"] if kind == "export" else []), "finish"]


def _new_job(kind: JobKind, at: str, created_by: str, **fields: Any) -> Item:
    return {
        "job_id": new_id("pj_"),
        "kind": kind,
        "state": "queued",
        "step": 0,
        "phases": _phases(kind),
        "phase": 0,
        "cursor": None,
        "counts": {},
        "external_crms": {},
        "created_by": created_by,
        "created_at": at,
        "updated_at": at,
        **fields,
    }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


# ----------------------------------------------------------------------------- the API side


def start(ctx: TenantContext, kind: JobKind, subject: PrivacySubject, deps: PrivacyDeps) -> PrivacyJob:
    """Record a job and queue its first step.

    Errors: 404 `contact_not_found` (no such contact in the tenant); 409
    `address_is_connected_mailbox` (the address is one of the tenant's own connected mailboxes:
    erasing it would erase the mailbox; disconnect it instead)."""
    tenant = ctx.tenant_id
    contact_ids: list[str] = []
    addresses: set[str] = set()
    if subject.contact_id is not None:
        listed = deps.contacts.addresses_of(tenant, subject.contact_id)
        if listed is None:
            raise NotFound("no such contact", code="contact_not_found")
        contact_ids.append(subject.contact_id)
        addresses |= {a.lower() for a in listed}
    else:
        assert subject.email is not None  # the model requires one of the two
        addresses.add(subject.email)
        contact = deps.contacts.contact_of(tenant, subject.email)
        if contact is not None:
            contact_ids.append(contact)
            addresses |= {a.lower() for a in deps.contacts.addresses_of(tenant, contact) or ()}
    for address in addresses:
        if deps.jobs.connected_account(deps.accounts_table, tenant, address):
            raise Conflict(
                "the address is a connected mailbox of this tenant; disconnect the account instead",
                code="address_is_connected_mailbox",
            )
    item = _new_job(
        kind,
        _iso(deps.now()),
        ctx.subject,
        addresses=sorted(addresses),
        contact_ids=contact_ids,
        subject_digests=sorted(digest(a) for a in addresses),
        external_crms=dict.fromkeys(EXTERNAL_CRMS, "not_synced"),
    )
    deps.jobs.create_job(tenant, item)
    deps.queue.send(PrivacyStep(tenant_id=tenant, job_id=str(item["job_id"]), step=0))
    return _view(item, deps)


def get_job(ctx: TenantContext, job_id: str, deps: PrivacyDeps) -> PrivacyJob:
    """The job's state and counts; for a finished export a presigned download URL valid for
    15 minutes. 404 `job_not_found` for an id the tenant has no job under."""
    item = deps.jobs.get_job(ctx.tenant_id, job_id)
    if item is None:
        raise NotFound("no such privacy job", code="job_not_found")
    return _view(item, deps)


def get_retention(ctx: TenantContext, deps: PrivacyDeps) -> Retention:
    """The tenant's retention setting (`retention_days` null when never set: mail is kept)."""
    item = deps.jobs.get_retention(ctx.tenant_id) or {}
    return Retention(
        retention_days=item.get("retention_days"),
        updated_at=item.get("updated_at"),
        last_job_id=item.get("last_job_id"),
    )


def put_retention(ctx: TenantContext, body: RetentionSetting, deps: PrivacyDeps) -> Retention:
    """Set (or, with null, clear) the retention; the next daily sweep applies it."""
    deps.jobs.put_retention(ctx.tenant_id, body.retention_days, ctx.subject, _iso(deps.now()))
    return get_retention(ctx, deps)


def start_retention_sweeps(deps: PrivacyDeps) -> int:
    """The daily run: a `retention` job for each tenant with a setting whose previous sweep has
    ended (a sweep still running is left to finish). Returns how many were started."""
    started = 0
    now = deps.now()
    for tenant, days in deps.jobs.retention_settings():
        running = [
            j for j in deps.jobs.jobs_of(tenant) if j.get("kind") == "retention" and j["state"] != "done"
        ]
        if running:
            continue
        cutoff = _iso(now - timedelta(days=days))
        item = _new_job("retention", _iso(now), "retention-schedule", cutoff=cutoff)
        deps.jobs.create_job(tenant, item)
        deps.jobs.note_retention_job(tenant, str(item["job_id"]))
        deps.queue.send(PrivacyStep(tenant_id=tenant, job_id=str(item["job_id"]), step=0))
        started += 1
    return started


def _view(item: Item, deps: PrivacyDeps) -> PrivacyJob:
    phases: list[str] = list(item["phases"])
    state = str(item["state"])
    phase = "done" if state == "done" else phases[int(item["phase"])]
    url = expires = None
    if state == "done" and item.get("archive_key"):
        url = deps.objects.presign(str(item["archive_key"]), f"{item['job_id']}.zip", DOWNLOAD_SECONDS)
        expires = deps.now() + timedelta(seconds=DOWNLOAD_SECONDS)
    return PrivacyJob(
        job_id=str(item["job_id"]),
        kind=item["kind"],
        state=item["state"],
        phase=phase,
        counts={str(k): int(v) for k, v in (item.get("counts") or {}).items()},
        external_crms=dict(item.get("external_crms") or {}),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        finished_at=item.get("finished_at"),
        download_url=url,
        download_expires_at=expires,
    )


# ----------------------------------------------------------------------------- the worker side


@dataclass
class _Progress:
    cursor: str | None
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n


def run_step(message: PrivacyStep, deps: PrivacyDeps) -> bool:
    """Run one page of the job; True when it did (False: a duplicate or a finished job)."""
    tenant = message.tenant_id
    job = deps.jobs.get_job(tenant, message.job_id)
    if job is None or job["state"] == "done":
        return False
    step = int(job["step"])
    if step != message.step:
        _send_unsent(message, job, deps)
        return False
    phases: list[str] = list(job["phases"])
    phase = phases[int(job["phase"])]
    progress = _run_phase(phase, tenant, job, deps)
    counts = {str(k): int(v) for k, v in (job.get("counts") or {}).items()}
    for name, n in progress.counts.items():
        counts[name] = counts.get(name, 0) + n
    updated: Item = {**job, "step": step + 1, "counts": counts, "state": "running"}
    updated["updated_at"] = _iso(deps.now())
    if progress.cursor is None:
        updated["phase"], updated["cursor"] = int(job["phase"]) + 1, None
    else:
        updated["cursor"] = progress.cursor
    if phase == "finish":
        updated |= {"state": "done", "phase": len(phases) - 1, "finished_at": updated["updated_at"]}
        for forgotten in ("addresses", "contact_ids", "cursor"):
            updated.pop(forgotten, None)
        if job["kind"] == "erase":
            updated.pop("subject_digests", None)
    if phase == "package":
        updated["archive_key"] = _archive_key(tenant, str(job["job_id"]))
    try:
        deps.jobs.save_step(tenant, _dynamo(updated), read_step=step)
    except Conflict:
        return False
    if updated["state"] != "done":
        _send_next(message, step + 1, deps)
    return True


def _send_unsent(message: PrivacyStep, job: Item, deps: PrivacyDeps) -> None:
    """For a message the job is past: when the job is one step ahead of it and that step's
    message never went out (saved, then the function died before the send), send it now."""
    step = int(job["step"])
    if step == message.step + 1 and int(job.get("sent_step", -1)) != step:
        _send_next(message, step, deps)


def _send_next(message: PrivacyStep, step: int, deps: PrivacyDeps) -> None:
    """Queue step `step` of the job and record on the job that it went out (`sent_step`)."""
    deps.queue.send(message.model_copy(update={"step": step}))
    deps.jobs.mark_sent(message.tenant_id, message.job_id, step)


def _needles(job: Item, deps: PrivacyDeps, tenant: str, *, targets: bool = True) -> Needles:
    base = Needles(frozenset(job.get("addresses") or ()), frozenset(job.get("contact_ids") or ()))
    if not targets:
        return base
    return Needles(base.addresses, base.contact_ids, frozenset(deps.jobs.targets(tenant, str(job["job_id"]))))


def _run_phase(phase: str, tenant: str, job: Item, deps: PrivacyDeps) -> _Progress:
    cursor = job.get("cursor")
    if phase == "collect":
        return _collect(tenant, job, deps, cursor)
    if phase.startswith("objects:"):
        return _objects(phase.split(":", 1)[1], tenant, job, deps, cursor)
    if phase.startswith("table:"):
        return _table(phase.split(":", 1)[1], tenant, job, deps, cursor)
    if phase == "package":
        return _package(tenant, job, deps)
    return _finish(tenant, job, deps)


def _expired(item: Item, cutoff: datetime) -> bool:
    """An email (not a draft, not unsent outbound mail) dated before `cutoff`."""
    if not str(item.get("sk", "")).startswith("EMAIL#") or item.get("send_status") in UNSENT:
        return False
    try:
        date = datetime.fromisoformat(str(item.get("date")))
    except ValueError:
        return False
    return (date if date.tzinfo else date.replace(tzinfo=UTC)) < cutoff


def _participants(item: Item) -> set[str]:
    """The addresses (lower-cased) in an email's or draft's participant fields: a list of
    {name, address} maps or of RFC 5322 address strings (sync/ingest.py, drafts/service.py)."""
    from email.utils import getaddresses

    found: set[str] = set()
    for name in PARTICIPANT_FIELDS:
        value = item.get(name)
        values = value if isinstance(value, list | tuple | set | frozenset) else [value]
        for one in values:
            text = one.get("address") if isinstance(one, Mapping) else one
            if isinstance(text, str):
                found |= {a.lower() for _, a in getaddresses([text]) if "@" in a}
    return found


def _collect(tenant: str, job: Item, deps: PrivacyDeps, cursor: str | None) -> _Progress:
    needles = _needles(job, deps, tenant, targets=False)
    # Emails and drafts are in the tenant's one partition of the emails table.
    page = deps.tables.query_page(
        deps.table_names["emails"], Partition(tenant_pk(tenant)), cursor, deps.page_size
    )
    if job["kind"] == "retention":
        cutoff = datetime.fromisoformat(str(job["cutoff"]))
        items = [item for item in page.items if _expired(item, cutoff)]
    else:
        items = [item for item in page.items if is_target(item, needles)]
    found = [target_id(item) for item in items]
    deps.jobs.add_targets(tenant, str(job["job_id"]), found)
    # Their participants' addresses: the links table's participant index is keyed by them.
    deps.jobs.add_addresses(tenant, str(job["job_id"]), set().union(*map(_participants, items)))
    progress = _Progress(page.cursor)
    progress.add("targets", len(found))
    return progress


def _objects(area: str, tenant: str, job: Item, deps: PrivacyDeps, cursor: str | None) -> _Progress:
    needles = _needles(job, deps, tenant)
    page = deps.objects.page(f"{area}/{tenant}/", cursor, deps.page_size)
    # The key after the area and tenant: ids and names only, never the tenant's own id.
    matched = [v for v in page.versions if needles.names_any(v.key.split("/", 2)[2])]
    progress = _Progress(page.cursor)
    if job["kind"] != "export":
        progress.add("objects.deleted", deps.objects.delete(matched))
        return progress
    keys = sorted({v.key for v in matched})
    if keys:
        _write_part(tenant, job, deps, {"kind": "objects", "keys": keys})
    progress.add("objects.exported", len(keys))
    return progress


# The tables keyed by the tenant alone (pk = TENANT#{tenant}; template.yaml's key comments).
TENANT_KEYED = frozenset({"flags", "snoozes", "automations", "crm", "accounts", "settings", "emails"})


def _partitions(
    kind: str, tenant: str, job: Item, needles: Needles, deps: PrivacyDeps
) -> list[Partition] | None:
    """Where the items of table `kind` that can name the subject are, in a fixed order (the
    phase's cursor indexes it); None for the notifications table, read by a Scan."""
    own = Partition(tenant_pk(tenant))
    contacts = sorted(needles.contact_ids)
    if kind in TENANT_KEYED:
        return [own]
    if kind == "calendar":
        # The legacy per-record timeline copies: pk = TENANT#{t}#REL#{record_id}.
        return [own, *(Partition(f"{tenant_pk(tenant)}#REL#{c}") for c in contacts)]
    targets = sorted(needles.target_ids)
    if kind == "tracking":
        return [Partition(email_links_pk(tenant, t)) for t in targets]
    if kind == "links":
        addresses = sorted(needles.addresses | deps.jobs.addresses(tenant, str(job["job_id"])))
        return [
            *(Partition(email_links_pk(tenant, t)) for t in targets),
            *(Partition(address_pk(tenant, a)) for a in addresses),
            # A contact's links from mail that is not a target, and its timeline entries
            # (events, activities, tracking hits: pk = TENANT#{t}#{source}#{id}).
            *(Partition(timeline_pk(tenant, "contact", c), "gsi1") for c in contacts),
            *(Partition(timeline_index_pk(tenant, "contact", c), "gsi2") for c in contacts),
        ]
    # notifications: pk = TENANT#{t}#USER#{user}, and no key or index lists a tenant's users
    # (store/notifications.py), so a Scan filtered on the tenant is the only way to find them.
    return None


def _read(kind: str, tenant: str, job: Item, needles: Needles, deps: PrivacyDeps, cursor: str | None) -> Page:
    """One page of the phase; its cursor is {"p": partition index, "k": the Query's cursor}."""
    name = deps.table_names[kind]
    partitions = _partitions(kind, tenant, job, needles, deps)
    if partitions is None:
        return deps.tables.page(name, tenant, cursor, deps.page_size)
    at: dict[str, Any] = json.loads(cursor) if cursor else {"p": 0, "k": None}
    index = int(at["p"])
    if index >= len(partitions):
        return Page([], None)
    page = deps.tables.query_page(name, partitions[index], at["k"], deps.page_size)
    if page.cursor is not None:
        return Page(page.items, json.dumps({"p": index, "k": page.cursor}))
    nxt = None if index + 1 >= len(partitions) else json.dumps({"p": index + 1, "k": None})
    return Page(page.items, nxt)


def _table(kind: str, tenant: str, job: Item, deps: PrivacyDeps, cursor: str | None) -> _Progress:
    needles = _needles(job, deps, tenant)
    name = deps.table_names[kind]
    page = _read(kind, tenant, job, needles, deps, cursor)
    progress = _Progress(page.cursor)
    exported: list[Item] = []
    for item in page.items:
        if kind == "settings" and str(item.get("sk", "")).startswith(JOB_PREFIX):
            continue  # the privacy jobs themselves
        verdict, scrubbed = judge(item, needles)
        if verdict == "keep":
            continue
        if job["kind"] == "export":
            exported.append(item)
        elif verdict == "delete":
            if kind == "crm" and str(item.get("sk", "")).startswith(SUPPRESS_PREFIX):
                _forget_suppressed(tenant, item, deps)
            progress.add(f"{kind}.deleted", int(deps.tables.delete(name, item)))
        else:
            assert scrubbed is not None
            if not deps.tables.rewrite(name, item, scrubbed):
                raise Conflict("a record changed while it was scrubbed", code="scrub_conflict")
            progress.add(f"{kind}.scrubbed")
    if exported:
        _write_part(tenant, job, deps, {"kind": kind, "items": exported})
        progress.add(f"{kind}.exported", len(exported))
    return progress


def _forget_suppressed(tenant: str, item: Item, deps: PrivacyDeps) -> None:
    """A suppression entry is replaced by its keyed hash before it is deleted (GDPR Art. 17(3),
    Art. 21(3): the objection outlives the erasure); a repeated page records it again, a no-op."""
    if deps.forget_suppressed is None:
        raise RuntimeError("an erase that meets a suppression entry needs PrivacyDeps.forget_suppressed")
    deps.forget_suppressed(tenant, str(item["address"]))


# ----------------------------------------------------------------------------- export archive


def _export_prefix(tenant: str, job_id: str) -> str:
    return f"exports/{tenant}/{job_id}/"


def _archive_key(tenant: str, job_id: str) -> str:
    return f"{_export_prefix(tenant, job_id)}archive.zip"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _write_part(tenant: str, job: Item, deps: PrivacyDeps, part: dict[str, Any]) -> None:
    # Named by step: a repeated step overwrites its own part instead of adding a second one.
    key = f"{_export_prefix(tenant, str(job['job_id']))}parts/{int(job['step']):08d}.json"
    data = json.dumps(part, default=_json_default, sort_keys=True).encode()
    deps.objects.put(key, data, "application/json", deps.kms_key_id)


def _package(tenant: str, job: Item, deps: PrivacyDeps) -> _Progress:
    prefix = f"{_export_prefix(tenant, str(job['job_id']))}parts/"
    records: dict[str, list[Any]] = {}
    objects: list[str] = []
    for key in sorted(deps.objects.keys(prefix)):
        part = json.loads(deps.objects.get(key))
        if part["kind"] == "objects":
            objects.extend(part["keys"])
        else:
            records.setdefault(part["kind"], []).extend(part["items"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        summary = {
            "job_id": job["job_id"],
            "addresses": job.get("addresses") or [],
            "contact_ids": job.get("contact_ids") or [],
            "created_at": job["created_at"],
            "external_crms": job.get("external_crms") or {},
            "kinds": {kind: len(items) for kind, items in sorted(records.items())},
        }
        archive.writestr("subject.json", json.dumps(summary, indent=2, sort_keys=True))
        for kind, items in sorted(records.items()):
            archive.writestr(
                f"{kind}.json", json.dumps(items, default=_json_default, indent=2, sort_keys=True)
            )
        for key in sorted(set(objects)):
            area, _tenant, rest = key.split("/", 2)
            name = f"eml/{rest.rsplit('/', 1)[-1]}" if area == "raw" else f"objects/{area}/{rest}"
            archive.writestr(name, deps.objects.get(key))
    deps.objects.put(
        _archive_key(tenant, str(job["job_id"])), buffer.getvalue(), "application/zip", deps.kms_key_id
    )
    deps.objects.delete_prefix(prefix)
    return _Progress(None)


def _finish(tenant: str, job: Item, deps: PrivacyDeps) -> _Progress:
    progress = _Progress(None)
    if job["kind"] == "erase":
        # Earlier exports of the same subject hold its data too.
        digests = set(job.get("subject_digests") or ())
        for other in deps.jobs.jobs_of(tenant):
            if other.get("kind") == "export" and digests & set(other.get("subject_digests") or ()):
                progress.add(
                    "exports.deleted",
                    deps.objects.delete_prefix(_export_prefix(tenant, str(other["job_id"]))),
                )
                deps.jobs.delete_job(tenant, str(other["job_id"]))
    deps.jobs.drop_targets(tenant, str(job["job_id"]))
    return progress


def _dynamo(item: Item) -> Item:
    """Drop None values (DynamoDB accepts NULL, but a missing attribute reads the same)."""
    return {k: v for k, v in item.items() if v is not None}
