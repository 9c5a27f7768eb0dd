"""Templated action parameters: `{{contact.email}}`, `{{date_add_days:7}}`, rendered in a sandbox.

Syntax: Jinja (jinja.palletsprojects.com/templates) cut down to expressions and `{% if %}`, plus
the seed's helper form `{{name:arg,...}}`, which is read as `{{ name(arg, ...) }}` (arguments
are number or quoted-string literals), and `{{now}}` / `{{today}}` without arguments.

    Hi {{contact.first_name | default("there")}}, your trial ends {{date_add_days:14}}.
    {% if deal.amount %}Deal value: {{deal.amount}} {{deal.currency}}{% endif %}

What a template can reach (checked on save by `check_template`, and again while rendering by
the sandbox, `jinja2.sandbox.ImmutableSandboxedEnvironment`):

- Variables are the top-level keys of the event data; `a.b`, `a["b"]` and `a.0` read keys and
  list items only. No Python attribute or method is reachable (`contact.items`, `"x".upper`,
  `__class__` are all undefined), and no global but the helpers exists (no `range`, `dict`,
  `lipsum`, `cycler`, `namespace`).
- Helpers (names win over data keys of the same name; `now` is the run's clock, passed in,
  so a dry-run or a replay renders what the run would have):
  `date_add_days(n)` -> ISO date `YYYY-MM-DD` of today + n days (|n| <= 3650),
  `date_add_hours(n)` -> ISO date-time of now + n hours (UTC offset kept, |n| <= 87600),
  `now()` -> ISO date-time, `today()` -> ISO date; all in the time zone given to `render`.
- Filters: `default`/`d`, `lower`, `upper`, `title`, `capitalize`, `trim`, `truncate`, `first`,
  `last`, `length`/`count`, `join` (size-checked), `round`, `int`, `float`, `string`, `abs`,
  `escape`/`e`, `urlencode`, `tojson`. Tests: `defined`, `undefined`, `none`, `number`,
  `string`, `boolean`, `eq`, `ne`, `in`.
- Statements: `{% if %}` / `{% elif %}` / `{% else %}` only. No loops, macros, `set`, `include`,
  `extends`, `import`, `filter` or `call` blocks, and the names `self`, `loop`, `super`,
  `caller`, `varargs`, `kwargs` are reserved; arithmetic only on numbers (no `**`), so the
  time a render takes is bounded by the template's size times the data's, by construction.

Limits: a template of at most `MAX_TEMPLATE_CHARS` characters and `MAX_REFERENCES` variable
references; output of at most `max_output` characters (default `MAX_OUTPUT_CHARS`), checked as
it is produced. `null` renders as the empty string, booleans as `true` / `false`.

An undefined variable is an error (`undefined_variable`), not an empty string: a welcome mail
to `{{contact.email}}` must not go out empty. Write `{{contact.phone | default("")}}` for an
optional value, or test it with `{% if contact.phone is defined %}`; in an `{% if %}` an
undefined value is simply false. Every failure is a `TemplateError` (400) with a code (see
`mailbridge.automations.errors`); messages never quote the data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from mailbridge.automations.errors import TemplateError

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.nodes import Node
    from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TEMPLATE_CHARS = 20_000
MAX_REFERENCES = 200
MAX_OUTPUT_CHARS = 100_000
MAX_NUMBER = 10**15
"""Largest magnitude an arithmetic result in a template may have."""

HELPERS = ("date_add_days", "date_add_hours", "now", "today")
_NO_ARGUMENT_HELPERS = ("now", "today")

_FILTERS = (
    "default",
    "d",
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "truncate",
    "first",
    "last",
    "length",
    "count",
    "round",
    "int",
    "float",
    "string",
    "abs",
    "escape",
    "e",
    "urlencode",
    "tojson",
)
_TESTS = ("defined", "undefined", "none", "number", "string", "boolean", "eq", "ne", "in")
_ALLOWED_NODES = frozenset(
    {
        "Template",
        "Output",
        "TemplateData",
        "Const",
        "Name",
        "Getattr",
        "Getitem",
        "Filter",
        "Test",
        "Call",
        "Keyword",
        "If",
        "CondExpr",
        "Compare",
        "Operand",
        "And",
        "Or",
        "Not",
        "Neg",
        "Pos",
        "Concat",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "FloorDiv",
        "Mod",
        "List",
        "Tuple",
    }
)
_JINJA_NAMES = frozenset({"self", "loop", "super", "caller", "varargs", "kwargs"})
_SEED_FORM = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*([^{}]*?))?\s*\}\}")
_LITERAL = re.compile(r"-?\d{1,9}(?:\.\d{1,6})?|\"[^\"\\{}]{0,200}\"|'[^'\\{}]{0,200}'")


def check_template(source: str) -> None:
    """Refuse a template that `render` could never accept (syntax, subset, limits, helpers)."""
    _compiled(source, autoescape=False)


def render(
    source: str,
    data: Mapping[str, Any],
    *,
    now: datetime,
    time_zone: str = "UTC",
    autoescape: bool = False,
    max_output: int = MAX_OUTPUT_CHARS,
) -> str:
    """`source` rendered against `data` (JSON-shaped) at the instant `now` (timezone-aware).

    `autoescape=True` HTML-escapes every value (for an HTML body). Raises TemplateError.
    """
    from jinja2 import TemplateError as JinjaError
    from jinja2 import UndefinedError
    from jinja2.exceptions import SecurityError

    template = _compiled(source, autoescape=autoescape)
    context = {**data, **_helpers(now, time_zone)}
    produced: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > max_output:
                raise TemplateError(
                    f"the rendered text is longer than {max_output} characters", code="template_too_large"
                )
            produced.append(chunk)
    except UndefinedError as exc:
        raise TemplateError(
            "the template uses a value the event does not have", code="undefined_variable"
        ) from exc
    except SecurityError as exc:
        raise TemplateError("the template reaches outside the event data", code="invalid_template") from exc
    except TemplateError:
        raise
    except (JinjaError, ArithmeticError, ValueError, TypeError, LookupError, RecursionError) as exc:
        raise TemplateError("the template could not be rendered", code="template_failed") from exc
    return "".join(produced)


def render_value(
    value: Any,
    data: Mapping[str, Any],
    *,
    now: datetime,
    time_zone: str = "UTC",
    max_output: int = MAX_OUTPUT_CHARS,
) -> Any:
    """A JSON value with every string in it rendered (object keys are kept as they are).

    For payload templates (`webhook.publish`, `queue.enqueue`): `{"email": "{{contact.email}}"}`.
    `max_output` bounds the sum of the rendered strings.
    """
    budget = [max_output]

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            text = render(node, data, now=now, time_zone=time_zone, max_output=budget[0])
            budget[0] -= len(text)
            return text
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(item) for key, item in node.items()}
        return node

    return walk(value)


def template_strings(value: Any) -> Iterable[str]:
    """Every string in a JSON value (for checking a payload template on save)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from template_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from template_strings(item)


