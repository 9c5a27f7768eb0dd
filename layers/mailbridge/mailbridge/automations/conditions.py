"""JSON-Logic conditions (jsonlogic.com), checked on save and evaluated with bounded depth and work.

The evaluator is `datalogic_py` (datalogic-rs, Apache-2.0), restricted to its JSON-Logic core
family: it passes all 277 cases of the official suite (jsonlogic.com/tests.json), meters the work
of every evaluation against an operation budget, and never calls `eval`. Around it:

- `check_logic` walks the rule before anything compiles it: JSON values only, an operation is an
  object with exactly one key, the operator is one of `OPERATORS` (jsonlogic.com/operations.html
  without `log`, which writes to a console), nesting at most `MAX_DEPTH`, at most `MAX_NODES`
  values in all. Then the engine's own check reports wrong argument counts.
- Logic and data reach the engine as JSON text (`json.dumps`), never as Python objects: a bare
  string is JSON text to the engine's Python binding, and its walk over Python objects has no
  nesting limit (deeply nested data ends the process), while its JSON parser refuses nesting
  beyond 128 levels with an error we map.
- Every evaluation has an operation budget (`OPS_BUDGET` by default): a `map` or `filter` charges
  per item, `cat`/`substr`/`in` per byte, so a `reduce` that doubles a list or a string stops
  with `logic_too_costly` long before it fills memory.

Every failure is a `LogicError` (400) with a code (see `mailbridge.automations.errors`) and, when
the rule is at fault, an RFC 6901 JSON Pointer into the rule in `details["pointer"]`. No other
exception escapes `check_logic`, `compile_logic`, `evaluate` or `Condition.evaluate`.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailbridge.automations.errors import LogicError

if TYPE_CHECKING:
    import datalogic_py

MAX_DEPTH = 32
"""Deepest nesting of objects and arrays in a rule (the rule itself is level 1)."""

MAX_NODES = 2_000
"""Most JSON values (operations, arguments, literals) in one rule."""

OPS_BUDGET = 100_000
"""Operations one evaluation may charge (datalogic-rs metering: per node, per item, per byte)."""

MAX_DATA_BYTES = 1_000_000
"""Largest data document, as JSON text, a condition is evaluated against."""

OPERATORS = frozenset(
    {
        # jsonlogic.com/operations.html: accessing data, logic and boolean, numeric, array, string.
        "var",
        "missing",
        "missing_some",
        "if",
        "?:",
        "==",
        "===",
        "!=",
        "!==",
        "!",
        "!!",
        "or",
        "and",
        ">",
        ">=",
        "<",
        "<=",
        "max",
        "min",
        "+",
        "-",
        "*",
        "/",
        "%",
        "map",
        "filter",
        "reduce",
        "all",
        "none",
        "some",
        "merge",
        "in",
        "cat",
        "substr",
    }
)

_ENGINE_CODES = {
    "BudgetExceeded": "logic_too_costly",
    "InvalidOperator": "unknown_operator",
    "UnknownOperator": "unknown_operator",
}


@dataclass(frozen=True, slots=True)
class EventData:
    """Event data encoded once as JSON text, to evaluate many rules against (or a queue body as
    it arrived: `from_json`). Encoding is most of the cost of evaluating a small rule."""

    text: str

    @classmethod
    def of(cls, data: Any) -> EventData:
        """Encode `data` (LogicError `invalid_data` when it is not JSON or too large)."""
        return cls(_data_text(data))

    @classmethod
    def from_json(cls, text: str) -> EventData:
        """Wrap JSON text as it is; the engine parses it (nesting beyond 128 levels: `invalid_data`)."""
        if len(text) > MAX_DATA_BYTES:
            raise LogicError(f"the data is larger than {MAX_DATA_BYTES} bytes of JSON", code="invalid_data")
        return cls(text)


@dataclass(frozen=True, slots=True)
class Condition:
    """A checked and compiled rule; thread-safe, evaluate it as often as needed."""

    logic: Any
    _rule: datalogic_py.Rule

    def evaluate(self, data: Any, *, budget: int = OPS_BUDGET) -> Any:
        """The rule's value for `data` (JSON-shaped), within `budget` operations."""
        return self.evaluate_metered(data, budget=budget)[0]

    def evaluate_metered(self, data: Any, *, budget: int = OPS_BUDGET) -> tuple[Any, int]:
        """`(value, operations charged)` for `data` (JSON-shaped, or EventData); raises LogicError."""
        import datalogic_py

        text = data.text if isinstance(data, EventData) else _data_text(data)
        try:
            result, ops = self._rule.evaluate_metered(text, budget)
            return json.loads(result), ops
        except datalogic_py.ParseError as exc:
            raise LogicError("the data is not JSON the engine accepts", code="invalid_data") from exc
        except datalogic_py.DataLogicError as exc:
            code = _ENGINE_CODES.get(getattr(exc, "error_type", ""), "logic_evaluation_failed")
            raise LogicError("the condition could not be evaluated", code=code) from exc
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # defensive: binding
            raise LogicError("the condition could not be evaluated", code="logic_evaluation_failed") from exc

    def matches(self, data: Any, *, budget: int = OPS_BUDGET) -> bool:
        """Whether the rule's value for `data` is truthy (`is_truthy`)."""
        return is_truthy(self.evaluate(data, budget=budget))


