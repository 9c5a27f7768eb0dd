"""AI smart replies and the assist panel: `POST /ai/generate-reply`, `/ai/assist/summarize`,
`/ai/assist/draft_email`, `/ai/assist/nba` and `/ai/assist/apply` (`mailbridge.ai.assist`).

Like every AI route: 404 `feature_disabled` while the tenant's `ai` flag is off (checked first),
then the role, then the body; each request counts towards 10 AI requests a minute per tenant
(429 `rate_limited` with Retry-After past that). Answers carry `source` (`local` or `bedrock`).
"""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge.ai.assist import (
    AppliedAction,
    ApplyRequest,
    DraftEmailRequest,
    EmailDraftAnswer,
    GenerateReplyRequest,
    NbaRequest,
    NextBestActions,
    ReplySuggestions,
    SummarizeRequest,
    Summary,
)
from mailbridge.api.ai import AI
from mailbridge.api.context import Guards, current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.tenancy import Role

router = Router()

READ: Guards = [AI, require_role(Role.VIEWER)]
WRITE: Guards = [AI, require_role(Role.MEMBER)]
RATE = {429: ["rate_limited"]}


def _count_request() -> None:
    from mailbridge.ai.wiring import ai_limits

    ai_limits().check(current_tenant(router).tenant_id)


@router.post(
    "/ai/generate-reply",
    summary="Three short reply suggestions to the last message of an email's thread",
    description=(
        "Grounded in the thread's last message (its `reply_text`: quoted history and signature "
        "left out), its category and detected `intent` (complaint, meeting_request, pricing, "
        "question, thanks, other), and the contact, company and newest open deal of its other "
        "party. `tone`: friendly (default), formal, brief. `source: local` (templates by intent, "
        "else by category) or `bedrock` (the tenant's Bedrock setting on); `fallback_reason` "
        "when Bedrock was asked and the local answer stood. 404 `not_found` for an email the "
        "tenant does not hold."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["not_found"], **RATE}),
)
def generate_reply(body: Annotated[GenerateReplyRequest, Body()]) -> ReplySuggestions:
    from mailbridge.ai.assist import generate_reply as suggest
    from mailbridge.ai.wiring import assist_deps

    _count_request()
    return suggest(current_tenant(router), body, assist_deps())


@router.post(
    "/ai/assist/summarize",
    summary="An extractive summary and key facts of a contact, a deal or a thread",
    description=(
        "Exactly one of `contact_id`, `deal_id`, `thread_id`. `sentences`: up to three taken "
        "as written (SumBasic over the record's timeline: email subjects and snippets, notes, "
        "event titles; or over the new text of the thread's newest ten messages), each with the "
        "id it came from. `key_facts`: the last email's date, open deals, the deal's stage, "
        "overdue open tasks. Always `source: local`. 404 `contact_not_found`, `deal_not_found`, "
        "`thread_not_found`."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found", "deal_not_found", "thread_not_found"], **RATE}),
)
def summarize(body: Annotated[SummarizeRequest, Body()]) -> Summary:
    from mailbridge.ai.assist import summarize as summary
    from mailbridge.ai.wiring import assist_deps

    _count_request()
    return summary(current_tenant(router), body, assist_deps())


@router.post(
    "/ai/assist/draft_email",
    summary="A subject and plain-text body to a contact for a goal",
    description=(
        "`goal`: follow_up, meeting_request, intro, check_in, thank_you, renewal. Filled from the "
        "contact, its company and newest open deal (name, stage, close date); `to` is the "
        "contact's primary address. Nothing is sent: pass it to `POST /emails/send` (or apply a "
        "`send_email` action). `source: local` (templates) or `bedrock`. 404 "
        "`contact_not_found`; 400 `contact_has_no_email`."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=READ,
    responses=errors({400: ["contact_has_no_email"], 404: ["contact_not_found"], **RATE}),
)
def draft_email(body: Annotated[DraftEmailRequest, Body()]) -> EmailDraftAnswer:
    from mailbridge.ai.assist import draft_email as write
    from mailbridge.ai.wiring import assist_deps

    _count_request()
    return write(current_tenant(router), body, assist_deps())


@router.post(
    "/ai/assist/nba",
    summary="Next best actions for a contact or a deal, each typed and ready to apply",
    description=(
        "Exactly one of `contact_id`, `deal_id`. Rules: the newest email unanswered for a day, not bulk "
        "mail (`send_email`, a reply draft), an open deal without activity for 14 days "
        "(`create_task`), an open task past due (`schedule_meeting`), a close date within 30 "
        "days (`schedule_meeting`) or past (`update_deal`). Each action has an `action_id`, a "
        "`title`, a `reason` and the `payload` its route takes; apply it with "
        "`POST /ai/assist/apply`. 404 `contact_not_found`, `deal_not_found`."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found", "deal_not_found"], **RATE}),
)
def next_best_actions(body: Annotated[NbaRequest, Body()]) -> NextBestActions:
    from mailbridge.ai.assist import next_best_actions as suggest
    from mailbridge.ai.wiring import assist_deps

    _count_request()
    return suggest(current_tenant(router), body, assist_deps())


@router.post(
    "/ai/assist/apply",
    summary="Perform one suggested action (member role and above)",
    description=(
        "Through the service of the route it mirrors, with that route's checks and errors: "
        "`create_task` (`POST /crm/tasks`), `update_deal` (`PATCH /crm/deals/{id}`), "
        "`schedule_meeting` (`POST /calendar/events`), `send_email` (`POST /emails/send`; "
        "400 `account_required` without `account_id`). The crm actions need the `crm` flag "
        "(404 `feature_disabled`). Once per `action_id`: a repeat answers the first result "
        "with `replayed: true`; the same id with another action is 409 `action_id_reused`."
    ),
    tags=["ai"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: [
                "account_required",
                "unknown_contact",
                "unknown_company",
                "unknown_deal",
                "unknown_email",
                "invalid_record",
                "unknown_stage",
                "account_cannot_send",
                "invalid_message",
                "invalid_recurrence",
            ],
            404: ["feature_disabled", "deal_not_found", "account_not_found", "email_not_found"],
            409: ["action_id_reused", "version_conflict", "already_queued"],
            **RATE,
            503: ["event_publish_failed", "queue_send_failed"],
        }
    ),
)
def apply_action(body: Annotated[ApplyRequest, Body()]) -> AppliedAction:
    from mailbridge.ai.assist import apply_action as apply
    from mailbridge.ai.wiring import assist_deps

    _count_request()
    return apply(current_tenant(router), body, assist_deps())