# ------------------------------------------------------------------------------- compiling


def _seed_to_jinja(source: str) -> str:
    def rewrite(match: re.Match[str]) -> str:
        name, arguments = match.group(1), match.group(2)
        if arguments is None:
            return f"{{{{ {name}() }}}}" if name in _NO_ARGUMENT_HELPERS else match.group(0)
        if name not in HELPERS:
            raise TemplateError("unknown helper", code="unknown_helper", details={"helper": name})
        parts = [part.strip() for part in arguments.split(",")] if arguments.strip() else []
        if not all(_LITERAL.fullmatch(part) for part in parts):
            raise TemplateError("helper arguments are number or quoted-string literals")
        return f"{{{{ {name}({', '.join(parts)}) }}}}"

    return _SEED_FORM.sub(rewrite, source)


@functools.lru_cache(maxsize=512)
def _compiled(source: str, *, autoescape: bool) -> Template:
    from jinja2 import TemplateSyntaxError
    from jinja2.exceptions import TemplateAssertionError

    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"a template has at most {MAX_TEMPLATE_CHARS} characters", code="template_too_large"
        )
    environment = _environment(autoescape)
    text = _seed_to_jinja(source)
    try:
        _check_tree(environment.parse(text))
        return environment.from_string(text)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise TemplateError("the template is not valid", details={"line": exc.lineno}) from None
    except RecursionError:  # Jinja's parser and code generator recurse once per nesting level
        raise TemplateError("the template nests too deeply", code="template_too_large") from None
    except ValueError:  # the lexer's int(): a literal past Python's 4300-digit limit
        raise TemplateError("the template is not valid", details={"line": None}) from None


def references(source: str) -> list[tuple[str, ...]]:
    """The values a template reads, in source order, each as its path of keys:
    `{{ contact.first_name }}` -> `("contact", "first_name")`, `a["b"]` -> `("a", "b")`. A key
    computed at render time ends the path; a read on something other than a variable (a literal,
    a filter's result) starts with `""`: `{{ ''.__class__ }}` -> `("", "__class__")`. Helper
    calls are left out. Raises TemplateError as `check_template` does."""
    from jinja2 import nodes

    check_template(source)
    tree = _environment(False).parse(_seed_to_jinja(source))
    found: list[tuple[int, int, tuple[str, ...]]] = []
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            path: list[str] = []
            current: nodes.Node = node
            while isinstance(current, nodes.Getattr | nodes.Getitem):
                if isinstance(current, nodes.Getattr):
                    path.append(current.attr)
                elif isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str | int):
                    path.append(str(current.arg.value))
                else:
                    path.clear()  # a computed key: the path ends before it
                    stack.append(current.arg)
                current = current.node
            if isinstance(current, nodes.Name):
                if current.name not in HELPERS:
                    found.append((node.lineno, len(found), (current.name, *reversed(path))))
            else:
                if path:
                    found.append((node.lineno, len(found), ("", *reversed(path))))
                stack.append(current)
            continue
        stack.extend(reversed(list(node.iter_child_nodes())))
    return [path for _, _, path in sorted(found)]


