"""The webhooks function's routes: provider pushes, no JWT (each push proves itself)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge.api.auditing import not_audited
from mailbridge.api.context import public
from mailbridge.api.errors import status_for
from mailbridge.api.schemas import errors
from mailbridge.config import get_settings
from mailbridge.crm.remote.salesforce_outbound import NOTIFICATIONS_RESPONSE, soap_fault
from mailbridge.crm.sync import webhooks as crm_webhooks
from mailbridge.errors import Invalid, MailbridgeError
from mailbridge.webhooks import gmail, graph
from mailbridge.webhooks.wiring import crm_webhook_deps, gmail_deps, graph_deps

router = Router()

# Issue 19 point 4: a push is a provider's hint that a mailbox changed (DESIGN: "the stored cursor
# is the truth"), not a change made by a user; like tracking hits, machine traffic is not audited.
PUSH_NOT_AUDITED = "a provider's push hint (verified, deduped, queued), not a user's change"


@router.post(
    "/webhooks/gmail",
    summary="Gmail change notification pushed by Pub/Sub (OIDC token verified, deduped, sync queued)",
    description=(
        "204 once the sync is queued (or the push was a duplicate, or names no connected mailbox). "
        "401 `missing_token` / `invalid_token` (`details.reason`: `malformed_token`, "
        "`wrong_audience`, `wrong_issuer`, `wrong_email`, `email_unverified`, `expired`, "
        "`bad_signature`); 403 `push_not_configured`; 400 `invalid_push`; 502 `certs_unavailable` "
        "and 503 `queue_send_failed` are retried by Pub/Sub."
    ),
    tags=["webhooks"],
    security=[],
    status_code=204,
    responses={
        204: {"description": "Acknowledged: the sync is queued (or nothing was to be done)"},
        **errors(
            {
                400: ["invalid_push"],
                401: ["missing_token", "invalid_token"],
                403: ["push_not_configured"],
                502: ["certs_unavailable"],
                503: ["queue_send_failed"],
            },
            bearer=False,
        ),
    },
    middlewares=[
        public("Pub/Sub pushes it: its OIDC token is verified instead"),
        not_audited(PUSH_NOT_AUDITED),
    ],
)
def gmail_push() -> Response[str]:
    event: Any = router.current_event
    gmail.receive(event.headers.get("authorization"), event.decoded_body, gmail_deps())
    return Response(status_code=204, body="")


@router.post(
    "/webhooks/graph",
    summary="Microsoft Graph change and lifecycle notifications, and the subscription validation handshake",
    description=(
        "With `?validationToken=`: 200 `text/plain`, the decoded token as the body (400 "
        "`invalid_validation_token` when it is over 512 characters, holds a control character or is "
        'still percent-encoded). Otherwise a `{"value": [...]}` batch: 202 once every authentic '
        "item (known `subscriptionId`, matching `clientState`) has its sync, renewal or recreation "
        "queued; 400 `invalid_notification` (not a batch); 403 `forged_notification` (no authentic "
        "item: nothing queued); 503 `queue_send_failed` (Graph retries)."
    ),
    tags=["webhooks"],
    security=[],
    status_code=202,
    responses={
        200: {
            "description": "The validation handshake: the decoded validationToken",
            "content": {"text/plain": {"schema": {"type": "string", "maxLength": graph.MAX_TOKEN_CHARS}}},
        },
        202: {"description": "Accepted: the authentic notifications are queued"},
        **errors(
            {
                400: ["invalid_validation_token", "invalid_notification"],
                403: ["forged_notification"],
                503: ["queue_send_failed"],
            },
            bearer=False,
        ),
    },
    middlewares=[
        public("Microsoft Graph pushes it: each notification's clientState is checked instead"),
        not_audited(PUSH_NOT_AUDITED),
    ],
)
def graph_notification() -> Response[str]:
    event: Any = router.current_event
    token = (event.query_string_parameters or {}).get("validationToken")
    if token is not None:
        return Response(
            status_code=200,
            content_type="text/plain; charset=utf-8",
            body=graph.validation_answer(token),
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
        )
    try:
        body = event.decoded_body
    except (ValueError, UnicodeDecodeError):
        raise Invalid("the body is not a Graph notification batch", code="invalid_notification") from None
    graph.receive(body, graph_deps())
    return Response(status_code=202, body="")


def _raw_body(event: Any) -> bytes:
    """The request body's bytes as the sender signed them (API Gateway base64-encodes binary)."""
    raw = event.raw_event.get("body") or ""
    if event.raw_event.get("isBase64Encoded"):
        try:
            return base64.b64decode(raw, validate=True)
        except (ValueError, binascii.Error):
            raise Invalid("the body is not valid base64", code="invalid_body") from None
    return str(raw).encode()


