"""Calendar: events, occurrences, ICS import and export, the subscription feed, invitations and RSVP.

Viewers read; members create, change, delete, import, invite and answer. Two routes take no
bearer token (API Gateway lets them through without the JWT authorizer): the subscription feed
(`/calendar/feed/{token}`) and RSVP links (`/calendar/rsvp/{token}`); their tokens are signed
(`mailbridge.calendar.tokens`). Event writes (20) and ICS imports/exports (5) are limited per
tenant and minute: 429 `rate_limited` with Retry-After.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api import deps
from mailbridge.api.auditing import audit_as, audit_read, audit_write
from mailbridge.api.context import Guards, current_tenant, public, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.calendar import itip, service
from mailbridge.calendar.models import (
    Deleted,
    Event,
    EventCreate,
    EventUpdate,
    FeedInfo,
    ImportResult,
    InviteRequest,
    InviteResult,
    Occurrences,
    Reply,
    RespondRequest,
    RsvpResult,
)
from mailbridge.calendar.wiring import calendar_deps, calendar_settings
from mailbridge.errors import Invalid, PayloadTooLarge, UnsupportedMediaType
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()

READ: Guards = [require_role(Role.VIEWER)]
WRITE: Guards = [require_role(Role.MEMBER)]
ICS_TYPES = ("text/calendar", "application/ics")
CALENDAR_RESPONSE: Any = {
    "description": "iCalendar (RFC 5545): the events with their overrides, a VTIMEZONE for every TZID",
    "content": {"text/calendar": {"schema": {"type": "string"}}},
}
RATE = {429: ["rate_limited"]}

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")]


def _base_url() -> str:
    """Where links in mail and feed URLs point: PUBLIC_API_URL, or the API this request came to."""
    configured = calendar_settings().public_api_url
    if configured:
        return configured.rstrip("/")
    event: Any = router.current_event
    context = event.request_context
    host = context.domain_name or event.headers.get("host", "localhost")
    proto = event.headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    stage = context.stage
    prefix = "" if not stage or stage == "$default" else f"/{stage}"
    return f"{proto}://{host}{prefix}"


def _mail() -> itip.MailDeps:
    return itip.MailDeps(outbox=deps.outbox_deps(), base_url=_base_url())


def _calendar_response(data: bytes, filename: str) -> Response[str]:
    return Response(
        status_code=200,
        content_type="text/calendar; charset=utf-8",
        body=data.decode("utf-8"),
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


# ---------------------------------------------------------------------------------- events


@router.post(
    "/calendar/events",
    summary="Create an event (one-off or recurring), optionally linked to CRM records",
    description="Times: `{date_time, time_zone}` (IANA zone) or `{date}` for all-day. Announces "
    "`calendar.event_created`.",
    tags=["calendar"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors(
        {
            400: [
                "unknown_contact",
                "unknown_company",
                "unknown_deal",
                "invalid_recurrence",
                "event_too_large",
            ],
            **RATE,
            503: ["event_publish_failed"],
        }
    ),
)
def create_event(body: Annotated[EventCreate, Body()]) -> Event:
    return service.create_event(current_tenant(router), body, calendar_deps())


@router.get(
    "/calendar/events",
    summary="Occurrences of every event in a range, recurring events expanded (by start)",
    description="Overrides and EXDATEs applied, in each event's own time zone (a 09:00 meeting stays "
    "at 09:00 local across DST changes). Times without an offset are UTC. At most 400 days.",
    tags=["calendar"],
    security=BEARER,
    middlewares=READ,
    responses=errors({400: ["invalid_range", "range_too_long", "range_too_busy"]}),
)
def list_occurrences(
    from_: Annotated[datetime, Query(alias="from", description="Start of the range (inclusive)")],
    to: Annotated[datetime, Query(description="End of the range (exclusive)")],
    limit: Annotated[
        int, Query(ge=1, le=service.MAX_OCCURRENCES, description="Most occurrences in the answer")
    ] = service.DEFAULT_OCCURRENCES,
) -> Occurrences:
    return service.list_occurrences(current_tenant(router), from_, to, calendar_deps(), limit=limit)


@router.get(
    "/calendar/events/<event_id>",
    summary="One event (a series with its overrides)",
    tags=["calendar"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["event_not_found"]}),
)
def get_event(event_id: str) -> Event:
    return service.get_event(current_tenant(router), event_id, calendar_deps())


@router.put(
    "/calendar/events/<event_id>",
    summary="Replace an event; an invited event tells its attendees (REQUEST, or CANCEL)",
    description="SEQUENCE goes up when the time, recurrence or status changes. With `version` the "
    "change applies only to that version (409 `version_conflict` otherwise). An event pulled from "
    "Google or Outlook is pushed back; 422 `provider_override_unsupported` (`details.reason`: "
    "`override_removed`, `occurrence_cancelled`, `not_an_occurrence`, `provider`) refuses the "
    "occurrence edits that cannot be.",
    tags=["calendar"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: [
                "unknown_contact",
                "unknown_company",
                "unknown_deal",
                "invalid_recurrence",
                "event_too_large",
                "invalid_message",
            ],
            404: ["event_not_found"],
            409: ["version_conflict"],
            422: ["provider_override_unsupported"],
            **RATE,
            503: ["queue_send_failed"],
        }
    ),
)
def update_event(event_id: str, body: Annotated[EventUpdate, Body()]) -> Event:
    return itip.update_event(current_tenant(router), event_id, body, calendar_deps(), _mail())


@router.delete(
    "/calendar/events/<event_id>",
    summary="Delete an event; an invited event sends CANCEL to its attendees",
    tags=["calendar"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors({404: ["event_not_found"], 409: ["version_conflict"], **RATE}),
)
def delete_event(event_id: str) -> Deleted:
    itip.delete_event(current_tenant(router), event_id, calendar_deps(), _mail())
    return Deleted(id=event_id)


# ---------------------------------------------------------------------------------- invitations


@router.post(
    "/calendar/events/<event_id>/invite",
    summary="Send the attendees an iTIP REQUEST with their RSVP links, from a connected mailbox",
    description="One message per attendee (the organizer excepted): text, `text/calendar; "
    "method=REQUEST` and an .ics attachment, through the outbox.",
    tags=["calendar"],
    security=BEARER,
    status_code=202,
    middlewares=WRITE,
    responses=errors(
        {
            400: ["organizer_mismatch", "no_attendees", "account_cannot_send", "invalid_message"],
            404: ["event_not_found", "account_not_found"],
            409: ["event_cancelled", "not_organizer", "version_conflict"],
            **RATE,
            503: ["queue_send_failed"],
        }
    ),
)
def invite(event_id: str, body: Annotated[InviteRequest, Body()]) -> InviteResult:
    return itip.invite(current_tenant(router), event_id, body, calendar_deps(), _mail())


@router.post(
    "/calendar/events/<event_id>/respond",
    summary="Answer an invitation someone else sent (sends the organizer a REPLY)",
    tags=["calendar"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: ["not_an_invitation", "account_cannot_send", "invalid_message"],
            404: ["event_not_found", "account_not_found"],
            409: ["invitation_cancelled", "version_conflict"],
            **RATE,
        }
    ),
)
def respond(event_id: str, body: Annotated[RespondRequest, Body()]) -> Event:
    return itip.respond(current_tenant(router), event_id, body, calendar_deps(), _mail())


@router.get(
    "/calendar/invitations",
    summary="Invitations from others waiting for an answer, latest received first",
    tags=["calendar"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def list_invitations(limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[Event]:
    return itip.list_invitations(current_tenant(router), calendar_deps(), cursor=cursor, limit=limit)


@router.get(
    "/calendar/rsvp/<token>",
    summary="An RSVP link from an invitation (no bearer token): accept, decline or maybe",
    description="Sets the attendee's PARTSTAT and sends the organizer an iTIP REPLY; the same "
    "answer again changes nothing (`changed: false`).",
    tags=["calendar"],
    responses=errors(
        {
            403: ["invalid_token", "token_expired"],
            404: ["event_not_found", "attendee_not_found"],
            409: ["event_cancelled"],
        }
    ),
    middlewares=[
        public("an invitee without an account answers: the signed RSVP token is the proof"),
        audit_write("sets the attendee's answer"),
    ],
)
def rsvp(token: str, status: Annotated[Reply, Query(description="The answer")]) -> RsvpResult:
    deps = calendar_deps()
    # Verified first so the audit entry is filed under the token's tenant (itip.rsvp checks it too).
    claims = deps.signer.rsvp_claims(token, deps.now())
    audit_as(router, claims.tenant_id, {"event_id": claims.event_id})
    return itip.rsvp(token, status, deps, _mail())


# ---------------------------------------------------------------------------------- ICS


def _import_bytes() -> bytes:
    """The file of `POST /calendar/import`: a text/calendar body, or the part named `file` of a
    multipart/form-data body (RFC 7578)."""
    event = router.current_event
    content_type = " ".join((event.headers.get("content-type") or "").split())
    media = content_type.split(";", 1)[0].strip().lower()
    raw = event.body or ""
    if len(raw) > service.MAX_IMPORT_BYTES * 4 // 3 + 4:
        raise _too_large()
    try:
        data = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise Invalid("the request body is not valid base64", code="invalid_body") from exc
    if len(data) > service.MAX_IMPORT_BYTES:
        raise _too_large()
    if media in ICS_TYPES:
        return data
    if media == "multipart/form-data":
        return _file_part(content_type, data)
    raise UnsupportedMediaType(
        "send the file as text/calendar, or as the `file` part of multipart/form-data",
        details={"accepted": [*ICS_TYPES, "multipart/form-data"]},
    )


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file is larger than {service.MAX_IMPORT_BYTES // (1024 * 1024)} MB",
        details={"limit": service.MAX_IMPORT_BYTES},
    )


def _file_part(content_type: str, data: bytes) -> bytes:
    from email import policy
    from email.parser import BytesParser

    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("ascii", "replace") + b"\r\n\r\n" + data
    )
    if not message.is_multipart():
        raise Invalid("the multipart body cannot be read", code="invalid_multipart")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file" or part.get_filename():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    raise Invalid("the form has no part named `file`", code="no_file")


@router.post(
    "/calendar/import",
    summary="Import an iCalendar file: every VEVENT imported, updated, unchanged or skipped with a reason",
    description="Body: the file as `text/calendar`, or the `file` part of `multipart/form-data`, at "
    "most 2 MB. Events are matched by UID; a lower SEQUENCE than the stored one is skipped "
    "(`stale_sequence`); importing the same file again changes nothing.",
    tags=["calendar"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: [
                "not_icalendar",
                "too_deep",
                "too_many_events",
                "invalid_multipart",
                "no_file",
                "invalid_body",
            ],
            413: ["payload_too_large"],
            415: ["unsupported_media_type"],
            **RATE,
            503: ["event_publish_failed"],
        }
    ),
)
def import_calendar() -> ImportResult:
    return service.import_calendar(current_tenant(router), _import_bytes(), calendar_deps())


@router.get(
    "/calendar/export.ics",
    summary="The tenant's events as an iCalendar file (all of them, or those meeting a range)",
    tags=["calendar"],
    security=BEARER,
    middlewares=[*READ, audit_read("an export download of the calendar")],
    responses={
        200: CALENDAR_RESPONSE,
        **errors({400: ["invalid_range", "range_too_long", "range_too_busy"], **RATE}),
    },
)
def export_calendar(
    from_: Annotated[datetime | None, Query(alias="from", description="Start of the range")] = None,
    to: Annotated[datetime | None, Query(description="End of the range (exclusive)")] = None,
) -> Response[str]:
    data = service.export_calendar(current_tenant(router), from_, to, calendar_deps())
    return _calendar_response(data, "calendar.ics")


@router.get(
    "/calendar/feed",
    summary="Your subscription feed URL (for calendar apps; anyone with it can read the calendar)",
    tags=["calendar"],
    security=BEARER,
    middlewares=[*READ, audit_read("the feed URL, a credential to the calendar")],
    responses=errors({}),
)
def get_feed() -> FeedInfo:
    return service.feed_info(current_tenant(router), calendar_deps(), _base_url())


@router.post(
    "/calendar/feed/rotate",
    summary="A new subscription feed URL; the old one stops working",
    tags=["calendar"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def rotate_feed() -> FeedInfo:
    return service.rotate_feed(current_tenant(router), calendar_deps(), _base_url())


@router.get(
    "/calendar/feed/<token>",
    summary="A subscription feed (no bearer token; the token is the secret)",
    description="The tenant's events from 90 days ago to 400 days ahead. Feeds count as exports.",
    tags=["calendar"],
    responses={200: CALENDAR_RESPONSE, **errors({404: ["feed_not_found"], **RATE})},
    middlewares=[public("calendar apps subscribe without a login: the feed token in the URL is the secret")],
)
def feed(token: str) -> Response[str]:
    return _calendar_response(service.feed(token, calendar_deps()), "mailbridge.ics")
