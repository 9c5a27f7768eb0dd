"""Template rendering: the context, defaults for missing values, escaping, the sandbox's walls,
the output bounds, the subject as a header, and the A/B variant choice."""

from __future__ import annotations

import base64
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.errors import Unprocessable
from mailbridge.templates.models import TemplateFields, Variant
from mailbridge.templates.render import (
    MAX_HTML_CHARS,
    check_fields,
    choose_variant,
    context_for,
    render_template,
)

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TEMPLATE_ID = "tpl_5f0c1d2e3a4b5c6d7e8f"


def _fields(**overrides: Any) -> TemplateFields:
    base: dict[str, Any] = {
        "name": "Trial follow-up",
        "subject": "{{ contact.first_name }}, about {{ company.name }}",
        "html": "<p>Hi {{ contact.first_name }}, {{ offer }}</p>",
        "text": "Hi {{ contact.first_name }}, {{ offer }}",
        "variables": [{"name": "contact.first_name", "default": "there"}],
    }
    return TemplateFields.model_validate(base | overrides)


def _render(fields: TemplateFields, data: dict[str, Any], variant: Variant | None = None) -> Any:
    return render_template(TEMPLATE_ID, 3, fields, data, now=NOW, variant=variant)


def _error(exc: pytest.ExceptionInfo[Unprocessable]) -> tuple[str, dict[str, Any]]:
    return exc.value.code, exc.value.details


# ------------------------------------------------------------------------------------- rendering
def test_values_come_from_the_crm_objects_and_the_send_variables() -> None:
    # Given a contact, its company and a send variable
    data = context_for(
        contact={"first_name": "Ada", "name": "Ada Lovelace"},
        company={"name": "Analytical Engines"},
        variables={"offer": "20% off"},
    )
    # When the template is rendered
    rendered = _render(_fields(), data)
    # Then every part reads them, and no default was needed
    assert rendered.subject == "Ada, about Analytical Engines"
    assert rendered.text == "Hi Ada, 20% off"
    assert rendered.html == "<p>Hi Ada, 20% off</p>"
    assert (rendered.version, rendered.defaulted) == (3, [])


def test_the_html_body_is_escaped_and_the_text_body_is_not() -> None:
    # Given a value with markup in it
    data = context_for(
        contact={"first_name": "<b>Ada</b>"}, company={"name": "X"}, variables={"offer": "a & b"}
    )
    # When it is rendered
    rendered = _render(_fields(), data)
    # Then the HTML shows it as text, the text part as it is
    assert rendered.html == "<p>Hi &lt;b&gt;Ada&lt;/b&gt;, a &amp; b</p>"
    assert rendered.text == "Hi <b>Ada</b>, a & b"


@pytest.mark.parametrize("first_name", [None, "", "absent"])
def test_a_declared_variable_without_a_value_takes_its_default_and_is_listed(first_name: str | None) -> None:
    # Given a contact whose first name is missing, null or empty
    contact: dict[str, Any] = {"name": "Ada"}
    if first_name != "absent":
        contact["first_name"] = first_name
    data = context_for(contact=contact, company={"name": "X"}, variables={"offer": "hi"})
    # When the template is rendered
    rendered = _render(_fields(), data)
    # Then the declared default shows and is reported
    assert rendered.subject == "there, about X"
    assert rendered.defaulted == ["contact.first_name"]


def test_a_default_fills_an_object_the_data_lacks_entirely() -> None:
    # Given no contact at all, and a default for contact.first_name
    rendered = _render(_fields(), context_for(company={"name": "X"}, variables={"offer": "hi"}))
    # Then the default is used
    assert rendered.text == "Hi there, hi"


def test_the_default_filter_covers_an_undeclared_missing_value() -> None:
    # Given a template using the default filter on a value the data lacks
    fields = _fields(subject="Deal: {{ deal.stage | default('new') }}", html=None, text="x")
    # When rendered without a deal
    rendered = _render(fields, {})
    # Then the filter's fallback shows
    assert rendered.subject == "Deal: new"


