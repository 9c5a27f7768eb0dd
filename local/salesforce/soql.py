"""A useful subset of SOQL, parsed and evaluated the way Salesforce does.

Supported [D, SOQL and SOSL Reference]:
``SELECT field, ... | COUNT() FROM Object [WHERE cond] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...]
[LIMIT n] [OFFSET n]`` where a condition is ``field op literal`` (=, !=, <>, <, <=, >, >=),
``field [NOT] IN (literal, ...)``, ``field LIKE 'pattern'`` (% and _), ``NOT cond``, and
parenthesised groups joined by AND or OR (mixing AND and OR at one level needs parentheses, as in
SOQL). Literals are typed as SOQL types them: strings in single quotes with backslash escapes,
date-times `2030-01-01T00:00:00Z` / `...+01:00` / `...Z` with milliseconds, dates `2030-01-01`,
numbers, `true`/`false`, `null`. String comparisons ignore case; ascending order puts nulls first
and descending nulls last; OFFSET is at most 2,000.

Errors as Salesforce words them [R]: MALFORMED_QUERY "unexpected token: X" with the query, a caret
and "ERROR at Row:1:Column:N"; INVALID_FIELD "No such column 'X' on entity 'T'..." and "value of
filter criterion for field 'F' must be of type T and should [not] be enclosed in quotes";
INVALID_TYPE "sObject type 'X' is not supported..."; textarea fields "can not be filtered".
Relationship paths (`Account.Name`), aggregate functions other than COUNT(), date literals such as
LAST_N_DAYS, subqueries and semi-joins are outside the subset and answer MALFORMED_QUERY or
INVALID_FIELD as an unknown column would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from local.salesforce.errors import OBJECT_HINT, RestError, no_such_column
from local.salesforce.ids import to18
from local.salesforce.schema import Field, SObjectType, parse_datetime

MAX_OFFSET = 2000
TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<bad>\S)
)""",
    re.VERBOSE,
)
STRINGY = ("id", "reference", "string", "textarea", "email", "phone", "url", "picklist")


@dataclass
class Token:
    kind: str
    text: str
    column: int  # 1-based

    def upper(self) -> str:
        return self.text.upper()


@dataclass
class Literal:
    kind: str  # string | datetime | date | number | boolean | null
    value: Any
    text: str


@dataclass
class Condition:
    field: Field
    op: str  # = != < <= > >= IN NOT IN LIKE
    values: list[Literal]


@dataclass
class Group:
    joiner: str  # AND | OR
    parts: list[Condition | Group | Not]


@dataclass
class Not:
    inner: Condition | Group | Not


@dataclass
class Query:
    sobject: SObjectType
    fields: list[str]
    count: bool = False
    where: Condition | Group | Not | None = None
    order: list[tuple[Field, bool, bool]] = field(default_factory=list)  # (field, descending, nulls first)
    limit: int | None = None
    offset: int = 0


