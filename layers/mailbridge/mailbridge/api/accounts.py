"""Connected mailboxes: connect, list, read, change, remove, sync now, sync status."""

from __future__ import annotations

import re
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge import accounts
from mailbridge.api import deps
from mailbridge.api.auditing import audit_read
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.errors import NotFound
from mailbridge.models.account import AccountCreate, AccountOut, AccountPatch, AccountStatus
from mailbridge.models.base import Model
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()
_ACCOUNT_ID = re.compile(r"acc_[0-9a-f]{20}")


class AccountDeleted(Model):
    account_id: str
    purge_queued: bool


def _valid(account_id: str) -> str:
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise NotFound("no such account", code="account_not_found")
    return account_id


def _remaining_ms() -> int | None:
    """The Lambda's remaining time: the login deadline of this request is derived from it."""
    context = router.lambda_context
    return context.get_remaining_time_in_millis() if context is not None else None


_LOGIN_ERRORS = (
    "422 `auth_failed` (credentials refused), `unreachable`, `tls_failed`, `connection_lost`, or "
    "`timeout` when the server has not answered completely within the request's login deadline "
    "(at most 20 s, and always well inside the API's own timeout), each with `details.server` "
    "(`imap` or `smtp`); 400 `host_not_allowed` (the host resolves to a private or reserved "
    "address) or `insecure_not_allowed`. A value refused at the boundary is 422 "
    "`validation_error` whose `details[].type` names the rule: `control_characters`, "
    "`header_injection` (display name), `invalid_folder_name`, `duplicate_folder`."
)


@router.post(
    "/accounts",
    summary="Connect a mailbox (logs in first; credentials are stored encrypted and never returned)",
    description=(
        "Logs in to IMAP (and SMTP when given) before saving. A clear 4xx for every way connecting "
        f"can fail: {_LOGIN_ERRORS} 409 `account_exists` when the address, or the IMAP login (server "
        "and user name), is already connected in this tenant; `details.field` says which "
        "(`address` or `login`). On success the first sync is queued (`sync.queued_at`): watch "
        "`GET /accounts/{id}/status`."
    ),
    tags=["accounts"],
    security=BEARER,
    status_code=201,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["host_not_allowed", "insecure_not_allowed"],
            409: ["account_exists"],
            422: ["auth_failed", "unreachable", "tls_failed", "timeout", "connection_lost"],
            429: ["provider_rate_limited"],
            502: ["unavailable", "protocol_error"],
            503: ["queue_send_failed"],
        }
    ),
)
def create_account(body: Annotated[AccountCreate, Body()]) -> AccountOut:
    return accounts.connect_account(
        current_tenant(router), body, deps.account_deps(), remaining_ms=_remaining_ms()
    )


