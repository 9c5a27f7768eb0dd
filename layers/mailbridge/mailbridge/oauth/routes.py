"""The oauth function's routes: `GET /oauth/{provider}/start` (bearer token) and
`GET /oauth/{provider}/callback` (no token: the state is the proof).

The callback always answers a redirect to `OAUTH_RETURN_URL` with `?outcome=connected|
reconnected|error&code=...&account_id=...` (or, with no return URL configured, the same as a
JSON body with 200): whatever the provider or a forger puts in the query, it is never a 4xx/5xx
page, and the front end learns the outcome from its own URL. The callback URL carries the
authorization code, so the answer asks browsers not to store it or send it as a Referer.

The callback is an audited write (`mailbridge.api.auditing`): once the state is taken, its entry
is filed under the state's tenant with the state's user as the actor, the provider and the
account or integration id, and the outcome with its code (the redirect is a 302 either way);
never the code, the tokens or the state value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from mailbridge.api.auditing import audit_as, audit_write
from mailbridge.api.context import callback_base_url, current_tenant, public, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.config import get_settings
from mailbridge.errors import Invalid
from mailbridge.oauth import service
from mailbridge.oauth.service import AuthorizationStart, CallbackOutcome, CallbackParams
from mailbridge.oauth.wiring import oauth_deps
from mailbridge.tenancy import Role

router = Router()

# An address as a login hint: no spaces, no controls, one @ (the provider checks the rest).
_LOGIN_HINT = re.compile(r"[^\s@\x00-\x1f\x7f]{1,64}@[^\s@\x00-\x1f\x7f]{1,255}")
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.get(
    "/oauth/<provider>/start",
    summary="Start connecting a mailbox through OAuth: the provider's consent URL",
    description=(
        "Open `authorization_url` in the user's browser; the provider sends it back to "
        "`/oauth/{provider}/callback`, which connects the mailbox and redirects to the front end. "
        "`provider`: `gmail`. With `account_id`, the consent reconnects that account (after "
        "`reauth_required`): its id, mail and sync cursor are kept. `login_hint` preselects the "
        "provider account (an address). The state in the URL is single-use and valid for 10 "
        "minutes. 404 `provider_not_found`, `provider_not_configured` (no client id/secret on this "
        "deployment), `account_not_found`; 400 `provider_mismatch` (the account is of another "
        "provider), `invalid_login_hint`."
    ),
    tags=["oauth"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(
        {
            400: ["provider_mismatch", "invalid_login_hint"],
            404: ["provider_not_found", "provider_not_configured", "account_not_found"],
        }
    ),
)
def start_authorization(
    provider: str,
    account_id: Annotated[str | None, Query(description="Reconnect this account")] = None,
    login_hint: Annotated[str | None, Query(description="Preselect this provider account")] = None,
) -> AuthorizationStart:
    ctx = current_tenant(router)
    if login_hint is not None and not _LOGIN_HINT.fullmatch(login_hint):
        raise Invalid("login_hint must be an email address", code="invalid_login_hint")
    return service.start(
        ctx,
        provider,
        oauth_deps(),
        callback_base_url=callback_base_url(router),
        account_id=account_id,
        login_hint=login_hint,
    )


@router.get(
    "/oauth/<provider>/callback",
    summary="The provider's redirect after consent (no token: the single-use state is the proof)",
    description=(
        "Answers 302 to the configured front-end URL (`OAUTH_RETURN_URL`) with `outcome` "
        "(`connected`, `reconnected` or `error`), `code` (on error: `invalid_state`, "
        "`state_expired`, `access_denied`, `consent_failed`, `missing_code`, `exchange_failed`, "
        "`scope_missing`, `no_refresh_token`, `identity_unavailable`, `account_exists`, "
        "`account_not_found`, `account_mismatch`, `provider_unavailable`, "
        "`provider_not_configured`, `internal`) and `account_id`. Without a configured "
        "front-end URL, 200 with the same fields as JSON. Never another status. For `salesforce` "
        "and `hubspot` (CRM integrations started by `POST /crm/integrations`) the outcome is "
        "`connected` with `integration_id`, or `error` with `integration_id` and `access_denied`, "
        "`consent_failed`, `missing_code`, `exchange_failed`, `no_refresh_token`, "
        "`identity_unavailable`, `already_connected` (the org is connected in the tenant already), "
        "`integration_not_found`, `provider_not_configured`."
    ),
    tags=["oauth"],
    security=[],
    responses={
        200: {
            "description": "The outcome (only when no front-end URL is configured)",
            "content": {"application/json": {"model": CallbackOutcome}},
        },
        302: {"description": "Redirect to the front end with ?outcome=...&code=...&account_id=..."},
    },
    middlewares=[
        public("the provider redirects the browser here: the single-use OAuth state is the proof"),
        audit_write("connects or reconnects a mailbox, or connects a CRM integration"),
    ],
)
def finish_authorization(provider: str) -> Response[str]:
    event: Any = router.current_event
    query = event.query_string_parameters or {}
    params = CallbackParams(
        state=_first(query.get("state")), code=_first(query.get("code")), error=_first(query.get("error"))
    )
    outcome, state = service.finish(provider, params, oauth_deps())
    if state is not None:
        # Filed under the state's tenant and user (the code, tokens and state value never are);
        # a callback without a valid state names no one and is not recorded (api.auditing).
        ids = {"account_id": outcome.account_id or "", "integration_id": outcome.integration_id or ""}
        if state.account_id and not ids["account_id"] and not ids["integration_id"]:
            ids["account_id"] = state.account_id
        audit_as(
            router,
            state.tenant_id,
            {name: value for name, value in ids.items() if value},
            actor=state.subject,
            outcome="failure" if outcome.outcome == "error" else "success",
            error_code=outcome.code,
        )
    return outcome_response(outcome, get_settings().oauth.return_url)


def _first(value: object) -> str | None:
    """API Gateway joins repeated query parameters with commas; only a plain string is used."""
    return value if isinstance(value, str) and value else None


def outcome_response(outcome: CallbackOutcome, return_url: str) -> Response[str]:
    fields = {k: v for k, v in outcome.model_dump().items() if v is not None}
    if not return_url:
        return Response(
            status_code=200,
            content_type="application/json",
            body=outcome.model_dump_json(),
            headers=_NO_STORE,
        )
    location = f"{return_url}{'&' if '?' in return_url else '?'}{urlencode(fields)}"
    return Response(status_code=302, body="", headers={"Location": location, **_NO_STORE})
