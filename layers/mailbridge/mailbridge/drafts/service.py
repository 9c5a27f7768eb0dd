"""Drafts: create, read, list, change (only at the version read), delete and send.

Every change is stored first, then one `DraftSyncMessage` on the OutboxQueue brings the mailbox's
copy in step (`mailbridge.drafts.provider`, in the outbox function): the provider is never called
inside an API request. Writes are conditional on `version` (`If-Match`), so of two editors who
read version 3, the first to save makes version 4 and the second gets 412 `version_conflict`
instead of silently overwriting it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mailbridge.access import Visibility, access_of
from mailbridge.drafts.models import Draft, DraftBody, DraftSend, DraftSummary
from mailbridge.errors import Conflict, Invalid, NotFound, PreconditionFailed, Unprocessable
from mailbridge.outbox.models import DraftSyncMessage, SendAccepted, SendRequest
from mailbridge.store.drafts import ACTIVE, DELETING, SENDING, DraftStore
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.outbox.service import OutboxDeps
    from mailbridge.queues import OutboxQueue
    from mailbridge.store.accounts import AccountStore
    from mailbridge.store.blobs import BlobStore


@dataclass
class DraftDeps:
    drafts: DraftStore
    accounts: AccountStore
    blobs: BlobStore
    queue: OutboxQueue
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def new_draft_id(now: datetime) -> str:
    """`dr_` + 26 hex digits: milliseconds since the epoch (12) then 56 random bits, so ids sort
    by creation time (the listing order)."""
    millis = int(now.timestamp() * 1000)
    return f"dr_{millis:012x}{os.urandom(7).hex()}"


def body_key(tenant_id: str, draft_id: str, version: int) -> str:
    """One S3 object per version: a writer that loses the version race never overwrote the body
    the winner stored."""
    return f"drafts/{tenant_id}/{draft_id}/v{version}.json"


def _not_found() -> NotFound:
    return NotFound("no such draft", code="draft_not_found")


def _stale() -> PreconditionFailed:
    return PreconditionFailed(
        "the draft was changed since this version was read; read it again and merge",
        code="version_conflict",
    )


def _active(ctx: TenantContext, draft_id: str, deps: DraftDeps) -> dict[str, Any]:
    """The active draft; a draft of a mailbox the caller does not see in full (mailbridge.access:
    it holds a body) is 404 `draft_not_found`, as one that does not exist."""
    item = deps.drafts.get_draft(ctx.tenant_id, draft_id)
    if item is None or item.get("state") != ACTIVE:
        raise _not_found()
    if access_of(ctx).account_level(str(item.get("account_id") or "")) is not Visibility.FULL:
        raise _not_found()
    return item


def _view(item: dict[str, Any], body: dict[str, Any]) -> Draft:
    return Draft.model_validate(
        {
            **body,
            "draft_id": item["draft_id"],
            "version": int(item["version"]),
            "created_at": item["created_at"],
            "updated_at": item["updated_at"],
            "origin": item.get("origin", "mailbridge"),
            "synced": item.get("synced_version") == item["version"],
        }
    )


def _summary_fields(body: DraftBody) -> dict[str, Any]:
    return {"subject": body.subject, "to": [str(r.address) for r in body.to]}


def _queue_sync(tenant_id: str, item: dict[str, Any], deps: DraftDeps) -> None:
    deps.queue.send(
        DraftSyncMessage(
            tenant_id=tenant_id, draft_id=str(item["draft_id"]), account_id=str(item["account_id"])
        )
    )


def create_draft(ctx: TenantContext, body: DraftBody, deps: DraftDeps) -> Draft:
    """Store a new draft (version 1) of a mailbox of the tenant and queue its provider copy.

    Raises NotFound `account_not_found`."""
    ctx.require(Role.MEMBER)
    deps.accounts.get_account(ctx.tenant_id, body.account_id)  # NotFound account_not_found
    if access_of(ctx).account_level(body.account_id) is not Visibility.FULL:
        raise NotFound("no such account", code="account_not_found")  # another's mailbox: a write
    now = deps.now()
    draft_id = new_draft_id(now)
    document = body.model_dump(mode="json")
    key = body_key(ctx.tenant_id, draft_id, 1)
    deps.blobs.put_json(key, document)
    item = deps.drafts.create_draft(
        ctx.tenant_id,
        {
            "draft_id": draft_id,
            "account_id": body.account_id,
            "state": ACTIVE,
            "body_key": key,
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
            "created_by": ctx.subject,
            "origin": "mailbridge",
            **_summary_fields(body),
        },
    )
    _queue_sync(ctx.tenant_id, item, deps)
    return _view(item, document)


def get_draft(ctx: TenantContext, draft_id: str, deps: DraftDeps) -> Draft:
    """The draft with its body. Raises NotFound `draft_not_found` (also once deleted or sent)."""
    ctx.require(Role.VIEWER)
    item = _active(ctx, draft_id, deps)
    return _view(item, deps.blobs.get_json(str(item["body_key"])))


def list_drafts(ctx: TenantContext, deps: DraftDeps, *, cursor: str | None, limit: int) -> Page[DraftSummary]:
    """Drafts of the tenant, oldest first, `limit` (1..100) a page; `next_cursor` is signed
    (400 `invalid_cursor` for a changed one). As the caller may see each mailbox's mail
    (mailbridge.access): drafts of mailboxes private to them are left out (pages filled), the
    subject shown from `subject` up."""
    ctx.require(Role.VIEWER)
    access = access_of(ctx)

    def keep(found: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        return [
            i if access.account_level(str(i["account_id"])) is not Visibility.PRIVATE else None for i in found
        ]

    def subject(item: dict[str, Any]) -> str:
        shown = access.account_level(str(item["account_id"])).rank >= Visibility.SUBJECT.rank
        return str(item.get("subject") or "") if shown else ""

    items, next_cursor = deps.drafts.page(ctx.tenant_id, cursor=cursor, limit=limit, keep=keep)
    return Page[DraftSummary](
        items=[
            DraftSummary(
                draft_id=str(i["draft_id"]),
                account_id=str(i["account_id"]),
                version=int(i["version"]),
                subject=subject(i),
                to=[str(a) for a in i.get("to") or ()],
                updated_at=i["updated_at"],
                synced=i.get("synced_version") == i["version"],
            )
            for i in items
        ],
        next_cursor=next_cursor,
    )


def update_draft(ctx: TenantContext, draft_id: str, body: DraftBody, if_match: int, deps: DraftDeps) -> Draft:
    """Replace the draft's body, only if it is still at version `if_match`; version + 1.

    Raises NotFound `draft_not_found`, PreconditionFailed `version_conflict` (412: someone saved
    a newer version), Invalid `account_change` (a draft stays in its mailbox: delete it and
    create one in the other)."""
    ctx.require(Role.MEMBER)
    item = _active(ctx, draft_id, deps)
    if int(item["version"]) != if_match:
        raise _stale()
    if body.account_id != item["account_id"]:
        raise Invalid("a draft cannot move to another mailbox", code="account_change")
    document = body.model_dump(mode="json")
    key = body_key(ctx.tenant_id, draft_id, if_match + 1)
    deps.blobs.put_json(key, document)
    now = deps.now()
    kept = {k: v for k, v in item.items() if k not in ("pk", "sk", "version")}
    try:
        stored = deps.drafts.replace_draft(
            ctx.tenant_id,
            {**kept, "body_key": key, "updated_at": now.isoformat(), **_summary_fields(body)},
            expected_version=if_match,
        )
    except Conflict as exc:
        raise _stale() from exc
    _queue_sync(ctx.tenant_id, stored, deps)
    return _view(stored, document)


def delete_draft(ctx: TenantContext, draft_id: str, if_match: int | None, deps: DraftDeps) -> None:
    """Delete the draft (at version `if_match` when given); the mailbox's copy is removed by the
    queued sync, which then deletes the item. Raises NotFound, PreconditionFailed."""
    ctx.require(Role.MEMBER)
    item = _active(ctx, draft_id, deps)
    version = int(item["version"])
    if if_match is not None and if_match != version:
        raise _stale()
    if not deps.drafts.set_state(ctx.tenant_id, draft_id, expected_version=version, state=DELETING):
        raise _stale()
    _queue_sync(ctx.tenant_id, item, deps)


def _send_request(body: dict[str, Any], send: DraftSend) -> SendRequest:
    """The draft as a `POST /emails/send` body: the same checks. What a draft may lack (a
    recipient, a text) is 422 `draft_incomplete`, naming the fields and rules, not the values."""
    try:
        return SendRequest.model_validate({**body, "send_at": send.send_at})
    except ValidationError as exc:
        details = [{"loc": list(err["loc"]), "type": err["type"]} for err in exc.errors()]
        raise Unprocessable(
            "the draft cannot be sent as it stands (recipients, text or html)",
            code="draft_incomplete",
            details=details,
        ) from None


def send_draft(
    ctx: TenantContext,
    draft_id: str,
    send: DraftSend,
    if_match: int | None,
    deps: DraftDeps,
    outbox: OutboxDeps,
) -> SendAccepted:
    """Send the draft through the outbox exactly as `POST /emails/send` would (same checks, same
    status on `GET /emails/{id}`), now or at `send.send_at`. The draft leaves `GET /drafts` at
    once (state `sending`); the mailbox's copy and then the draft are removed once the send
    succeeded (`outbox.service.send_queued`, `drafts.provider.remove_sent_draft`).

    The draft is claimed first (state `sending`, conditional on its version), so a concurrent
    edit or second send gets 412 / 404 rather than sending twice; when the outbox refuses the
    send (4xx) the draft is given back unchanged.
    Raises NotFound, PreconditionFailed, Unprocessable `draft_incomplete`, and every error of
    `outbox.service.queue_send`."""
    from mailbridge.outbox import service as outbox_service

    ctx.require(Role.MEMBER)
    item = _active(ctx, draft_id, deps)
    version = int(item["version"])
    if if_match is not None and if_match != version:
        raise _stale()
    request = _send_request(deps.blobs.get_json(str(item["body_key"])), send)
    if not deps.drafts.set_state(ctx.tenant_id, draft_id, expected_version=version, state=SENDING):
        raise _stale()
    reference = {"draft_id": draft_id, "provider": item.get("provider")}
    try:
        accepted = outbox_service.queue_send(ctx, request, outbox, from_draft=reference)
    except Exception:
        deps.drafts.release(ctx.tenant_id, draft_id, claimed_version=version + 1, state=SENDING)
        raise
    return accepted