@router.get(
    "/accounts",
    summary="Connected mailboxes of the tenant (but other users' private ones)",
    tags=["accounts"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_accounts(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Page[AccountOut]:
    return accounts.list_accounts(current_tenant(router), deps.account_deps(), cursor=cursor, limit=limit)


@router.get(
    "/accounts/<account_id>",
    summary="One connected mailbox",
    tags=["accounts"],
    security=BEARER,
    responses=errors({404: ["account_not_found"]}),
    middlewares=[require_role(Role.VIEWER), audit_read("the mailbox's connection details")],
)
def get_account(account_id: str) -> AccountOut:
    return accounts.get_account(current_tenant(router), _valid(account_id), deps.account_deps())


@router.patch(
    "/accounts/<account_id>",
    summary="Change a mailbox: display name, folders, IMAP password, SMTP settings",
    description=(
        "Fields left out stay as they are; `display_name: null` clears the name, `smtp: null` "
        "removes sending. A new IMAP password or changed SMTP settings are tried with a login "
        f"before anything is saved: {_LOGIN_ERRORS} 400 `smtp_incomplete` when SMTP is set up "
        "for the first time without host, username and password. A successful IMAP login clears "
        "an `auth_failed` sync failure and queues a sync. 409 `version_conflict` when `version` "
        "is given and the account changed since; 404 `account_not_found`; 400 `oauth_account` "
        "when an IMAP password or SMTP settings are sent for a mailbox connected through OAuth. "
        "`visibility` says what the rest of the tenant sees of the mailbox's mail (`private`, "
        "`metadata`, `subject`, `full`; null: the tenant default of `GET /settings/privacy`): only "
        "its owner (`owner`, who connected it) or a tenant admin or owner may set it, anyone else "
        "gets 403 `not_mailbox_owner`. Another user's `private` mailbox is 404 `account_not_found` "
        "on every account route. Returns the account with its new `version`."
    ),
    tags=["accounts"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["host_not_allowed", "insecure_not_allowed", "smtp_incomplete", "oauth_account"],
            403: ["not_mailbox_owner"],
            404: ["account_not_found"],
            409: ["version_conflict", "account_exists"],
            422: ["auth_failed", "unreachable", "tls_failed", "timeout", "connection_lost"],
            429: ["provider_rate_limited"],
            502: ["unavailable", "protocol_error"],
            503: ["queue_send_failed"],
        }
    ),
)
def update_account(account_id: str, body: Annotated[AccountPatch, Body()]) -> AccountOut:
    return accounts.update_account(
        current_tenant(router),
        _valid(account_id),
        body,
        deps.account_deps(),
        remaining_ms=_remaining_ms(),
    )


@router.delete(
    "/accounts/<account_id>",
    summary="Disconnect a mailbox: credentials are removed at once; synced mail stays unless purge=true",
    description=(
        "A mailbox connected through OAuth (Gmail) also has its push watch stopped and its grant "
        "revoked at the provider first, best effort: a provider that is down does not keep it."
    ),
    tags=["accounts"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["account_not_found"], 503: ["queue_send_failed"]}),
)
def delete_account(account_id: str, purge: Annotated[bool, Query()] = False) -> AccountDeleted:
    accounts.delete_account(current_tenant(router), _valid(account_id), deps.account_deps(), purge=purge)
    return AccountDeleted(account_id=account_id, purge_queued=purge)


@router.post(
    "/accounts/<account_id>/sync",
    summary="Queue a sync now (also re-enables an account whose credentials had failed)",
    description=(
        "The status then shows `queued_at` until the sync starts. 409 `reauth_required` for an "
        "OAuth mailbox whose grant was revoked: reconnect it through "
        "`/oauth/{provider}/start?account_id=...`."
    ),
    tags=["accounts"],
    security=BEARER,
    status_code=202,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["account_not_found"], 409: ["reauth_required"], 503: ["queue_send_failed"]}),
)
def sync_account(account_id: str) -> AccountStatus:
    return accounts.request_sync(current_tenant(router), _valid(account_id), deps.account_deps())


@router.post(
    "/accounts/<account_id>/reconcile",
    summary="Queue a reconcile: compare each folder's ids on the server with what is stored, and repair",
    description=(
        "Answers 202 with the account status and `Location: /accounts/{id}/status`, where "
        "`reconcile_queued_at` shows the reconcile until it finishes and each folder's `reconcile` "
        "then holds its findings (server and stored counts, `missing`, `extra`, `repaired`). "
        "Idempotent while one is queued or running: a repeated request queues nothing and answers "
        "the same. Missing messages are stored through the sync's ingest, extra ones removed as "
        "the sync removes them. A nightly schedule reconciles every active account too. 409 "
        "`reauth_required` for an OAuth mailbox whose grant was revoked."
    ),
    tags=["accounts"],
    security=BEARER,
    status_code=202,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["account_not_found"], 409: ["reauth_required"], 503: ["queue_send_failed"]}),
)
def reconcile_account(account_id: str) -> Response[AccountStatus]:
    account_id = _valid(account_id)
    status, _ = accounts.request_reconcile(current_tenant(router), account_id, deps.account_deps())
    return Response(
        status_code=202,
        content_type="application/json",
        body=status,
        headers={"Location": f"/accounts/{account_id}/status"},
    )


@router.get(
    "/accounts/<account_id>/status",
    summary="Sync stage, last success, last error, and per folder the cursor, counts, reconcile and verdict",
    description=(
        "`queued_at` is set while a sync is queued and not started, `reconcile_queued_at` while a "
        "reconcile is queued or running. Per folder, `state` is `active`, or `missing` with "
        "`reason` `folder_not_found` / `folder_not_selectable` for a selected folder the server "
        "does not have (the other folders sync as usual); `server_count` and `stored_count`; "
        "`reconcile` (the last reconcile's findings) and `last_reconcile_at`; "
        "`cursor_age_seconds` (since the folder's cursor last moved); `since_last_push_seconds`; "
        "and `verdict`, the first that holds of: `reauth_required` (the grant was revoked or the "
        "IMAP password refused), `failed` (the last sync failed, the folder is missing, or its "
        "last reconcile stopped with an error), `gap_found` (the last reconcile found missing or "
        "extra messages; `reconcile.repaired` says how many it repaired), `lagging` (the cursor "
        "has not moved for an hour, or never), `healthy`."
    ),
    tags=["accounts"],
    security=BEARER,
    responses=errors({404: ["account_not_found"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def account_status(account_id: str) -> AccountStatus:
    return accounts.account_status(current_tenant(router), _valid(account_id), deps.account_deps())