def test_a_missing_value_without_a_default_is_a_422_naming_the_variable() -> None:
    # Given data without the `offer` variable the bodies need
    data = context_for(contact={"first_name": "Ada"}, company={"name": "X"})
    # When rendered
    with pytest.raises(Unprocessable) as exc:
        _render(_fields(), data)
    # Then it fails with the variable and the part
    code, details = _error(exc)
    assert code == "template_render_failed"
    assert details == {"field": "html", "variable": "offer", "reason": "undefined_variable"}


@pytest.mark.parametrize(
    "first_name",
    [
        "Ada\r\nBcc: victim@example.com",
        "=?utf-8?b?" + base64.b64encode(b"Ada\r\nBcc: victim@example.com").decode() + "?=",
        "Ada\x00",
    ],
)
def test_a_subject_that_renders_to_a_header_break_is_refused_with_the_variable(first_name: str) -> None:
    # Given a value that would add a header line (plainly or once RFC 2047 decoded)
    data = context_for(contact={"first_name": first_name}, company={"name": "X"}, variables={"offer": "x"})
    # When the subject is rendered
    with pytest.raises(Unprocessable) as exc:
        _render(_fields(), data)
    # Then it is a 422 naming the variable
    code, details = _error(exc)
    assert code == "template_render_failed"
    assert details == {"field": "subject", "variable": "contact.first_name", "reason": "header_injection"}


def test_the_output_is_bounded() -> None:
    # Given a value larger than the HTML bound
    data = context_for(
        contact={"first_name": "A"}, company={"name": "X"}, variables={"offer": "x" * MAX_HTML_CHARS}
    )
    # When rendered
    with pytest.raises(Unprocessable) as exc:
        _render(_fields(text=None), data)
    # Then the render stops with a 422
    code, details = _error(exc)
    assert code == "template_render_failed"
    assert details["reason"] == "template_too_large"
    assert details["field"] == "html"


def test_a_variant_replaces_only_the_parts_it_sets() -> None:
    # Given a variant with its own subject
    variant = Variant(name="B", split=50, subject="Quick question, {{ contact.first_name }}")
    fields = _fields(variants=[{"name": "A", "split": 50}, variant.model_dump()])
    data = context_for(contact={"first_name": "Ada"}, company={"name": "X"}, variables={"offer": "y"})
    # When rendered in that variant
    rendered = _render(fields, data, variant=fields.variants[1])
    # Then the subject is the variant's and the bodies the template's
    assert (rendered.variant, rendered.subject, rendered.text) == ("B", "Quick question, Ada", "Hi Ada, y")


# ------------------------------------------------------------------------------------- on save
@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ contact.__class__ }}",
        "{{ contact['__init__'] }}",
        "{{ contact.items() }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_sandbox_escapes_are_refused_on_save(source: str) -> None:
    # Given a template reaching for Python attributes
    # When it is saved
    with pytest.raises(Unprocessable) as exc:
        check_fields(_fields(text=source))
    # Then it is refused as invalid
    code, details = _error(exc)
    assert code == "template_invalid"
    assert details["field"] == "text"


def test_a_sandbox_escape_also_fails_to_render() -> None:
    # Given an escape attempt rendered without the save check (a stored version is still rendered)
    fields = _fields(subject="s", html=None, text="{{ contact.__class__ }}")
    # When rendered
    with pytest.raises(Unprocessable) as exc:
        _render(fields, context_for(contact={"first_name": "Ada"}))
    # Then nothing of Python is reached: it fails as a missing value
    assert exc.value.code == "template_render_failed"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            "{% for i in range(100000000) %}{% for j in range(100000000) %}x{% endfor %}{% endfor %}",
            "invalid_template",
        ),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", None),
        ("{{ 'x' * 1000000000 }}", None),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "template_too_large"),
        ("{% if a %}" * 900 + "x" + "{% endif %}" * 900, "template_too_large"),
    ],
)
def test_template_bombs_are_refused_on_save_or_bounded(source: str, reason: str | None) -> None:
    # Given a loop over a huge range, recursion, string multiplication or deep nesting
    fields = _fields(subject="s", html=None, text=source)

    def save_and_render() -> None:
        check_fields(fields)
        _render(fields, {})

    # When saved (and, if accepted, rendered)
    with pytest.raises(Unprocessable) as exc:
        save_and_render()
    # Then it is a 422, never an exception of another kind
    assert exc.value.code in ("template_invalid", "template_render_failed")
    if reason is not None:
        assert exc.value.details["reason"] == reason


