"""Email templates: each save an immutable version; preview; A/B stats.

Reads need any role; changes need member or higher. Send with a template through
`POST /emails/send` (`template_id`, `template_version`, `variables`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.store.pagination import MAX_PAGE_SIZE
from mailbridge.templates.models import (
    PreviewRequest,
    Rendered,
    Template,
    TemplateDeleted,
    TemplateFields,
    TemplateList,
    TemplateStats,
    TemplateUpdate,
    TemplateVersion,
    TemplateVersionList,
)
from mailbridge.tenancy import Role

if TYPE_CHECKING:
    from mailbridge.templates.service import TemplateDeps

router = Router()
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=4096, description="`next_cursor` of the previous page")]
_SAVE_ERRORS = {422: ["template_invalid"]}


def _deps() -> TemplateDeps:
    from mailbridge.templates.wiring import template_deps

    return template_deps()


@router.post(
    "/templates",
    summary="Create an email template (subject, html, text, declared variables, A/B variants); version 1",
    description=(
        "Sources are Jinja rendered in the automations' sandbox (expressions and `{% if %}` only); "
        "a syntax error or a construct outside it answers 422 `template_invalid` with `field` and `line`."
    ),
    tags=["templates"],
    security=BEARER,
    status_code=201,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors(_SAVE_ERRORS),
)
def create_template(body: Annotated[TemplateFields, Body()]) -> Template:
    from mailbridge.templates import service

    return service.create_template(current_tenant(router), body, _deps())


@router.get(
    "/templates",
    summary="The tenant's templates, at their latest version",
    tags=["templates"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_templates(cursor: Cursor = None, limit: Limit = 25) -> TemplateList:
    from mailbridge.templates import service

    return service.list_templates(current_tenant(router), _deps(), cursor=cursor, limit=limit)


@router.get(
    "/templates/<template_id>",
    summary="One template at its latest version",
    tags=["templates"],
    security=BEARER,
    responses=errors({404: ["template_not_found"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def get_template(template_id: str) -> Template:
    from mailbridge.templates import service

    return service.get_template(current_tenant(router), template_id, _deps())


@router.put(
    "/templates/<template_id>",
    summary="Save a new version of a template (send the `version` you read)",
    tags=["templates"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({**_SAVE_ERRORS, 404: ["template_not_found"], 409: ["version_conflict"]}),
)
def put_template(template_id: str, body: Annotated[TemplateUpdate, Body()]) -> Template:
    from mailbridge.templates import service

    return service.update_template(current_tenant(router), template_id, body, _deps())


@router.delete(
    "/templates/<template_id>",
    summary="Delete a template (its versions stay, for the emails sent with them)",
    tags=["templates"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["template_not_found"]}),
)
def delete_template(template_id: str) -> TemplateDeleted:
    from mailbridge.templates import service

    service.delete_template(current_tenant(router), template_id, _deps())
    return TemplateDeleted(template_id=template_id)


@router.get(
    "/templates/<template_id>/versions",
    summary="Every saved version of a template, oldest first",
    tags=["templates"],
    security=BEARER,
    responses=errors({404: ["template_not_found"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_versions(template_id: str, cursor: Cursor = None, limit: Limit = 25) -> TemplateVersionList:
    from mailbridge.templates import service

    return service.list_versions(current_tenant(router), template_id, _deps(), cursor=cursor, limit=limit)


@router.get(
    "/templates/<template_id>/versions/<version>",
    summary="One saved version of a template",
    tags=["templates"],
    security=BEARER,
    responses=errors({404: ["template_not_found", "version_not_found"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def get_version(template_id: str, version: int) -> TemplateVersion:
    from mailbridge.templates import service

    return service.get_version(current_tenant(router), template_id, version, _deps())


@router.post(
    "/templates/<template_id>/preview",
    summary="Render a template for a CRM contact or sample data",
    description=(
        "Answers the rendered `subject`, `html` (autoescaped) and `text`, and in `defaulted` the "
        "declared variables that had no value and took their default. A value the template needs "
        "and the data lacks, or a subject that renders to more than one header line, answers 422 "
        "`template_render_failed` with `field`, `variable` and `reason`."
    ),
    tags=["templates"],
    security=BEARER,
    responses=errors(
        {
            400: ["unknown_variant"],
            404: ["template_not_found", "version_not_found", "contact_not_found"],
            422: ["template_render_failed"],
        }
    ),
    middlewares=[require_role(Role.VIEWER)],
)
def preview_template(template_id: str, body: Annotated[PreviewRequest, Body()]) -> Rendered:
    from mailbridge.templates import service

    return service.preview(current_tenant(router), template_id, body, _deps())


@router.get(
    "/templates/<template_id>/stats",
    summary="A/B results: per variant sent, replies, human clicks, rates, and the winner",
    description=(
        "A reply is a later inbound email in the sent email's thread (not an automatic one); a human "
        "click is a tracked click classified `human`. `winner` is the variant with the best "
        "`winner_metric` once every variant has `min_sample` sent emails, else null with `reason`."
    ),
    tags=["templates"],
    security=BEARER,
    responses=errors({404: ["template_not_found"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def template_stats(template_id: str) -> TemplateStats:
    from mailbridge.templates import service

    return service.stats(current_tenant(router), template_id, _deps())
