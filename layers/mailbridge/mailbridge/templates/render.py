"""Rendering a template for one recipient, in the automations' sandbox
(`mailbridge.automations.templating`: `jinja2.sandbox.ImmutableSandboxedEnvironment`, cut down
to expressions and `{% if %}`; no loops, macros, `set`, includes or calls other than its date
helpers, so the time a render takes is bounded by the template's size, by construction).

The context (`context_for`): `contact` (`name`, `first_name`, `last_name`, `email`, `title`,
`phones`, `tags`, `custom`), `company` (`name`, `domain`, `domains`), `deal` (`name`, `stage`,
`amount`, `currency`, `close_date`), `sender` (`name`, `email`), `custom` (the contact's custom
fields again, at the top) and the send's own `variables` at the top level. Only keys of these
objects are reachable: no Python attribute (`{{ ''.__class__ }}`, `contact.items`) exists, and a
template reading one is refused on save (`template_invalid`, `reason: private_name` for names
starting with `_`) or fails to render.

Missing values: a declared variable (`variables: [{name, default}]`) that is missing, null or
empty text takes its default (listed in `defaulted`); elsewhere the sandbox's filters apply:
`default`/`d` (`{{ deal.stage | default("new") }}`; `default(x, true)` also replaces empty
text), the `defined`/`undefined`/`none` tests in `{% if %}`, and `trim`, `lower`, `upper`,
`title`, `capitalize`, `truncate`, `first`, `last`, `length`, `join`, `round`, `int`, `float`,
`string`, `abs`, `escape`, `urlencode`, `tojson`. Any other missing value fails the render.

Escaping: the HTML body is rendered with autoescape (every value HTML-escaped), the subject and
the text body are not. Output bounds (checked while rendering): subject `MAX_SUBJECT_CHARS`,
HTML `MAX_HTML_CHARS`, text `MAX_TEXT_CHARS` characters. The rendered subject must be a valid
header value: no CR, LF or other control character, also after RFC 2047 decoding.

Errors (both 422, `mailbridge.errors.Unprocessable`): `template_invalid` on save (details
`field`, `line` when known, `reason`: the sandbox's code), `template_render_failed` while
rendering (details `field`, `variable` when one can be named, `reason`).

A/B variants: `choose_variant` picks per recipient from SHA-256(template id, NUL, lower-cased
address): the first 8 bytes as an integer modulo 100, matched against the cumulative splits in
the order the variants are listed. The same recipient always gets the same variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from mailbridge.automations.errors import TemplateError
from mailbridge.automations.templating import HELPERS, references, render
from mailbridge.errors import Unprocessable
from mailbridge.models.fields import decoded_header_value, has_control
from mailbridge.templates.models import Rendered, TemplateFields, TemplateVariable, Variant

MAX_SUBJECT_CHARS = 900
MAX_HTML_CHARS = 1_000_000
MAX_TEXT_CHARS = 500_000
CONTEXT_OBJECTS = ("contact", "company", "deal", "sender", "custom")
RESERVED_NAMES = frozenset(CONTEXT_OBJECTS) | frozenset(HELPERS)
"""Names a send's `variables` cannot take (they would hide the CRM objects or the helpers)."""

_FIELDS = ("subject", "html", "text")


# ------------------------------------------------------------------------------------- on save
def check_fields(fields: TemplateFields) -> None:
    """Refuse on save what could never render: Unprocessable `template_invalid` with the field
    (`subject`, `html`, `text`, `variants[i].subject` ...), the line and the sandbox's reason."""
    sources: list[tuple[str, str]] = [
        (name, getattr(fields, name)) for name in _FIELDS if getattr(fields, name)
    ]
    for index, variant in enumerate(fields.variants):
        sources += [
            (f"variants[{index}].{name}", getattr(variant, name))
            for name in _FIELDS
            if getattr(variant, name)
        ]
    for field, source in sources:
        try:
            paths = references(source)
        except TemplateError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            raise Unprocessable(
                "the template is not valid",
                code="template_invalid",
                details={"field": field, "line": details.get("line"), "reason": exc.code},
            ) from None
        for path in paths:
            if any(part.startswith("_") for part in path):
                raise Unprocessable(
                    "a template reads only the keys of its data, never names starting with _",
                    code="template_invalid",
                    details={"field": field, "line": None, "reason": "private_name"},
                )


# ------------------------------------------------------------------------------------- context
def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def contact_context(contact: Any) -> dict[str, Any]:
    """A CRM `Contact` as the template sees it (`first_name`: the name up to its first space)."""
    first, _, last = contact.name.partition(" ")
    primary = next((e for e in contact.emails if e.primary), contact.emails[0] if contact.emails else None)
    custom = {key: _number(v) if isinstance(v, Decimal) else v for key, v in (contact.custom or {}).items()}
    return {
        "name": contact.name,
        "first_name": first,
        "last_name": last,
        "email": str(primary.address) if primary else "",
        "title": contact.title,
        "phones": [str(p) for p in contact.phones],
        "tags": list(contact.tags),
        "custom": custom,
    }


