"""JSON-Logic conditions: bounded depth and work, typed errors, nothing else escapes."""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.automations.conditions import (
    MAX_DATA_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    EventData,
    check_logic,
    compile_logic,
    evaluate,
    is_truthy,
)
from mailbridge.automations.errors import LogicError
from mailbridge.errors import Invalid


def _nested(levels: int) -> Any:
    logic: Any = {"var": "x"}
    for _ in range(levels - 1):
        logic = {"!": logic}
    return logic


def _code(logic: Any, data: Any = None) -> str:
    with pytest.raises(LogicError) as caught:
        evaluate(logic, data)
    assert isinstance(caught.value, Invalid)
    return caught.value.code


def test_the_seed_rule_matches_a_tagged_contact() -> None:
    # Given the seed's welcome rule
    rule = compile_logic(
        {"and": [{"in": ["new-lead", {"var": "contact.tags"}]}, {"==": [{"var": "contact.source"}, "web"]}]}
    )
    # When / Then it matches the tagged web contact and not the untagged one
    assert rule.matches({"contact": {"tags": ["new-lead"], "source": "web"}})
    assert not rule.matches({"contact": {"tags": [], "source": "web"}})


def test_a_rule_at_the_depth_limit_is_accepted_and_one_deeper_is_refused() -> None:
    # Given rules nested exactly MAX_DEPTH and MAX_DEPTH + 1 levels
    # When / Then the first evaluates, the second is refused before compiling
    assert evaluate(_nested(MAX_DEPTH), {"x": 1}) in (True, False)
    with pytest.raises(LogicError) as caught:
        check_logic(_nested(MAX_DEPTH + 1))
    assert caught.value.code == "logic_too_deep"


def test_a_rule_with_too_many_values_is_too_costly() -> None:
    # Given an `or` of more values than MAX_NODES
    logic = {"or": [False] * MAX_NODES}
    # When / Then
    assert _code(logic) == "logic_too_costly"


@pytest.mark.parametrize(
    "logic",
    [
        {"eval": ["__import__('os')"]},
        {"log": "x"},  # jsonlogic.com has it, but it writes to a console
        {"val": "x"},  # datalogic's extension, not jsonlogic.com's
        {"now": []},  # datalogic's clock: a replay must be deterministic
        {"and": [True, {"upper": "x"}]},
    ],
)
def test_operators_outside_jsonlogic_com_are_unknown(logic: Any) -> None:
    assert _code(logic) == "unknown_operator"


def test_the_unknown_operator_is_located_by_a_json_pointer() -> None:
    with pytest.raises(LogicError) as caught:
        check_logic({"and": [True, {"or": [{"sum": [1]}]}]})
    assert caught.value.details == {"pointer": "/and/1/or/0"}


@pytest.mark.parametrize(
    "logic",
    [
        {"==": [1, 1], "!=": [1, 2]},  # two keys: not an operation
        {},
        {"map": [[1, 2]]},  # map takes two arguments
        {"var": float("nan")},
        {"var": b"x"},
    ],
)
def test_malformed_logic_is_invalid_logic(logic: Any) -> None:
    assert _code(logic) == "invalid_logic"


_XS = {"xs": list(range(64))}


@pytest.mark.parametrize(
    ("logic", "data"),
    [
        # a reduce that doubles a list, then a string, with every item
        ({"reduce": [{"var": "xs"}, {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]}, _XS),
        ({"reduce": [{"var": "xs"}, {"cat": [{"var": "accumulator"}, {"var": "accumulator"}]}, "ab"]}, _XS),
        # nested iteration: 400 x 400 items
        ({"map": [{"var": "rows"}, {"map": [{"var": ""}, 1]}]}, {"rows": [[0] * 400] * 400}),
        ({"some": [{"var": "big"}, {"==": [{"var": ""}, -1]}]}, {"big": list(range(150_000))}),
    ],
)
def test_runaway_work_stops_at_the_budget(logic: Any, data: Any) -> None:
    # Given data with long lists / When / Then the evaluation stops with a typed error
    assert _code(logic, data) == "logic_too_costly"


def test_a_smaller_budget_is_honoured() -> None:
    rule = compile_logic({"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]})
    assert rule.evaluate({"xs": [1, 2, 3]}, budget=1_000) == [2, 3, 4]
    with pytest.raises(LogicError) as caught:
        rule.evaluate({"xs": list(range(1_000))}, budget=1_000)
    assert caught.value.code == "logic_too_costly"


@pytest.mark.parametrize(
    "data",
    [
        {"x": b"bytes"},
        {"x": float("inf")},
        {"x": object()},
    ],
)
def test_data_that_is_not_json_is_invalid_data(data: Any) -> None:
    assert _code({"var": "x"}, data) == "invalid_data"


def test_deeply_nested_data_is_refused_not_fatal() -> None:
    # Given data nested 100 000 levels (the engine's object walk would overflow its stack)
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    # When / Then a typed error, and the process is still here
    assert _code({"var": "x"}, {"x": deep}) == "invalid_data"


def test_data_larger_than_the_limit_is_refused() -> None:
    assert _code({"var": "x"}, {"x": "a" * MAX_DATA_BYTES}) == "invalid_data"


def test_arithmetic_on_a_word_fails_with_a_code() -> None:
    assert _code({"+": [{"var": "name"}, 1]}, {"name": "Ada"}) == "logic_evaluation_failed"


def test_a_bare_string_is_a_literal_not_json_text() -> None:
    # The engine's binding would parse a Python str as JSON text: "apple" must stay "apple"
    assert evaluate("apple", {}) == "apple"
    assert evaluate({"var": ""}, "[1]") == "[1]"


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (0, False),
        (0.0, False),
        ("", False),
        ([], False),
        (None, False),
        (False, False),
        (float("nan"), False),
        ({}, True),
        ("0", True),
        ([0], True),
        (-1, True),
    ],
)
def test_truthiness_follows_jsonlogic_com(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_event_data_encoded_once_evaluates_like_the_plain_data() -> None:
    # Given an event encoded once (or a queue body as it arrived)
    data = {"contact": {"tags": ["vip"], "score": 3}}
    rule = compile_logic(
        {"and": [{"in": ["vip", {"var": "contact.tags"}]}, {">": [{"var": "contact.score"}, 2]}]}
    )
    # When / Then both forms give the rule's value
    assert rule.evaluate(EventData.of(data)) is True
    assert rule.evaluate(EventData.from_json('{"contact":{"tags":[],"score":3}}')) is False
    with pytest.raises(LogicError) as caught:
        rule.evaluate(EventData.from_json("[" * 5000 + "]" * 5000))
    assert caught.value.code == "invalid_data"
    with pytest.raises(LogicError):
        EventData.of({"x": float("nan")})
