"""Condition evaluations per second on one core: our JSON-Logic path against panzi-json-logic.

Run from the repo root: `.venv/bin/python benchmarks/bench_automations.py [SECONDS]`. Two rules:
the seed's welcome rule (its two-clause condition list, compiled) and a 20-clause list (equals,
contains, comparisons, in, exists, starts_with over a contact event). Ours is what a run does:
`Condition.evaluate` on the event encoded once (`EventData`: one event is matched against every
rule of the tenant; a queue body arrives as JSON text already), datalogic-rs evaluating under the
operation budget, the result parsed back; the rate when the event is encoded for every
evaluation is printed beside it. The peer, panzi-json-logic (pure Python), evaluates the same JSON-Logic
against the same data; both must agree before anything is timed. The process is pinned to one
CPU; no thresholds: it prints the rates and the ratio.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "mailbridge"))

from json_logic import jsonLogic  # type: ignore[import-untyped]  # noqa: E402  (panzi-json-logic)

from mailbridge.automations.compile import compile_conditions  # noqa: E402
from mailbridge.automations.conditions import EventData, compile_logic, is_truthy  # noqa: E402

SEED = [
    {"field": "contact.tags", "operator": "contains", "value": "new-lead"},
    {"field": "contact.source", "operator": "equals", "value": "web"},
]
TWENTY = [
    {"field": "contact.tags", "operator": "contains", "value": "new-lead"},
    {"field": "contact.source", "operator": "equals", "value": "web"},
    {"field": "contact.score", "operator": "greater_than", "value": 10},
    {"field": "contact.score", "operator": "less_than", "value": 1000},
    {"field": "contact.email", "operator": "ends_with", "value": ".com"},
    {"field": "contact.email", "operator": "contains", "value": "@"},
    {"field": "contact.country", "operator": "in", "value": ["FR", "DE", "GB", "US"]},
    {"field": "contact.company.size", "operator": "greater_than_or_equal", "value": 50},
    {"field": "contact.company.industry", "operator": "not_equals", "value": "gambling"},
    {"field": "contact.first_name", "operator": "exists"},
    {"field": "contact.phone", "operator": "not_exists"},
    {"field": "contact.tags", "operator": "not_contains", "value": "unsubscribed"},
    {"field": "contact.owner", "operator": "starts_with", "value": "usr_"},
    {"field": "deal.stage", "operator": "in", "value": ["lead", "qualified"]},
    {"field": "deal.amount", "operator": "greater_than", "value": 1000},
    {"field": "deal.currency", "operator": "equals", "value": "EUR"},
    {"field": "event.source", "operator": "equals", "value": "mailbridge"},
    {"field": "event.type", "operator": "starts_with", "value": "contact."},
    {"field": "contact.created_at", "operator": "greater_than", "value": "2026-01-01"},
    {"field": "contact.language", "operator": "not_in", "value": ["xx"]},
]
DATA: dict[str, Any] = {
    "event": {"source": "mailbridge", "type": "contact.created"},
    "contact": {
        "contact_id": "ct_0190f3a2b4c5d6e7f8a9b0c1d2",
        "email": "ada@example.com",
        "first_name": "Ada",
        "tags": ["new-lead", "vip", "newsletter"],
        "source": "web",
        "score": 42,
        "country": "FR",
        "owner": "usr_42",
        "language": "fr",
        "created_at": "2026-03-27T09:00:00Z",
        "company": {"name": "Example", "size": 120, "industry": "software"},
    },
    "deal": {"stage": "qualified", "amount": 12500, "currency": "EUR"},
}


def rate(evaluate: Callable[[], Any], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            evaluate()
        count += 200
    return count / elapsed


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    for name, conditions in (("seed", SEED), ("20-clause", TWENTY)):
        logic = compile_conditions(conditions)
        rule = compile_logic(logic)
        ours, theirs = rule.matches(DATA), is_truthy(jsonLogic(logic, DATA))
        if ours is not True or theirs is not True:
            print(f"{name}: the evaluators disagree or the rule does not match (ours {ours}, peer {theirs})")
            return 1
        event = EventData.of(DATA)
        ours_rate = rate(functools.partial(rule.evaluate, event), seconds)
        encoding_rate = rate(functools.partial(rule.evaluate, DATA), seconds)
        peer_rate = rate(functools.partial(jsonLogic, logic, DATA), seconds)
        print(
            f"automations conditions/s {name}: {ours_rate:,.0f} "
            f"(panzi-json-logic 1.0.1: {peer_rate:,.0f}; ratio {ours_rate / peer_rate:.2f}x; "
            f"encoding the event each time: {encoding_rate:,.0f}, {encoding_rate / peer_rate:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