class Parser:
    def __init__(self, text: str, lookup: Any) -> None:
        self.text = text
        self.lookup = lookup  # name -> SObjectType | None
        self.tokens = self._tokenize(text)
        self.at = 0

    def _tokenize(self, text: str) -> list[Token]:
        out: list[Token] = []
        for match in TOKEN.finditer(text):
            kind = match.lastgroup or "bad"
            value = match.group(kind) if match.lastgroup else ""
            if not value:
                continue
            out.append(Token(kind, value, match.start(kind) + 1))
        return out

    # ------------------------------------------------------------------ errors

    def _caret(self, column: int, message: str) -> str:
        return f"\n{self.text}\n{' ' * (column - 1)}^\nERROR at Row:1:Column:{column}\n{message}"

    def malformed(self, token: Token | None = None) -> RestError:
        token = token or self.peek()
        if token is None:
            return RestError(
                400, "MALFORMED_QUERY", self._caret(len(self.text) + 1, "unexpected token: <EOF>")
            )
        return RestError(400, "MALFORMED_QUERY", self._caret(token.column, f"unexpected token: {token.text}"))

    def invalid_field(self, token: Token, message: str) -> RestError:
        return RestError(400, "INVALID_FIELD", self._caret(token.column, message))

    # ------------------------------------------------------------------ tokens

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.at + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.malformed()
        self.at += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.upper() in words:
            self.at += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            raise self.malformed()

    def punct(self, char: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == char:
            self.at += 1
            return True
        return False

    # ------------------------------------------------------------------ grammar

    def parse(self) -> Query:
        self.expect("SELECT")
        selected: list[Token] = []
        count = False
        if (
            (first := self.peek()) is not None
            and first.upper() == "COUNT"
            and (nxt := self.peek(1))
            and nxt.text == "("
        ):
            self.at += 2
            if not self.punct(")"):
                raise self.malformed()
            count = True
        else:
            while True:
                token = self.take()
                if token.kind != "word" or token.upper() == "FROM":
                    raise self.malformed(token)
                if (nxt := self.peek()) is not None and nxt.text == "(":
                    raise self.malformed(nxt)
                selected.append(token)
                if not self.punct(","):
                    break
        self.expect("FROM")
        name = self.take()
        if name.kind != "word":
            raise self.malformed(name)
        sobject = self.lookup(name.text)
        if sobject is None:
            raise RestError(
                400,
                "INVALID_TYPE",
                self._caret(
                    name.column,
                    f"sObject type '{name.text}' is not supported. {OBJECT_HINT}",
                ),
            )
        query = Query(sobject, [self._field(sobject, t).name for t in selected], count)
        if self.keyword("WHERE"):
            query.where = self._or_and(sobject)
        if self.keyword("ORDER"):
            self.expect("BY")
            while True:
                spec = self._field(sobject, self.take())
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                nulls_first = not descending
                if self.keyword("NULLS"):
                    if self.keyword("FIRST"):
                        nulls_first = True
                    elif self.keyword("LAST"):
                        nulls_first = False
                    else:
                        raise self.malformed()
                query.order.append((spec, descending, nulls_first))
                if not self.punct(","):
                    break
        if self.keyword("LIMIT"):
            query.limit = self._integer()
        if self.keyword("OFFSET"):
            where = self.peek()
            query.offset = self._integer()
            if query.offset > MAX_OFFSET and where is not None:
                raise RestError(
                    400,
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    self._caret(where.column, f"Maximum SOQL offset allowed is {MAX_OFFSET}"),
                )
        if self.peek() is not None:
            raise self.malformed()
        return query

    def _integer(self) -> int:
        token = self.take()
        if token.kind != "number" or not token.text.isdigit():
            raise self.malformed(token)
        return int(token.text)

    def _field(self, sobject: SObjectType, token: Token) -> Field:
        if token.kind != "word":
            raise self.malformed(token)
        spec = sobject.field(token.text)
        if spec is None:
            if "." in token.text:
                message = f"Didn't understand relationship '{token.text.split('.')[0]}' in field path."
            else:
                message = no_such_column(token.text, sobject.name)
            raise self.invalid_field(token, message)
        return spec

    def _or_and(self, sobject: SObjectType) -> Condition | Group | Not:
        first = self._unary(sobject)
        joiner: str | None = None
        parts = [first]
        while True:
            token = self.peek()
            if token is None or token.kind != "word" or token.upper() not in ("AND", "OR"):
                break
            if joiner is not None and token.upper() != joiner:
                raise self.malformed(token)
            joiner = token.upper()
            self.at += 1
            parts.append(self._unary(sobject))
        return first if joiner is None else Group(joiner, parts)

    def _unary(self, sobject: SObjectType) -> Condition | Group | Not:
        if self.keyword("NOT"):
            return Not(self._unary(sobject))
        if self.punct("("):
            inner = self._or_and(sobject)
            if not self.punct(")"):
                raise self.malformed()
            return inner
        name = self.take()
        spec = self._field(sobject, name)
        if spec.type == "textarea":
            raise self.invalid_field(name, f"field '{spec.name}' can not be filtered in a query call")
        if self.keyword("NOT"):
            self.expect("IN")
            return Condition(spec, "NOT IN", self._list(spec))
        if self.keyword("IN"):
            return Condition(spec, "IN", self._list(spec))
        if self.keyword("LIKE"):
            value = self._literal(spec)
            if value.kind != "string":
                raise self.malformed()
            return Condition(spec, "LIKE", [value])
        op = self.take()
        if op.kind != "op":
            raise self.malformed(op)
        return Condition(spec, "!=" if op.text == "<>" else op.text, [self._literal(spec)])

    def _list(self, spec: Field) -> list[Literal]:
        if not self.punct("("):
            raise self.malformed()
        values = [self._literal(spec)]
        while self.punct(","):
            values.append(self._literal(spec))
        if not self.punct(")"):
            raise self.malformed()
        return values

    def _literal(self, spec: Field) -> Literal:
        token = self.take()
        kind = token.kind
        if kind == "word" and token.upper() == "NULL":
            return Literal("null", None, token.text)
        if kind == "word" and token.upper() in ("TRUE", "FALSE"):
            literal = Literal("boolean", token.upper() == "TRUE", token.text)
        elif kind == "string":
            literal = Literal("string", re.sub(r"\\(.)", r"\1", token.text[1:-1]), token.text)
        elif kind == "datetime":
            literal = Literal("datetime", parse_datetime(token.text), token.text)
        elif kind == "date":
            literal = Literal("date", date.fromisoformat(token.text), token.text)
        elif kind == "number":
            literal = Literal("number", float(token.text), token.text)
        else:
            raise self.malformed(token)
        expected = {
            "boolean": "boolean",
            "datetime": "datetime",
            "date": "date",
            "double": "number",
            "currency": "number",
            "int": "number",
        }.get(spec.type, "string")
        if literal.kind != expected:
            soql_type = {"datetime": "dateTime", "number": "double"}.get(expected, expected)
            quoting = "be enclosed in quotes" if expected == "string" else "not be enclosed in quotes"
            raise self.invalid_field(
                token,
                f"value of filter criterion for field '{spec.name}' must be of type {soql_type} "
                f"and should {quoting}",
            )
        if spec.type in ("id", "reference") and literal.value:
            normalized = to18(str(literal.value))
            if normalized is None:
                raise self.invalid_field(token, f"invalid ID field: {literal.value}")
            literal.value = normalized
        return literal


def parse(text: str, lookup: Any) -> Query:
    return Parser(text.strip(), lookup).parse()


# ---------------------------------------------------------------------- evaluation


def _key(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return bool(_key(left) == _key(right))
    if op == "!=":
        return bool(_key(left) != _key(right))
    if left is None or right is None:
        return False
    a, b = _key(left), _key(right)
    if isinstance(a, datetime) and isinstance(b, date) and not isinstance(b, datetime):
        a = a.date()
    try:
        return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
    except TypeError:
        return False


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, str(value), re.IGNORECASE | re.DOTALL) is not None


def matches(node: Condition | Group | Not | None, record: dict[str, Any]) -> bool:
    if node is None:
        return True
    if isinstance(node, Not):
        return not matches(node.inner, record)
    if isinstance(node, Group):
        results = (matches(part, record) for part in node.parts)
        return all(results) if node.joiner == "AND" else any(results)
    value = record.get(node.field.name)
    if node.op == "LIKE":
        return _like(value, str(node.values[0].value))
    if node.op in ("IN", "NOT IN"):
        found = any(_compare(value, "=", v.value) for v in node.values)
        return found if node.op == "IN" else not found
    return _compare(value, node.op, node.values[0].value)


def _sort_key(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda record: _key(record[name])


def run(query: Query, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The matching records in the query's order, OFFSET and LIMIT applied."""
    selected = [r for r in records if matches(query.where, r)]
    if not query.order:
        selected.sort(key=lambda r: r["Id"])
    for spec, descending, nulls_first in reversed(query.order):
        present = [r for r in selected if r.get(spec.name) is not None]
        missing = [r for r in selected if r.get(spec.name) is None]
        present.sort(key=_sort_key(spec.name), reverse=descending)
        selected = missing + present if nulls_first else present + missing
    end = None if query.limit is None else query.offset + query.limit
    return selected[query.offset : end]
