"""The webhooks function's routes: provider pushes, no JWT (each push proves itself)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge.api.auditing import not_audited
from mailbridge.api.context import public
from mailbridge.api.schemas import errors
from mailbridge.errors import Invalid
from mailbridge.webhooks import gmail, graph
from mailbridge.webhooks.wiring import gmail_deps, graph_deps

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