def check_logic(logic: Any) -> None:
    """Refuse what is not an acceptable JSON-Logic rule (LogicError, see the module doc)."""
    stack: list[tuple[Any, int, str]] = [(logic, 1, "")]
    nodes = 0
    while stack:
        node, depth, pointer = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise LogicError(
                f"the rule has more than {MAX_NODES} values", code="logic_too_costly", details={}
            )
        if isinstance(node, (dict, list)) and depth > MAX_DEPTH:
            raise LogicError(
                f"the rule nests deeper than {MAX_DEPTH} levels",
                code="logic_too_deep",
                details={"pointer": pointer},
            )
        if isinstance(node, dict):
            if len(node) != 1:
                raise LogicError(
                    "an operation is an object with exactly one key (the operator)",
                    details={"pointer": pointer},
                )
            ((operator, args),) = node.items()
            if not isinstance(operator, str) or operator not in OPERATORS:
                raise LogicError("unknown operator", code="unknown_operator", details={"pointer": pointer})
            stack.append((args, depth + 1, f"{pointer}/{_escape(operator)}"))
        elif isinstance(node, list):
            stack.extend((item, depth + 1, f"{pointer}/{index}") for index, item in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            raise LogicError("numbers must be finite", details={"pointer": pointer})
        elif node is not None and not isinstance(node, (str, int, float, bool)):
            raise LogicError("the rule must be JSON", details={"pointer": pointer})


def compile_logic(logic: Any) -> Condition:
    """Check `logic` (`check_logic`), let the engine check argument counts, and compile it."""
    import datalogic_py

    check_logic(logic)
    engine = _engine()
    text = json.dumps(logic)
    try:
        for diagnostic in engine.check(text):
            if diagnostic["severity"] == "error":
                raise LogicError(
                    "the rule is not valid JSON-Logic",
                    code=_ENGINE_CODES.get(diagnostic["code"], "invalid_logic"),
                    details={"pointer": diagnostic["pointer"], "reason": diagnostic["code"]},
                )
        return Condition(logic=logic, _rule=engine.compile(text))
    except datalogic_py.DataLogicError as exc:
        code = _ENGINE_CODES.get(getattr(exc, "error_type", ""), "invalid_logic")
        raise LogicError("the rule is not valid JSON-Logic", code=code) from exc


def evaluate(logic: Any, data: Any, *, budget: int = OPS_BUDGET) -> Any:
    """Check, compile and evaluate in one call (the rule builder's `POST /automations/evaluate`)."""
    return compile_logic(logic).evaluate(data, budget=budget)


def is_truthy(value: Any) -> bool:
    """JSON-Logic truthiness (jsonlogic.com/truthy.html, JavaScript's with `[]` falsy).

    Falsy: `false`, `null`, `0`, `""`, `[]` (and NaN); everything else, `{}` and `"0"` included,
    is truthy.
    """
    if isinstance(value, float) and math.isnan(value):
        return False
    if isinstance(value, dict):
        return True
    return bool(value)


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def _data_text(data: Any) -> str:
    try:
        text = _ENCODER.encode(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise LogicError("the data must be JSON", code="invalid_data") from exc
    if len(text) > MAX_DATA_BYTES:
        raise LogicError(f"the data is larger than {MAX_DATA_BYTES} bytes of JSON", code="invalid_data")
    return text


def _escape(token: str) -> str:
    """An RFC 6901 reference token."""
    return token.replace("~", "~0").replace("/", "~1")


@functools.cache
def _engine() -> datalogic_py.Engine:
    import datalogic_py

    # Core family only: the jsonlogic.com operators (and no clock, so a replay is deterministic).
    return datalogic_py.Engine(families=[], config={"ops_budget": OPS_BUDGET})
