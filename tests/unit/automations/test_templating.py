"""Templated parameters: the seed's syntax, the sandbox's walls, the limits and the typed errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailbridge.automations.errors import TemplateError
from mailbridge.automations.templating import (
    MAX_OUTPUT_CHARS,
    MAX_TEMPLATE_CHARS,
    check_template,
    render,
    render_value,
)

NOW = datetime(2026, 3, 27, 22, 30, tzinfo=UTC)
EVENT = {
    "contact": {
        "email": "ada@example.com",
        "first_name": "Ada",
        "tags": ["new-lead", "vip"],
        "score": 7,
        "owner": None,
        "active": True,
        "html": "<b>bold</b>",
    },
    "deal": {"amount": "12500.00", "currency": "EUR"},
}


def _render(source: str, data: Any = EVENT, **kwargs: Any) -> str:
    return render(source, data, now=NOW, **kwargs)


def _code(source: str, data: Any = EVENT) -> str:
    with pytest.raises(TemplateError) as caught:
        _render(source, data)
    return caught.value.code


def test_the_seeds_syntax_renders_fields_and_helpers() -> None:
    # Given the seed's two forms / When rendered at NOW
    # Then the field is read from the event and the due date is seven days on
    assert _render("{{contact.email}}") == "ada@example.com"
    assert _render("{{date_add_days:7}}") == "2026-04-03"
    assert _render("{{ date_add_days: -1 }}") == "2026-03-26"


def test_helpers_use_the_given_clock_and_time_zone() -> None:
    # 22:30 UTC is already the next day in Tokyo
    assert _render("{{today}} {{now}}", time_zone="Asia/Tokyo") == "2026-03-28 2026-03-28T07:30:00+09:00"
    assert _render("{{date_add_hours:2}}") == "2026-03-28T00:30:00+00:00"
    assert _render("{{ date_add_days(1) }}") == "2026-03-28"


def test_jinja_expressions_filters_and_if_work() -> None:
    source = (
        "Hi {{ contact.first_name | upper }} ({{ contact.tags | join(', ') }}, {{ contact.tags.0 }})"
        "{% if deal.amount %}: {{ deal.amount }} {{ deal['currency'] }}{% endif %}"
        "{% if contact.phone %} call{% else %} mail{% endif %} {{ contact.score * 2 }}"
    )
    assert _render(source) == "Hi ADA (new-lead, vip, new-lead): 12500.00 EUR mail 14"


def test_null_renders_empty_and_booleans_as_json() -> None:
    assert _render("[{{contact.owner}}] {{contact.active}}") == "[] true"


def test_an_undefined_variable_is_a_typed_error_unless_defaulted() -> None:
    assert _code("Call {{contact.phone}}") == "undefined_variable"
    assert _code("{{ contact.phone.number }}") == "undefined_variable"
    assert _code("{{ nothing }}") == "undefined_variable"
    assert _render("Call {{contact.phone | default('us')}}") == "Call us"
    assert _render("{% if contact.phone is defined %}x{% else %}y{% endif %}") == "y"


@pytest.mark.parametrize(
    "source",
    [
        "{{ contact.items() }}",  # a dict method
        "{{ contact.email.upper() }}",  # a str method
        "{{ contact.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ contact.tags.pop() }}",
        "{{ range(10) }}",
        "{{ lipsum() }}",
        "{{ cycler }}",
        "{{ dict(a=1) }}",
        "{{ self }}",
    ],
)
def test_nothing_beyond_the_event_data_is_reachable(source: str) -> None:
    # Given a template reaching for Python attributes, methods or globals
    # When / Then it is refused on save or fails while rendering, never runs
    def save_then_render() -> None:
        check_template(source)
        _render(source)

    with pytest.raises(TemplateError) as caught:
        save_then_render()
    assert caught.value.code in {"invalid_template", "unknown_helper", "undefined_variable"}


def test_attribute_syntax_reads_only_keys() -> None:
    # A key named like a dict method is data; the method itself is not reachable
    assert _render("{{ d.items }}", {"d": {"items": 3}}) == "3"
    assert _code("{{ d.keys }}", {"d": {"items": 3}}) == "undefined_variable"


@pytest.mark.parametrize(
    "source",
    [
        "{% for t in contact.tags %}{{t}}{% endfor %}",
        "{% set x = 1 %}",
        "{% macro m() %}{% endmacro %}",
        "{% include 'other' %}",
        "{% extends 'base' %}",
        "{% filter upper %}x{% endfilter %}",
        "{{ 2 ** 3 }}",
        "{{ 'a' | center(1000000000) }}",
        "{{ 'a' | replace('a', 'bb') }}",
        "{{ x is callable }}",
        "{{ {'a': 1} }}",
        "{{ 'unclosed }}",
    ],
)
def test_constructs_outside_the_subset_are_refused_on_save(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_template(source)
    assert caught.value.code == "invalid_template"


def test_an_unknown_helper_is_refused_on_save() -> None:
    for source in ("{{date_sub_days:7}}", "{{ shell('ls') }}"):
        with pytest.raises(TemplateError) as caught:
            check_template(source)
        assert caught.value.code == "unknown_helper"


@pytest.mark.parametrize("source", ["{{date_add_days:seven}}", "{{date_add_days:contact.score}}"])
def test_helper_arguments_are_literals(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_template(source)
    assert caught.value.code == "invalid_template"


def test_helper_arguments_are_range_checked() -> None:
    assert _code("{{date_add_days:99999}}") == "template_failed"
    assert _code("{{date_add_days:'7'}}") == "template_failed"


@pytest.mark.parametrize(
    "source",
    [
        "{{ contact.email * 1000000 }}",  # sequence repetition
        "{{ contact.tags + contact.tags }}",
        "{{ 99999999 * 99999999 * 99999999 }}",
    ],
)
def test_arithmetic_is_for_bounded_numbers_only(source: str) -> None:
    assert _code(source) == "template_failed"


def test_output_is_bounded_as_it_is_produced() -> None:
    # Given data large enough that ten references overflow the output limit
    data = {"big": "x" * (MAX_OUTPUT_CHARS // 5)}
    # When / Then
    assert _render("{{big}}", data) == data["big"]
    assert _code("{{big}}" * 10, data) == "template_too_large"
    assert _code("{{ big_list | join('-') }}", {"big_list": ["y" * 1000] * 200}) == "template_too_large"
    with pytest.raises(TemplateError) as caught:
        _render("{{big}}", data, max_output=10)
    assert caught.value.code == "template_too_large"


def test_the_template_source_is_bounded() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template("x" * (MAX_TEMPLATE_CHARS + 1))
    assert caught.value.code == "template_too_large"


def test_autoescape_escapes_values_for_html_only() -> None:
    assert _render("<p>{{contact.html}}</p>", autoescape=True) == "<p>&lt;b&gt;bold&lt;/b&gt;</p>"
    assert _render("{{contact.html}}") == "<b>bold</b>"


def test_render_value_renders_every_string_of_a_payload() -> None:
    payload = {
        "to": "{{contact.email}}",
        "due": "{{date_add_days:1}}",
        "n": 3,
        "tags": ["{{contact.tags.1}}"],
    }
    assert render_value(payload, EVENT, now=NOW) == {
        "to": "ada@example.com",
        "due": "2026-03-28",
        "n": 3,
        "tags": ["vip"],
    }
