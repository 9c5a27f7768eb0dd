"""Tracking routes (no bearer token: the signed token in the path is all there is).

- `GET|HEAD /t/o/{token}`: always 200 with a 1x1 transparent GIF and `Cache-Control: no-store,
  private` (so every open reaches us and no shared cache keeps it), whether the token is good or
  not: nothing about tokens or emails can be learnt from the answer.
- `GET|HEAD /t/c/{token}`: 302 to the URL stored for that link at send time; any bad token
  (forged, another purpose, an unknown email or link) gets 404 `link_not_found` (the API's error
  shape, like every other route), never a redirect.

Every valid hit is stored with its evidence and classification (`mailbridge.tracking.service`).
"""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge.api.context import public
from mailbridge.api.schemas import errors
from mailbridge.errors import NotFound

router = Router()

# The smallest transparent GIF89a: 1x1, one-colour palette, a transparency extension.
PIXEL_BASE64 = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
PIXEL = base64.b64decode(PIXEL_BASE64)
NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}
_PIXEL_RESPONSE: dict[Any, Any] = {
    200: {
        "description": "1x1 transparent GIF (always, even for a bad token)",
        "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_CLICK_RESPONSES: dict[Any, Any] = {
    302: {
        "description": "Redirect to the link's URL stored at send time",
        "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
    },
    **errors({404: ["link_not_found"]}, bearer=False),
}


def _hit(kind: str, token: str) -> str | None:
    from mailbridge.tracking.service import evidence_of, record_hit
    from mailbridge.tracking.wiring import tracking_deps

    event: Any = router.current_event
    evidence = evidence_of(
        event.request_context.http.method, dict(event.headers or {}), event.request_context.http.source_ip
    )
    return record_hit("click" if kind == "click" else "open", token, evidence, tracking_deps())


def _is_head() -> bool:
    event: Any = router.current_event
    return str(event.request_context.http.method).upper() == "HEAD"


@router.route(
    "/t/o/<token>",
    method=["GET", "HEAD"],
    summary="Open pixel of a tracked email (no bearer token)",
    tags=["tracking"],
    responses=_PIXEL_RESPONSE,
    middlewares=[public("a recipient's mail client loads it: the signed token in the URL is the proof")],
)
def open_pixel(token: str) -> Response[str]:
    _hit("open", token)
    response = Response(
        status_code=200,
        content_type="image/gif",
        body="" if _is_head() else PIXEL_BASE64,
        headers={**NO_STORE, "Content-Length": str(len(PIXEL))},
    )
    # The body is already base64 (a bytes body would be, too, but the resolver's response
    # validation serializes the body first, as JSON text, which bytes that are not UTF-8 fail).
    response.base64_encoded = True
    return response


@router.route(
    "/t/c/<token>",
    method=["GET", "HEAD"],
    summary="Tracked link of an email: redirect to its URL (no bearer token)",
    tags=["tracking"],
    status_code=302,
    responses=_CLICK_RESPONSES,
    middlewares=[public("a recipient follows it: the signed token in the URL is the proof")],
)
def click(token: str) -> Response[str]:
    url = _hit("click", token)
    if url is None:
        # The same answer for every bad token: forged, another purpose, an unknown email or link.
        raise NotFound("this link is not valid", code="link_not_found")
    return Response(
        status_code=302, content_type="text/plain", body="", headers={**NO_STORE, "Location": url}
    )
