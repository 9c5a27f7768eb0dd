"""The webhooks function's routes: provider pushes, no JWT (each push proves itself)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge.api.schemas import errors
from mailbridge.webhooks import gmail
from mailbridge.webhooks.wiring import gmail_deps

router = Router()


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
)
def gmail_push() -> Response[str]:
    event: Any = router.current_event
    gmail.receive(event.headers.get("authorization"), event.decoded_body, gmail_deps())
    return Response(status_code=204, body="")
