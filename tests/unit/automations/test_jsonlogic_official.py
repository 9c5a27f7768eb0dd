"""The official JSON-Logic conformance suite (jsonlogic.com/tests.json, 277 cases) through our evaluator.

Every case goes through `evaluate` exactly as the rule builder's requests do: checked, compiled and
evaluated with the default budget. Results compare as JSON values, with booleans kept apart from
numbers (`true` is not `1`) and `3` equal to `3.0`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mailbridge.automations.conditions import evaluate

pytestmark = pytest.mark.corpus

_REPO_ROOT = Path(__file__).resolve().parents[3]


def _suite() -> Path | None:
    configured = os.environ.get("MAILBRIDGE_CORPUS")
    root = Path(configured) if configured else _REPO_ROOT.parent / "shared" / "data"
    path = root / "jsonlogic" / "official-jsonlogic.com" / "tests.json"
    return path if path.is_file() else None


SUITE = _suite()
CASES: list[Any] = (
    [case for case in json.loads(SUITE.read_text()) if not isinstance(case, str)] if SUITE else []
)
NO_CORPUS = "corpus not found: set $MAILBRIDGE_CORPUS or put the shared data at ../shared/data"


def _same(got: Any, expected: Any) -> bool:
    if isinstance(got, bool) or isinstance(expected, bool):
        return type(got) is type(expected) and got == expected
    if isinstance(got, (int, float)) and isinstance(expected, (int, float)):
        return got == expected
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(_same(g, e) for g, e in zip(got, expected, strict=True))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in got)
    return type(got) is type(expected) and got == expected


def test_the_suite_has_all_277_cases() -> None:
    if SUITE is None:
        pytest.skip(NO_CORPUS)
    assert len(CASES) == 277


@pytest.mark.parametrize(
    ("logic", "data", "expected"),
    CASES or [pytest.param(None, None, None, marks=pytest.mark.skip(reason=NO_CORPUS))],
    ids=[json.dumps(case[0])[:80] for case in CASES] or None,
)
def test_official_case(logic: Any, data: Any, expected: Any) -> None:
    # Given a case of the official suite / When it is evaluated
    got = evaluate(logic, data)
    # Then the result is the suite's
    assert _same(got, expected), f"{json.dumps(logic)} with {json.dumps(data)}: {got!r} != {expected!r}"
