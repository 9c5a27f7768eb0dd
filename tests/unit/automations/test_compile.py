"""The seed's simple condition list compiles to JSON-Logic that decides like the clauses say."""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.automations.compile import MAX_CONDITIONS, compile_conditions
from mailbridge.automations.conditions import compile_logic
from mailbridge.automations.errors import ConditionError

CONTACT = {
    "contact": {
        "email": "ada@example.com",
        "tags": ["new-lead", "vip"],
        "source": "web",
        "score": 42,
        "notes": "",
        "owner": None,
    }
}


def _decides(conditions: Any, data: Any = CONTACT) -> bool:
    return compile_logic(compile_conditions(conditions)).matches(data)


def test_the_seed_example_compiles_to_an_and_of_json_logic() -> None:
    # Given the seed's list
    conditions = [
        {"field": "contact.tags", "operator": "contains", "value": "new-lead"},
        {"field": "contact.source", "operator": "equals", "value": "web"},
    ]
    # When it is compiled
    logic = compile_conditions(conditions)
    # Then it is the JSON-Logic a rule builder would write, and it matches the contact
    assert logic == {
        "and": [
            {"in": ["new-lead", {"var": "contact.tags"}]},
            {"==": [{"var": "contact.source"}, "web"]},
        ]
    }
    assert _decides(conditions)


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ({"field": "contact.source", "operator": "equals", "value": "web"}, True),
        ({"field": "contact.source", "operator": "not_equals", "value": "web"}, False),
        ({"field": "contact.tags", "operator": "contains", "value": "vip"}, True),
        ({"field": "contact.tags", "operator": "not_contains", "value": "vip"}, False),
        ({"field": "contact.email", "operator": "contains", "value": "@example."}, True),
        ({"field": "contact.email", "operator": "starts_with", "value": "ada@"}, True),
        ({"field": "contact.email", "operator": "starts_with", "value": "bob@"}, False),
        ({"field": "contact.email", "operator": "ends_with", "value": ".com"}, True),
        ({"field": "contact.missing", "operator": "starts_with", "value": "nu"}, False),
        ({"field": "contact.score", "operator": "greater_than", "value": 40}, True),
        ({"field": "contact.score", "operator": "greater_than", "value": 42}, False),
        ({"field": "contact.score", "operator": "greater_than_or_equal", "value": 42}, True),
        ({"field": "contact.score", "operator": "less_than", "value": 42}, False),
        ({"field": "contact.score", "operator": "less_than_or_equal", "value": 42}, True),
        ({"field": "contact.source", "operator": "in", "value": ["web", "import"]}, True),
        ({"field": "contact.source", "operator": "not_in", "value": ["web", "import"]}, False),
        ({"field": "contact.email", "operator": "exists"}, True),
        ({"field": "contact.notes", "operator": "exists"}, True),
        ({"field": "contact.owner", "operator": "exists"}, False),
        ({"field": "contact.phone", "operator": "not_exists"}, True),
        ({"field": "contact.tags.0", "operator": "equals", "value": "new-lead"}, True),
    ],
)
def test_each_operator_decides_as_named(clause: dict[str, Any], expected: bool) -> None:
    assert _decides([clause]) is expected


def test_match_any_ors_the_clauses_and_the_default_ands_them() -> None:
    clauses = [
        {"field": "contact.source", "operator": "equals", "value": "import"},
        {"field": "contact.tags", "operator": "contains", "value": "vip"},
    ]
    assert _decides({"match": "any", "conditions": clauses}) is True
    assert _decides({"conditions": clauses}) is False
    assert _decides(clauses) is False


def test_an_empty_list_always_matches() -> None:
    assert compile_conditions([]) is True


def test_an_unknown_operator_is_refused_on_save() -> None:
    # Given a clause with an operator outside the table
    with pytest.raises(ConditionError) as caught:
        compile_conditions([{"field": "contact.email", "operator": "matches_regex", "value": ".*"}])
    # Then the code says so, and the details locate it without echoing the value
    assert caught.value.code == "unknown_condition_operator"
    assert caught.value.details[0]["loc"][-1] == "operator"
    assert ".*" not in repr(caught.value.details)


@pytest.mark.parametrize(
    "conditions",
    [
        [{"field": "contact.email", "operator": "exists", "value": "x"}],
        [{"field": "contact.email", "operator": "starts_with", "value": ""}],
        [{"field": "contact.score", "operator": "greater_than", "value": [1]}],
        [{"field": "contact.score", "operator": "greater_than", "value": True}],
        [{"field": "contact.source", "operator": "in", "value": "web"}],
        [{"field": "contact..email", "operator": "exists"}],
        [{"field": "contact.email", "operator": "exists", "extra": 1}],
        {"match": "some", "conditions": []},
        [{"field": "contact.email", "operator": "exists"}] * (MAX_CONDITIONS + 1),
        "contact.email == 1",
    ],
)
def test_malformed_lists_are_invalid_conditions(conditions: Any) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_conditions(conditions)
    assert caught.value.code == "invalid_condition"