def _check_tree(tree: Node) -> None:
    from jinja2 import nodes

    references = 0
    stack: list[nodes.Node] = [tree]
    while stack:
        node = stack.pop()
        kind = type(node).__name__
        if kind not in _ALLOWED_NODES:
            raise TemplateError(
                "only expressions and {% if %} are allowed", details={"construct": kind, "line": node.lineno}
            )
        if isinstance(node, nodes.Name) and node.name in _JINJA_NAMES:
            raise TemplateError("the name is reserved", details={"name": node.name, "line": node.lineno})
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            references += 1
            if references > MAX_REFERENCES:
                raise TemplateError(
                    f"a template reads at most {MAX_REFERENCES} values", code="template_too_large"
                )
        if isinstance(node, nodes.Call):
            if not (isinstance(node.node, nodes.Name) and node.node.name in HELPERS):
                raise TemplateError("only the helpers can be called", code="unknown_helper")
            if node.dyn_args is not None or node.dyn_kwargs is not None:
                raise TemplateError("helpers take literal arguments", details={"line": node.lineno})
        if isinstance(node, nodes.Test) and node.name not in _TESTS:
            raise TemplateError("unknown test", details={"test": node.name, "line": node.lineno})
        stack.extend(node.iter_child_nodes())


@functools.cache
def _environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Undefined(StrictUndefined):
        """Printing or reading into it fails (`undefined_variable`); in an `if` it is false."""

        def __bool__(self) -> bool:  # type: ignore[override]
            return False

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
        intercepted_unops = frozenset({"-", "+"})

        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:  # noqa: ARG002
            return False

        def is_safe_callable(self, obj: Any) -> bool:
            return getattr(obj, "_mailbridge_helper", False) is True

        def getattr(self, obj: Any, attribute: str) -> Any:
            return self.getitem(obj, attribute)

        def getitem(self, obj: Any, argument: Any) -> Any:
            if isinstance(obj, Mapping) and isinstance(argument, str) and argument in obj:
                return obj[argument]
            if (
                isinstance(obj, list)
                and isinstance(argument, int)
                and not isinstance(argument, bool)
                and -len(obj) <= argument < len(obj)
            ):
                return obj[argument]
            name = argument if isinstance(argument, str) else None
            return self.undefined(obj=obj, name=name)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" or not (_is_number(left) and _is_number(right)):
                raise TemplateError("arithmetic works on numbers only (no **)", code="template_failed")
            return _bounded(super().call_binop(context, operator, left, right))

        def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
            if not _is_number(arg):
                raise TemplateError("arithmetic works on numbers only", code="template_failed")
            return super().call_unop(context, operator, arg)

    environment = Sandbox(
        autoescape=autoescape,
        undefined=Undefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        cache_size=0,
    )
    environment.globals.clear()
    environment.filters = {name: environment.filters[name] for name in _FILTERS}
    environment.filters["join"] = _join
    environment.tests = {name: environment.tests[name] for name in _TESTS}
    return environment


def _finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _join(value: Any, separator: str = "") -> str:
    if not isinstance(value, list):
        raise TemplateError("join takes a list", code="template_failed")
    items = ["" if item is None else str(item) for item in value]
    if sum(map(len, items)) + len(separator) * max(0, len(items) - 1) > MAX_OUTPUT_CHARS:
        raise TemplateError("the joined text is too long", code="template_too_large")
    return separator.join(items)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bounded(value: Any) -> Any:
    if _is_number(value) and abs(value) > MAX_NUMBER:
        raise TemplateError("the number is too large", code="template_failed")
    return value


def _helpers(now: datetime, time_zone: str) -> dict[str, Callable[..., str]]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        local = now.astimezone(ZoneInfo(time_zone))
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise TemplateError("unknown time zone", code="template_failed") from exc

    def whole(value: Any, limit: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > limit:
            raise TemplateError(f"the helper takes a whole number up to {limit}", code="template_failed")
        return value

    def date_add_days(days: Any) -> str:
        return (local.date() + timedelta(days=whole(days, 3650))).isoformat()

    def date_add_hours(hours: Any) -> str:
        return (local + timedelta(hours=whole(hours, 87_600))).isoformat(timespec="seconds")

    def now_() -> str:
        return local.isoformat(timespec="seconds")

    def today() -> str:
        return local.date().isoformat()

    helpers: dict[str, Callable[..., str]] = {
        "date_add_days": date_add_days,
        "date_add_hours": date_add_hours,
        "now": now_,
        "today": today,
    }
    for helper in helpers.values():
        helper._mailbridge_helper = True  # type: ignore[attr-defined]
    return helpers