def company_context(company: Any) -> dict[str, Any]:
    domains = [str(d) for d in company.domains]
    return {"name": company.name, "domain": domains[0] if domains else "", "domains": domains}


def deal_context(deal: Any) -> dict[str, Any]:
    return {
        "name": deal.name,
        "stage": deal.stage,
        "amount": None if deal.amount is None else _number(deal.amount),
        "currency": deal.currency,
        "close_date": None if deal.close_date is None else deal.close_date.isoformat(),
    }


def context_for(
    *,
    contact: dict[str, Any] | None = None,
    company: dict[str, Any] | None = None,
    deal: dict[str, Any] | None = None,
    sender: dict[str, Any] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The render context; an object left out is absent (its declared defaults apply)."""
    context: dict[str, Any] = {
        key: value for key, value in (variables or {}).items() if key not in RESERVED_NAMES
    }
    for name, value in (("contact", contact), ("company", company), ("deal", deal), ("sender", sender)):
        if value is not None:
            context[name] = value
    if contact is not None and isinstance(contact.get("custom"), dict):
        context["custom"] = contact["custom"]
    return context


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    current: Any = data
    for part in path:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif (
            isinstance(current, list)
            and len(part) <= 9
            and part.lstrip("-").isdigit()
            and -len(current) <= int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            return False, None
    return True, current


def with_defaults(
    data: Mapping[str, Any], declared: list[TemplateVariable]
) -> tuple[dict[str, Any], list[str]]:
    """`data` with each declared variable that is missing, null or "" set to its default; and
    the names of those variables (a default that cannot be placed, under a value that is not an
    object, is not used)."""
    context: dict[str, Any] = dict(data)
    defaulted: list[str] = []
    for variable in declared:
        path = tuple(variable.name.split("."))
        found, value = _lookup(context, path)
        if found and value is not None and value != "":
            continue
        node = context
        placed = True
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
            elif isinstance(child, Mapping):
                child = dict(child)
            else:
                placed = False
                break
            node[part] = child
            node = child
        if placed:
            node[path[-1]] = variable.default
            defaulted.append(variable.name)
    return context, defaulted


# ------------------------------------------------------------------------------------- variants
def choose_variant(template_id: str, recipient: str, variants: list[Variant]) -> Variant | None:
    """The recipient's variant (None for a template without variants); see the module docstring."""
    if not variants:
        return None
    digest = hashlib.sha256(f"{template_id}\x00{recipient.strip().lower()}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    edge = 0
    for variant in variants:
        edge += variant.split
        if bucket < edge:
            return variant
    return variants[-1]


# ------------------------------------------------------------------------------------- rendering
def _failed(field: str, reason: str, variable: str | None) -> Unprocessable:
    return Unprocessable(
        "the template could not be rendered with this data",
        code="template_render_failed",
        details={"field": field, "variable": variable, "reason": reason},
    )


def _missing(source: str, data: Mapping[str, Any]) -> str | None:
    """The first value the template reads that the data does not have (for the error)."""
    for path in references(source):
        if path[0] and not _lookup(data, path)[0]:
            return ".".join(path)[:200]
    return None


def _render_one(
    field: str, source: str, data: Mapping[str, Any], now: datetime, *, html: bool, limit: int
) -> str:
    try:
        return render(source, data, now=now, autoescape=html, max_output=limit)
    except TemplateError as exc:
        variable = _missing(source, data) if exc.code == "undefined_variable" else None
        raise _failed(field, exc.code, variable) from None


def render_template(
    template_id: str,
    version: int,
    fields: TemplateFields,
    data: Mapping[str, Any],
    *,
    now: datetime,
    variant: Variant | None = None,
) -> Rendered:
    """Subject, HTML and text of `fields` (with `variant`'s overrides) rendered against `data`
    (from `context_for`). Raises Unprocessable `template_render_failed`."""
    context, defaulted = with_defaults(data, fields.variables)
    subject_source = (variant and variant.subject) or fields.subject
    html_source = (variant and variant.html) or fields.html
    text_source = (variant and variant.text) or fields.text
    subject = _render_one("subject", subject_source, context, now, html=False, limit=MAX_SUBJECT_CHARS)
    if has_control(subject) or has_control(decoded_header_value(subject)):
        culprit = next(
            (
                ".".join(path)
                for path in references(subject_source)
                if isinstance(value := _lookup(context, path)[1], str)
                and (has_control(value) or has_control(decoded_header_value(value)))
            ),
            None,
        )
        raise _failed("subject", "header_injection", culprit)
    html = (
        _render_one("html", html_source, context, now, html=True, limit=MAX_HTML_CHARS)
        if html_source
        else None
    )
    text = (
        _render_one("text", text_source, context, now, html=False, limit=MAX_TEXT_CHARS)
        if text_source
        else None
    )
    return Rendered(
        template_id=template_id,
        version=version,
        variant=variant.name if variant else None,
        subject=subject.strip(),
        html=html,
        text=text,
        defaulted=defaulted,
    )
