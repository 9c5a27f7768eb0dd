"""Connected mailboxes: connect, list, read, remove, sync now, sync status."""

from __future__ import annotations

import re
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge import accounts
from mailbridge.api import deps
from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.errors import NotFound
from mailbridge.models.account import AccountCreate, AccountOut, AccountStatus
from mailbridge.models.base import Model
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()
_ACCOUNT_ID = re.compile(r"^acc_[0-9a-f]{20}$")


class AccountDeleted(Model):
    account_id: str
    purge_queued: bool


def _valid(account_id: str) -> str:
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise NotFound("no such account", code="account_not_found")
    return account_id


@router.post(
    "/accounts",
    summary="Connect a mailbox (logs in first; credentials are stored encrypted and never returned)",
    description=(
        "A clear 4xx for every way connecting can fail: 422 `auth_failed` (bad credentials), "
        "`unreachable`, `tls_failed`, `timeout`; 400 `host_not_allowed` or `insecure_not_allowed`; "
        "409 `account_exists`. On success the first sync is queued: watch `GET /accounts/{id}/status`."
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
    return accounts.connect_account(current_tenant(router), body, deps.account_deps())


@router.get(
    "/accounts",
    summary="Connected mailboxes of the tenant",
    tags=["accounts"],
    security=BEARER,
    responses=errors({}),
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
)
def get_account(account_id: str) -> AccountOut:
    return accounts.get_account(current_tenant(router), _valid(account_id), deps.account_deps())


@router.delete(
    "/accounts/<account_id>",
    summary="Disconnect a mailbox: credentials are removed at once; synced mail stays unless purge=true",
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
    tags=["accounts"],
    security=BEARER,
    status_code=202,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["account_not_found"], 503: ["queue_send_failed"]}),
)
def sync_account(account_id: str) -> AccountStatus:
    return accounts.request_sync(current_tenant(router), _valid(account_id), deps.account_deps())


@router.get(
    "/accounts/<account_id>/status",
    summary="Sync stage, last success, last error, and per folder the cursor and stored vs server counts",
    tags=["accounts"],
    security=BEARER,
    responses=errors({404: ["account_not_found"]}),
)
def account_status(account_id: str) -> AccountStatus:
    return accounts.account_status(current_tenant(router), _valid(account_id), deps.account_deps())
