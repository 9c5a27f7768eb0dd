"""The suppression list under /crm/suppressions, and RFC 8058 one-click unsubscribe at /u/{token}.

- `GET /crm/suppressions` (viewer), `POST /crm/suppressions` (member: add by hand),
  `DELETE /crm/suppressions/{address}` (admin: re-subscribe); 404 `feature_disabled` while the
  tenant's `crm` flag is off.
- `POST /u/{token}` (no bearer token): the `List-Unsubscribe-Post` request of RFC 8058 section
  3.2; lists the token's address as `unsubscribed` and answers 200 with nothing personal in it.
- `GET /u/{token}` (no bearer token): a confirmation page whose button POSTs the same body.
  Never unsubscribes by itself: link scanners and prefetchers GET every URL in a message.
A bad token (changed, truncated, for another tenant or purpose) is 404 `link_not_found` on both.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api.context import Guards, current_tenant, public, require_role
from mailbridge.api.crm import CRM
from mailbridge.api.schemas import BEARER, errors
from mailbridge.campaigns import suppression as service
from mailbridge.campaigns.suppression import Suppression, SuppressionAdded, SuppressionCreate
from mailbridge.models.base import Model
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()

READ: Guards = [CRM, require_role(Role.VIEWER)]
WRITE: Guards = [CRM, require_role(Role.MEMBER)]
ADMIN: Guards = [CRM, require_role(Role.ADMIN)]

# The page is a fixed text: nothing from the token or the request is written into it. No script,
# no external resource; the form posts back to the page's own URL (no `action`).
PAGE_HEADERS = {
    "Cache-Control": "no-store, private",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = "<style>body{font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em}</style>"
CONFIRM_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title>'
    '<meta name="robots" content="noindex">' + _STYLE + "</head><body><h1>Unsubscribe</h1>"
    "<p>Stop receiving these emails?</p>"
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">Unsubscribe</button></form></body></html>'
)
DONE_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title>'
    '<meta name="robots" content="noindex">' + _STYLE + "</head><body><h1>Unsubscribed</h1>"
    "<p>You will not receive these emails any more.</p></body></html>"
)
_HTML = {"text/html": {"schema": {"type": "string"}}}
_ONE_CLICK_RESPONSES: dict[Any, Any] = {
    200: {"description": "Unsubscribed (a short page; no personal data)", "content": _HTML},
    **errors({400: ["one_click_required"], 404: ["link_not_found"]}, bearer=False),
}
_PAGE_RESPONSES: dict[Any, Any] = {
    200: {"description": "The confirmation page", "content": _HTML},
    **errors({404: ["link_not_found"]}, bearer=False),
}
_PUBLIC = public(
    "the recipient's mail provider (RFC 8058) or browser calls it: the encrypted, authenticated "
    "token in the URL is the proof"
)


class SuppressionRemoved(Model):
    address: str
    removed: bool = True


# ---------------------------------------------------------------------------------- list


@router.get(
    "/crm/suppressions",
    summary="The suppression list, in address order (campaigns skip these addresses)",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def list_suppressions(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> Page[Suppression]:
    from mailbridge.campaigns.wiring import record_deps

    return service.list_suppressions(current_tenant(router), record_deps(), cursor=cursor, limit=limit)


@router.post(
    "/crm/suppressions",
    summary="Add an address to the suppression list by hand (reason `manual`)",
    description="Idempotent: an address already listed keeps its entry (`created: false`), "
    "whatever its reason.",
    tags=["crm"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors({}),
)
def add_suppression(body: Annotated[SuppressionCreate, Body()]) -> SuppressionAdded:
    from mailbridge.campaigns.wiring import record_deps

    return service.add_manual(current_tenant(router), body, record_deps())


@router.delete(
    "/crm/suppressions/<address>",
    summary="Take an address off the suppression list (re-subscribe)",
    description="The address URL-encoded, any case. 404 `suppression_not_found` when it is not listed.",
    tags=["crm"],
    security=BEARER,
    middlewares=ADMIN,
    responses=errors({404: ["suppression_not_found"]}),
)
def remove_suppression(address: str) -> SuppressionRemoved:
    from mailbridge.campaigns.wiring import record_deps

    normal = unquote(address).strip().lower()
    service.remove(current_tenant(router), normal, record_deps())
    return SuppressionRemoved(address=normal)


# ---------------------------------------------------------------------------------- one-click


def _body() -> tuple[str, bytes]:
    event: Any = router.current_event
    content_type = str((event.headers or {}).get("content-type") or "")
    raw = event.body or ""
    if len(raw) > service.MAX_BODY_BYTES * 2:
        return content_type, b""
    try:
        data = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode("utf-8")
    except (binascii.Error, ValueError):
        return content_type, b""
    return content_type, data


@router.post(
    "/u/<token>",
    summary="RFC 8058 one-click unsubscribe (no bearer token)",
    description="Body `List-Unsubscribe=One-Click` (application/x-www-form-urlencoded or "
    "multipart/form-data). Lists the address the token was made for as `unsubscribed`; the same "
    "request again changes nothing and answers the same. The token is checked before the body.",
    tags=["crm"],
    responses=_ONE_CLICK_RESPONSES,
    middlewares=[_PUBLIC],
)
def one_click(token: str) -> Response[str]:
    from mailbridge.campaigns.wiring import suppression_deps

    content_type, body = _body()
    service.one_click(suppression_deps(), token, content_type, body)
    return Response(
        status_code=200, content_type="text/html; charset=utf-8", body=DONE_PAGE, headers=PAGE_HEADERS
    )


@router.get(
    "/u/<token>",
    summary="Unsubscribe confirmation page (no bearer token): its button POSTs the one-click body",
    description="Never unsubscribes by itself (link scanners fetch every URL of a message).",
    tags=["crm"],
    responses=_PAGE_RESPONSES,
    middlewares=[_PUBLIC],
)
def confirm_page(token: str) -> Response[str]:
    from mailbridge.campaigns.wiring import suppression_deps

    service.token_claims(suppression_deps(), token)
    return Response(
        status_code=200, content_type="text/html; charset=utf-8", body=CONFIRM_PAGE, headers=PAGE_HEADERS
    )