def _soap_faults(statuses: dict[int, list[str]], *, bearer: bool) -> dict[int, Any]:
    """`errors(...)` for a SOAP endpoint: the same statuses and codes, answered as a SOAP 1.1
    Fault in `text/xml` (the code in `faultstring`), which is what Salesforce reads."""
    return {
        status: {**response, "content": {"text/xml": {"schema": {"type": "string"}}}}
        for status, response in errors(statuses, bearer=bearer).items()
    }


@router.post(
    "/webhooks/salesforce",
    summary="Salesforce outbound messages (SOAP): the org checked, deduped, targeted pulls queued",
    description=(
        "200 `text/xml` with the `notificationsResponse` Ack Salesforce requires once the contacts "
        "named are queued for a pull (also for notifications seen before). Refusals are SOAP "
        "faults with the status: 403 `organization_mismatch` (no integration connected to the org), "
        "400 `malformed_xml`, `xml_dtd_refused`, `not_outbound_message`, `missing_element`, "
        "`invalid_salesforce_id`, `no_notifications`, `too_many_notifications`, "
        "`invalid_field_name`; 413 `outbound_message_too_large`; 503 `queue_send_failed` "
        "(Salesforce retries for 24 hours)."
    ),
    tags=["webhooks"],
    security=[],
    responses={
        200: {
            "description": "The Ack",
            "content": {"text/xml": {"schema": {"type": "string"}}},
        },
        **_soap_faults(
            {
                400: [
                    "malformed_xml",
                    "xml_dtd_refused",
                    "not_outbound_message",
                    "missing_element",
                    "invalid_salesforce_id",
                    "no_notifications",
                    "too_many_notifications",
                    "invalid_field_name",
                    "invalid_body",
                ],
                403: ["organization_mismatch"],
                413: ["outbound_message_too_large"],
                503: ["queue_send_failed"],
            },
            bearer=False,
        ),
    },
    middlewares=[
        public("Salesforce sends it: the message's org must be a connected integration's"),
        not_audited(PUSH_NOT_AUDITED),
    ],
)
def salesforce_outbound() -> Response[str]:
    event: Any = router.current_event
    try:
        crm_webhooks.salesforce(_raw_body(event), crm_webhook_deps())
    except MailbridgeError as error:
        if status_for(error) >= 500:  # a server fault: the JSON error, Salesforce retries
            raise
        return Response(
            status_code=status_for(error),
            content_type="text/xml; charset=utf-8",
            body=soap_fault(error).decode(),
        )
    return Response(
        status_code=200, content_type="text/xml; charset=utf-8", body=NOTIFICATIONS_RESPONSE.decode()
    )


@router.post(
    "/webhooks/hubspot",
    summary="HubSpot webhooks (v3 signature, 5-minute window): contact changes queued as targeted pulls",
    description=(
        "204 once the contact events of connected portals are queued (seen events and other "
        "portals' are acknowledged). 401 `missing_signature`, `invalid_timestamp`, "
        "`stale_timestamp`, `invalid_signature`; 400 `invalid_json`, `invalid_webhook_events`, "
        "`no_events`, `too_many_events`; 413 `webhook_body_too_large`; 503 `queue_send_failed`."
    ),
    tags=["webhooks"],
    security=[],
    status_code=204,
    responses={
        204: {"description": "Acknowledged"},
        **errors(
            {
                400: [
                    "invalid_json",
                    "invalid_webhook_events",
                    "no_events",
                    "too_many_events",
                    "invalid_body",
                ],
                401: ["missing_signature", "invalid_timestamp", "stale_timestamp", "invalid_signature"],
                413: ["webhook_body_too_large"],
                503: ["queue_send_failed"],
            },
            bearer=False,
        ),
    },
    middlewares=[
        public("HubSpot sends it: its v3 signature is verified instead"),
        not_audited(PUSH_NOT_AUDITED),
    ],
)
def hubspot_webhook() -> Response[str]:
    event: Any = router.current_event
    context = event.request_context
    query = event.raw_event.get("rawQueryString") or ""
    configured = get_settings().crm_oauth.hubspot_webhook_url
    path = event.raw_event.get("rawPath") or event.path
    uri = configured or f"https://{context.domain_name}{path}" + (f"?{query}" if query else "")
    crm_webhooks.hubspot("POST", uri, _raw_body(event), dict(event.headers or {}), crm_webhook_deps())
    return Response(status_code=204, body="")