@pytest.mark.parametrize(
    "source",
    ["{{ a[" + "9" * 5000 + "] }}", "{{ a." + "9" * 5000 + " }}", "{{ a['" + "9" * 5000 + "'] }}"],
)
def test_a_number_past_pythons_digit_limit_is_a_422(source: str) -> None:
    # Given a key of 5,000 digits (int() refuses more than 4,300: a ValueError, not a 422, unless caught)
    fields = _fields(subject="s", html=None, text=source)

    def save_and_render() -> None:
        check_fields(fields)
        _render(fields, {"a": [1]})

    # When saved (and, if accepted, rendered)
    with pytest.raises(Unprocessable) as exc:
        save_and_render()
    # Then it is a 422
    assert exc.value.code in ("template_invalid", "template_render_failed")


def test_a_syntax_error_is_refused_with_its_line() -> None:
    # Given a body whose third line does not parse
    fields = _fields(html="<p>\n{{ contact.first_name }}\n{{ offer }</p>")
    # When saved
    with pytest.raises(Unprocessable) as exc:
        check_fields(fields)
    # Then the error names the part and the line
    code, details = _error(exc)
    assert (code, details["field"], details["line"]) == ("template_invalid", "html", 3)


def test_a_variant_source_is_checked_too() -> None:
    # Given a valid template whose variant B has a loop
    fields = _fields(
        variants=[
            {"name": "A", "split": 50},
            {"name": "B", "split": 50, "text": "{% for x in y %}{% endfor %}"},
        ]
    )
    # When saved
    with pytest.raises(Unprocessable) as exc:
        check_fields(fields)
    # Then the variant's field is named
    assert exc.value.details["field"] == "variants[1].text"


# ------------------------------------------------------------------------------------- variants
SPLIT = [Variant(name="A", split=70), Variant(name="B", split=20), Variant(name="C", split=10)]


def test_the_variant_of_a_recipient_is_stable() -> None:
    # Given the same recipient written in another case, on another call
    first = choose_variant(TEMPLATE_ID, "ada@example.com", SPLIT)
    again = [choose_variant(TEMPLATE_ID, "ADA@example.com ", SPLIT) for _ in range(5)]
    # Then the variant is always the same
    assert first is not None
    assert {v.name for v in again if v} == {first.name}


def test_the_split_is_respected_over_1000_recipients() -> None:
    # Given 1,000 recipients and a 70/20/10 split
    counts = Counter(
        choose_variant(TEMPLATE_ID, f"person{i}@example.com", SPLIT).name  # type: ignore[union-attr]
        for i in range(1000)
    )
    # Then each variant gets its share within 4 percentage points
    assert abs(counts["A"] - 700) <= 40
    assert abs(counts["B"] - 200) <= 40
    assert abs(counts["C"] - 100) <= 40


def test_another_template_splits_the_same_recipients_differently() -> None:
    # Given two templates with the same 50/50 split
    halves = [Variant(name="A", split=50), Variant(name="B", split=50)]
    people = [f"person{i}@example.com" for i in range(200)]
    one = [choose_variant(TEMPLATE_ID, p, halves).name for p in people]  # type: ignore[union-attr]
    other = [choose_variant("tpl_00000000000000000000", p, halves).name for p in people]  # type: ignore[union-attr]
    # Then the assignments differ (the template id is part of the hash)
    assert one != other


def test_a_template_without_variants_has_no_variant() -> None:
    assert choose_variant(TEMPLATE_ID, "ada@example.com", []) is None
