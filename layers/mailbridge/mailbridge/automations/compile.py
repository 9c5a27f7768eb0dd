"""The seed's simple condition list, compiled to JSON-Logic.

Accepted shapes (the seed's rule example, and the same with `match`):

    [{"field": "contact.tags", "operator": "contains", "value": "new-lead"}, ...]
    {"match": "any", "conditions": [...]}

The list is ANDed (`match: all`, the default) or ORed (`match: any`); an empty list is always
true. `field` is a dotted path into the event data (`contact.tags`, `deal.amount`,
`email.to.0`), read with JSON-Logic `var`. Operators, and the JSON-Logic each becomes
(jsonlogic.com/operations.html; `==` is JavaScript's loose equality, as in every JSON-Logic
engine):

| operator | JSON-Logic | value |
|---|---|---|
| `equals` / `not_equals` | `==` / `!=` | any JSON |
| `contains` / `not_contains` | `in`, value first: substring of a string, member of a list | any JSON |
| `starts_with` / `ends_with` | `===` on `substr` of the field | non-empty string |
| `greater_than`, `less_than` (and `_or_equal`) | `>`, `<` (`>=`, `<=`) | number or string (ISO dates: text) |
| `in` / `not_in` | `in` with the field first: the field is one of the listed values | non-empty list |
| `exists` / `not_exists` | `!==` null (absent or null does not exist; `""`, `0`, `[]` do) | none |

An operator outside this table is refused on save (`unknown_condition_operator`); any other
shape problem is `invalid_condition`. Both carry the pydantic error locations and types in
`details`, never the values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, TypeAdapter, ValidationError, model_validator

from mailbridge.automations.conditions import check_logic
from mailbridge.automations.errors import ConditionError
from mailbridge.models.base import Model

MAX_CONDITIONS = 50

SimpleOperator = Literal[
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "greater_than",
    "greater_than_or_equal",
    "less_than",
    "less_than_or_equal",
    "in",
    "not_in",
    "exists",
    "not_exists",
]

FieldPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$",
        description="Dotted path into the event data, e.g. `contact.tags`",
    ),
]

_COMPARISONS = {
    "greater_than": ">",
    "greater_than_or_equal": ">=",
    "less_than": "<",
    "less_than_or_equal": "<=",
}


class SimpleCondition(Model):
    """One `{field, operator, value}` clause of the seed's condition list."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"field": "contact.tags", "operator": "contains", "value": "vip"}]},
    )

    field: FieldPath
    operator: SimpleOperator
    value: JsonValue = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> SimpleCondition:
        op, value = self.operator, self.value
        if op in ("exists", "not_exists") and value is not None:
            raise ValueError(f"`{op}` takes no value")
        if op in ("starts_with", "ends_with") and not (isinstance(value, str) and value):
            raise ValueError(f"`{op}` needs a non-empty string value")
        if op in _COMPARISONS and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
            raise ValueError(f"`{op}` needs a number or a string value")
        if op in ("in", "not_in") and not (isinstance(value, list) and value):
            raise ValueError(f"`{op}` needs a non-empty list value")
        return self


class ConditionList(Model):
    """The seed's list, with `match` choosing AND (`all`) or OR (`any`)."""

    model_config = ConfigDict(extra="forbid")

    match: Literal["all", "any"] = "all"
    conditions: list[SimpleCondition] = Field(default_factory=list, max_length=MAX_CONDITIONS)


_LIST: TypeAdapter[list[SimpleCondition]] = TypeAdapter(
    Annotated[list[SimpleCondition], Field(max_length=MAX_CONDITIONS)]
)


def parse_conditions(raw: Any) -> ConditionList:
    """Validate either accepted shape; raises ConditionError (see the module doc)."""
    try:
        if isinstance(raw, list):
            return ConditionList(conditions=_LIST.validate_python(raw))
        return ConditionList.model_validate(raw)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "type": e["type"]} for e in exc.errors(include_input=False)]
        unknown = any(e["type"] == "literal_error" and e["loc"][-1:] == ["operator"] for e in errors)
        raise ConditionError(
            "unknown condition operator" if unknown else "the condition list is not valid",
            code="unknown_condition_operator" if unknown else "invalid_condition",
            details=errors,
        ) from None


def compile_conditions(raw: Any) -> Any:
    """The JSON-Logic rule equivalent to the condition list `raw` (checked with `check_logic`)."""
    parsed = parse_conditions(raw)
    clauses = [_clause(condition) for condition in parsed.conditions]
    logic: Any = {"and" if parsed.match == "all" else "or": clauses} if clauses else True
    if len(clauses) == 1:
        logic = clauses[0]
    check_logic(logic)
    return logic


def _clause(condition: SimpleCondition) -> Any:
    field: Any = {"var": condition.field}
    op, value = condition.operator, condition.value
    negate = op.startswith("not_")
    base = op.removeprefix("not_")
    clause: Any
    if base == "equals":
        return {"!=" if negate else "==": [field, value]}
    if base == "contains":
        clause = {"in": [value, field]}
    elif base == "in":
        clause = {"in": [field, value]}
    elif base == "exists":
        clause = {"!==": [field, None]}
    elif op == "starts_with":
        assert isinstance(value, str)
        clause = {"===": [{"substr": [field, 0, len(value)]}, value]}
    elif op == "ends_with":
        assert isinstance(value, str)
        clause = {"===": [{"substr": [field, -len(value)]}, value]}
    else:
        clause = {_COMPARISONS[op]: [field, value]}
    return {"!": clause} if negate else clause
